variable "project" {
  type        = string
  description = "Project name, the first part of every resource name and of the SSM prefix."
}

variable "environment" {
  type        = string
  description = "Environment name (`dev`, `prod`); part of every resource name and of the SSM prefix `/<project>/<environment>`."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lowercase letters or digits, starting with a letter."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Two private subnets (different Availability Zones, with NAT or VPC endpoints) for MWAA."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups for MWAA; at least one must allow all traffic from itself."
}

variable "alert_emails" {
  type        = list(string)
  description = "Email addresses that receive alarm and budget notifications."
  default     = []
  nullable    = false
}

variable "monthly_budget_usd" {
  type        = number
  description = "Monthly cost budget of the environment in USD."
}

variable "budget_filter_by_environment_tag" {
  type        = bool
  description = "Budget only resources tagged `Environment=<environment>` (activate the tag as a cost allocation tag first); false budgets the whole account."
  default     = false
  nullable    = false
}

variable "airflow_version" {
  type        = string
  description = "Airflow version of the MWAA environment; null takes the orchestration module's default, the version the bundle is tested on."
  default     = null
}

variable "mwaa_environment_class" {
  type        = string
  description = "MWAA environment class."
  default     = "mw1.small"
  nullable    = false
}

variable "mwaa_min_workers" {
  type        = number
  description = "Workers MWAA always runs."
  default     = 1
  nullable    = false
}

variable "mwaa_max_workers" {
  type        = number
  description = "Workers MWAA may scale out to."
  default     = 2
  nullable    = false
}

variable "mwaa_webserver_access_mode" {
  type        = string
  description = "`PRIVATE_ONLY` or `PUBLIC_ONLY` access to the Airflow UI."
  default     = "PRIVATE_ONLY"
  nullable    = false
}

variable "mlflow_tracking_server_size" {
  type        = string
  description = "Size of the managed MLflow server (`Small`, `Medium`, `Large`)."
  default     = "Small"
  nullable    = false
}

variable "mlflow_version" {
  type        = string
  description = "MLflow version of the managed server; null picks SageMaker's newest."
  default     = null
}

variable "serving_use_case" {
  type        = string
  description = "Use case whose real-time endpoint gets the rollback alarms and autoscaling; its instance type is `serving.instance_type` in its spec."
  default     = "taxi_trip_duration"
  nullable    = false
}

variable "serving_min_instance_count" {
  type        = number
  description = "Minimum instances of the endpoint's champion variant under autoscaling."
  default     = 1
  nullable    = false
}

variable "serving_max_instance_count" {
  type        = number
  description = "Maximum instances of the endpoint's champion variant under autoscaling; caps the serving bill."
  default     = 1
  nullable    = false
}

variable "create_endpoint_autoscaling" {
  type        = bool
  description = "Register autoscaling for the endpoint; set true only after the deploy DAG has created it."
  default     = false
  nullable    = false
}

variable "quarantine_expiration_days" {
  type        = number
  description = "Days quarantined batches are kept."
  default     = 30
  nullable    = false
}

variable "prediction_log_expiration_days" {
  type        = number
  description = "Days prediction logs are kept."
  default     = 90
  nullable    = false
}

variable "validated_transition_days" {
  type        = number
  description = "Days before validated snapshots move to Glacier Instant Retrieval."
  default     = 90
  nullable    = false
}

variable "force_destroy" {
  type        = bool
  description = "Let `terraform destroy` delete non-empty buckets and the image repository. Only for throwaway environments."
  default     = false
  nullable    = false
}

variable "kms_deletion_window_in_days" {
  type        = number
  description = "Waiting period before KMS keys are deleted after `terraform destroy` (7-30)."
  default     = 30
  nullable    = false
}

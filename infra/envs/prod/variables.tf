# The platform module's inputs, declared again so that terraform.tfvars can set them.
# Optional ones default to null here, which takes the platform module's default: every
# default lives once, in infra/modules/platform/variables.tf.

variable "region" {
  type        = string
  description = "AWS region of the environment; it must offer MWAA and SageMaker managed MLflow."
}

variable "project" {
  type        = string
  description = "Project name, the first part of every resource name and of the SSM prefix."
}

variable "environment" {
  type        = string
  description = "Environment name (`dev`, `prod`); part of every resource name and of the SSM prefix `/<project>/<environment>`."
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
  default     = null
}

variable "monthly_budget_usd" {
  type        = number
  description = "Monthly cost budget of the environment in USD."
}

variable "budget_filter_by_environment_tag" {
  type        = bool
  description = "Budget only resources tagged `Environment=<environment>` (activate the tag as a cost allocation tag first); false budgets the whole account."
  default     = null
}

variable "airflow_version" {
  type        = string
  description = "Airflow version of the MWAA environment; null takes the orchestration module's default, the version the bundle is tested on."
  default     = null
}

variable "mwaa_environment_class" {
  type        = string
  description = "MWAA environment class."
  default     = null
}

variable "mwaa_min_workers" {
  type        = number
  description = "Workers MWAA always runs."
  default     = null
}

variable "mwaa_max_workers" {
  type        = number
  description = "Workers MWAA may scale out to."
  default     = null
}

variable "mwaa_webserver_access_mode" {
  type        = string
  description = "`PRIVATE_ONLY` or `PUBLIC_ONLY` access to the Airflow UI."
  default     = null
}

variable "mlflow_tracking_server_size" {
  type        = string
  description = "Size of the managed MLflow server (`Small`, `Medium`, `Large`)."
  default     = null
}

variable "mlflow_version" {
  type        = string
  description = "MLflow version of the managed server; null picks SageMaker's newest."
  default     = null
}

variable "serving_use_case" {
  type        = string
  description = "Use case whose real-time endpoint gets the rollback alarms and autoscaling; its instance type is `serving.instance_type` in its spec."
  default     = null
}

variable "serving_min_instance_count" {
  type        = number
  description = "Minimum instances of the endpoint's champion variant under autoscaling."
  default     = null
}

variable "serving_max_instance_count" {
  type        = number
  description = "Maximum instances of the endpoint's champion variant under autoscaling; caps the serving bill."
  default     = null
}

variable "create_endpoint_autoscaling" {
  type        = bool
  description = "Register autoscaling for the endpoint; set true only after the deploy DAG has created it."
  default     = null
}

variable "quarantine_expiration_days" {
  type        = number
  description = "Days quarantined batches are kept."
  default     = null
}

variable "prediction_log_expiration_days" {
  type        = number
  description = "Days prediction logs are kept."
  default     = null
}

variable "validated_transition_days" {
  type        = number
  description = "Days before validated snapshots move to Glacier Instant Retrieval."
  default     = null
}

variable "force_destroy" {
  type        = bool
  description = "Let `terraform destroy` delete non-empty buckets and the image repository. Only for throwaway environments."
  default     = null
}

variable "kms_deletion_window_in_days" {
  type        = number
  description = "Waiting period before KMS keys are deleted after `terraform destroy` (7-30)."
  default     = null
}

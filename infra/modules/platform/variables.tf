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

variable "create_network" {
  type        = bool
  description = "Create the VPC, two private subnets, their egress and the security group (modules/network); false uses `subnet_ids` and `security_group_ids` of an existing network."
  default     = true
  nullable    = false
}

variable "network_cidr" {
  type        = string
  description = "CIDR block of the VPC when `create_network`."
  default     = "10.40.0.0/16"
  nullable    = false
}

variable "network_egress" {
  type        = string
  description = "How the created private subnets reach AWS APIs: `nat` (a NAT gateway) or `endpoints` (interface VPC endpoints, no internet)."
  default     = "nat"
  nullable    = false
}

variable "create_bastion" {
  type        = bool
  description = "Create a bastion without inbound ports in the created network, for Session Manager port forwarding to the `PRIVATE_ONLY` Airflow UI."
  default     = false
  nullable    = false
}

variable "subnet_ids" {
  type        = list(string)
  description = "With `create_network = false`: two private subnets (different Availability Zones, with NAT or VPC endpoints) for MWAA."
  default     = []
  nullable    = false
}

variable "security_group_ids" {
  type        = list(string)
  description = "With `create_network = false`: security groups for MWAA; at least one must allow all traffic from itself."
  default     = []
  nullable    = false
}

variable "create_airflow" {
  type        = bool
  description = "Create the MWAA environment and its DAG bucket (modules/orchestration); false leaves Airflow to another home."
  default     = true
  nullable    = false
}

variable "create_budget" {
  type        = bool
  description = "Create the monthly budget (an account with budgets managed elsewhere sets false)."
  default     = true
  nullable    = false
}

variable "mlflow_tracking_uri" {
  type        = string
  description = "URI of an MLflow server the platform should use instead of creating SageMaker's managed one; null creates the managed server."
  default     = null
}

variable "alert_emails" {
  type        = list(string)
  description = "Email addresses that receive alarm and budget notifications."
  default     = []
  nullable    = false
}

variable "create_slack_forwarder" {
  type        = bool
  description = "Forward the alerts topic (alarms, budget) to Slack through a small Lambda function that posts to the webhook in the Slack secret."
  default     = true
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
  description = "Use case whose real-time endpoint gets autoscaling (every use case's endpoint gets its own alarms); its instance type is `serving.instance_type` in its spec."
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

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

variable "create_network" {
  type        = bool
  description = "Create the VPC, two private subnets, their egress and the security group (modules/network); false uses `subnet_ids` and `security_group_ids` of an existing network."
  default     = null
}

variable "network_cidr" {
  type        = string
  description = "CIDR block of the VPC when `create_network`."
  default     = null
}

variable "network_egress" {
  type        = string
  description = "How the created private subnets reach AWS APIs: `nat` (a NAT gateway) or `endpoints` (interface VPC endpoints, no internet)."
  default     = null
}

variable "create_bastion" {
  type        = bool
  description = "Create a bastion without inbound ports in the created network, for Session Manager port forwarding to the `PRIVATE_ONLY` Airflow UI."
  default     = null
}

variable "subnet_ids" {
  type        = list(string)
  description = "With `create_network = false`: two private subnets (different Availability Zones, with NAT or VPC endpoints) for MWAA."
  default     = null
}

variable "security_group_ids" {
  type        = list(string)
  description = "With `create_network = false`: security groups for MWAA; at least one must allow all traffic from itself."
  default     = null
}

variable "create_airflow" {
  type        = bool
  description = "Create the MWAA environment and its DAG bucket (modules/orchestration); false leaves Airflow to another home."
  default     = null
}

variable "create_budget" {
  type        = bool
  description = "Create the monthly budget (an account with budgets managed elsewhere sets false)."
  default     = null
}

variable "mlflow_tracking_uri" {
  type        = string
  description = "URI of an MLflow server the platform should use instead of creating SageMaker's managed one; null creates the managed server."
  default     = null
}

variable "alert_emails" {
  type        = list(string)
  description = "Email addresses that receive alarm and budget notifications."
  default     = null
}

variable "create_slack_forwarder" {
  type        = bool
  description = "Forward the alerts topic (alarms, budget) to Slack through a small Lambda function that posts to the webhook in the Slack secret."
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
  description = "Use case whose real-time endpoint gets autoscaling (every use case's endpoint gets its own alarms); its instance type is `serving.instance_type` in its spec."
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

variable "name" {
  type        = string
  description = "Name of the MWAA environment and prefix of its bucket, key alias and role, e.g. `mlplatform-dev`."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 lowercase letters, digits or hyphens, starting with a letter, so that the bucket name stays within 63 characters."
  }
}

variable "airflow_version" {
  type        = string
  description = "Apache Airflow version of the environment. The default is the one place the platform names it; the validation lists the MWAA versions the bundle is tested on (see infra/README.md, \"Versions\"), and `constraints_file` must pin the same version."
  default     = "3.3.1"
  nullable    = false

  validation {
    condition     = contains(["3.3.1"], var.airflow_version)
    error_message = "The bundle is tested on MWAA with Airflow 3.3.1 only; test it on another MWAA version before adding that version here."
  }
}

variable "constraints_file" {
  type        = string
  description = "Constraints file, relative to `bundle_root`, that MWAA installs `requirements.txt` with; it must pin `apache-airflow==<airflow_version>`. `constraints-mwaa.txt` is the bundle's lock for the default version (`make lock`), tested by `make test`."
  default     = "constraints-mwaa.txt"
  nullable    = false
}

variable "plugins_zip" {
  type        = string
  description = "Path of the plugins zip built by `make plugins-zip` (the plugins and the wheels MWAA installs the requirements from); null means `<bundle_root>/infra/.build/plugins.zip`, where that target writes it."
  default     = null
}

variable "environment_class" {
  type        = string
  description = "MWAA environment class: the main orchestration cost driver (mw1.micro up to mw1.2xlarge)."
  default     = "mw1.small"

  validation {
    condition     = contains(["mw1.micro", "mw1.small", "mw1.medium", "mw1.large", "mw1.xlarge", "mw1.2xlarge"], var.environment_class)
    error_message = "environment_class must be one of mw1.micro, mw1.small, mw1.medium, mw1.large, mw1.xlarge, mw1.2xlarge."
  }
}

variable "min_workers" {
  type        = number
  description = "Workers always running."
  default     = 1
}

variable "max_workers" {
  type        = number
  description = "Workers MWAA may scale out to under load; each extra worker is billed by the hour."
  default     = 2
}

variable "schedulers" {
  type        = number
  description = "Schedulers (2-5 for mw1.small and larger, 1 for mw1.micro); null keeps MWAA's default."
  default     = null
}

variable "webserver_access_mode" {
  type        = string
  description = "`PRIVATE_ONLY` serves the Airflow UI inside the VPC only; `PUBLIC_ONLY` exposes it to the internet behind IAM sign-in."
  default     = "PRIVATE_ONLY"

  validation {
    condition     = contains(["PRIVATE_ONLY", "PUBLIC_ONLY"], var.webserver_access_mode)
    error_message = "webserver_access_mode must be PRIVATE_ONLY or PUBLIC_ONLY."
  }
}

variable "weekly_maintenance_window_start" {
  type        = string
  description = "Start of MWAA's weekly maintenance window in UTC, `DAY:HH:MM` on the half hour (e.g. `SUN:03:00`)."
  default     = "SUN:03:00"

  validation {
    condition     = can(regex("^(MON|TUE|WED|THU|FRI|SAT|SUN):([01][0-9]|2[0-3]):(00|30)$", var.weekly_maintenance_window_start))
    error_message = "weekly_maintenance_window_start must look like SUN:03:00."
  }
}

variable "log_level" {
  type        = string
  description = "Level of the scheduler, DAG processing, task, webserver and worker logs sent to CloudWatch."
  default     = "INFO"

  validation {
    condition     = contains(["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"], var.log_level)
    error_message = "log_level must be CRITICAL, ERROR, WARNING, INFO or DEBUG."
  }
}

variable "airflow_configuration_options" {
  type        = map(string)
  description = "Extra Airflow configuration options (`section.key` => value), merged over the secrets backend settings."
  default     = {}
}

variable "subnet_ids" {
  type        = list(string)
  description = "Two private subnets in different Availability Zones, with a route to the internet (NAT) or VPC endpoints for the AWS services used."

  validation {
    condition     = length(var.subnet_ids) == 2
    error_message = "MWAA needs exactly two private subnets."
  }
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the environment; at least one must allow all traffic from itself."

  validation {
    condition     = length(var.security_group_ids) >= 1 && length(var.security_group_ids) <= 5
    error_message = "Give between one and five security group IDs."
  }
}

variable "bundle_root" {
  type        = string
  description = "Path of the repository root holding `dags/`, `include/`, `plugins/`, `great_expectations/`, the constraints file and `infra/mwaa/` (the requirements MWAA installs, rendered by `make lock`, and MWAA's own files)."
}

variable "ssm_prefix" {
  type        = string
  description = "Prefix of the SSM parameters the DAGs read their settings from; exported to Airflow as `MLPLATFORM_SSM_PREFIX`."

  validation {
    condition     = startswith(var.ssm_prefix, "/") && !endswith(var.ssm_prefix, "/")
    error_message = "ssm_prefix must start with a slash and not end with one, e.g. /mlplatform/dev."
  }
}

variable "connections_prefix" {
  type        = string
  description = "Secrets Manager prefix of Airflow connections (no trailing slash)."
  default     = "airflow/connections"
}

variable "variables_prefix" {
  type        = string
  description = "Secrets Manager prefix of Airflow variables (no trailing slash)."
  default     = "airflow/variables"
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the Airflow secrets and the alerts topic."
}

variable "lake_bucket_arn" {
  type        = string
  description = "ARN of the data lake bucket the DAGs read and write."
}

variable "mlflow_bucket_arn" {
  type        = string
  description = "ARN of the MLflow artifact bucket the DAGs log artifacts to."
}

variable "data_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the lake and MLflow buckets."
}

variable "mlflow_tracking_server_arn" {
  type        = string
  description = "ARN of the SageMaker managed MLflow tracking server."
}

variable "sagemaker_execution_role_arn" {
  type        = string
  description = "ARN of the role SageMaker models and jobs run as; the environment may pass it to SageMaker only."
}

variable "sagemaker_name_prefixes" {
  type        = list(string)
  description = "Name prefixes of the SageMaker models, endpoint configs, endpoints, transform jobs and serving alarms the DAGs manage (the deploy DAG names them after the use case); the role is limited to names starting with one of them."

  validation {
    condition     = length(var.sagemaker_name_prefixes) >= 1 && alltrue([for prefix in var.sagemaker_name_prefixes : length(prefix) >= 3])
    error_message = "Give at least one prefix of three or more characters, so that the role is not opened to every SageMaker resource."
  }
}

variable "serving_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key for endpoint storage and batch transform output."
}

variable "alerts_topic_arn" {
  type        = string
  description = "ARN of the SNS alerts topic the DAGs may publish to."
}

variable "access_log_bucket" {
  type        = string
  description = "Name of the bucket that receives the DAG bucket's server access logs."
}

variable "force_destroy" {
  type        = bool
  description = "Allow `terraform destroy` to delete the DAG bucket with every object version in it."
  default     = false
}

variable "kms_deletion_window_in_days" {
  type        = number
  description = "Waiting period before the KMS key is deleted after `terraform destroy` (7-30)."
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30
    error_message = "kms_deletion_window_in_days must be between 7 and 30."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}

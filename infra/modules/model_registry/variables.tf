variable "name" {
  type        = string
  description = "Name of the tracking server (part of its ARN) and prefix of its IAM role, e.g. `mlplatform-dev`."

  validation {
    condition     = can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,50}$", var.name))
    error_message = "name must be letters, digits and single hyphens, at most 51 characters, so that the role name fits."
  }
}

variable "artifact_store_uri" {
  type        = string
  description = "S3 URI where the server stores artifacts, e.g. the data lake module's `mlflow_artifact_uri`."

  validation {
    condition     = can(regex("^s3://[^/]+(/.*)?$", var.artifact_store_uri))
    error_message = "artifact_store_uri must be an s3:// URI."
  }
}

variable "artifact_bucket_arn" {
  type        = string
  description = "ARN of the bucket in `artifact_store_uri`; the server's role may read and write only under that URI's prefix."
}

variable "artifact_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the artifact bucket."
}

variable "tracking_server_size" {
  type        = string
  description = "Size of the managed server: `Small` (up to about 25 users), `Medium` or `Large`. The size drives the hourly price."
  default     = "Small"

  validation {
    condition     = contains(["Small", "Medium", "Large"], var.tracking_server_size)
    error_message = "tracking_server_size must be Small, Medium or Large."
  }
}

variable "mlflow_version" {
  type        = string
  description = "MLflow server version, one of those SageMaker offers; null lets SageMaker pick its newest. Keep the `mlflow` client pin in requirements.txt on the same major version."
  default     = null
}

variable "automatic_model_registration" {
  type        = bool
  description = "Also register MLflow models in the SageMaker Model Registry (grants the server's role model-package permissions)."
  default     = false
}

variable "weekly_maintenance_window_start" {
  type        = string
  description = "Start of the weekly maintenance window in UTC, `DDD:HH:MM` (e.g. `Sun:03:00`)."
  default     = "Sun:03:00"

  validation {
    condition     = can(regex("^(Mon|Tue|Wed|Thu|Fri|Sat|Sun):([01][0-9]|2[0-3]):[0-5][0-9]$", var.weekly_maintenance_window_start))
    error_message = "weekly_maintenance_window_start must look like Sun:03:00."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}

variable "external_tracking_uri" {
  type        = string
  description = "URI of an MLflow server to use instead of the managed one; null creates the managed server. The artifact store stays `artifact_store_uri` (the server must write there for SageMaker to find model files)."
  default     = null
}

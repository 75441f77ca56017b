variable "name" {
  type        = string
  description = "Name prefix for the repository, role, key alias and alarms' descriptions, e.g. `mlplatform-dev`."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be 2-41 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "endpoint_names" {
  type        = list(string)
  description = "SageMaker endpoints the deploy DAG creates, one per use case; each gets its own alarms, named `<endpoint>-<variant>-<what>` with the dimension `EndpointName=<endpoint>`."

  validation {
    condition     = length(var.endpoint_names) >= 1 && alltrue([for name in var.endpoint_names : can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", name))])
    error_message = "endpoint_names must be valid SageMaker endpoint names (letters, digits, hyphens, at most 63 characters)."
  }
}

variable "autoscaling_endpoint_name" {
  type        = string
  description = "Endpoint whose `autoscaling_variant_name` variant autoscaling scales when `create_autoscaling` is true."
}

variable "variant_names" {
  type        = list(string)
  description = "Production variants of the endpoint that get alarms. The deploy DAG names them `champion` and, when the use case sends a share of traffic to a challenger, `challenger`; alarms on a variant that does not exist stay OK."
  default     = ["champion", "challenger"]

  validation {
    condition     = length(var.variant_names) >= 1
    error_message = "Give at least one variant."
  }
}

variable "autoscaling_variant_name" {
  type        = string
  description = "Variant that autoscaling scales (it must exist when `create_autoscaling` is true)."
  default     = "champion"
}

variable "min_instance_count" {
  type        = number
  description = "Autoscaling floor for the variant. Two or more spread across Availability Zones."
  default     = 1

  validation {
    condition     = var.min_instance_count >= 1
    error_message = "A real-time endpoint variant needs at least one instance."
  }
}

variable "max_instance_count" {
  type        = number
  description = "Most instances autoscaling may add; caps the serving bill."
  default     = 2

  validation {
    condition     = var.max_instance_count >= 1
    error_message = "max_instance_count must be at least 1."
  }
}

variable "create_autoscaling" {
  type        = bool
  description = "Create the autoscaling target and policy. Leave false until the deploy DAG has created the endpoint (registration fails on a missing endpoint), and in non-prod environments that run at the minimum."
  default     = false
}

variable "target_invocations_per_instance" {
  type        = number
  description = "Target of the tracking policy: invocations per instance per minute."
  default     = 1000
}

variable "scale_in_cooldown_seconds" {
  type        = number
  description = "Seconds after a scale-in before another scale-in."
  default     = 300
}

variable "scale_out_cooldown_seconds" {
  type        = number
  description = "Seconds after a scale-out before another scale-out."
  default     = 60
}

variable "latency_p99_threshold_ms" {
  type        = number
  description = "p99 model latency, in milliseconds, above which the latency alarm fires."
  default     = 500
}

variable "error_count_threshold" {
  type        = number
  description = "Errors per alarm period above which the 5xx and model-error alarms fire."
  default     = 0
}

variable "invocations_threshold" {
  type        = number
  description = "Invocations per alarm period above which the traffic alarm fires: more than the variant is sized for (during a blue/green update it rolls back too)."
  default     = 60000
}

variable "alarm_period_seconds" {
  type        = number
  description = "Period over which each alarm aggregates its metric."
  default     = 60
}

variable "alarm_evaluation_periods" {
  type        = number
  description = "Consecutive breaching periods before an alarm fires."
  default     = 2
}

variable "alarm_actions" {
  type        = list(string)
  description = "ARNs notified when an alarm changes state, e.g. the alerts module's SNS topic."
  default     = []
}

variable "model_artifact_bucket_arn" {
  type        = string
  description = "ARN of the MLflow artifact bucket; the execution role may only read model artifacts from it."
}

variable "model_artifact_prefix" {
  type        = string
  description = "Key prefix of the model artifacts in that bucket (with trailing slash)."
  default     = "artifacts/"
}

variable "mlflow_tracking_server_arn" {
  type        = string
  description = "ARN of the MLflow tracking server; the execution role may read the registry (a container loads a model version without an S3 source from there)."
}

variable "lake_bucket_arn" {
  type        = string
  description = "ARN of the data lake bucket batch transform jobs read from and write to."
}

variable "batch_input_prefixes" {
  type        = list(string)
  description = "Lake prefixes batch transform jobs may read (with trailing slash); the scoring DAG stages their input under `predictions/`."
  default     = ["predictions/"]
}

variable "batch_output_prefix" {
  type        = string
  description = "Lake prefix batch transform jobs write predictions to (with trailing slash)."
  default     = "predictions/"
}

variable "data_capture_prefix" {
  type        = string
  description = "Lake prefix endpoints capture requests and answers to (with trailing slash); the deploy DAG sends them to `predictions/<use case>/capture/`."
  default     = "predictions/"
}

variable "data_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the lake and MLflow buckets."
}

variable "untagged_image_expiration_days" {
  type        = number
  description = "Days before an untagged image expires from the repository."
  default     = 7
}

variable "image_retention_count" {
  type        = number
  description = "Images kept in the repository; older ones expire."
  default     = 30
}

variable "force_delete_repository" {
  type        = bool
  description = "Let `terraform destroy` delete the repository with images in it."
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

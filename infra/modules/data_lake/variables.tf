variable "name" {
  type        = string
  description = "Name prefix for every resource, e.g. `mlplatform-dev`. Bucket names append the account ID and region."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 lowercase letters, digits or hyphens, starting with a letter, so that bucket names stay within 63 characters."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Allow `terraform destroy` to delete non-empty buckets with all their object versions. Keep false for anything holding real data."
  default     = false
}

variable "quarantine_expiration_days" {
  type        = number
  description = "Days a batch that failed validation stays under `quarantine/` before it expires."
  default     = 30
}

variable "use_cases" {
  type        = list(string)
  description = "Names of the use cases; each gets an expiration rule for its prediction logs under `predictions/<use case>/serving/`."
  default     = []
}

variable "prediction_log_expiration_days" {
  type        = number
  description = "Days the serving app's prediction logs (`predictions/<use case>/serving/`) are kept. Batch scores are not affected."
  default     = 90
}

variable "validated_transition_days" {
  type        = number
  description = "Days after which validated snapshots under `validated/` move to cheaper storage."
  default     = 90
}

variable "validated_transition_storage_class" {
  type        = string
  description = "Storage class validated snapshots move to. Glacier Instant Retrieval keeps them readable by training jobs without a restore."
  default     = "GLACIER_IR"

  validation {
    condition     = contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"], var.validated_transition_storage_class)
    error_message = "validated_transition_storage_class must be an S3 lifecycle storage class such as STANDARD_IA or GLACIER_IR."
  }
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days an overwritten or deleted object version is kept, in both buckets."
  default     = 90
}

variable "access_log_retention_days" {
  type        = number
  description = "Days S3 server access logs are kept."
  default     = 365
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

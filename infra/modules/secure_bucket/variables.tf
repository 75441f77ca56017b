variable "bucket" {
  type        = string
  description = "Name of the bucket (globally unique, 3-63 lowercase characters)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "The bucket name must be 3-63 lowercase letters, digits, dots or hyphens."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer-managed KMS key that encrypts every object by default."
}

variable "access_log_bucket" {
  type        = string
  description = "Name of the bucket that receives this bucket's server access logs (it must accept SSE-S3 log delivery)."
}

variable "force_destroy" {
  type        = bool
  description = "Allow `terraform destroy` to delete the bucket with every object version in it. Keep false outside throwaway environments."
  default     = false
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days a noncurrent (overwritten or deleted) object version is kept before it expires."
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "lifecycle_rules" {
  type = list(object({
    id                       = string
    prefix                   = string
    expiration_days          = optional(number)
    transition_days          = optional(number)
    transition_storage_class = optional(string, "GLACIER_IR")
  }))
  description = "Per-prefix rules on top of the housekeeping rule: expire current objects after `expiration_days` and/or move them to `transition_storage_class` after `transition_days`."
  default     = []
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the bucket."
  default     = {}
}

variable "alias" {
  type        = string
  description = "Alias of the key without the `alias/` prefix, e.g. `mlplatform-dev-data-lake`."

  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]{1,250}$", var.alias)) && !startswith(var.alias, "aws/") && !startswith(var.alias, "alias/")
    error_message = "alias must be 1-250 letters, digits, slashes, underscores or hyphens, without the alias/ prefix and not in the reserved aws/ namespace."
  }
}

variable "description" {
  type        = string
  description = "What the key protects, shown in the KMS console."
}

variable "deletion_window_in_days" {
  type        = number
  description = "Waiting period before the key is deleted after `terraform destroy` (7-30)."
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "service_statements" {
  type = list(object({
    sid      = string
    services = list(string)
    actions  = list(string)
    conditions = optional(list(object({
      test     = string
      variable = string
      values   = list(string)
    })), [])
  }))
  description = "Key policy statements that let AWS service principals (`services`) use the key with `actions`, under `conditions` that should tie them to this account's resources; IAM policies in the account need no statement here."
  default     = []
}

variable "tags" {
  type        = map(string)
  description = "Tags added to the key."
  default     = {}
}

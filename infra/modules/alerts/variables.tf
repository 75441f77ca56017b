variable "name" {
  type        = string
  description = "Name prefix for the topic, key alias and budget, e.g. `mlplatform-dev`."
}

variable "connections_prefix" {
  type        = string
  description = "Secrets Manager prefix Airflow's secrets backend reads connections from (no trailing slash)."
  default     = "airflow/connections"

  validation {
    condition     = !endswith(var.connections_prefix, "/")
    error_message = "connections_prefix must not end with a slash."
  }
}

variable "slack_conn_id" {
  type        = string
  description = "Airflow connection id of the Slack incoming webhook; the secret is named `<connections_prefix>/<slack_conn_id>`."
  default     = "slack_alerts"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.slack_conn_id))
    error_message = "slack_conn_id must be letters, digits, underscores, dots or hyphens."
  }
}

variable "alert_emails" {
  type        = list(string)
  description = "Email addresses subscribed to the topic and to budget notifications (each must confirm the SNS subscription)."
  default     = []
}

variable "create_slack_forwarder" {
  type        = bool
  description = "Create the Lambda function that posts every notification of the topic to the Slack webhook in the Slack secret."
  default     = true
}

variable "forwarder_log_retention_days" {
  type        = number
  description = "Days the Slack forwarder's logs are kept."
  default     = 365
}

variable "create_budget" {
  type        = bool
  description = "Create the monthly budget."
  default     = true
}

variable "monthly_budget_usd" {
  type        = number
  description = "Monthly cost budget in USD."
}

variable "budget_alert_threshold_percent" {
  type        = number
  description = "Percentage of the budget actually spent at which a notification goes out (a forecast above 100 % always notifies)."
  default     = 80
}

variable "budget_cost_allocation_tag" {
  type = object({
    key   = string
    value = string
  })
  description = "Restrict the budget to resources with this cost allocation tag (activate the tag in Billing first); null budgets the whole account."
  default     = null
}

variable "secret_recovery_window_in_days" {
  type        = number
  description = "Days a deleted secret can still be restored (0 deletes at once, otherwise 7-30)."
  default     = 30

  validation {
    condition     = var.secret_recovery_window_in_days == 0 || (var.secret_recovery_window_in_days >= 7 && var.secret_recovery_window_in_days <= 30)
    error_message = "secret_recovery_window_in_days must be 0 or between 7 and 30."
  }
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

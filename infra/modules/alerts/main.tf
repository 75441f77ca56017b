# Where alerts go: the Slack webhook as an Airflow connection in Secrets Manager, the SNS
# topic CloudWatch alarms publish to, and a monthly budget that warns on the same topic.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Services that publish to the topic and therefore must be able to use its key.
  publishers = ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"]
}

################################################################################
# KMS key (topic and secret)
################################################################################

module "kms" {
  source = "../kms"

  alias                   = "${var.name}-alerts"
  description             = "${var.name}: alerts topic and Slack webhook secret"
  deletion_window_in_days = var.kms_deletion_window_in_days
  tags                    = var.tags

  # CloudWatch alarms and AWS Budgets publish to the encrypted topic as services.
  service_statements = [{
    sid      = "AllowAlarmAndBudgetPublishers"
    services = local.publishers
    actions  = ["kms:Decrypt", "kms:GenerateDataKey*"]
    conditions = [{
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }]
  }]
}

# The key and its alias lived in this module before the kms module existed.
moved {
  from = aws_kms_key.this
  to   = module.kms.aws_kms_key.this
}

moved {
  from = aws_kms_alias.this
  to   = module.kms.aws_kms_alias.this
}

################################################################################
# SNS topic
################################################################################

resource "aws_sns_topic" "this" {
  name              = "${var.name}-alerts"
  kms_master_key_id = module.kms.key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid       = "AllowAlarmAndBudgetPublishers"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]

    principals {
      type        = "Service"
      identifiers = local.publishers
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid = "AllowAccountToManage"
    actions = [
      "sns:GetTopicAttributes",
      "sns:SetTopicAttributes",
      "sns:Subscribe",
      "sns:ListSubscriptionsByTopic",
      "sns:Publish",
    ]
    resources = [aws_sns_topic.this.arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "this" {
  arn    = aws_sns_topic.this.arn
  policy = data.aws_iam_policy_document.topic.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alert_emails)

  topic_arn = aws_sns_topic.this.arn
  protocol  = "email"
  endpoint  = each.value
}

################################################################################
# Slack webhook, read by Airflow's Secrets Manager backend as a connection
################################################################################

resource "aws_secretsmanager_secret" "slack" {
  #checkov:skip=CKV2_AWS_57:Slack incoming webhooks cannot be rotated through an API; rotate the URL in Slack and put the new value by hand.
  name                    = "${var.connections_prefix}/${var.slack_conn_id}"
  description             = "Airflow connection ${var.slack_conn_id} (Slack incoming webhook). The value is set out of band, see the alerts module README."
  kms_key_id              = module.kms.key_arn
  recovery_window_in_days = var.secret_recovery_window_in_days
  tags                    = var.tags
}

################################################################################
# Budget
################################################################################

resource "aws_budgets_budget" "this" {
  name         = "${var.name}-monthly"
  budget_type  = "COST"
  limit_amount = format("%.2f", var.monthly_budget_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  dynamic "cost_filter" {
    for_each = var.budget_cost_allocation_tag == null ? [] : [var.budget_cost_allocation_tag]

    content {
      name   = "TagKeyValue"
      values = [format("user:%s$%s", cost_filter.value.key, cost_filter.value.value)]
    }
  }

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = var.budget_alert_threshold_percent
    threshold_type             = "PERCENTAGE"
    notification_type          = "ACTUAL"
    subscriber_sns_topic_arns  = [aws_sns_topic.this.arn]
    subscriber_email_addresses = var.alert_emails
  }

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = 100
    threshold_type             = "PERCENTAGE"
    notification_type          = "FORECASTED"
    subscriber_sns_topic_arns  = [aws_sns_topic.this.arn]
    subscriber_email_addresses = var.alert_emails
  }

  depends_on = [aws_sns_topic_policy.this]
}

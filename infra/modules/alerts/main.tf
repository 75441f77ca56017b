# Where alerts go: the Slack webhook as an Airflow connection in Secrets Manager, the SNS
# topic CloudWatch alarms publish to, a monthly budget that warns on the same topic, and
# the topic's deliveries: e-mail subscriptions and a Lambda function that posts each
# notification to the Slack webhook.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  forwarder_name      = "${var.name}-slack-forwarder"
  forwarder_log_group = "/aws/lambda/${local.forwarder_name}"

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
  service_statements = [
    {
      sid      = "AllowAlarmAndBudgetPublishers"
      services = local.publishers
      actions  = ["kms:Decrypt", "kms:GenerateDataKey*"]
      conditions = [{
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }]
    },
    {
      # The Slack forwarder's log group is encrypted with this key.
      sid      = "AllowForwarderLogGroup"
      services = ["logs.${local.region}.amazonaws.com"]
      actions  = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      conditions = [{
        test     = "ArnEquals"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.forwarder_log_group}"]
      }]
    },
  ]
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
  count = var.create_budget ? 1 : 0

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

# The budget became optional (create_budget): keep the one created before.
moved {
  from = aws_budgets_budget.this
  to   = aws_budgets_budget.this[0]
}

################################################################################
# Slack forwarder: the topic's notifications posted to the Slack webhook
################################################################################

data "aws_iam_policy_document" "forwarder_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "forwarder" {
  count = var.create_slack_forwarder ? 1 : 0

  name               = local.forwarder_name
  description        = "The Lambda function that posts ${var.name}'s alerts topic to Slack: reads the Slack secret, writes its own logs."
  assume_role_policy = data.aws_iam_policy_document.forwarder_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "forwarder" {
  statement {
    sid       = "ReadSlackWebhook"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.slack.arn]
  }

  statement {
    sid       = "DecryptSecretAndEnvironment"
    actions   = ["kms:Decrypt"]
    resources = [module.kms.key_arn]
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.forwarder_log_group}:*"]
  }

  statement {
    sid = "TraceWithXRay"
    # X-Ray's write actions have no resource-level permissions.
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "forwarder" {
  count = var.create_slack_forwarder ? 1 : 0

  name   = "slack-forwarder"
  role   = aws_iam_role.forwarder[0].id
  policy = data.aws_iam_policy_document.forwarder.json
}

resource "aws_cloudwatch_log_group" "forwarder" {
  count = var.create_slack_forwarder ? 1 : 0

  name              = local.forwarder_log_group
  retention_in_days = var.forwarder_log_retention_days
  kms_key_id        = module.kms.key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "forwarder" {
  count = var.create_slack_forwarder ? 1 : 0

  #checkov:skip=CKV_AWS_116:SNS retries a failed delivery to Lambda itself, and the alarm stays visible in CloudWatch; a dead-letter queue would hold only Slack outages.
  #checkov:skip=CKV_AWS_117:The function reaches only Slack and Secrets Manager over HTTPS; outside a VPC it needs no NAT gateway of its own.
  #checkov:skip=CKV_AWS_272:One standard-library file built reproducibly in this repository and reviewed with it; code signing adds a signer profile per environment for no gain.
  function_name                  = local.forwarder_name
  description                    = "Posts ${var.name}'s alerts topic (CloudWatch alarms, budget) to the Slack webhook in ${aws_secretsmanager_secret.slack.name}."
  role                           = aws_iam_role.forwarder[0].arn
  runtime                        = "python3.12"
  handler                        = "slack_forwarder.handler"
  filename                       = "${path.module}/slack_forwarder.zip"
  source_code_hash               = filebase64sha256("${path.module}/slack_forwarder.zip")
  timeout                        = 30
  memory_size                    = 128
  reserved_concurrent_executions = 5
  kms_key_arn                    = module.kms.key_arn
  tags                           = var.tags

  environment {
    variables = {
      SLACK_SECRET_ARN = aws_secretsmanager_secret.slack.arn
    }
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_iam_role_policy.forwarder, aws_cloudwatch_log_group.forwarder]
}

resource "aws_lambda_permission" "forwarder" {
  count = var.create_slack_forwarder ? 1 : 0

  statement_id  = "AllowAlertsTopic"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.forwarder[0].function_name
  principal     = "sns.amazonaws.com"
  source_arn    = aws_sns_topic.this.arn
}

resource "aws_sns_topic_subscription" "slack" {
  count = var.create_slack_forwarder ? 1 : 0

  topic_arn = aws_sns_topic.this.arn
  protocol  = "lambda"
  endpoint  = aws_lambda_function.forwarder[0].arn

  depends_on = [aws_lambda_permission.forwarder]
}

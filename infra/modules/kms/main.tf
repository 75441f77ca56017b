# A customer-managed KMS key with rotation, its alias, and a key policy that delegates to
# IAM in this account, plus optional statements that let AWS services acting for this
# account use the key. Every module that encrypts something calls this one.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource is the key itself; the statements delegate to IAM in this account and to the services given, for this account's resources.
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource is the key itself; the statements delegate to IAM in this account and to the services given, for this account's resources.
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource is the key itself; the statements delegate to IAM in this account and to the services given, for this account's resources.
  statement {
    sid       = "EnableIamPolicies"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  dynamic "statement" {
    for_each = var.service_statements

    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = statement.value.services
      }

      dynamic "condition" {
        for_each = statement.value.conditions

        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = condition.value.values
        }
      }
    }
  }
}

resource "aws_kms_key" "this" {
  description             = var.description
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.this.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.alias}"
  target_key_id = aws_kms_key.this.key_id
}

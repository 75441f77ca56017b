# The MLflow tracking server and model registry, run by SageMaker (managed MLflow), with
# its artifact store in the data lake module's MLflow bucket.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # s3://bucket/some/prefix -> some/prefix/ ; s3://bucket -> "" (the whole bucket)
  artifact_key_prefix = trimprefix(replace(var.artifact_store_uri, "/^s3://[^/]+/?/", ""), "/")
  # Where the managed server is, or would be: IAM grants on it stay valid (and harmless)
  # when the platform uses an MLflow server of its own instead.
  tracking_server_arn = "arn:${local.partition}:sagemaker:${local.region}:${local.account_id}:mlflow-tracking-server/${var.name}"

  artifact_objects = (
    local.artifact_key_prefix == ""
    ? "${var.artifact_bucket_arn}/*"
    : "${var.artifact_bucket_arn}/${trimsuffix(local.artifact_key_prefix, "/")}/*"
  )
}

################################################################################
# IAM role the tracking server runs as
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.name}-mlflow"
  description        = "Role the SageMaker managed MLflow tracking server ${var.name} uses to reach its artifact store."
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "ListArtifactBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.artifact_bucket_arn]
  }

  statement {
    sid = "ReadWriteArtifacts"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = [local.artifact_objects]
  }

  statement {
    sid       = "UseArtifactKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.artifact_kms_key_arn]
  }

  dynamic "statement" {
    for_each = var.automatic_model_registration ? [1] : []

    content {
      sid = "RegisterModelsInSageMaker"
      actions = [
        "sagemaker:AddTags",
        "sagemaker:CreateModelPackageGroup",
        "sagemaker:CreateModelPackage",
        "sagemaker:UpdateModelPackage",
        "sagemaker:DescribeModelPackageGroup",
      ]
      resources = [
        "arn:${local.partition}:sagemaker:${local.region}:${local.account_id}:model-package-group/*",
        "arn:${local.partition}:sagemaker:${local.region}:${local.account_id}:model-package/*",
      ]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "mlflow-artifact-store"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

################################################################################
# Tracking server
################################################################################

resource "aws_sagemaker_mlflow_tracking_server" "this" {
  count = var.external_tracking_uri == null ? 1 : 0

  tracking_server_name            = var.name
  role_arn                        = aws_iam_role.this.arn
  artifact_store_uri              = var.artifact_store_uri
  tracking_server_size            = var.tracking_server_size
  mlflow_version                  = var.mlflow_version
  automatic_model_registration    = var.automatic_model_registration
  weekly_maintenance_window_start = var.weekly_maintenance_window_start
  tags                            = var.tags

  # The server reads and writes artifacts as this role from its first minute.
  depends_on = [aws_iam_role_policy.this]
}

# The managed server became optional (external_tracking_uri): keep the one created before.
moved {
  from = aws_sagemaker_mlflow_tracking_server.this
  to   = aws_sagemaker_mlflow_tracking_server.this[0]
}

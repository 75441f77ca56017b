# The data lake and the MLflow artifact store: two KMS-encrypted buckets that log their
# access to a third, plus the key that protects them.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  suffix     = "${local.account_id}-${data.aws_region.current.name}"

  # The lake's layout is a contract with the DAGs: every prefix ends with a slash.
  prefixes = {
    raw         = "raw/"
    validated   = "validated/"
    quarantine  = "quarantine/"
    features    = "features/"
    predictions = "predictions/"
    monitoring  = "monitoring/"
  }

  mlflow_artifact_prefix = "artifacts/"
}

################################################################################
# KMS key
################################################################################

module "kms" {
  source = "../kms"

  alias                   = "${var.name}-data-lake"
  description             = "${var.name}: data lake and MLflow artifacts"
  deletion_window_in_days = var.kms_deletion_window_in_days
  tags                    = var.tags
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
# Access log bucket
################################################################################

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log target; logging it to itself would loop.
  #checkov:skip=CKV_AWS_145:S3 server access log delivery only supports SSE-S3 on the target bucket, not SSE-KMS.
  #checkov:skip=CKV_AWS_144:Single-region platform; access logs are kept for audit in-region, and replication would double storage cost.
  bucket        = "${var.name}-logs-${local.suffix}"
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket = aws_s3_bucket.logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_notification" "logs" {
  bucket      = aws_s3_bucket.logs.id
  eventbridge = true
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

data "aws_iam_policy_document" "logs" {
  statement {
    sid       = "AllowAccessLogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.logs.arn,
      "${aws_s3_bucket.logs.arn}/*",
    ]

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

resource "aws_s3_bucket_policy" "logs" {
  bucket     = aws_s3_bucket.logs.id
  policy     = data.aws_iam_policy_document.logs.json
  depends_on = [aws_s3_bucket_public_access_block.logs]
}

################################################################################
# Lake and MLflow artifact buckets
################################################################################

# Both buckets take the log bucket's name from its policy, so that their access logging
# starts only once log delivery is allowed.
module "lake" {
  source = "../secure_bucket"

  bucket                             = "${var.name}-lake-${local.suffix}"
  kms_key_arn                        = module.kms.key_arn
  access_log_bucket                  = aws_s3_bucket_policy.logs.bucket
  force_destroy                      = var.force_destroy
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  tags                               = var.tags

  lifecycle_rules = concat(
    [
      {
        id              = "expire-quarantine"
        prefix          = local.prefixes.quarantine
        expiration_days = var.quarantine_expiration_days
      },
      {
        id                       = "archive-validated-snapshots"
        prefix                   = local.prefixes.validated
        transition_days          = var.validated_transition_days
        transition_storage_class = var.validated_transition_storage_class
      },
    ],
    # Only the serving app's request logs expire: batch scores next to them are kept.
    [
      for use_case in var.use_cases : {
        id              = "expire-prediction-logs-${use_case}"
        prefix          = "${local.prefixes.predictions}${use_case}/serving/"
        expiration_days = var.prediction_log_expiration_days
      }
    ],
  )

}

module "mlflow" {
  source = "../secure_bucket"

  bucket                             = "${var.name}-mlflow-${local.suffix}"
  kms_key_arn                        = module.kms.key_arn
  access_log_bucket                  = aws_s3_bucket_policy.logs.bucket
  force_destroy                      = var.force_destroy
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  tags                               = var.tags

}

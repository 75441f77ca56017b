# Everything around the real-time endpoint except the endpoint itself: the image
# repository, the execution role models and batch transform jobs run as, the key for
# their storage, each endpoint's alarms (which a blue/green update rolls back on), and
# autoscaling.
#
# The deploy DAG creates and updates the endpoint (a new endpoint config per model
# version); Terraform only refers to it by name.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # What each endpoint's variants are watched for. ModelLatency is in microseconds.
  alarm_kinds = {
    "model-latency-p99" = {
      metric             = "ModelLatency"
      statistic          = null
      extended_statistic = "p99"
      threshold          = var.latency_p99_threshold_ms * 1000
      what               = "p99 model latency above ${var.latency_p99_threshold_ms} ms"
    }
    "invocation-5xx" = {
      metric             = "Invocation5XXErrors"
      statistic          = "Sum"
      extended_statistic = null
      threshold          = var.error_count_threshold
      what               = "5xx responses"
    }
    "invocation-model-errors" = {
      metric             = "InvocationModelErrors"
      statistic          = "Sum"
      extended_statistic = null
      threshold          = var.error_count_threshold
      what               = "invocations the model container failed"
    }
    "invocations-high" = {
      metric             = "Invocations"
      statistic          = "Sum"
      extended_statistic = null
      threshold          = var.invocations_threshold
      what               = "more than ${var.invocations_threshold} invocations per ${var.alarm_period_seconds} s"
    }
  }

  # One alarm per endpoint, variant and kind, keyed by its name. The deploy code finds an
  # endpoint's alarms by the name prefix `<endpoint>-` and the dimension EndpointName
  # (mlplatform.adapters.sagemaker.endpoint_alarms): keep both when adding one.
  alarms = {
    for combination in setproduct(var.endpoint_names, var.variant_names, keys(local.alarm_kinds)) :
    "${combination[0]}-${combination[1]}-${combination[2]}" => merge(local.alarm_kinds[combination[2]], {
      endpoint = combination[0]
      variant  = combination[1]
    })
  }
}

################################################################################
# KMS key
################################################################################

module "kms" {
  source = "../kms"

  alias                   = "${var.name}-serving"
  description             = "${var.name}: serving image, endpoint storage and batch transform output"
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
# ECR repository for the serving image
################################################################################

resource "aws_ecr_repository" "this" {
  name                 = "${var.name}-serving"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_delete_repository
  tags                 = var.tags

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = module.kms.key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged layers left by interrupted pushes"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.untagged_image_expiration_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest images, enough to roll back several releases"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.image_retention_count
        }
        action = { type = "expire" }
      },
    ]
  })
}

################################################################################
# SageMaker execution role (models, endpoints, batch transform)
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
  name               = "${var.name}-sagemaker-execution"
  description        = "Role SageMaker models, endpoints and batch transform jobs of ${var.name} run as."
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "ListModelArtifactBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.model_artifact_bucket_arn]
  }

  statement {
    sid       = "ReadModelArtifacts"
    actions   = ["s3:GetObject"]
    resources = ["${var.model_artifact_bucket_arn}/${var.model_artifact_prefix}*"]
  }

  statement {
    sid       = "ListLake"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.lake_bucket_arn]
  }

  statement {
    sid       = "ReadBatchTransformInput"
    actions   = ["s3:GetObject"]
    resources = [for prefix in var.batch_input_prefixes : "${var.lake_bucket_arn}/${prefix}*"]
  }

  statement {
    sid       = "WriteBatchTransformOutput"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${var.lake_bucket_arn}/${var.batch_output_prefix}*"]
  }

  statement {
    sid = "WriteDataCapture"
    # Endpoints capture every request and answer to the lake; monitoring reads them there.
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${var.lake_bucket_arn}/${var.data_capture_prefix}*"]
  }

  statement {
    sid = "ReadModelRegistry"
    # A container whose model version has no S3 source loads it through the registry.
    actions = [
      "sagemaker:DescribeMlflowTrackingServer",
      "sagemaker-mlflow:Get*",
      "sagemaker-mlflow:List*",
      "sagemaker-mlflow:Search*",
    ]
    resources = [var.mlflow_tracking_server_arn]
  }

  statement {
    sid     = "PullServingImage"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    # The deploy DAG may also point a model at another repository of this platform.
    resources = [aws_ecr_repository.this.arn]
  }

  statement {
    sid = "AuthenticateToEcr"
    # GetAuthorizationToken has no resource-level permissions.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid     = "WriteLogs"
    actions = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [
      "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/*",
      "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/sagemaker/*:log-stream:*",
    ]
  }

  statement {
    sid       = "PublishModelMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/*", "AWS/SageMaker"]
    }
  }

  statement {
    sid     = "UseKeys"
    actions = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [
      module.kms.key_arn,
      var.data_kms_key_arn,
    ]
  }

  statement {
    sid       = "GrantKeyToSageMakerVolumes"
    actions   = ["kms:CreateGrant"]
    resources = [module.kms.key_arn]

    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "sagemaker-execution"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

################################################################################
# Alarms of each endpoint: they notify the alerts topic and roll back blue/green updates
################################################################################

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = each.key
  alarm_description   = "${each.value.what} on ${each.value.endpoint}/${each.value.variant}; notifies the alerts topic and rolls back a blue/green update of the endpoint."
  namespace           = "AWS/SageMaker"
  metric_name         = each.value.metric
  dimensions          = { EndpointName = each.value.endpoint, VariantName = each.value.variant }
  statistic           = each.value.statistic
  extended_statistic  = each.value.extended_statistic
  period              = var.alarm_period_seconds
  evaluation_periods  = var.alarm_evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  # An endpoint or variant that does not exist (yet) sends no data: that is not an alarm.
  treat_missing_data = "notBreaching"
  alarm_actions      = var.alarm_actions
  ok_actions         = var.alarm_actions
  tags               = var.tags
}

# The alarms were one resource per kind, for one endpoint, before every use case got its
# own; the default use case's alarms keep their names and move.
moved {
  from = aws_cloudwatch_metric_alarm.latency_p99["champion"]
  to   = aws_cloudwatch_metric_alarm.this["taxi-trip-duration-champion-model-latency-p99"]
}

moved {
  from = aws_cloudwatch_metric_alarm.latency_p99["challenger"]
  to   = aws_cloudwatch_metric_alarm.this["taxi-trip-duration-challenger-model-latency-p99"]
}

moved {
  from = aws_cloudwatch_metric_alarm.errors_5xx["champion"]
  to   = aws_cloudwatch_metric_alarm.this["taxi-trip-duration-champion-invocation-5xx"]
}

moved {
  from = aws_cloudwatch_metric_alarm.errors_5xx["challenger"]
  to   = aws_cloudwatch_metric_alarm.this["taxi-trip-duration-challenger-invocation-5xx"]
}

moved {
  from = aws_cloudwatch_metric_alarm.invocation_errors["champion"]
  to   = aws_cloudwatch_metric_alarm.this["taxi-trip-duration-champion-invocation-model-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.invocation_errors["challenger"]
  to   = aws_cloudwatch_metric_alarm.this["taxi-trip-duration-challenger-invocation-model-errors"]
}

################################################################################
# Autoscaling (only once the deploy DAG has created the endpoint)
################################################################################

resource "aws_appautoscaling_target" "this" {
  count = var.create_autoscaling ? 1 : 0

  service_namespace  = "sagemaker"
  resource_id        = "endpoint/${var.autoscaling_endpoint_name}/variant/${var.autoscaling_variant_name}"
  scalable_dimension = "sagemaker:variant:DesiredInstanceCount"
  min_capacity       = var.min_instance_count
  max_capacity       = var.max_instance_count
  tags               = var.tags
}

resource "aws_appautoscaling_policy" "this" {
  count = var.create_autoscaling ? 1 : 0

  name               = "${var.autoscaling_endpoint_name}-${var.autoscaling_variant_name}-invocations-per-instance"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  resource_id        = aws_appautoscaling_target.this[0].resource_id
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.target_invocations_per_instance
    scale_in_cooldown  = var.scale_in_cooldown_seconds
    scale_out_cooldown = var.scale_out_cooldown_seconds

    predefined_metric_specification {
      predefined_metric_type = "SageMakerVariantInvocationsPerInstance"
    }
  }
}

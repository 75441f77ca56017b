# Publishes every setting the code reads in the `aws` environment as an SSM parameter
# under one prefix, so that Airflow finds what `terraform apply` created without anyone
# copying values by hand. The keys are the `Setting.parameter` names in
# include/mlplatform/adapters/settings.py; tests/test_infra.py keeps the two in step.

locals {
  parameters = {
    lake_uri                     = var.lake_uri
    mlflow_tracking_uri          = var.mlflow_tracking_uri
    mlflow_artifact_uri          = var.mlflow_artifact_uri
    slack_conn_id                = var.slack_conn_id
    sagemaker_execution_role_arn = var.sagemaker_execution_role_arn
    serving_image_uri            = var.serving_image_uri
    serving_kms_key_arn          = var.serving_kms_key_arn
    alerts_topic_arn             = var.alerts_topic_arn
  }
}

resource "aws_ssm_parameter" "this" {
  for_each = local.parameters

  #checkov:skip=CKV2_AWS_34:These are resource names, URIs and ARNs, not secrets (secrets live in Secrets Manager); plain strings keep them readable in the console and free of a KMS dependency.
  name        = "${var.ssm_prefix}/${each.key}"
  description = "mlplatform setting ${each.key}, published by Terraform from the module that owns it."
  type        = "String"
  tier        = "Standard"
  value       = each.value
  tags        = var.tags
}

# The serving image's release tag: the release push writes it (infra/README.md, "Releasing
# the serving image"), so Terraform creates the parameter once and never resets it.
resource "aws_ssm_parameter" "serving_image_tag" {
  #checkov:skip=CKV2_AWS_34:An image tag is not a secret; a plain string keeps it readable and free of a KMS dependency.
  name        = "${var.ssm_prefix}/serving_image_tag"
  description = "mlplatform setting serving_image_tag: the immutable tag of the released serving image, written by the release push."
  type        = "String"
  tier        = "Standard"
  value       = var.serving_image_tag_placeholder
  tags        = var.tags

  lifecycle {
    ignore_changes = [value]
  }
}

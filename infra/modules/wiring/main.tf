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
    serving_alarm_names          = join(",", var.serving_alarm_names)
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

output "tracking_server_arn" {
  description = "ARN of the managed tracking server (the ARN it would have when `external_tracking_uri` is used instead)."
  value       = coalesce(one(aws_sagemaker_mlflow_tracking_server.this[*].arn), local.tracking_server_arn)
}

output "tracking_server_name" {
  description = "Name of the managed tracking server; null when `external_tracking_uri` is used."
  value       = one(aws_sagemaker_mlflow_tracking_server.this[*].tracking_server_name)
}

output "tracking_server_url" {
  description = "URL of the MLflow UI (for the managed server, open it through a presigned URL from `sagemaker:CreatePresignedMlflowTrackingServerUrl`)."
  value       = var.external_tracking_uri != null ? var.external_tracking_uri : one(aws_sagemaker_mlflow_tracking_server.this[*].tracking_server_url)
}

output "tracking_uri" {
  description = "Value for `MLFLOW_TRACKING_URI`: the managed server's ARN, which the `sagemaker-mlflow` client plugin resolves and signs requests for, or `external_tracking_uri`."
  value       = var.external_tracking_uri != null ? var.external_tracking_uri : one(aws_sagemaker_mlflow_tracking_server.this[*].arn)
}

output "artifact_store_uri" {
  description = "S3 URI where the server stores artifacts."
  value       = var.artifact_store_uri
}

output "role_arn" {
  description = "ARN of the IAM role the tracking server runs as."
  value       = aws_iam_role.this.arn
}

output "tracking_server_arn" {
  description = "ARN of the tracking server."
  value       = aws_sagemaker_mlflow_tracking_server.this.arn
}

output "tracking_server_name" {
  description = "Name of the tracking server."
  value       = aws_sagemaker_mlflow_tracking_server.this.tracking_server_name
}

output "tracking_server_url" {
  description = "URL of the MLflow UI (open it through a presigned URL from `sagemaker:CreatePresignedMlflowTrackingServerUrl`)."
  value       = aws_sagemaker_mlflow_tracking_server.this.tracking_server_url
}

output "tracking_uri" {
  description = "Value for `MLFLOW_TRACKING_URI`: the server ARN, which the `sagemaker-mlflow` client plugin resolves and signs requests for."
  value       = aws_sagemaker_mlflow_tracking_server.this.arn
}

output "artifact_store_uri" {
  description = "S3 URI where the server stores artifacts."
  value       = aws_sagemaker_mlflow_tracking_server.this.artifact_store_uri
}

output "role_arn" {
  description = "ARN of the IAM role the tracking server runs as."
  value       = aws_iam_role.this.arn
}

output "lake_bucket_name" {
  description = "Name of the data lake bucket."
  value       = module.lake.bucket
}

output "lake_bucket_arn" {
  description = "ARN of the data lake bucket."
  value       = module.lake.arn
}

output "lake_uri" {
  description = "Root URI of the data lake (`s3://bucket`), the value of `MLPLATFORM_LAKE_URI`."
  value       = module.lake.uri
}

output "lake_prefixes" {
  description = "The lake's top-level prefixes by role (raw, validated, quarantine, features, predictions, monitoring); lifecycle rules key on them."
  value       = local.prefixes
}

output "mlflow_bucket_name" {
  description = "Name of the MLflow artifact bucket."
  value       = module.mlflow.bucket
}

output "mlflow_bucket_arn" {
  description = "ARN of the MLflow artifact bucket."
  value       = module.mlflow.arn
}

output "mlflow_artifact_prefix" {
  description = "Key prefix under which MLflow stores artifacts in its bucket."
  value       = local.mlflow_artifact_prefix
}

output "mlflow_artifact_uri" {
  description = "Artifact store URI of the MLflow server (`s3://bucket/artifacts`)."
  value       = "${module.mlflow.uri}/${trimsuffix(local.mlflow_artifact_prefix, "/")}"
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts both buckets; readers and writers need `kms:Decrypt` and `kms:GenerateDataKey` on it."
  value       = module.kms.key_arn
}

output "access_log_bucket_name" {
  description = "Name of the bucket that receives S3 server access logs; other modules' buckets log here too."
  value       = aws_s3_bucket_policy.logs.bucket
}

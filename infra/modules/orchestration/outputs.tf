output "environment_arn" {
  description = "ARN of the MWAA environment."
  value       = aws_mwaa_environment.this.arn
}

output "environment_name" {
  description = "Name of the MWAA environment."
  value       = aws_mwaa_environment.this.name
}

output "webserver_url" {
  description = "Host name of the Airflow UI (reachable from the VPC when the access mode is PRIVATE_ONLY)."
  value       = aws_mwaa_environment.this.webserver_url
}

output "execution_role_arn" {
  description = "ARN of the role the environment and its tasks run as."
  value       = aws_iam_role.this.arn
}

output "execution_role_name" {
  description = "Name of that role, to attach further policies to."
  value       = aws_iam_role.this.name
}

output "dag_bucket_name" {
  description = "Name of the bucket MWAA reads the bundle from."
  value       = module.dag_bucket.bucket
}

output "dag_bucket_arn" {
  description = "ARN of that bucket."
  value       = module.dag_bucket.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key of the environment and its bucket."
  value       = module.kms.key_arn
}

output "environment_variables" {
  description = "Environment variables the startup script exports on every Airflow component (besides PYTHONPATH)."
  value       = local.environment_variables
}

output "bundle_object_count" {
  description = "Number of bundle files uploaded under `dags/`."
  value       = length(local.bundle_files)
}

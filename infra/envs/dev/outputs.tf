output "ssm_prefix" {
  description = "Prefix of the published settings (`MLPLATFORM_SSM_PREFIX`)."
  value       = module.platform.ssm_prefix
}

output "ssm_parameter_names" {
  description = "Published settings by name."
  value       = module.platform.ssm_parameter_names
}

output "lake_uri" {
  description = "Root URI of the data lake."
  value       = module.platform.lake_uri
}

output "mlflow_tracking_uri" {
  description = "MLflow tracking URI (server ARN, for the sagemaker-mlflow plugin)."
  value       = module.platform.mlflow_tracking_uri
}

output "mlflow_tracking_server_url" {
  description = "URL of the MLflow UI."
  value       = module.platform.mlflow_tracking_server_url
}

output "airflow_webserver_url" {
  description = "Host name of the Airflow UI; null without `create_airflow`."
  value       = module.platform.airflow_webserver_url
}

output "airflow_environment_name" {
  description = "Name of the MWAA environment."
  value       = module.platform.airflow_environment_name
}

output "dag_bucket_name" {
  description = "Bucket MWAA reads the bundle from."
  value       = module.platform.dag_bucket_name
}

output "serving_repository_url" {
  description = "ECR repository to push the serving image to."
  value       = module.platform.serving_repository_url
}

output "serving_endpoint_name" {
  description = "Endpoint autoscaling refers to (the deploy DAG names it after `serving_use_case`)."
  value       = module.platform.serving_endpoint_name
}

output "serving_alarm_names" {
  description = "Each use case's endpoint and its alarms (`<endpoint>-...`, dimension `EndpointName`), which roll back a blue/green update and notify the alerts topic."
  value       = module.platform.serving_alarm_names
}

output "vpc_id" {
  description = "VPC the platform runs in; null with `create_network = false`."
  value       = module.platform.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets MWAA runs in (created or given)."
  value       = module.platform.private_subnet_ids
}

output "bastion_instance_id" {
  description = "Bastion to forward the Airflow UI's port through with Session Manager; null unless `create_bastion`."
  value       = module.platform.bastion_instance_id
}

output "use_cases" {
  description = "Use cases found in include/mlplatform/use_cases/ (lifecycle rules and IAM scopes follow them)."
  value       = module.platform.use_cases
}

output "slack_secret_name" {
  description = "Secrets Manager secret to put the Slack webhook connection into."
  value       = module.platform.slack_secret_name
}

output "alerts_topic_arn" {
  description = "SNS topic of alarms and budget notifications."
  value       = module.platform.alerts_topic_arn
}

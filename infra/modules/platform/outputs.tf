output "ssm_prefix" {
  description = "Prefix of the published settings (`MLPLATFORM_SSM_PREFIX`)."
  value       = module.wiring.ssm_prefix
}

output "ssm_parameter_names" {
  description = "Published settings by name."
  value       = module.wiring.parameter_names
}

output "lake_uri" {
  description = "Root URI of the data lake."
  value       = module.data_lake.lake_uri
}

output "mlflow_tracking_uri" {
  description = "MLflow tracking URI (server ARN, for the sagemaker-mlflow plugin)."
  value       = module.model_registry.tracking_uri
}

output "mlflow_tracking_server_url" {
  description = "URL of the MLflow UI."
  value       = module.model_registry.tracking_server_url
}

output "airflow_webserver_url" {
  description = "Host name of the Airflow UI; null without `create_airflow`."
  value       = one(module.orchestration[*].webserver_url)
}

output "airflow_environment_name" {
  description = "Name of the MWAA environment."
  value       = one(module.orchestration[*].environment_name)
}

output "dag_bucket_name" {
  description = "Bucket MWAA reads the bundle from."
  value       = one(module.orchestration[*].dag_bucket_name)
}

output "serving_repository_url" {
  description = "ECR repository to push the serving image to."
  value       = module.serving.repository_url
}

output "serving_endpoint_name" {
  description = "Endpoint autoscaling refers to (the deploy DAG names it after `serving_use_case`)."
  value       = module.serving.autoscaling_endpoint_name
}

output "serving_alarm_names" {
  description = "Each use case's endpoint and its alarms (`<endpoint>-...`, dimension `EndpointName`), which roll back a blue/green update and notify the alerts topic."
  value       = module.serving.alarm_names
}

output "vpc_id" {
  description = "VPC the platform runs in; null with `create_network = false`."
  value       = one(module.network[*].vpc_id)
}

output "private_subnet_ids" {
  description = "Private subnets MWAA runs in (created or given)."
  value       = local.subnet_ids
}

output "bastion_instance_id" {
  description = "Bastion to forward the Airflow UI's port through with Session Manager; null unless `create_bastion`."
  value       = one(module.network[*].bastion_instance_id)
}

output "use_cases" {
  description = "Use cases found in include/mlplatform/use_cases/ (lifecycle rules and IAM scopes follow them)."
  value       = local.use_cases
}

output "slack_secret_name" {
  description = "Secrets Manager secret to put the Slack webhook connection into."
  value       = module.alerts.slack_secret_name
}

output "alerts_topic_arn" {
  description = "SNS topic of alarms and budget notifications."
  value       = module.alerts.topic_arn
}

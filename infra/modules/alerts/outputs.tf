output "topic_arn" {
  description = "ARN of the SNS topic CloudWatch alarms and the budget publish to."
  value       = aws_sns_topic.this.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the topic and the Slack secret; readers of the secret need `kms:Decrypt` on it."
  value       = module.kms.key_arn
}

output "slack_conn_id" {
  description = "Airflow connection id of the Slack webhook, the value of `MLPLATFORM_SLACK_CONN_ID`."
  value       = var.slack_conn_id
}

output "slack_secret_arn" {
  description = "ARN of the Secrets Manager secret that holds the Slack connection."
  value       = aws_secretsmanager_secret.slack.arn
}

output "slack_secret_name" {
  description = "Name of that secret, for `aws secretsmanager put-secret-value --secret-id`."
  value       = aws_secretsmanager_secret.slack.name
}

output "connections_prefix" {
  description = "Secrets Manager prefix of Airflow connections."
  value       = var.connections_prefix
}

output "budget_name" {
  description = "Name of the monthly budget; null without `create_budget`."
  value       = one(aws_budgets_budget.this[*].name)
}

output "slack_forwarder_function_name" {
  description = "Lambda function that posts the topic's notifications to Slack; null without `create_slack_forwarder`."
  value       = one(aws_lambda_function.forwarder[*].function_name)
}

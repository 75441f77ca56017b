output "repository_url" {
  description = "URL of the ECR repository for the serving image (`account.dkr.ecr.region.amazonaws.com/name`); tag images with the release."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "ARN of the ECR repository."
  value       = aws_ecr_repository.this.arn
}

output "execution_role_arn" {
  description = "ARN of the role SageMaker models, endpoints and batch transform jobs run as."
  value       = aws_iam_role.this.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key for endpoint storage volumes and batch transform output."
  value       = module.kms.key_arn
}

output "alarm_names" {
  description = "Names of the CloudWatch alarms a blue/green endpoint update should watch for auto-rollback."
  value       = [for alarm in local.alarms : alarm.alarm_name]
}

output "alarm_arns" {
  description = "ARNs of the same alarms."
  value       = [for alarm in local.alarms : alarm.arn]
}

output "endpoint_name" {
  description = "Name of the endpoint the alarms and autoscaling refer to."
  value       = var.endpoint_name
}

output "variant_names" {
  description = "Variants the alarms watch."
  value       = var.variant_names
}

output "autoscaling_policy_arn" {
  description = "ARN of the target-tracking policy, or null while `create_autoscaling` is false."
  value       = try(aws_appautoscaling_policy.this[0].arn, null)
}

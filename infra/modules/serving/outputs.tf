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
  description = "Each endpoint and the names of its CloudWatch alarms (`<endpoint>-...`, dimension `EndpointName`), which a blue/green update of that endpoint rolls back on."
  value = {
    for endpoint in var.endpoint_names : endpoint => sort([
      for name, alarm in aws_cloudwatch_metric_alarm.this : alarm.alarm_name if local.alarms[name].endpoint == endpoint
    ])
  }
}

output "alarm_arns" {
  description = "ARNs of every endpoint's alarms."
  value       = [for alarm in aws_cloudwatch_metric_alarm.this : alarm.arn]
}

output "endpoint_names" {
  description = "Endpoints that have alarms."
  value       = var.endpoint_names
}

output "autoscaling_endpoint_name" {
  description = "Endpoint autoscaling refers to."
  value       = var.autoscaling_endpoint_name
}

output "variant_names" {
  description = "Variants the alarms watch."
  value       = var.variant_names
}

output "autoscaling_policy_arn" {
  description = "ARN of the target-tracking policy, or null while `create_autoscaling` is false."
  value       = try(aws_appautoscaling_policy.this[0].arn, null)
}

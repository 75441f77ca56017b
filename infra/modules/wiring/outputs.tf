output "parameter_names" {
  description = "Full SSM parameter names by setting, e.g. `lake_uri` => `/mlplatform/dev/lake_uri`."
  value       = merge({ for key, parameter in aws_ssm_parameter.this : key => parameter.name }, { serving_image_tag = aws_ssm_parameter.serving_image_tag.name })
}

output "parameter_arns" {
  description = "ARNs of the parameters by setting."
  value       = merge({ for key, parameter in aws_ssm_parameter.this : key => parameter.arn }, { serving_image_tag = aws_ssm_parameter.serving_image_tag.arn })
}

output "ssm_prefix" {
  description = "Prefix of the parameters; set `MLPLATFORM_SSM_PREFIX` to it where it differs from `/mlplatform/<env>`."
  value       = var.ssm_prefix
}

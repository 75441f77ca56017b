variable "ssm_prefix" {
  type        = string
  description = "Prefix of the parameters, e.g. `/mlplatform/dev`; the code reads it from `MLPLATFORM_SSM_PREFIX`."

  validation {
    condition     = startswith(var.ssm_prefix, "/") && !endswith(var.ssm_prefix, "/")
    error_message = "ssm_prefix must start with a slash and not end with one, e.g. /mlplatform/dev."
  }
}

variable "lake_uri" {
  type        = string
  description = "Root URI of the data lake (`MLPLATFORM_LAKE_URI`)."
}

variable "mlflow_tracking_uri" {
  type        = string
  description = "MLflow tracking URI (`MLFLOW_TRACKING_URI`): the managed server's ARN."
}

variable "mlflow_artifact_uri" {
  type        = string
  description = "Artifact store URI of the MLflow server (`MLPLATFORM_MLFLOW_ARTIFACT_URI`)."
}

variable "slack_conn_id" {
  type        = string
  description = "Airflow connection id of the Slack webhook (`MLPLATFORM_SLACK_CONN_ID`)."
}

variable "sagemaker_execution_role_arn" {
  type        = string
  description = "Role SageMaker models and batch transform jobs run as (`MLPLATFORM_SAGEMAKER_ROLE_ARN`)."
}

variable "serving_image_uri" {
  type        = string
  description = "ECR repository URL of the serving image (`MLPLATFORM_SERVING_IMAGE_URI`)."
}

variable "serving_image_tag_placeholder" {
  type        = string
  description = "Value of `serving_image_tag` until the first release push writes the real tag (`MLPLATFORM_SERVING_IMAGE_TAG`); the deploy code reports it as an image not in ECR."
  default     = "unreleased"
}

variable "serving_kms_key_arn" {
  type        = string
  description = "KMS key for endpoint storage and batch transform output (`MLPLATFORM_SERVING_KMS_KEY_ARN`)."
}

variable "alerts_topic_arn" {
  type        = string
  description = "SNS topic CloudWatch alarms publish to (`MLPLATFORM_ALERTS_TOPIC_ARN`)."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every parameter."
  default     = {}
}

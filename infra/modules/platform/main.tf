# The whole platform for one environment: alerts, data lake, model registry, serving,
# Airflow (MWAA) and the SSM parameters that tell the code where everything is. The
# environment roots under infra/envs/ call this module once each and differ only in the
# values they pass.

locals {
  name        = "${var.project}-${var.environment}"
  bundle_root = abspath("${path.module}/../../..")

  # The code's default for MLPLATFORM_SSM_PREFIX is /mlplatform/<env>.
  ssm_prefix = "/${var.project}/${var.environment}"

  # A use case is one spec file named after it (include/mlplatform/core/spec.py enforces that).
  use_cases = sort([
    for spec in fileset("${local.bundle_root}/include/mlplatform/use_cases", "*.yaml") : trimsuffix(spec, ".yaml")
  ])

  # The deploy and scoring DAGs name a use case's endpoint, models, endpoint configs and
  # transform jobs after it, with dashes for underscores (mlplatform.stages.deployment.endpoint_name).
  sagemaker_names = [for use_case in local.use_cases : replace(use_case, "_", "-")]
  endpoint_name   = replace(var.serving_use_case, "_", "-")

  # The network MWAA runs in: created here, or an existing one passed in.
  subnet_ids         = var.create_network ? module.network[0].private_subnet_ids : var.subnet_ids
  security_group_ids = var.create_network ? [module.network[0].security_group_id] : var.security_group_ids
}

check "serving_use_case_has_a_spec" {
  assert {
    condition     = contains(local.use_cases, var.serving_use_case)
    error_message = "serving_use_case ${var.serving_use_case} has no spec in include/mlplatform/use_cases/."
  }
}

check "existing_network_is_given" {
  assert {
    condition     = var.create_network || !var.create_airflow || (length(var.subnet_ids) == 2 && length(var.security_group_ids) >= 1)
    error_message = "create_network is false: give two private subnet_ids and the security_group_ids of the existing network."
  }
}

module "network" {
  source = "../network"
  count  = var.create_network ? 1 : 0

  name           = local.name
  cidr_block     = var.network_cidr
  egress         = var.network_egress
  create_bastion = var.create_bastion
}

module "alerts" {
  source = "../alerts"

  name                   = local.name
  alert_emails           = var.alert_emails
  create_slack_forwarder = var.create_slack_forwarder
  create_budget          = var.create_budget
  monthly_budget_usd     = var.monthly_budget_usd
  budget_cost_allocation_tag = var.budget_filter_by_environment_tag ? {
    key   = "Environment"
    value = var.environment
  } : null
  kms_deletion_window_in_days = var.kms_deletion_window_in_days
}

module "data_lake" {
  source = "../data_lake"

  name                           = local.name
  use_cases                      = local.use_cases
  force_destroy                  = var.force_destroy
  quarantine_expiration_days     = var.quarantine_expiration_days
  prediction_log_expiration_days = var.prediction_log_expiration_days
  validated_transition_days      = var.validated_transition_days
  kms_deletion_window_in_days    = var.kms_deletion_window_in_days
}

module "model_registry" {
  source = "../model_registry"

  name                  = local.name
  artifact_store_uri    = module.data_lake.mlflow_artifact_uri
  artifact_bucket_arn   = module.data_lake.mlflow_bucket_arn
  artifact_kms_key_arn  = module.data_lake.kms_key_arn
  tracking_server_size  = var.mlflow_tracking_server_size
  mlflow_version        = var.mlflow_version
  external_tracking_uri = var.mlflow_tracking_uri
}

module "serving" {
  source = "../serving"

  name                        = local.name
  endpoint_names              = local.sagemaker_names
  autoscaling_endpoint_name   = local.endpoint_name
  min_instance_count          = var.serving_min_instance_count
  max_instance_count          = var.serving_max_instance_count
  create_autoscaling          = var.create_endpoint_autoscaling
  alarm_actions               = [module.alerts.topic_arn]
  model_artifact_bucket_arn   = module.data_lake.mlflow_bucket_arn
  model_artifact_prefix       = module.data_lake.mlflow_artifact_prefix
  mlflow_tracking_server_arn  = module.model_registry.tracking_server_arn
  lake_bucket_arn             = module.data_lake.lake_bucket_arn
  batch_input_prefixes        = [module.data_lake.lake_prefixes.predictions]
  batch_output_prefix         = module.data_lake.lake_prefixes.predictions
  data_kms_key_arn            = module.data_lake.kms_key_arn
  force_delete_repository     = var.force_destroy
  kms_deletion_window_in_days = var.kms_deletion_window_in_days
}

module "orchestration" {
  source = "../orchestration"
  count  = var.create_airflow ? 1 : 0

  name                  = local.name
  airflow_version       = var.airflow_version
  environment_class     = var.mwaa_environment_class
  min_workers           = var.mwaa_min_workers
  max_workers           = var.mwaa_max_workers
  webserver_access_mode = var.mwaa_webserver_access_mode
  subnet_ids            = local.subnet_ids
  security_group_ids    = local.security_group_ids
  bundle_root           = local.bundle_root

  ssm_prefix                   = local.ssm_prefix
  connections_prefix           = module.alerts.connections_prefix
  secrets_kms_key_arn          = module.alerts.kms_key_arn
  alerts_topic_arn             = module.alerts.topic_arn
  lake_bucket_arn              = module.data_lake.lake_bucket_arn
  mlflow_bucket_arn            = module.data_lake.mlflow_bucket_arn
  data_kms_key_arn             = module.data_lake.kms_key_arn
  access_log_bucket            = module.data_lake.access_log_bucket_name
  mlflow_tracking_server_arn   = module.model_registry.tracking_server_arn
  sagemaker_execution_role_arn = module.serving.execution_role_arn
  sagemaker_name_prefixes      = local.sagemaker_names
  serving_kms_key_arn          = module.serving.kms_key_arn
  force_destroy                = var.force_destroy
  kms_deletion_window_in_days  = var.kms_deletion_window_in_days
}

module "wiring" {
  source = "../wiring"

  ssm_prefix                   = local.ssm_prefix
  lake_uri                     = module.data_lake.lake_uri
  mlflow_tracking_uri          = module.model_registry.tracking_uri
  mlflow_artifact_uri          = module.model_registry.artifact_store_uri
  slack_conn_id                = module.alerts.slack_conn_id
  sagemaker_execution_role_arn = module.serving.execution_role_arn
  serving_image_uri            = module.serving.repository_url
  serving_kms_key_arn          = module.serving.kms_key_arn
  alerts_topic_arn             = module.alerts.topic_arn
}

# MWAA became optional (create_airflow): the environment created before keeps its state.
moved {
  from = module.orchestration
  to   = module.orchestration[0]
}

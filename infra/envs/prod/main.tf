# One environment of the platform: the AWS provider and one call of the platform module.
# This file is identical in every environment; they differ only in terraform.tfvars and in
# the state key in backend.tf.

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = var.project
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}

module "platform" {
  source = "../../modules/platform"

  project                          = var.project
  environment                      = var.environment
  create_network                   = var.create_network
  network_cidr                     = var.network_cidr
  network_egress                   = var.network_egress
  create_bastion                   = var.create_bastion
  subnet_ids                       = var.subnet_ids
  security_group_ids               = var.security_group_ids
  create_airflow                   = var.create_airflow
  create_budget                    = var.create_budget
  mlflow_tracking_uri              = var.mlflow_tracking_uri
  alert_emails                     = var.alert_emails
  create_slack_forwarder           = var.create_slack_forwarder
  monthly_budget_usd               = var.monthly_budget_usd
  budget_filter_by_environment_tag = var.budget_filter_by_environment_tag
  airflow_version                  = var.airflow_version
  mwaa_environment_class           = var.mwaa_environment_class
  mwaa_min_workers                 = var.mwaa_min_workers
  mwaa_max_workers                 = var.mwaa_max_workers
  mwaa_webserver_access_mode       = var.mwaa_webserver_access_mode
  mlflow_tracking_server_size      = var.mlflow_tracking_server_size
  mlflow_version                   = var.mlflow_version
  serving_use_case                 = var.serving_use_case
  serving_min_instance_count       = var.serving_min_instance_count
  serving_max_instance_count       = var.serving_max_instance_count
  create_endpoint_autoscaling      = var.create_endpoint_autoscaling
  quarantine_expiration_days       = var.quarantine_expiration_days
  prediction_log_expiration_days   = var.prediction_log_expiration_days
  validated_transition_days        = var.validated_transition_days
  force_destroy                    = var.force_destroy
  kms_deletion_window_in_days      = var.kms_deletion_window_in_days
}

# Development: smallest sizes, one worker, no endpoint autoscaling.
project     = "mlplatform"
environment = "dev"
region      = "eu-west-1"

# Replace with the two private subnets and the self-referencing security group of your VPC.
subnet_ids         = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
security_group_ids = ["sg-0aaaaaaaaaaaaaaa1"]

alert_emails                     = []
monthly_budget_usd               = 1200
budget_filter_by_environment_tag = false

mwaa_environment_class     = "mw1.small"
mwaa_min_workers           = 1
mwaa_max_workers           = 2
mwaa_webserver_access_mode = "PRIVATE_ONLY"

mlflow_tracking_server_size = "Small"

serving_use_case            = "taxi_trip_duration"
serving_min_instance_count  = 1
serving_max_instance_count  = 1
create_endpoint_autoscaling = false

quarantine_expiration_days     = 14
prediction_log_expiration_days = 30
validated_transition_days      = 30

force_destroy               = true
kms_deletion_window_in_days = 7

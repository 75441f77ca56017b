# Development: smallest sizes, one worker, no endpoint autoscaling.
project     = "mlplatform"
environment = "dev"
region      = "eu-west-1"

# The network is created (modules/network). To use an existing one instead, set
# create_network = false and give subnet_ids (two private subnets in two AZs) and
# security_group_ids (one that allows all traffic from itself).
create_network = true
network_cidr   = "10.40.0.0/16"
network_egress = "nat"
create_bastion = true

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

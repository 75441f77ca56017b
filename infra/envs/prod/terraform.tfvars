# Production: room for more workers; the champion variant scales between two and four instances.
project     = "mlplatform"
environment = "prod"
region      = "eu-west-1"

# The network is created (modules/network). To use an existing one instead, set
# create_network = false and give subnet_ids (two private subnets in two AZs) and
# security_group_ids (one that allows all traffic from itself).
create_network = true
network_cidr   = "10.41.0.0/16"
network_egress = "nat"
create_bastion = true

alert_emails                     = []
monthly_budget_usd               = 3000
budget_filter_by_environment_tag = false

mwaa_environment_class     = "mw1.medium"
mwaa_min_workers           = 2
mwaa_max_workers           = 5
mwaa_webserver_access_mode = "PRIVATE_ONLY"

mlflow_tracking_server_size = "Medium"

serving_use_case            = "taxi_trip_duration"
serving_min_instance_count  = 2
serving_max_instance_count  = 4
create_endpoint_autoscaling = false

quarantine_expiration_days     = 30
prediction_log_expiration_days = 90
validated_transition_days      = 90

force_destroy               = false
kms_deletion_window_in_days = 30

# State lives in S3 with S3-native locking. The bucket and its region are per account,
# so they are given at init time:
#   terraform init -backend-config="bucket=<state bucket>" -backend-config="region=<region>"
terraform {
  backend "s3" {
    key          = "mlplatform/dev/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}

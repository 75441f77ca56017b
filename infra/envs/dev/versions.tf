terraform {
  # 1.10 brings S3-native state locking (`use_lockfile`).
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The provider the configuration is validated against is 5.100.0, the version
      # .terraform.lock.hcl selects; see infra/README.md, "Versions".
      version = "~> 5.100"
    }
  }
}

variable "name" {
  type        = string
  description = "Name prefix of the VPC and everything in it, e.g. `mlplatform-dev`."
}

variable "cidr_block" {
  type        = string
  description = "CIDR block of the VPC; the private subnets take the first two /20 blocks, the public subnet (NAT egress only) the third."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.cidr_block)) && tonumber(split("/", var.cidr_block)[1]) <= 18
    error_message = "cidr_block must be an IPv4 CIDR block of /18 or larger, e.g. 10.40.0.0/16."
  }
}

variable "egress" {
  type        = string
  description = "How the private subnets reach AWS APIs: `nat` (one NAT gateway, which also reaches PyPI for MWAA's requirements) or `endpoints` (interface VPC endpoints for `interface_endpoint_services` and no internet at all)."
  default     = "nat"

  validation {
    condition     = contains(["nat", "endpoints"], var.egress)
    error_message = "egress must be `nat` or `endpoints`."
  }
}

variable "interface_endpoint_services" {
  type        = list(string)
  description = "Services (`com.amazonaws.<region>.` is prepended) that get an interface endpoint when `egress = \"endpoints\"`: what MWAA, the DAGs and SageMaker call. S3 always gets a free gateway endpoint."
  default = [
    "ecr.api",
    "ecr.dkr",
    "sagemaker.api",
    "sagemaker.runtime",
    "ssm",
    "ssmmessages",
    "ec2messages",
    "logs",
    "monitoring",
    "sts",
    "secretsmanager",
    "sqs",
    "kms",
  ]
  nullable = false
}

variable "create_bastion" {
  type        = bool
  description = "Create a small instance without inbound ports that Session Manager forwards a port through, to reach the `PRIVATE_ONLY` Airflow UI (see the README)."
  default     = false
  nullable    = false
}

variable "bastion_instance_type" {
  type        = string
  description = "Instance type of the bastion (an arm64 type: the AMI is Amazon Linux 2023 for arm64)."
  default     = "t4g.nano"
  nullable    = false
}

variable "bastion_ami_parameter" {
  type        = string
  description = "Public SSM parameter that names the bastion's AMI."
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
  nullable    = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}

# The network the platform runs in when the account has none: a VPC with two private
# subnets in two Availability Zones (MWAA needs exactly two), their way out to the AWS APIs
# (one NAT gateway, or interface VPC endpoints and no internet), a free S3 gateway
# endpoint, the self-referencing security group MWAA requires, and on request a bastion
# that Session Manager forwards a port through to reach the `PRIVATE_ONLY` Airflow UI.

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only the first two zone names are used; a zone AWS adds later gets a later letter and sorts after them, so the subnets never move.
  state = "available"

  # Local Zones and Wavelength Zones have no NAT gateways or MWAA.
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

data "aws_region" "current" {}

locals {
  zones    = slice(data.aws_availability_zones.available.names, 0, 2)
  use_nat  = var.egress == "nat"
  services = var.egress == "endpoints" ? toset(var.interface_endpoint_services) : toset([])
}

################################################################################
# VPC and subnets
################################################################################

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:Flow logs cost per GB and need a destination this module does not own; turn them on with aws_flow_log where an audit requires them.
  cidr_block = var.cidr_block
  # Interface endpoints answer for the services' public names only with private DNS on.
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(var.tags, { Name = var.name })
}

# Nothing may use the default security group.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-default-unused" })
}

resource "aws_subnet" "private" {
  count = 2

  vpc_id            = aws_vpc.this.id
  availability_zone = local.zones[count.index]
  cidr_block        = cidrsubnet(var.cidr_block, 20 - tonumber(split("/", var.cidr_block)[1]), count.index)
  tags              = merge(var.tags, { Name = "${var.name}-private-${local.zones[count.index]}" })
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-private" })
}

resource "aws_route_table_association" "private" {
  count = 2

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

################################################################################
# Egress through one NAT gateway (egress = "nat")
################################################################################

resource "aws_subnet" "public" {
  count = local.use_nat ? 1 : 0

  vpc_id            = aws_vpc.this.id
  availability_zone = local.zones[0]
  cidr_block        = cidrsubnet(var.cidr_block, 20 - tonumber(split("/", var.cidr_block)[1]), 2)
  tags              = merge(var.tags, { Name = "${var.name}-public-nat" })
}

resource "aws_internet_gateway" "this" {
  count = local.use_nat ? 1 : 0

  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = var.name })
}

resource "aws_route_table" "public" {
  count = local.use_nat ? 1 : 0

  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-public" })

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this[0].id
  }
}

resource "aws_route_table_association" "public" {
  count = local.use_nat ? 1 : 0

  subnet_id      = aws_subnet.public[0].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_eip" "nat" {
  count = local.use_nat ? 1 : 0

  domain = "vpc"
  tags   = merge(var.tags, { Name = "${var.name}-nat" })

  depends_on = [aws_internet_gateway.this]
}

# One gateway, not one per zone: a zone outage stops egress until it is back, which the
# batch platform tolerates, for half the price.
resource "aws_nat_gateway" "this" {
  count = local.use_nat ? 1 : 0

  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id
  tags          = merge(var.tags, { Name = var.name })
}

resource "aws_route" "private_nat" {
  count = local.use_nat ? 1 : 0

  route_table_id         = aws_route_table.private.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

################################################################################
# Security group: all traffic between members, as MWAA requires
################################################################################

resource "aws_security_group" "this" {
  name        = "${var.name}-platform"
  description = "MWAA, interface endpoints and the bastion of ${var.name}: all traffic between members."
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-platform" })
}

resource "aws_vpc_security_group_ingress_rule" "self" {
  security_group_id            = aws_security_group.this.id
  description                  = "All traffic from members (MWAA's requirement; endpoints answer HTTPS to members)"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.this.id
}

resource "aws_vpc_security_group_egress_rule" "all" {
  #checkov:skip=CKV_AWS_382:MWAA's workers reach PyPI and every AWS API through the NAT gateway; the subnets are private and have no inbound route.
  security_group_id = aws_security_group.this.id
  description       = "Out to the AWS APIs and, through the NAT gateway, to package indexes"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

################################################################################
# VPC endpoints
################################################################################

# Gateway endpoints cost nothing and keep lake traffic off the NAT gateway.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  tags              = merge(var.tags, { Name = "${var.name}-s3" })
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.services

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${data.aws_region.current.name}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.this.id]
  private_dns_enabled = true
  tags                = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

################################################################################
# Bastion for Session Manager port forwarding (create_bastion)
################################################################################

data "aws_ssm_parameter" "bastion_ami" {
  count = var.create_bastion ? 1 : 0

  name = var.bastion_ami_parameter
}

data "aws_iam_policy_document" "bastion_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "bastion" {
  count = var.create_bastion ? 1 : 0

  name               = "${var.name}-bastion"
  description        = "Session Manager agent of the ${var.name} bastion; no other permission."
  assume_role_policy = data.aws_iam_policy_document.bastion_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "bastion" {
  count = var.create_bastion ? 1 : 0

  role       = aws_iam_role.bastion[0].name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "bastion" {
  count = var.create_bastion ? 1 : 0

  name = "${var.name}-bastion"
  role = aws_iam_role.bastion[0].name
  tags = var.tags
}

resource "aws_instance" "bastion" {
  count = var.create_bastion ? 1 : 0

  #checkov:skip=CKV_AWS_126:A port-forwarding bastion needs no one-minute metrics; basic five-minute monitoring is free and enough.
  ami                         = data.aws_ssm_parameter.bastion_ami[0].value
  instance_type               = var.bastion_instance_type
  subnet_id                   = aws_subnet.private[0].id
  vpc_security_group_ids      = [aws_security_group.this.id]
  iam_instance_profile        = aws_iam_instance_profile.bastion[0].name
  associate_public_ip_address = false
  ebs_optimized               = true
  tags                        = merge(var.tags, { Name = "${var.name}-bastion" })

  metadata_options {
    http_tokens   = "required"
    http_endpoint = "enabled"
  }

  root_block_device {
    encrypted   = true
    volume_type = "gp3"
    volume_size = 8 # the AMI's own size; Session Manager's agent needs no more
  }

  # A newer AMI is picked up by replacing the instance on purpose, not on every plan.
  lifecycle {
    ignore_changes = [ami]
  }
}

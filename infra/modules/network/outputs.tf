output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "The two private subnets, in two Availability Zones, for MWAA (and SageMaker where it takes a VPC)."
  value       = aws_subnet.private[*].id
}

output "security_group_id" {
  description = "Security group that allows all traffic between its members (MWAA's requirement)."
  value       = aws_security_group.this.id
}

output "nat_gateway_id" {
  description = "ID of the NAT gateway; null with `egress = \"endpoints\"`."
  value       = one(aws_nat_gateway.this[*].id)
}

output "interface_endpoint_ids" {
  description = "Interface VPC endpoints by service; empty with `egress = \"nat\"`."
  value       = { for service, endpoint in aws_vpc_endpoint.interface : service => endpoint.id }
}

output "bastion_instance_id" {
  description = "Instance to start a Session Manager port-forwarding session through; null unless `create_bastion`."
  value       = one(aws_instance.bastion[*].id)
}

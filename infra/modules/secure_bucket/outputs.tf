output "bucket" {
  description = "Name of the bucket."
  value       = aws_s3_bucket.this.id
}

output "arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn
}

output "uri" {
  description = "The bucket as an `s3://` URI, without a trailing slash."
  value       = "s3://${aws_s3_bucket.this.id}"
}

output "versioning_id" {
  description = "ID of the versioning configuration; depend on it before writing objects whose version IDs are needed."
  value       = aws_s3_bucket_versioning.this.id
}

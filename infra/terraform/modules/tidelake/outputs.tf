output "lake_bucket_arn" {
  description = "ARN of the lake bucket."
  value       = aws_s3_bucket.lake.arn
}

output "ingest_function_arns" {
  description = "ARN of each pipeline's ingest function."
  value       = { for k, f in aws_lambda_function.ingest : k => f.arn }
}

output "compact_function_arn" {
  description = "ARN of the compact function."
  value       = aws_lambda_function.compact.arn
}

output "failure_queue_url" {
  description = "SQS queue that receives the batches a function could not handle."
  value       = aws_sqs_queue.failures.url
}

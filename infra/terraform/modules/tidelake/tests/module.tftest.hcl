# Plan-and-apply checks against a mocked AWS provider: what the module must create, offline.

mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::acme-lake"
      id  = "acme-lake"
    }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-west-1:123456789012:tidelake-failed-batches"
    }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn = "arn:aws:lambda:eu-west-1:123456789012:function:tidelake"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/tidelake"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/tidelake"
    }
  }
}

variables {
  lake_bucket = "acme-lake"
  ingest_zip  = "dist/ingest.zip"
  compact_zip = "dist/compact.zip"
  pipelines = {
    ads = {
      config_toml             = "[kafka]\nbrokers = \"b-1:9092\"\n"
      table_prefixes          = ["lake/ad_events/", "lake/_dead_letters/ad_events/", "lake/_archive/ad_events/", "lake/ad_events_minute/"]
      topics                  = ["ad_events"]
      bootstrap_servers       = ["b-1:9092", "b-2:9092"]
      consumer_group_id       = "tidelake-ads"
      batch_size              = 5000
      batching_window_seconds = 10
    }
  }
}

run "the_lake_bucket_is_private_encrypted_and_tls_only" {
  command = apply
  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.lake.block_public_acls,
      aws_s3_bucket_public_access_block.lake.block_public_policy,
      aws_s3_bucket_public_access_block.lake.ignore_public_acls,
      aws_s3_bucket_public_access_block.lake.restrict_public_buckets,
    ])
    error_message = "every public access block setting must be on"
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.lake.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "the lake must be encrypted with KMS"
  }
  assert {
    condition     = jsondecode(aws_s3_bucket_policy.lake.policy).Statement[0].Effect == "Deny" && jsondecode(aws_s3_bucket_policy.lake.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    error_message = "the bucket policy must deny requests without TLS"
  }
  assert {
    condition     = one(one([for r in aws_s3_bucket_lifecycle_configuration.lake.rule : r if r.id == "archive"]).transition).storage_class == "GLACIER_IR"
    error_message = "archived batches move to Glacier Instant Retrieval"
  }
}

run "the_ingest_role_writes_only_its_table_prefixes" {
  command = apply
  assert {
    condition = alltrue([
      for r in jsondecode(aws_iam_role_policy.ingest["ads"].policy).Statement[0].Resource :
      anytrue([for p in var.pipelines.ads.table_prefixes : r == "arn:aws:s3:::acme-lake/${p}*"])
    ])
    error_message = "the ingest role may touch objects under its table prefixes only"
  }
  assert {
    condition     = length(jsondecode(aws_iam_role_policy.ingest["ads"].policy).Statement[0].Resource) == 4
    error_message = "one object resource per table prefix"
  }
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_role_policy.ingest["ads"].policy).Statement : [
        for r in flatten([s.Resource]) : r != "*" && r != "arn:aws:s3:::acme-lake/*"
      ]
    ]))
    error_message = "no statement of the ingest role may grant the whole bucket or everything (self-managed Kafka needs no network rights)"
  }
}

run "the_event_source_mapping_batches_and_sends_failures_to_the_queue" {
  command = apply
  assert {
    condition     = aws_lambda_event_source_mapping.ingest["ads"].batch_size == 5000 && aws_lambda_event_source_mapping.ingest["ads"].maximum_batching_window_in_seconds == 10
    error_message = "the mapping must use the pipeline's batch settings"
  }
  assert {
    condition     = one(aws_lambda_event_source_mapping.ingest["ads"].self_managed_kafka_event_source_config).consumer_group_id == "tidelake-ads"
    error_message = "the mapping must use the pipeline's consumer group"
  }
  assert {
    condition     = one(one(aws_lambda_event_source_mapping.ingest["ads"].destination_config).on_failure).destination_arn == aws_sqs_queue.failures.arn
    error_message = "failed batches go to the queue"
  }
  assert {
    condition     = one(aws_lambda_function.ingest["ads"].environment).variables.TIDELAKE_CONFIG_TOML == var.pipelines.ads.config_toml
    error_message = "the function carries its pipeline config"
  }
}

run "compaction_runs_on_its_schedule_one_at_a_time" {
  command = apply
  assert {
    condition     = aws_scheduler_schedule.compact.schedule_expression == "rate(5 minutes)"
    error_message = "the compact schedule is the variable's"
  }
  assert {
    condition     = aws_lambda_function.compact.reserved_concurrent_executions == 1
    error_message = "one compaction at a time"
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.errors) == 2 && aws_cloudwatch_metric_alarm.record_age.threshold == 600000
    error_message = "error alarms for both functions and a falling-behind alarm"
  }
}

run "a_local_run_without_kafka_creates_no_mapping" {
  command = apply
  variables {
    kafka_event_source = false
  }
  assert {
    condition     = length(aws_lambda_event_source_mapping.ingest) == 0
    error_message = "no event source mapping without Kafka"
  }
}

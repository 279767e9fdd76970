# tidelake on AWS: the lake bucket, one ingest function per pipeline fed by a Kafka event source
# mapping, the compact function on a schedule, a queue for failed batches, least-privilege roles,
# log groups and alarms.

terraform {
  required_version = ">= 1.7"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.50"
    }
  }
}

locals {
  # Every key prefix some function writes: the compact function works on all of them.
  all_prefixes = distinct(flatten([for p in var.pipelines : p.table_prefixes]))
  all_configs  = join("\n", [for k in sort(keys(var.pipelines)) : var.pipelines[k].config_toml])
}

# ---------------------------------------------------------------------------------------------------
# The lake bucket

resource "aws_s3_bucket" "lake" {
  bucket = var.lake_bucket
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    id     = "archive"
    status = var.archive_transition_days > 0 ? "Enabled" : "Disabled"
    filter {
      prefix = var.archive_prefix
    }
    transition {
      days          = max(var.archive_transition_days, 1)
      storage_class = "GLACIER_IR"
    }
  }
  rule {
    # Delta removes files by committing; vacuum deletes them. Old versions of deleted objects go.
    id     = "noncurrent"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }
}

resource "aws_s3_bucket_policy" "lake" {
  bucket = aws_s3_bucket.lake.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.lake.arn, "${aws_s3_bucket.lake.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.lake]
}

# ---------------------------------------------------------------------------------------------------
# Failed batches

resource "aws_sqs_queue" "failures" {
  name                      = "${var.name}-failed-batches"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

# ---------------------------------------------------------------------------------------------------
# Roles: each function writes only under its own prefixes.

locals {
  lambda_trust = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
  # The key prefixes each role may touch: a pipeline's own, and all of them for compaction.
  prefixes = merge({ for k, p in var.pipelines : k => p.table_prefixes }, { "_compact" = local.all_prefixes })
  lake_statements = { for k, prefixes in local.prefixes : k => [
    {
      Sid      = "TableObjects"
      Effect   = "Allow"
      Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
      Resource = [for prefix in prefixes : "${aws_s3_bucket.lake.arn}/${prefix}*"]
    },
    {
      Sid       = "TableListing"
      Effect    = "Allow"
      Action    = "s3:ListBucket"
      Resource  = aws_s3_bucket.lake.arn
      Condition = { StringLike = { "s3:prefix" = [for prefix in prefixes : "${prefix}*"] } }
    },
  ] }
}

resource "aws_iam_role" "ingest" {
  for_each           = var.pipelines
  name               = "${var.name}-ingest-${each.key}"
  assume_role_policy = local.lambda_trust
}

resource "aws_iam_role_policy" "ingest" {
  for_each = var.pipelines
  name     = "lake"
  role     = aws_iam_role.ingest[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.lake_statements[each.key], [
      {
        Sid      = "FailedBatches"
        Effect   = "Allow"
        Action   = "sqs:SendMessage"
        Resource = aws_sqs_queue.failures.arn
      },
      {
        Sid      = "Logs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${aws_cloudwatch_log_group.ingest[each.key].arn}:*"
      },
      ], each.value.msk_cluster_arn == null ? [] : [
      {
        Sid      = "ReadMsk"
        Effect   = "Allow"
        Action   = ["kafka:DescribeCluster", "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"]
        Resource = each.value.msk_cluster_arn
      },
      {
        Sid      = "MskNetwork"
        Effect   = "Allow"
        Action   = ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface", "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"]
        Resource = "*"
      },
    ])
  })
}

resource "aws_iam_role" "compact" {
  name               = "${var.name}-compact"
  assume_role_policy = local.lambda_trust
}

resource "aws_iam_role_policy" "compact" {
  name = "lake"
  role = aws_iam_role.compact.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.lake_statements["_compact"], [
      {
        Sid      = "Logs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${aws_cloudwatch_log_group.compact.arn}:*"
      },
    ])
  })
}

# ---------------------------------------------------------------------------------------------------
# Functions and their logs

resource "aws_cloudwatch_log_group" "ingest" {
  for_each          = var.pipelines
  name              = "/aws/lambda/${var.name}-ingest-${each.key}"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "compact" {
  name              = "/aws/lambda/${var.name}-compact"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "ingest" {
  for_each         = var.pipelines
  function_name    = "${var.name}-ingest-${each.key}"
  role             = aws_iam_role.ingest[each.key].arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = var.ingest_zip
  source_code_hash = fileexists(var.ingest_zip) ? filebase64sha256(var.ingest_zip) : null
  memory_size      = each.value.memory_mb
  timeout          = each.value.timeout_seconds
  environment {
    variables = {
      TIDELAKE_CONFIG_TOML = each.value.config_toml
    }
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.ingest[each.key].name
  }
}

resource "aws_lambda_function" "compact" {
  function_name                  = "${var.name}-compact"
  role                           = aws_iam_role.compact.arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = [var.architecture]
  filename                       = var.compact_zip
  source_code_hash               = fileexists(var.compact_zip) ? filebase64sha256(var.compact_zip) : null
  memory_size                    = 2048
  timeout                        = 900
  reserved_concurrent_executions = 1
  environment {
    variables = {
      TIDELAKE_CONFIG_TOML = local.all_configs
    }
  }
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.compact.name
  }
}

# ---------------------------------------------------------------------------------------------------
# Kafka event source mappings (MSK or self-managed)

resource "aws_lambda_event_source_mapping" "ingest" {
  for_each                           = var.kafka_event_source ? var.pipelines : {}
  function_name                      = aws_lambda_function.ingest[each.key].arn
  topics                             = each.value.topics
  batch_size                         = each.value.batch_size
  maximum_batching_window_in_seconds = each.value.batching_window_seconds
  starting_position                  = each.value.starting_position
  event_source_arn                   = each.value.msk_cluster_arn

  dynamic "self_managed_event_source" {
    for_each = each.value.msk_cluster_arn == null ? [1] : []
    content {
      endpoints = { KAFKA_BOOTSTRAP_SERVERS = join(",", coalesce(each.value.bootstrap_servers, [])) }
    }
  }
  dynamic "amazon_managed_kafka_event_source_config" {
    for_each = each.value.msk_cluster_arn != null && each.value.consumer_group_id != null ? [1] : []
    content {
      consumer_group_id = each.value.consumer_group_id
    }
  }
  dynamic "self_managed_kafka_event_source_config" {
    for_each = each.value.msk_cluster_arn == null && each.value.consumer_group_id != null ? [1] : []
    content {
      consumer_group_id = each.value.consumer_group_id
    }
  }
  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.failures.arn
    }
  }
}

# ---------------------------------------------------------------------------------------------------
# The compact schedule

resource "aws_iam_role" "scheduler" {
  name = "${var.name}-scheduler"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "scheduler.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "scheduler" {
  name = "invoke-compact"
  role = aws_iam_role.scheduler.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "lambda:InvokeFunction", Resource = aws_lambda_function.compact.arn }]
  })
}

resource "aws_scheduler_schedule" "compact" {
  name                = "${var.name}-compact"
  schedule_expression = var.compact_schedule
  flexible_time_window {
    mode = "OFF"
  }
  target {
    arn      = aws_lambda_function.compact.arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({})
    dead_letter_config {
      arn = aws_sqs_queue.failures.arn
    }
  }
}

# ---------------------------------------------------------------------------------------------------
# Alarms: function errors, dead letters, falling behind

locals {
  alarm_actions = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "errors" {
  for_each            = merge({ for k, f in aws_lambda_function.ingest : "ingest-${k}" => f.function_name }, { compact = aws_lambda_function.compact.function_name })
  alarm_name          = "${var.name}-${each.key}-errors"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name}-dead-letters"
  namespace           = "tidelake"
  metric_name         = "DeadLetters"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "record_age" {
  alarm_name          = "${var.name}-falling-behind"
  namespace           = "tidelake"
  metric_name         = "RecordAge"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = var.record_age_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
}

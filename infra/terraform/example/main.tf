# An example root: the tidelake module for one pipeline (ad events from self-managed Kafka), against
# AWS, or against a local AWS API endpoint (LocalStack, moto) with `aws_endpoint` set.
#
#   terraform init
#   terraform apply -var lake_bucket=my-lake -var 'kafka_bootstrap_servers=["b-1:9092"]'
#   terraform apply -var aws_endpoint=http://127.0.0.1:4566 -var kafka_event_source=false ...

terraform {
  required_version = ">= 1.7"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.50"
    }
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "aws_endpoint" {
  description = "A local AWS API endpoint (LocalStack, moto) instead of AWS; null for AWS itself."
  type        = string
  default     = null
}

variable "lake_bucket" {
  description = "Name of the lake bucket."
  type        = string
  default     = "tidelake-example-lake"
}

variable "kafka_bootstrap_servers" {
  description = "Bootstrap servers of the self-managed Kafka cluster."
  type        = list(string)
  default     = ["kafka-1:9092"]
}

variable "kafka_event_source" {
  description = "Create the Kafka event source mapping (false for a local endpoint with no Kafka to poll)."
  type        = bool
  default     = true
}

variable "dist" {
  description = "Folder of the bootstrap zips `tidelake package` writes."
  type        = string
  default     = "../../../dist"
}

provider "aws" {
  region                      = var.region
  skip_credentials_validation = var.aws_endpoint != null
  skip_requesting_account_id  = var.aws_endpoint != null
  skip_metadata_api_check     = var.aws_endpoint != null
  s3_use_path_style           = var.aws_endpoint != null

  dynamic "endpoints" {
    for_each = var.aws_endpoint == null ? [] : [var.aws_endpoint]
    content {
      cloudwatch = endpoints.value
      iam        = endpoints.value
      lambda     = endpoints.value
      logs       = endpoints.value
      s3         = endpoints.value
      scheduler  = endpoints.value
      sqs        = endpoints.value
      sts        = endpoints.value
    }
  }
}

module "tidelake" {
  source             = "../modules/tidelake"
  lake_bucket        = var.lake_bucket
  ingest_zip         = "${var.dist}/ingest.zip"
  compact_zip        = "${var.dist}/compact.zip"
  kafka_event_source = var.kafka_event_source
  pipelines = {
    ads = {
      config_toml = templatefile("${path.module}/tidelake.toml.tftpl", {
        bucket  = var.lake_bucket
        brokers = join(",", var.kafka_bootstrap_servers)
      })
      table_prefixes = [
        "lake/ad_events/", "lake/_dead_letters/ad_events/", "lake/_archive/ad_events/",
        "lake/ad_events_minute/", "lake/ad_events_hour/", "lake/ad_events_day/",
      ]
      topics            = ["ad_events"]
      bootstrap_servers = var.kafka_bootstrap_servers
      consumer_group_id = "tidelake-ad-events"
    }
  }
}

output "ingest_function_arns" {
  description = "ARN of each pipeline's ingest function."
  value       = module.tidelake.ingest_function_arns
}

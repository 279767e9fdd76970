variable "name" {
  description = "Prefix of every resource name (functions, roles, queues, schedules)."
  type        = string
  default     = "tidelake"
}

variable "lake_bucket" {
  description = "Name of the S3 bucket that holds the lake (created by this module)."
  type        = string
}

variable "archive_prefix" {
  description = "Key prefix of the raw-batch archives (`_archive/` under the lake root by default)."
  type        = string
  default     = "lake/_archive/"
}

variable "archive_transition_days" {
  description = "Days after which archived batches move to Glacier Instant Retrieval (0 keeps them in Standard)."
  type        = number
  default     = 30
}

variable "ingest_zip" {
  description = "Path of the `ingest` bootstrap zip that `tidelake package` writes."
  type        = string
}

variable "compact_zip" {
  description = "Path of the `compact` bootstrap zip that `tidelake package` writes."
  type        = string
}

variable "architecture" {
  description = "Lambda architecture of the zips: x86_64 or arm64."
  type        = string
  default     = "x86_64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "pipelines" {
  description = <<-EOT
    One ingest function per pipeline. `config_toml` is the pipeline's tidelake.toml (passed as
    TIDELAKE_CONFIG_TOML); `table_prefixes` are the lake key prefixes its tables live under (the
    function may write only there); `kafka` says where the records come from: `msk_cluster_arn` for MSK,
    or `bootstrap_servers` for self-managed Kafka.
  EOT
  type = map(object({
    config_toml             = string
    table_prefixes          = list(string)
    topics                  = list(string)
    msk_cluster_arn         = optional(string)
    bootstrap_servers       = optional(list(string))
    consumer_group_id       = optional(string)
    batch_size              = optional(number, 10000)
    batching_window_seconds = optional(number, 5)
    starting_position       = optional(string, "TRIM_HORIZON")
    memory_mb               = optional(number, 1024)
    timeout_seconds         = optional(number, 300)
  }))
}

variable "kafka_event_source" {
  description = "Create the Kafka event source mappings (a local run against an AWS API emulator has no Kafka to poll)."
  type        = bool
  default     = true
}

variable "compact_schedule" {
  description = "EventBridge Scheduler expression of the compact function."
  type        = string
  default     = "rate(5 minutes)"
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups."
  type        = number
  default     = 30
}

variable "alarm_topic_arn" {
  description = "SNS topic the alarms notify (none: alarms without actions)."
  type        = string
  default     = null
}

variable "record_age_alarm_ms" {
  description = "Alarm when the oldest record of a batch is older than this (milliseconds): the function falls behind."
  type        = number
  default     = 600000
}

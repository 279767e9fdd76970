//! `tidelake quickstart`: the shortest way to see the pipeline work end to end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use tidelake_functions::{poller, Ingestor, PollerOptions};
use tidelake_lake::sample::{self, Kind, SampleSpec};
use tidelake_lake::PipelineConfig;

use crate::{progress, BoxError};

const PARTITIONS: i32 = 3;

/// Flags of `tidelake quickstart`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder for tidelake.toml and the lake.
    #[arg(long, env = "TIDELAKE_QUICKSTART_DIR", default_value = "./tidelake-quickstart")]
    dir: PathBuf,
    /// Distinct ad events to generate.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Real Kafka bootstrap servers; without it an embedded in-process cluster is used.
    #[arg(long, env = "TIDELAKE_BROKERS")]
    brokers: Option<String>,
    /// Topic to produce to and consume from (created with 3 partitions if missing).
    #[arg(long, default_value = "ad_events")]
    topic: String,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Seed of the event generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Serialize, Debug)]
struct Summary {
    events_produced: usize,
    duplicates_produced: usize,
    poison_produced: usize,
    records_consumed: usize,
    rows_in_table: u64,
    data_files: usize,
    dead_letters: u64,
    duplicates_dropped: u64,
    minute_rows: u64,
    minute_table: String,
    audit_passed: bool,
    audit_problems: usize,
    table_uri: String,
    config: String,
    kafka: String,
    seconds: f64,
}

/// Runs the quickstart.
pub async fn run(args: Args, terminal: bool) -> Result<(), BoxError> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let config_path = dir.join("tidelake.toml");
    // Each run starts from an empty lake: the lake remembers Kafka offsets, and an embedded cluster
    // starts its offsets at zero again every run.
    let lake = dir.join("lake");
    if lake.exists() {
        std::fs::remove_dir_all(&lake)?;
    }

    let mock = match &args.brokers {
        Some(_) => None,
        None => Some(MockCluster::new(1)?),
    };
    let (brokers, kafka) = match (&args.brokers, &mock) {
        (Some(brokers), _) => (brokers.clone(), format!("kafka at {brokers}")),
        (None, Some(mock)) => {
            mock.create_topic(&args.topic, PARTITIONS, 1)?;
            (mock.bootstrap_servers(), "embedded in-process Kafka cluster".to_string())
        }
        (None, None) => unreachable!("a mock cluster exists when no brokers are given"),
    };
    if args.brokers.is_some() {
        create_topic(&brokers, &args.topic).await?;
    }
    // The file names a broker a user can run later; this run uses the one just chosen.
    let written_brokers = args.brokers.clone().unwrap_or_else(|| "localhost:9092".into());
    std::fs::write(&config_path, config_text(&written_brokers, &args.topic, mock.is_some()))?;
    let mut config = PipelineConfig::load(&config_path)?;
    config.kafka.brokers = brokers.clone();

    let spec = SampleSpec {
        events: args.events,
        duplicate_ratio: 0.02,
        poison_ratio: 0.005,
        end_time_us: chrono::Utc::now().timestamp_micros(),
        seed: args.seed,
    };
    let records = sample::generate(&spec);
    let bar = progress(terminal, &format!("producing {} records", records.len()));
    produce(&brokers, &args.topic, &records).await?;
    bar.finish_and_clear();

    let mut ingestor = Ingestor::open(config.clone()).await?;
    let bar = progress(terminal, "ingesting");
    let mut seen = 0;
    let options = PollerOptions::new(config.batch, true);
    let report = poller::run(&mut ingestor, options, std::future::pending(), |batch| {
        seen += batch.records;
        bar.set_message(format!("ingested {seen} of {} records", records.len()));
    })
    .await?;
    bar.finish_and_clear();

    let table = &config.tables[0];
    let data = tidelake_lake::delta::open_or_create(
        &table.name,
        &table.location,
        &table.table_schema(),
        &table.partition_columns(),
        &config.storage_options,
    )
    .await?;
    let (rows_in_table, data_files) = tidelake_lake::delta::row_and_file_count(&data)?;
    let dead = tidelake_lake::delta::open_or_create(
        "dead_letters",
        &table.dead_letters,
        &tidelake_lake::sinks::dead_letter_schema(),
        &[],
        &config.storage_options,
    )
    .await?;
    let (dead_letters, _) = tidelake_lake::delta::row_and_file_count(&dead)?;
    let rollup = table.rollup.as_ref().ok_or("the quickstart table declares a rollup")?;
    let grain = tidelake_lake::rollup::Grain::Minute;
    let minute_table = rollup.table_name(grain);
    let minute_at = rollup.location(grain).ok_or("the quickstart rollup keeps minutes")?;
    let minute_rows =
        match tidelake_lake::delta::open_existing(&minute_table, minute_at, &config.storage_options, None).await? {
            Some(minute) => tidelake_lake::delta::row_and_file_count(&minute)?.0,
            None => 0,
        };
    let audit = crate::audit::check(&config, table, Default::default(), true).await?;
    let count = |kind| records.iter().filter(|r| r.kind == kind).count();
    let summary = Summary {
        events_produced: count(Kind::Event),
        duplicates_produced: count(Kind::Duplicate),
        poison_produced: count(Kind::Poison),
        records_consumed: report.records,
        rows_in_table,
        data_files,
        dead_letters,
        duplicates_dropped: report.duplicates_dropped as u64,
        minute_rows,
        minute_table,
        audit_passed: audit.passed,
        audit_problems: audit.lake.problems.len(),
        table_uri: table.location.to_string(),
        config: config_path.display().to_string(),
        kafka,
        seconds: started.elapsed().as_secs_f64(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn print_summary(s: &Summary) {
    println!("tidelake quickstart ({:.1}s, {})", s.seconds, s.kafka);
    println!(
        "  produced   {} events, {} duplicate copies, {} poison records",
        s.events_produced, s.duplicates_produced, s.poison_produced
    );
    println!("  consumed   {} records", s.records_consumed);
    println!("  table      {} rows in {} files at {}", s.rows_in_table, s.data_files, s.table_uri);
    println!("  dead       {} dead letters (with reasons) in the dead-letter table", s.dead_letters);
    println!("  dropped    {} duplicate copies of an event UUID", s.duplicates_dropped);
    println!(
        "  rollup     {} partial minute rows (impressions, clicks, spend, unique users per ad) in {}",
        s.minute_rows, s.minute_table
    );
    match s.audit_passed {
        true => println!("  audit      passed: every offset is a row, a dropped copy or a dead letter, once"),
        false => println!("  audit      FAILED with {} problems: run `tidelake audit` for them", s.audit_problems),
    }
    println!("  config     {}", s.config);
}

fn config_text(brokers: &str, topic: &str, embedded: bool) -> String {
    let note = if embedded {
        "# quickstart ran against an embedded in-process Kafka cluster; point `brokers` at a real one\n# to go on with `tidelake ingest --config <this file>`.\n"
    } else {
        ""
    };
    format!(
        "# tidelake pipeline config, written by `tidelake quickstart`.\n{note}\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"tidelake-quickstart\"\nisolation_level = \"read_committed\"\n\n[batch]\nmax_records = 5000\nmax_bytes = \"6MB\"\nmax_wait = \"200ms\"\n\n[lake]\nroot = \"lake\"\n\n{}\n{}",
        sample::AD_EVENTS_TABLE.replace("topic = \"ad_events\"", &format!("topic = \"{topic}\"")),
        sample::AD_EVENTS_ROLLUP,
    )
}

async fn create_topic(brokers: &str, name: &str) -> Result<(), BoxError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1));
    for result in admin.create_topics([&topic], &AdminOptions::new()).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("cannot create topic {name}: {code}").into()),
        }
    }
    Ok(())
}

async fn produce(brokers: &str, topic: &str, records: &[sample::SampleRecord]) -> Result<(), BoxError> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .create()?;
    let mut pending = Vec::with_capacity(records.len());
    for r in records {
        loop {
            let record = FutureRecord::to(topic).key(&r.key).payload(&r.value);
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    for delivery in pending {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

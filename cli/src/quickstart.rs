//! `tidelake quickstart`: the shortest way to see the pipeline work end to end.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use tidelake_compaction::{compact_table, CompactOptions};
use tidelake_functions::{poller, Ingestor, PollerOptions};
use tidelake_lake::kafka::{QuietContext, ANSWER_TIMEOUT};
use tidelake_lake::sample::{self, Kind, SampleSpec};
use tidelake_lake::PipelineConfig;

use crate::{progress, progress_bar, BoxError};

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
    /// After the summary, keep going until Ctrl-C: produce events at --rate, ingest them as they
    /// come, compact every --compact-every, and serve queries (Trino protocol) on --listen.
    #[arg(long)]
    serve: bool,
    /// With --serve: distinct events produced per second.
    #[arg(long, default_value_t = 200, requires = "serve")]
    rate: usize,
    /// With --serve: how often the compaction jobs run.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration, requires = "serve")]
    compact_every: Duration,
    /// With --serve: the address queries are served on (loopback: no sign-in).
    #[arg(long, default_value = "127.0.0.1:8080", requires = "serve")]
    listen: std::net::SocketAddr,
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
    /// Three of the dead letters: where each was and why.
    dead_letter_samples: Vec<DeadLetterSample>,
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

#[derive(Serialize, Debug)]
struct DeadLetterSample {
    at: String,
    reason: String,
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
    // The file names a broker a user can run later (with --serve, the embedded cluster, which
    // answers as long as the demo runs); this run uses the one just chosen.
    let written_brokers = match (&args.brokers, args.serve) {
        (Some(brokers), _) => brokers.clone(),
        (None, true) => brokers.clone(),
        (None, false) => "localhost:9092".into(),
    };
    let embedded = match (&mock, args.serve) {
        (None, _) => Embedded::No,
        (Some(_), false) => Embedded::Gone,
        (Some(_), true) => Embedded::WhileServing,
    };
    std::fs::write(&config_path, config_text(&written_brokers, &args.topic, embedded))?;
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
    let producer = producer(&brokers)?;
    produce(&producer, &args.topic, &records).await?;
    bar.finish_and_clear();

    let mut ingestor = Ingestor::open(config.clone()).await?;
    let bar = progress_bar(terminal, records.len() as u64, "records ingested");
    let options = PollerOptions::new(config.batch, true);
    let report = poller::run(&mut ingestor, options, std::future::pending(), |batch| {
        bar.inc(batch.records as u64);
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
        dead_letter_samples: report
            .dead_letter_samples
            .iter()
            .map(|(at, reason)| DeadLetterSample { at: at.clone(), reason: reason.clone() })
            .collect(),
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
    if args.serve {
        let demo = Demo { args: &args, config: &config, config_path: &config_path, producer: &producer, terminal };
        demo.run(&mut ingestor).await?;
    }
    Ok(())
}

/// What `--serve` runs on after the first load.
struct Demo<'a> {
    args: &'a Args,
    config: &'a PipelineConfig,
    config_path: &'a std::path::Path,
    producer: &'a FutureProducer,
    terminal: bool,
}

impl Demo<'_> {
    /// Produces, ingests, compacts and serves until Ctrl-C, or until one of them fails (then the
    /// others stop too and the error is returned).
    async fn run(&self, ingestor: &mut Ingestor) -> Result<(), BoxError> {
        let listener = tokio::net::TcpListener::bind(self.args.listen)
            .await
            .map_err(|e| format!("listening on {} (choose another with --listen): {e}", self.args.listen))?;
        self.print_connect(listener.local_addr()?);
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // The first failure stops everything else.
        let stop_on_error = |result: Result<(), BoxError>| {
            if result.is_err() {
                let _ = stop.send(true);
            }
            result
        };
        let bar = progress(self.terminal, "running; Ctrl-C stops");
        // Counted by the tasks below, all polled by this one task.
        let (produced, ingested, rows, compactions) = (Cell::new(0), Cell::new(0), Cell::new(0), Cell::new(0));
        let status = || {
            bar.set_message(format!(
                "produced {}, ingested {} records ({} rows), compacted {} times; Ctrl-C stops",
                produced.get(),
                ingested.get(),
                rows.get(),
                compactions.get()
            ));
        };
        let ctrl_c = async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => { let _ = stop.send(true); }
                _ = stopped(stopping.clone()) => {}
            }
        };
        let produce = async {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for seed in self.args.seed + 1.. {
                tokio::select! {
                    _ = stopped(stopping.clone()) => break,
                    _ = tick.tick() => {}
                }
                let spec = SampleSpec {
                    events: self.args.rate,
                    duplicate_ratio: 0.02,
                    poison_ratio: 0.005,
                    end_time_us: chrono::Utc::now().timestamp_micros(),
                    seed,
                };
                let records = sample::generate(&spec);
                produce(self.producer, &self.args.topic, &records).await?;
                produced.set(produced.get() + records.len());
            }
            Ok::<(), BoxError>(())
        };
        let ingest = async {
            let options = PollerOptions::new(self.config.batch, false);
            poller::run(ingestor, options, stopped(stopping.clone()), |batch| {
                ingested.set(ingested.get() + batch.records);
                rows.set(rows.get() + batch.rows_written());
            })
            .await?;
            Ok::<(), BoxError>(())
        };
        let compact = async {
            loop {
                tokio::select! {
                    _ = stopped(stopping.clone()) => break,
                    _ = tokio::time::sleep(self.args.compact_every) => {}
                }
                for spec in &self.config.tables {
                    let done = compact_table(spec, &self.config.storage_options, &CompactOptions::default()).await?;
                    tracing::info!(table = %spec.name, jobs = done.len(), "compacted");
                }
                compactions.set(compactions.get() + 1);
            }
            Ok::<(), BoxError>(())
        };
        let serve = crate::serve::serve_defaults(self.config.clone(), listener, stopped(stopping.clone()));
        let show = async {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = stopped(stopping.clone()) => break,
                    _ = tick.tick() => status(),
                }
            }
        };
        let (_, produced_result, ingest_result, compact_result, serve_result, ()) = tokio::join!(
            ctrl_c,
            async { stop_on_error(produce.await) },
            async { stop_on_error(ingest.await) },
            async { stop_on_error(compact.await) },
            async { stop_on_error(serve.await) },
            show,
        );
        bar.finish_and_clear();
        produced_result?;
        ingest_result?;
        compact_result?;
        serve_result?;
        eprintln!(
            "stopped; the lake stays at {}",
            self.config_path.parent().map_or_else(String::new, |p| p.display().to_string())
        );
        Ok(())
    }

    fn print_connect(&self, at: std::net::SocketAddr) {
        let (host, port) = (at.ip(), at.port());
        let config = self.config_path.display();
        println!();
        println!(
            "tidelake is running until Ctrl-C: {} events/s into topic {}, ingested as they come, compacted every {}.",
            self.args.rate,
            self.args.topic,
            humantime::format_duration(self.args.compact_every)
        );
        println!("Query the lake (`lake`), the records not in it yet (`kafka`) and both as one (`live`):");
        println!("  Trino CLI   trino --server http://{host}:{port} --catalog tidelake --schema live");
        println!("  Python      trino.dbapi.connect(host=\"{host}\", port={port}, user=\"you\", catalog=\"tidelake\", schema=\"live\")");
        println!("  JDBC        jdbc:trino://{host}:{port}/tidelake/live");
        println!("  tidelake    tidelake query --config {config} \"SELECT event_type, count(*) FROM live.ad_events GROUP BY 1\"");
        println!("Look at it: http://{host}:{port}/ui (freshness, lag, dead letters, commits, queries); Prometheus: http://{host}:{port}/metrics");
        println!();
    }
}

fn print_summary(s: &Summary) {
    println!("tidelake quickstart ({:.1}s, {})", s.seconds, s.kafka);
    println!(
        "  produced   {} events, {} duplicate copies, {} poison records",
        s.events_produced, s.duplicates_produced, s.poison_produced
    );
    println!("  consumed   {} records", s.records_consumed);
    println!("  table      {} rows in {} files at {}", s.rows_in_table, s.data_files, s.table_uri);
    println!("  dead       {} dead letters (with reasons) in the dead-letter table, such as", s.dead_letters);
    for sample in &s.dead_letter_samples {
        println!("               {}  {}", sample.at, shorten(&sample.reason, 90));
    }
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

/// `text` cut to `max` characters, marked where it was cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// Whether the quickstart's Kafka is an embedded cluster, and how long it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedded {
    No,
    /// Gone when the quickstart ends.
    Gone,
    /// Answers while `quickstart --serve` runs.
    WhileServing,
}

fn config_text(brokers: &str, topic: &str, embedded: Embedded) -> String {
    let note = match embedded {
        Embedded::No => "",
        Embedded::Gone => "# quickstart ran against an embedded in-process Kafka cluster; point `brokers` at a real one\n# to go on with `tidelake ingest --config <this file>`.\n",
        Embedded::WhileServing => "# `brokers` is the embedded in-process Kafka cluster of `tidelake quickstart --serve`: it answers\n# while that runs. Point it at a real cluster to go on without it.\n",
    };
    format!(
        "# tidelake pipeline config, written by `tidelake quickstart`.\n{note}\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"tidelake-quickstart\"\nisolation_level = \"read_committed\"\n\n[batch]\nmax_records = 5000\nmax_bytes = \"6MB\"\nmax_wait = \"200ms\"\n\n[lake]\nroot = \"lake\"\n\n{}\n{}",
        sample::AD_EVENTS_TABLE.replace("topic = \"ad_events\"", &format!("topic = \"{topic}\"")),
        sample::AD_EVENTS_ROLLUP,
    )
}

async fn create_topic(brokers: &str, name: &str) -> Result<(), BoxError> {
    let admin: AdminClient<QuietContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create_with_context(QuietContext)?;
    // A cluster that is not there is said in one line, within seconds.
    admin
        .inner()
        .fetch_metadata(None, ANSWER_TIMEOUT)
        .map_err(|e| tidelake_lake::Error::KafkaUnreachable { brokers: brokers.to_string(), reason: e.to_string() })?;
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1));
    for result in admin.create_topics([&topic], &AdminOptions::new()).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("cannot create topic {name}: {code}").into()),
        }
    }
    Ok(())
}

fn producer(brokers: &str) -> Result<FutureProducer, BoxError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .create()?)
}

async fn produce(producer: &FutureProducer, topic: &str, records: &[sample::SampleRecord]) -> Result<(), BoxError> {
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

//! `tidelake package`: the function binaries built for the AWS Lambda `provided.al2023` runtime, one
//! `bootstrap` zip per function, with `cargo lambda` (it cross-compiles with zig against the glibc
//! Lambda has, for x86_64 or arm64).
//!
//! The Lambda build leaves out the `kafka-client` feature: the event source mapping reads Kafka and
//! hands the function its records, so the zip carries no librdkafka.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Serialize;

use crate::BoxError;

/// Lambda refuses a zip uploaded directly (not through S3) above this size.
pub const LAMBDA_ZIP_LIMIT: u64 = 50 * 1024 * 1024;

/// The function binaries a deployment needs: (cargo package, binary).
pub const FUNCTIONS: [(&str, &str); 2] = [("tidelake-functions", "ingest"), ("tidelake-compaction", "compact")];

/// Flags of `tidelake package`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// CPU architecture of the functions (arm64 needs the Rust target
    /// aarch64-unknown-linux-gnu: `rustup target add aarch64-unknown-linux-gnu`).
    #[arg(long, value_enum, default_value = "x86_64", env = "TIDELAKE_ARCH")]
    arch: Arch,
    /// Folder the zips go to, as `<function>.zip` (the Terraform module's `ingest_zip`, `compact_zip`).
    #[arg(long, default_value = "dist", env = "TIDELAKE_DIST")]
    out: PathBuf,
    /// The tidelake source checkout to build (default: the one the current folder is in).
    #[arg(long, env = "TIDELAKE_SOURCE")]
    source: Option<PathBuf>,
    /// Print the zips and their sizes as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Lambda's two architectures.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    Arm64,
}

impl Arch {
    fn cargo_lambda_flag(self) -> &'static str {
        match self {
            Arch::X86_64 => "--x86-64",
            Arch::Arm64 => "--arm64",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// One zip written.
#[derive(Debug, Serialize)]
struct Packaged {
    function: &'static str,
    arch: &'static str,
    zip: PathBuf,
    bytes: u64,
}

/// Builds the functions and writes their zips.
pub async fn run(args: Args) -> Result<(), BoxError> {
    let source = match &args.source {
        Some(dir) => checkout_at(dir).ok_or_else(|| format!("{} is not a tidelake source checkout", dir.display()))?,
        None => {
            let here = std::env::current_dir()?;
            here.ancestors().find_map(checkout_at).ok_or_else(|| {
                format!(
                    "no tidelake source checkout at or above {}: run this inside one or pass --source DIR",
                    here.display()
                )
            })?
        }
    };
    cargo_lambda_installed().await?;
    std::fs::create_dir_all(&args.out)?;
    let out = std::fs::canonicalize(&args.out)?;
    let staging = out.join(format!(".build-{}", args.arch.name()));

    let mut build = tokio::process::Command::new("cargo");
    build
        .current_dir(&source)
        .args(["lambda", "build", "--profile", "lambda", "--output-format", "zip", "--no-default-features"])
        .arg(args.arch.cargo_lambda_flag())
        .arg("--lambda-dir")
        .arg(&staging);
    for (package, bin) in FUNCTIONS {
        build.args(["--package", package, "--bin", bin]);
    }
    // cargo's own progress goes to stderr; stdout stays for the report.
    let status = build.stdout(Stdio::null()).status().await?;
    if !status.success() {
        return Err(format!("cargo lambda build failed ({status}); its messages are above").into());
    }

    let mut packaged = Vec::new();
    for (_, function) in FUNCTIONS {
        let built = staging.join(function).join("bootstrap.zip");
        let zip = out.join(format!("{function}.zip"));
        std::fs::rename(&built, &zip).map_err(|e| format!("{}: {e}", built.display()))?;
        let bytes = std::fs::metadata(&zip)?.len();
        if bytes > LAMBDA_ZIP_LIMIT {
            return Err(format!(
                "{}: {bytes} bytes, above Lambda's {LAMBDA_ZIP_LIMIT}-byte limit for a zip uploaded directly",
                zip.display()
            )
            .into());
        }
        packaged.push(Packaged { function, arch: args.arch.name(), zip, bytes });
    }
    std::fs::remove_dir_all(&staging)?;

    if args.json {
        println!("{}", serde_json::to_string(&packaged)?);
    } else {
        for p in &packaged {
            println!("{:<8} {:>7} {:>10.1} MB  {}", p.function, p.arch, p.bytes as f64 / 1e6, p.zip.display());
        }
    }
    Ok(())
}

/// `dir` when it is the root of a tidelake checkout (the workspace with both function crates).
fn checkout_at(dir: &Path) -> Option<PathBuf> {
    let root = dir.join("Cargo.toml");
    let is_checkout = std::fs::read_to_string(&root).is_ok_and(|text| text.contains("[workspace]"))
        && dir.join("functions/Cargo.toml").is_file()
        && dir.join("compaction/Cargo.toml").is_file();
    is_checkout.then(|| dir.to_path_buf())
}

/// Refuses with the install command when `cargo lambda` is missing.
async fn cargo_lambda_installed() -> Result<(), BoxError> {
    let probe = tokio::process::Command::new("cargo")
        .args(["lambda", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    match probe {
        Ok(status) if status.success() => Ok(()),
        _ => Err("`cargo lambda` is not installed: `pip install cargo-lambda ziglang` (it cross-compiles \
                  for Lambda with zig)"
            .into()),
    }
}

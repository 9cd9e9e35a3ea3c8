use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use argus::app::{self, Outcome, RunOptions};
use argus::config::{Config, StreamConfig};
use clap::{Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Configuration is layered: the defaults built into the binary (print them with `argus config`),
then the file given with --config, then environment variables named ARGUS_<SECTION>__<KEY>,
for example:

  ARGUS_KAFKA__BROKERS=kafka-1:9092,kafka-2:9092   Kafka bootstrap servers
  ARGUS_REDIS__URL=redis://:password@redis:6379/0   Redis
  ARGUS_HTTP__LISTEN=0.0.0.0:8090                  HTTP API and /metrics
  ARGUS_MODELS__DIR=/var/lib/argus/models          shipped models (default $ARGUS_MODEL_DIR)

Streams come from [[streams]] tables in the file, or from --stream, which replaces them:

  argus run --stream gate3=rtsp://user:pass@10.0.0.7/stream1 --stream lobby=/videos/lobby.mp4

Results go to the Kafka topic kafka.topics.frame_results (JSON, key = camera id, schema in
schemas/frame-result.v1.json) and to Redis key <prefix>:camera:<id>:latest.
Logs: RUST_LOG=debug for per-frame detail.";

#[derive(Parser)]
#[command(name = "argus", version, about = "Streaming video analytics: decode camera streams and recordings, \
run vision operators on sampled frames, publish results to Kafka and Redis.", after_help = AFTER_HELP)]
struct Cli {
    /// TOML configuration file, merged over the built-in defaults.
    #[arg(short, long, global = true, env = "ARGUS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse the configured streams and publish the results (the default command).
    Run(RunArgs),
    /// Print the effective configuration (defaults, file and environment merged) as TOML.
    Config,
    /// Print a topic's messages as JSON lines (or --pretty), from the beginning, filtered by
    /// camera, text or field (e.g. `argus tail argus.stream-events.v1 --where event.kind=gap`).
    Tail(TailArgs),
    /// Index a recording into the moment index, faster than real time, with progress and
    /// ETA; run it again after an interruption and it resumes.
    Index(IndexArgs),
    /// Search the moment index of a running Argus (`argus run`) by text or by an image, e.g.
    /// `argus moments "white van at the gate" --camera gate3 --since 2h`.
    Moments(MomentsArgs),
    /// Score moment retrieval on the benchmark that tests/moments/build_benchmark.py builds
    /// (R1@0.5, R1@0.7, mAP, R@1, R@5); indexes its video first unless already done.
    Eval(EvalArgs),
    /// Score object detection, tracking, zone counts and line crossings (AP@0.5, MOTA, IDF1)
    /// on the labelled vtest.avi frames and the clip deploy/make_synthetic_objects.py builds.
    EvalObjects(EvalObjectsArgs),
}

#[derive(clap::Args)]
struct EvalObjectsArgs {
    /// Labelled frames (tests/data/objects/vtest-labels.json); skipped when not given.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// The labelled video; default: the labels' `video` in $ARGUS_SAMPLE_DIR.
    #[arg(long, value_name = "FILE")]
    video: Option<PathBuf>,
    /// The folder make_synthetic_objects.py --out wrote; skipped when not given.
    #[arg(long, value_name = "DIR")]
    synthetic: Option<PathBuf>,
    /// How far (seconds) a reported crossing or zone event may be from the true one.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    tolerance: f64,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The benchmark folder (benchmark.mkv, benchmark-bframes.mp4, queries.jsonl,
    /// image_queries.jsonl).
    dir: PathBuf,
    /// The camera name the Matroska video is indexed under; the MP4's gets `-bframes`.
    #[arg(long, default_value = "benchmark")]
    camera: String,
    /// Frames per second to analyse.
    #[arg(long, default_value_t = 2.0, value_name = "FPS")]
    fps: f64,
    /// Also ask every text query with the LLM rerank and score both, side by side.
    #[arg(long)]
    rerank: bool,
    /// Also write the full report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(clap::Args)]
struct IndexArgs {
    /// The recording (any container and codec GStreamer can decode).
    file: PathBuf,
    /// The camera the recording comes from: its moments are found under this name.
    #[arg(long)]
    camera: String,
    /// When the recording began (RFC 3339, e.g. 2026-11-28T14:00:00Z): moments carry this
    /// time plus their offset in the file.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    start: chrono::DateTime<chrono::Utc>,
    /// Frames per second to analyse.
    #[arg(long, default_value_t = 2.0, value_name = "FPS")]
    fps: f64,
    /// Index from the beginning even if an earlier run finished or got part of the way.
    #[arg(long)]
    restart: bool,
}

#[derive(clap::Args)]
struct MomentsArgs {
    /// What to look for, in words ("truck at gate 3"). Omit with --image.
    query: Option<String>,
    /// Search by an example image (JPEG, PNG...) instead: moments that look like it.
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    image: Option<PathBuf>,
    /// Only these cameras (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    camera: Vec<String>,
    /// Only moments after this: RFC 3339, or an age such as 90m, 2h, 3d.
    #[arg(long)]
    since: Option<String>,
    /// Only moments before this (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// How many moments to show.
    #[arg(short = 'k', long, default_value_t = 10)]
    limit: usize,
    /// Re-score the best moments with the service's LLM (moments.rerank_model) reading their
    /// on-screen text, tags and captions; slower.
    #[arg(long, conflicts_with = "image")]
    rerank: bool,
    /// The Argus API; default: http.listen of the configuration.
    #[arg(long, value_name = "URL")]
    api: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct TailArgs {
    /// Topic to read.
    topic: String,
    /// Only this camera's messages (the message key).
    #[arg(long)]
    camera: Option<String>,
    /// Start at the end: only messages published from now on.
    #[arg(long)]
    follow_new: bool,
    /// Exit after this many messages.
    #[arg(short = 'n', long)]
    limit: Option<u64>,
    /// Only messages containing this text.
    #[arg(long, value_name = "TEXT")]
    grep: Option<String>,
    /// Only messages where a field has a value, e.g. `event.kind=gap` (repeatable: all must hold).
    #[arg(long = "where", value_name = "PATH=VALUE", value_parser = argus::app::tail::parse_condition)]
    conditions: Vec<(String, String)>,
    /// Indented JSON under a line naming partition, offset, key and schema.
    #[arg(long)]
    pretty: bool,
}

#[derive(clap::Args, Default)]
struct RunArgs {
    /// A stream as ID=URI (repeatable); replaces the streams of the configuration.
    /// URI: file:///path, /path, rtsp://[user:pass@]host/path, http(s)://...
    #[arg(long = "stream", value_name = "ID=URI", value_parser = parse_stream)]
    streams: Vec<StreamConfig>,

    /// Frames per second to analyse for streams given with --stream.
    #[arg(long, default_value_t = 1.0, value_name = "FPS")]
    sample_fps: f64,

    /// Exit once every stream has finished or failed (exit code 2 if any failed),
    /// instead of serving until interrupted.
    #[arg(long)]
    exit_when_done: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_time(value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|time| time.to_utc())
        .map_err(|e| format!("{e}: expected RFC 3339, e.g. 2026-11-28T14:00:00Z"))
}

fn parse_stream(value: &str) -> Result<StreamConfig, String> {
    let (id, uri) = value
        .split_once('=')
        .ok_or_else(|| "expected ID=URI, e.g. gate3=rtsp://camera/stream1".to_string())?;
    Ok(StreamConfig::new(id.trim(), uri.trim()))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(Outcome::Completed) => ExitCode::SUCCESS,
        Ok(Outcome::StreamsFailed) => ExitCode::from(2),
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut cli: Cli) -> anyhow::Result<Outcome> {
    let mut config = Config::load(cli.config.as_deref())?;
    match cli
        .command
        .take()
        .unwrap_or(Command::Run(RunArgs::default()))
    {
        Command::Config => {
            print!(
                "{}",
                toml::to_string_pretty(&config.redacted()).context("printing the configuration")?
            );
            Ok(Outcome::Completed)
        }
        Command::Tail(args) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(argus::app::tail::tail(
                &config.kafka,
                argus::app::tail::TailOptions {
                    topic: args.topic,
                    camera: args.camera,
                    from_end: args.follow_new,
                    limit: args.limit,
                    grep: args.grep,
                    conditions: args.conditions,
                    pretty: args.pretty,
                },
            ))?;
            Ok(Outcome::Completed)
        }
        Command::Index(args) => {
            use std::io::IsTerminal;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let summary = runtime.block_on(argus::app::index::index_recording(
                config,
                argus::app::index::RecordingJob {
                    file: args.file,
                    camera: args.camera,
                    start: args.start,
                    sample_fps: args.fps,
                    restart: args.restart,
                    progress_bar: std::io::stderr().is_terminal(),
                },
            ))?;
            if summary.already_indexed {
                println!(
                    "{}: already indexed (use --restart to index it again)",
                    summary.camera
                );
            } else {
                println!(
                    "{}: {} windows from {:.0} s of video in {:.1} s ({:.1}x real time)",
                    summary.camera,
                    summary.windows,
                    summary.video_seconds,
                    summary.wall_seconds,
                    summary.speed
                );
            }
            Ok(Outcome::Completed)
        }
        Command::Eval(args) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let reports = runtime.block_on(argus::app::eval::run(
                config,
                &args.dir,
                &args.camera,
                args.fps,
                args.rerank,
            ))?;
            argus::app::eval::print(&reports);
            if let Some(output) = args.output {
                std::fs::write(&output, serde_json::to_string_pretty(&reports)?)
                    .with_context(|| format!("cannot write {}", output.display()))?;
            }
            Ok(Outcome::Completed)
        }
        Command::EvalObjects(args) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let report = runtime.block_on(argus::app::eval_objects::run(
                config,
                argus::app::eval_objects::ObjectsEvalJob {
                    labels: args.labels,
                    labelled_video: args.video,
                    synthetic: args.synthetic,
                    tolerance_s: args.tolerance,
                },
            ))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                argus::app::eval_objects::print(&report);
            }
            Ok(Outcome::Completed)
        }
        Command::Moments(args) => {
            argus::app::search::search(
                &config,
                argus::app::search::SearchRequest {
                    query: args.query,
                    image: args.image,
                    cameras: args.camera,
                    since: args.since,
                    until: args.until,
                    limit: args.limit,
                    rerank: args.rerank,
                    api: args.api,
                    json: args.json,
                },
            )?;
            Ok(Outcome::Completed)
        }
        Command::Run(args) => {
            if !args.streams.is_empty() {
                config.streams = args
                    .streams
                    .into_iter()
                    .map(|stream| StreamConfig {
                        sample_fps: args.sample_fps,
                        ..stream
                    })
                    .collect();
            }
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(app::run(
                config,
                RunOptions {
                    exit_when_done: args.exit_when_done,
                    config_file: cli.config.clone(),
                },
            ))
        }
    }
}

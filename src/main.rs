//! The `driftgauge` command line: `serve`, `check`, `eval`. Only this edge uses `anyhow`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use driftgauge::detect::ks::{Alternative, Method};
use driftgauge::detect::report::ks_report;
use driftgauge::formats::values::parse_values;
use driftgauge::{app, cluster, config, dataset, logging};

/// `println!` for reports on stdout: a reader that went away (`driftgauge check | head`)
/// ends the process quietly, with the status a SIGPIPE gives, instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let result = writeln!(std::io::stdout().lock(), $($arg)*);
        stdout_written(result);
    }};
}

/// Exits at once when stdout's reader is gone; other write errors are ignored, as
/// `println!` cannot report them either (it panics).
fn stdout_written(result: std::io::Result<()>) {
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
    }
}

#[derive(Parser)]
#[command(
    name = "driftgauge",
    version,
    about = "Prometheus-native drift and degradation monitor for machine-learning models",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: take in samples, evaluate rules, expose /metrics, call webhooks.
    Serve(ServeArgs),
    /// Validate the config and rule files; print every error as file:line:col: message.
    Check(CheckArgs),
    /// Run one detector once on two files of values, or test every column of two datasets.
    Eval(EvalArgs),
    /// Unit tests.
    #[command(subcommand)]
    Test(TestCommand),
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run rule unit tests: promtool's test file format with drift_rule_test and exp_webhooks.
    /// Exit 1 when a test fails (with a diff) or a file is bad (file:line:col: message).
    Rules {
        #[arg(value_name = "TEST_FILE", required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Service config; without it: no webhooks, rule_files ["rules/*.yml"] in the working directory.
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Address to listen on (`:9347` means every interface).
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9347"
    )]
    listen_address: String,
    /// Where state is kept.
    #[arg(long = "storage.path", value_name = "DIR", default_value = "data")]
    storage_path: PathBuf,
    /// How often rule state (windows, EMA, states) is flushed to the store.
    #[arg(
        long = "storage.flush-interval",
        value_name = "DURATION",
        default_value = "5s"
    )]
    flush_interval: String,
    /// debug, info, warn or error.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info")]
    log_level: String,
    /// logfmt or json.
    #[arg(long = "log.format", value_name = "FORMAT", default_value = "logfmt")]
    log_format: String,
    /// Enable POST /-/reload.
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// TLS and basic-auth config in the exporter-toolkit format.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// Reload when the config or rule files change.
    #[arg(long = "config.auto-reload")]
    auto_reload: bool,
    /// How long a request body may take to arrive.
    #[arg(
        long = "web.read-timeout",
        value_name = "DURATION",
        default_value = "30s"
    )]
    read_timeout: String,
    /// Connections served at once; past it a few more answer only health probes.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = 512)]
    max_connections: usize,
    /// This replica's name, added to webhook payloads as `replica` (HA pairs).
    #[arg(long = "cluster.replica", value_name = "NAME")]
    replica: Option<String>,
    /// This shard's index: a number, or a name ending in -N (a StatefulSet pod name, e.g.
    /// --shard.index=$(POD_NAME)) whose N is taken.
    #[arg(long = "shard.index", value_name = "I", default_value = "0")]
    shard_index: String,
    /// Take the shard index from this host's name (a StatefulSet pod's hostname ends in -N).
    #[arg(long = "shard.index-from-hostname", conflicts_with = "shard_index")]
    shard_index_from_hostname: bool,
    /// Number of shards; each evaluates the rule groups whose name hashes onto its index.
    #[arg(long = "shard.total", value_name = "N", default_value_t = 1)]
    shard_total: u32,
}

#[derive(Args)]
struct CheckArgs {
    /// Also check this service config, its rule files, and webhook names against it.
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Rule files to check.
    #[arg(value_name = "RULE_FILE")]
    rule_files: Vec<PathBuf>,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Detector {
    Ks,
    Cvm,
    Anderson,
    Wasserstein,
    Energy,
    Chi2,
    Gtest,
    Psi,
    Jensenshannon,
    Hellinger,
}

impl Detector {
    fn name(self) -> &'static str {
        match self {
            Detector::Ks => "ks",
            Detector::Cvm => "cvm",
            Detector::Anderson => "anderson",
            Detector::Wasserstein => "wasserstein",
            Detector::Energy => "energy",
            Detector::Chi2 => "chi2",
            Detector::Gtest => "gtest",
            Detector::Psi => "psi",
            Detector::Jensenshannon => "jensenshannon",
            Detector::Hellinger => "hellinger",
        }
    }
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
    /// A self-contained HTML report with a plot per column (datasets).
    Html,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum FailOn {
    /// Exit 2 when any column (or the sample) drifted.
    Drifted,
    /// Exit 2 when any column is in warning or drifted.
    Warning,
}

#[derive(Args)]
struct EvalArgs {
    /// The test of numeric values (categorical columns of a dataset take chi2).
    #[arg(long, value_enum, default_value = "ks")]
    detector: Detector,
    /// Reference: one value per line, a CSV with --column, a 1-D .npy; or a dataset (CSV with
    /// a header, Parquet, 2-D .npy), every column tested.
    #[arg(long, value_name = "FILE")]
    reference: PathBuf,
    /// Current sample, same format.
    #[arg(long, value_name = "FILE")]
    current: PathBuf,
    /// two-sided, less or greater.
    #[arg(long, default_value = "two-sided")]
    alternative: String,
    /// ks: auto, exact or asymp; cvm: auto, exact or asymptotic.
    #[arg(long, default_value = "auto")]
    method: String,
    /// anderson: midrank, right or continuous.
    #[arg(long)]
    variant: Option<String>,
    /// jensenshannon: 2 or e.
    #[arg(long)]
    base: Option<String>,
    /// Binned detectors on values: bins on the reference's quantiles (default 10).
    #[arg(long)]
    bins: Option<usize>,
    /// Binned detectors: the files hold counts per bin or category (one per line, same order).
    #[arg(long)]
    counts: bool,
    /// Detectors without a p-value (wasserstein, energy, psi, jensenshannon, hellinger): the
    /// statistic at or above this is drifted.
    #[arg(long)]
    threshold: Option<f64>,
    /// p <= alpha is evidence of drift.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// With evidence, D >= this is drifted, else warning.
    #[arg(long)]
    statistic: Option<f64>,
    /// Read this column of CSV files (first line is the header).
    #[arg(long, value_name = "NAME")]
    column: Option<String>,
    /// Datasets: test these columns (comma-separated names; a .npy's are 0, 1, ...).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Datasets: test these columns as categories (chi2) even when they hold numbers.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    categorical: Vec<String>,
    /// Datasets: the CSV field delimiter, one byte (`tab` or `\t` for a tab); default `,`,
    /// or a tab for .tsv files.
    #[arg(long, value_name = "CHAR")]
    delimiter: Option<String>,
    /// Datasets: adjust the p-values across the columns tested: none, bonferroni or bh.
    #[arg(long, default_value = "bh")]
    correction: String,
    /// Exit 2 when the verdict is this bad (else 0 whatever the status).
    #[arg(long = "fail-on", value_enum, value_name = "STATUS")]
    fail_on: Option<FailOn>,
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
}

/// Large blocks (samples, sort buffers) on transparent huge pages: `driftgauge::memory`.
#[global_allocator]
static ALLOCATOR: driftgauge::memory::HugePages = driftgauge::memory::HugePages;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).map(|()| ExitCode::SUCCESS),
        Command::Check(args) => return check(args),
        Command::Eval(args) => eval(args),
        Command::Test(TestCommand::Rules { files }) => return test_rules(&files),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("driftgauge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    logging::init(&args.log_level, &args.log_format)?;
    let addr = match args.listen_address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => args.listen_address.clone(),
    };
    let cluster = cluster_options(&args)?;
    let flush_interval = config::parse_duration(&args.flush_interval)
        .map_err(|e| anyhow::anyhow!("--storage.flush-interval={}: {e}", args.flush_interval))?;
    let options = app::Options {
        config_file: args.config_file,
        storage_path: args.storage_path,
        flush_interval,
        enable_lifecycle: args.enable_lifecycle,
        handle_sighup: true,
        auto_reload: args.auto_reload,
        web_config: args.web_config_file,
        read_timeout: config::parse_duration(&args.read_timeout)
            .map_err(|e| anyhow::anyhow!("--web.read-timeout={}: {e}", args.read_timeout))?,
        max_connections: args.max_connections,
        cluster,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        app::run(options, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// `--cluster.replica`, `--shard.index` (or `--shard.index-from-hostname`), `--shard.total`.
fn cluster_options(args: &ServeArgs) -> anyhow::Result<cluster::Cluster> {
    let index = if args.shard_index_from_hostname {
        let host = hostname().context("--shard.index-from-hostname: reading the host name")?;
        cluster::ordinal_of(&host).context("--shard.index-from-hostname")?
    } else {
        match args.shard_index.trim().parse::<u32>() {
            Ok(i) => i,
            Err(_) => cluster::ordinal_of(&args.shard_index)
                .with_context(|| format!("--shard.index={}", args.shard_index))?,
        }
    };
    let shard = cluster::Shard::new(index, args.shard_total)?;
    let replica = args
        .replica
        .as_deref()
        .map(cluster::check_replica)
        .transpose()?;
    Ok(cluster::Cluster { replica, shard })
}

/// The host name: `$HOSTNAME` when set, else the kernel's.
fn hostname() -> std::io::Result<String> {
    match std::env::var("HOSTNAME") {
        Ok(h) if !h.trim().is_empty() => Ok(h.trim().to_string()),
        _ => std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()),
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `driftgauge test rules`: every file, reported as promtool reports its unit tests.
fn test_rules(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        outln!("Unit Testing:  {}", file.display());
        match driftgauge::engine::unittest::run_file(file) {
            Ok(outcome) if outcome.failures.is_empty() => outln!("  SUCCESS\n"),
            Ok(outcome) => {
                failed = true;
                outln!("  FAILED:");
                for f in &outcome.failures {
                    outln!("    {f}");
                }
            }
            Err(e) => {
                failed = true;
                outln!("  FAILED:");
                for d in &e.0 {
                    eprintln!("{d}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn check(args: CheckArgs) -> ExitCode {
    match config::check(args.config_file.as_deref(), &args.rule_files) {
        Ok(summary) => {
            outln!(
                "SUCCESS: {} rule files, {} groups, {} rules found",
                summary.files,
                summary.groups,
                summary.rules
            );
            for line in &summary.calibration {
                outln!("  {line}");
            }
            if summary.unchecked_webhooks > 0 {
                eprintln!(
                    "note: webhook names were not checked ({} rules name webhooks); pass --config.file to check them",
                    summary.unchecked_webhooks
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            for d in &e.0 {
                eprintln!("{d}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Values of a text or CSV file, or of a NumPy `.npy` file (by its extension or its magic),
/// which is memory-mapped and, for float64 data, used in place without a copy.
fn read_values(
    path: &PathBuf,
    column: Option<&str>,
) -> anyhow::Result<driftgauge::config::files::Values> {
    use driftgauge::config::files::{read_npy_file, NpyFileError, Values};
    use driftgauge::formats::npy;
    use std::io::Read;

    let has_magic = || {
        let mut magic = [0u8; 6];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && &magic == npy::MAGIC
    };
    let npy_name = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if npy_name || has_magic() {
        if column.is_some() {
            bail!(
                "{}: --column selects a CSV column; a .npy file holds one array",
                path.display()
            );
        }
        return read_npy_file(path).map_err(|e| match e {
            NpyFileError::Io(e) => {
                anyhow::Error::new(e).context(format!("reading {}", path.display()))
            }
            NpyFileError::Npy(e) => anyhow::Error::new(e).context(format!("{}", path.display())),
        });
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_values(&text, column)
        .map(Values::Owned)
        .with_context(|| format!("{}", path.display()))
}

fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    if args.detector != Detector::Ks {
        return eval_detector(&args);
    }
    let Some(alternative) = Alternative::parse(&args.alternative) else {
        bail!(
            "--alternative={}: expected two-sided, less or greater",
            args.alternative
        );
    };
    let Some(method) = Method::parse(&args.method) else {
        bail!("--method={}: expected auto, exact or asymp", args.method);
    };
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        bail!("--alpha={}: must be in (0, 1)", args.alpha);
    }
    let delimiter = delimiter(args.delimiter.as_deref(), &args.reference)?;
    if args.column.is_some() && args.columns.is_some() {
        bail!("--column reads one column of a CSV; --columns tests several: give one of them");
    }
    let table = |p: &PathBuf| {
        matches!(
            dataset::sniff(p, delimiter),
            dataset::Kind::Parquet | dataset::Kind::NpyTable | dataset::Kind::CsvTable
        )
    };
    if args.columns.is_some()
        || (args.column.is_none() && table(&args.reference) && table(&args.current))
    {
        return eval_dataset(&args, alternative, method, delimiter);
    }
    if args.output == OutputFormat::Html {
        bail!("--output=html reports on datasets (CSV with a header, Parquet, 2-D .npy, or --columns)");
    }
    let reference = read_values(&args.reference, args.column.as_deref())?;
    let current = read_values(&args.current, args.column.as_deref())?;
    let report = ks_report(
        &reference,
        &current,
        alternative,
        method,
        args.alpha,
        args.statistic,
    )?;
    match args.output {
        OutputFormat::Json => outln!("{}", serde_json::to_string(&report)?),
        OutputFormat::Text => {
            outln!("detector:           {}", report.detector);
            outln!("statistic:          {}", report.statistic);
            outln!("p_value:            {:e}", report.p_value);
            outln!("status:             {}", report.status);
            outln!("n_reference:        {}", report.n_reference);
            outln!("n_current:          {}", report.n_current);
            outln!("statistic_location: {}", report.statistic_location);
            outln!("statistic_sign:     {}", report.statistic_sign);
            outln!("method:             {}", report.method);
        }
        OutputFormat::Html => bail!(
            "--output=html reports on datasets (CSV with a header, Parquet, 2-D .npy, or --columns)"
        ),
    }
    let failed = match args.fail_on {
        None => false,
        Some(FailOn::Drifted) => report.status == "drifted",
        Some(FailOn::Warning) => report.status != "stable",
    };
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `eval` with any detector but `ks`, on one column (values, or `--counts`), through the same
/// code as `POST /api/v1/evaluate`.
fn eval_detector(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    use driftgauge::detect::evaluate;
    let name = args.detector.name();
    if args.columns.is_some() || args.output == OutputFormat::Html {
        bail!("--detector={name} tests one column; datasets (--columns, --output=html) take ks for numbers and chi2 for categories");
    }
    let reference = read_values(&args.reference, args.column.as_deref())?.into_vec();
    let current = read_values(&args.current, args.column.as_deref())?.into_vec();
    let (values, counts) = if args.counts {
        (None, Some((reference, current)))
    } else {
        (Some((reference, current)), None)
    };
    let (reference, current) = values.map_or((None, None), |(a, b)| (Some(a), Some(b)));
    let (reference_counts, current_counts) =
        counts.map_or((None, None), |(a, b)| (Some(a), Some(b)));
    let request = evaluate::Request {
        detector: name.to_string(),
        reference,
        current,
        reference_counts,
        current_counts,
        method: (args.method != "auto").then(|| args.method.clone()),
        variant: args.variant.clone(),
        base: args.base.clone(),
        bins: args.bins,
        alpha: Some(args.alpha),
        statistic: args.statistic,
        threshold: args.threshold,
        ..evaluate::Request::default()
    };
    let report = evaluate::evaluate(request).map_err(|e| anyhow::anyhow!("{e}"))?;
    match args.output {
        OutputFormat::Json => outln!("{}", serde_json::to_string(&report)?),
        _ => {
            outln!("detector:           {}", report.detector);
            outln!("statistic:          {}", report.statistic);
            match report.p_value {
                Some(p) => outln!("p_value:            {p:e}"),
                None => outln!("p_value:            none"),
            }
            outln!(
                "status:             {}",
                report.status.unwrap_or("none (no --threshold)")
            );
            outln!("n_reference:        {}", report.n_reference);
            outln!("n_current:          {}", report.n_current);
            if let Some(b) = report.bins {
                outln!("bins:               {b}");
            }
        }
    }
    let failed = match (args.fail_on, report.status) {
        (Some(FailOn::Drifted), Some(s)) => s == "drifted",
        (Some(FailOn::Warning), Some(s)) => s != "stable",
        _ => false,
    };
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--delimiter`: one byte, or `tab`/`\t`; by default a tab for `.tsv` files, else `,`.
fn delimiter(given: Option<&str>, reference: &std::path::Path) -> anyhow::Result<u8> {
    match given {
        None => Ok(
            if reference
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
            {
                b'\t'
            } else {
                b','
            },
        ),
        Some("tab" | "\\t" | "\t") => Ok(b'\t'),
        Some(d) if d.len() == 1 && d != "\"" && d != "\n" && d != "\r" => Ok(d.as_bytes()[0]),
        Some(d) => {
            bail!("--delimiter={d:?}: expected one character (not a quote or line break), or tab")
        }
    }
}

/// `eval` on two datasets: every selected column tested, corrected, reported.
fn eval_dataset(
    args: &EvalArgs,
    alternative: Alternative,
    method: Method,
    delimiter: u8,
) -> anyhow::Result<ExitCode> {
    use std::io::{IsTerminal, Write};

    let Some(correction) = dataset::Correction::parse(&args.correction) else {
        bail!(
            "--correction={}: expected none, bonferroni or bh",
            args.correction
        );
    };
    let wanted: Option<Vec<String>> = args.columns.as_ref().map(|c| {
        let mut w = c.clone();
        w.extend(args.categorical.iter().cloned());
        w
    });
    let (reference, current) = rayon::join(
        || dataset::open(&args.reference, delimiter, wanted.as_deref()),
        || dataset::open(&args.current, delimiter, wanted.as_deref()),
    );
    let (reference, current) = (reference?, current?);
    let options = dataset::Options {
        columns: args.columns.clone(),
        categorical: args.categorical.clone(),
        alternative,
        method,
        alpha: args.alpha,
        statistic: args.statistic,
        correction,
        summaries: args.output == OutputFormat::Html,
    };
    // A progress bar on stderr, only for a person watching a long run.
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let last = std::sync::Mutex::new(started);
    let shown = std::sync::atomic::AtomicBool::new(false);
    let progress = |done: usize, total: usize| {
        if !tty {
            return;
        }
        let now = std::time::Instant::now();
        let Ok(mut last) = last.lock() else { return };
        if now.duration_since(started).as_millis() < 500
            || (now.duration_since(*last).as_millis() < 100 && done < total)
        {
            return;
        }
        *last = now;
        shown.store(true, std::sync::atomic::Ordering::Relaxed);
        let width = 30;
        let filled = done * width / total.max(1);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r[{}{}] {done}/{total} columns, {:.1} s",
            "#".repeat(filled),
            ".".repeat(width - filled),
            now.duration_since(started).as_secs_f64()
        );
        let _ = err.flush();
    };
    let report = dataset::evaluate(&reference, &current, &options, &progress)?;
    if shown.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!();
    }
    let text = match args.output {
        OutputFormat::Text => dataset::report::text(&report),
        OutputFormat::Json => dataset::report::json(&report) + "\n",
        OutputFormat::Html => dataset::report::html(&report),
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing the report")?;
    let failed = match args.fail_on {
        None => false,
        Some(FailOn::Drifted) => report.drifted > 0,
        Some(FailOn::Warning) => report.drifted + report.warning > 0,
    };
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

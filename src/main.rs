//! The `llm-tower` binary: arguments and logging, config → gateway → serve.
//!
//! ```text
//! llm-tower --config FILE [--listen ADDR] [--log-format text|json|logfmt] [--admin-overlay FILE]
//! llm-tower --check FILE
//! ```
//!
//! The config is reloaded on `SIGHUP` and when its files change; changes made through the
//! admin API are kept in `--admin-overlay` (default: `NAME.admin.yaml` beside the config
//! file; also `LLM_TOWER_ADMIN_OVERLAY`).

use std::io::IsTerminal;
use std::process::ExitCode;

use llm_tower::reload::{ConfigSource, Reloader};
use llm_tower::Config;

// mimalloc rather than glibc's malloc for the binary: a request allocates a few hundred
// times (header and extension maps, JSON, the usage record), and mimalloc's thread-local
// free lists cost fewer instructions per allocation (README, Benchmarks). The library
// itself does not choose: an app that embeds it keeps its own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: llm-tower --config FILE [--listen ADDR] [--log-format text|json|logfmt] [--admin-overlay FILE]
       llm-tower --check FILE     validate FILE (with its admin overlay), print what it would serve, exit";

#[derive(Clone, Copy, PartialEq)]
enum LogFormat {
    Text,
    Json,
    Logfmt,
}

fn main() -> ExitCode {
    let mut config_path = None;
    let mut check = false;
    let mut listen = None;
    let mut overlay = std::env::var_os("LLM_TOWER_ADMIN_OVERLAY");
    let mut log_format = LogFormat::Text;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let parsed = match arg.as_str() {
            "--config" => value("--config").map(|v| config_path = Some(v)),
            "--check" => value("--check").map(|v| {
                config_path = Some(v);
                check = true;
            }),
            "--listen" => value("--listen").map(|v| listen = Some(v)),
            "--admin-overlay" => value("--admin-overlay").map(|v| overlay = Some(v.into())),
            "--log-format" => value("--log-format").and_then(|v| {
                log_format = match v.as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    "logfmt" => LogFormat::Logfmt,
                    other => {
                        return Err(format!(
                            "--log-format: `{other}` is not `text`, `json` or `logfmt`"
                        ))
                    }
                };
                Ok(())
            }),
            "-V" | "--version" => {
                println!("llm-tower {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument `{other}`\n{USAGE}")),
        };
        if let Err(message) = parsed {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    }
    let Some(config_path) = config_path else {
        eprintln!("missing --config FILE\n{USAGE}");
        return ExitCode::from(2);
    };
    let listen = match listen.map(|l| l.parse().map_err(|e| format!("--listen {l}: {e}"))) {
        None => None,
        Some(Ok(addr)) => Some(addr),
        Some(Err(message)) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if check {
        let mut config = match source(&config_path, overlay.as_ref()).load() {
            Ok(config) => config,
            Err(err) => {
                eprintln!("config error: {err}");
                return ExitCode::from(2);
            }
        };
        if let Some(listen) = listen {
            config.listen = listen;
        }
        print!("{config_path}: ok\n{}", config.describe());
        return ExitCode::SUCCESS;
    }

    init_logging(log_format);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let served = runtime.block_on(async {
        let prometheus = llm_tower::install_prometheus();
        if let Some(handle) = prometheus.clone() {
            tokio::spawn(llm_tower::prometheus_upkeep(handle));
        }
        let source = source(&config_path, overlay.as_ref());
        let reloader = match Reloader::open(source, listen, prometheus) {
            Ok(reloader) => reloader,
            Err(err) => return Err(Startup::Config(err)),
        };
        warn_about_litellm(&reloader.config());
        llm_tower::run_reloading(reloader)
            .await
            .map_err(Startup::Serve)
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(Startup::Config(err)) => {
            eprintln!("config error: {err}");
            ExitCode::from(2)
        }
        Err(Startup::Serve(err)) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The config file and its admin overlay.
fn source(path: &str, overlay: Option<&std::ffi::OsString>) -> ConfigSource {
    let source = ConfigSource::new(path);
    match overlay {
        Some(overlay) => source.with_overlay(overlay),
        None => source,
    }
}

enum Startup {
    Config(llm_tower::ConfigError),
    Serve(llm_tower::BoxError),
}

/// Says once, at start, what of a LiteLLM config is not served.
fn warn_about_litellm(config: &Config) {
    let Some(report) = &config.litellm else {
        return;
    };
    for entry in &report.entries {
        if let llm_tower::config::How::Unsupported { why } = &entry.how {
            tracing::warn!(model_name = %entry.model_name, "LiteLLM model_list entry not served: {why}");
        }
    }
    if !report.ignored.is_empty() {
        tracing::warn!(
            "LiteLLM config keys llm-tower does not use: {}",
            report.ignored.join(", ")
        );
    }
}

/// Logs to stdout, filtered by `RUST_LOG` (default `info`): text with colours only on a
/// terminal (and without `NO_COLOR`), one JSON object per line, or logfmt lines.
fn init_logging(format: LogFormat) {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter());
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Logfmt => tracing_logfmt::builder()
            .with_span_name(false)
            .subscriber_builder()
            .with_env_filter(filter())
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}

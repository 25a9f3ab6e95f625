//! The gateway binary: config → stack → serve.
//!
//! ```text
//! cargo run --release --example gateway -- --config examples/gateway.yaml [--listen 127.0.0.1:8080]
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let mut config_path = None;
    let mut listen = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config_path = args.next(),
            "--listen" => listen = args.next(),
            "-h" | "--help" => {
                println!("usage: gateway --config FILE [--listen ADDR]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!(
                    "unknown argument `{other}`; usage: gateway --config FILE [--listen ADDR]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let Some(config_path) = config_path else {
        eprintln!("missing --config FILE; usage: gateway --config FILE [--listen ADDR]");
        return ExitCode::from(2);
    };
    let mut config = match llm_tower::Config::from_file(&config_path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("config error: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(listen) = listen {
        match listen.parse() {
            Ok(addr) => config.listen = addr,
            Err(err) => {
                eprintln!("--listen {listen}: {err}");
                return ExitCode::from(2);
            }
        }
    }

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(llm_tower::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

//! Entry point: parse and validate the flags, set up logging, run the operator.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = qdrant_operator::config::Args::parse();
    let config = match args.validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("qdrant-operator: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    qdrant_operator::telemetry::init_logging(config.log_format, &config.log_level);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("qdrant-operator: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(qdrant_operator::app::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            std::process::ExitCode::FAILURE
        }
    }
}

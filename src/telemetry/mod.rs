//! Metrics, logging and the admin HTTP server.
pub mod metrics;
pub mod server;
pub mod throttle;

use crate::config::LogFormat;

/// Installs the global tracing subscriber. The filter was validated with the config.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Plain => builder.init(),
    }
}

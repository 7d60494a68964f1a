//! Metrics, logging and the admin HTTP server.
pub mod metrics;
pub mod server;
pub mod throttle;

use crate::config::LogFormat;

/// kube's client logs every failed request at ERROR. During an API-server outage that is one
/// line per retry of every watch and request; the operator reports those failures itself,
/// rate-limited (see `throttle`), so kube's own lines are off.
const QUIET: &str = "kube_client::client::builder=off";

/// Installs the global tracing subscriber. The filter was validated with the config.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{filter},{QUIET}")).unwrap_or_else(|_| format!("info,{QUIET}").into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Plain => builder.init(),
    }
}

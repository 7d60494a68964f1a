//! The Kubernetes clients and the retry policy of every watch.
//!
//! Two clients over one configuration, because requests and watches need opposite timeouts:
//! - requests (reads and writes) get a read timeout, so that no request can hang after the
//!   API server stops answering, and kube's built-in retry of 429/503/504 is off, so that no
//!   retry of a write can leave after the leadership guard has closed (writes are retried
//!   only by the reconcile loop, which checks the guard again);
//! - watches are long-lived and may be silent for minutes; kube-runtime's watcher has its own
//!   idle timeout, so this client has none.
//!
//! Every watch restarts with [`watch_backoff`]: exponential, so an outage is not a retry
//! storm, and capped low, so that once the API server is back every cache is current again
//! within a few seconds.

use std::time::Duration;

use anyhow::Context as _;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::ExponentialBackoff;

/// A read or write that takes longer than this has failed; the reconcile retries it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest pause between watch restarts.
const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(250);
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Clients {
    /// For gets, lists, creates, patches and deletes.
    pub requests: kube::Client,
    /// For watches only.
    pub watches: kube::Client,
}

pub async fn clients() -> anyhow::Result<Clients> {
    let mut config = kube::Config::infer().await.context("building the Kubernetes client (in-cluster config or KUBECONFIG)")?;
    config.default_retry = false;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let watches = kube::Client::try_from(config.clone()).context("building the watch client")?;
    config.read_timeout = Some(REQUEST_TIMEOUT);
    let requests = kube::Client::try_from(config).context("building the request client")?;
    Ok(Clients { requests, watches })
}

/// The pause schedule between restarts of one watch: 0.25 s doubling to 2 s, each pause
/// stretched by up to 100 % jitter (so at most 4 s), so replicas do not retry in step.
pub fn watch_backoff() -> impl Backoff {
    ExponentialBackoff::from(
        backon::ExponentialBuilder::default()
            .with_min_delay(WATCH_BACKOFF_MIN)
            .with_max_delay(WATCH_BACKOFF_MAX)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_backoff_grows_and_is_capped() {
        let delays: Vec<Duration> = watch_backoff().take(12).collect();
        assert!(delays[0] >= WATCH_BACKOFF_MIN && delays[0] <= WATCH_BACKOFF_MIN * 2, "{delays:?}");
        // Jitter stretches a pause by up to its own length.
        assert!(delays.iter().all(|d| *d <= WATCH_BACKOFF_MAX * 2), "{delays:?}");
        assert!(delays[11] >= WATCH_BACKOFF_MAX, "{delays:?}");
    }
}

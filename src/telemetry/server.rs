//! The admin server: `/metrics`, `/healthz`, `/readyz` and `/debug/leader`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::metrics::Metrics;
use crate::config::ElectionConfig;
use crate::leader::Leadership;

/// A leader whose last successful renewal is older than the lease duration plus this is
/// wedged: it should have lost leadership long ago, so something inside is stuck.
const WEDGED_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub leadership: watch::Receiver<Leadership>,
    pub election: ElectionConfig,
    /// True once the watches have synced.
    pub ready: Arc<AtomicBool>,
    /// False once the controller task has ended.
    pub controller_alive: Arc<AtomicBool>,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct DebugLeader {
    pub enabled: bool,
    pub identity: String,
    pub is_leader: bool,
    pub lease_holder: Option<String>,
    pub lease_transitions: i32,
    pub time_as_leader_seconds: f64,
    pub transitions: u64,
    pub lease_duration_seconds: f64,
    pub renew_deadline_seconds: f64,
    pub retry_period_seconds: f64,
    pub last_renew_ago_ms: Option<u128>,
}

impl AdminState {
    pub fn debug_leader(&self) -> DebugLeader {
        let l = self.leadership.borrow().clone();
        let id = &self.election.identity;
        DebugLeader {
            enabled: self.election.enabled,
            identity: id.clone(),
            is_leader: l.is_leader,
            lease_holder: l.holder.clone(),
            lease_transitions: l.transitions_observed,
            time_as_leader_seconds: self.metrics.time_as_leader_seconds_total.with_label_values(&[id]).get(),
            transitions: self.metrics.leader_transitions_total.with_label_values(&[id]).get(),
            lease_duration_seconds: self.election.lease_duration.as_secs_f64(),
            renew_deadline_seconds: self.election.renew_deadline.as_secs_f64(),
            retry_period_seconds: self.election.retry_period.as_secs_f64(),
            last_renew_ago_ms: l.last_renew.map(|t| t.elapsed().as_millis()),
        }
    }

    /// `Err` with the reason when this replica should be restarted.
    pub fn health(&self) -> Result<(), String> {
        if !self.controller_alive.load(Ordering::SeqCst) {
            return Err("controller task has stopped".into());
        }
        let l = self.leadership.borrow();
        if self.election.enabled && l.is_leader {
            let limit = self.election.lease_duration + WEDGED_GRACE;
            let last = l.last_renew.unwrap_or(l.since);
            if Instant::now().duration_since(last) > limit {
                return Err(format!("wedged leader: no successful renewal for over {}s", limit.as_secs()));
            }
        }
        Ok(())
    }
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

async fn healthz(State(s): State<AdminState>) -> impl IntoResponse {
    match s.health() {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet")
    }
}

async fn debug_leader(State(s): State<AdminState>) -> impl IntoResponse {
    Json(s.debug_leader())
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/debug/leader", get(debug_leader))
        .with_state(state)
}

pub async fn serve(addr: SocketAddr, state: AdminState) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding the admin server to {addr} (--admin-addr): {e}"))?;
    axum::serve(listener, router(state)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn state(is_leader: bool, last_renew: Option<Instant>) -> AdminState {
        let l = Leadership { is_leader, holder: Some("a".into()), transitions_observed: 3, since: Instant::now(), last_renew, loss_cause: None };
        let (_tx, rx) = watch::channel(l);
        AdminState {
            metrics: Arc::new(Metrics::new()),
            leadership: rx,
            election: ElectionConfig::defaults_for("a"),
            ready: Arc::new(AtomicBool::new(false)),
            controller_alive: Arc::new(AtomicBool::new(true)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn wedged_leader_fails_health() {
        let s = state(true, Some(Instant::now()));
        assert!(s.health().is_ok());
        tokio::time::advance(Duration::from_secs(36)).await;
        assert!(s.health().unwrap_err().contains("wedged"));
    }

    #[tokio::test(start_paused = true)]
    async fn follower_is_healthy_without_renewals_and_dead_controller_is_not() {
        let s = state(false, None);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(s.health().is_ok());
        s.controller_alive.store(false, Ordering::SeqCst);
        assert!(s.health().unwrap_err().contains("controller"));
    }

    #[tokio::test(start_paused = true)]
    async fn debug_leader_json_has_every_field() {
        let s = state(true, Some(Instant::now()));
        let v = serde_json::to_value(s.debug_leader()).unwrap();
        for k in ["enabled", "identity", "is_leader", "lease_holder", "lease_transitions", "time_as_leader_seconds", "transitions", "lease_duration_seconds", "renew_deadline_seconds", "retry_period_seconds", "last_renew_ago_ms"] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["lease_transitions"], 3);
    }
}

//! Wires the parts together and owns the process lifecycle: start-up, leadership changes,
//! graceful shutdown, and exiting when a part that must not die does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::controller::{self, Context, Tuning};
use crate::kube_client;
use crate::leader::elector::{Elector, Leadership, StopMode};
use crate::leader::observer::Observer;
use crate::leader::store::KubeLeaseStore;
use crate::leader::term::Terms;
use crate::leader::LeadershipGuard;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::server::{self, AdminState};

async fn terminate_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let clients = kube_client::clients().await?;
    let metrics = Arc::new(Metrics::new());
    let election = cfg.election.clone();
    let terms = Terms::new();
    let (full_reconcile_tx, full_reconcile_rx) = mpsc::unbounded_channel::<()>();
    let (renew_tx, renew_rx) = mpsc::unbounded_channel();

    // In single-replica mode nothing publishes leadership; the sender is kept here, for the
    // life of the process, so that readers never see the channel closed.
    let mut _standalone_leadership = None;
    let (guard, leadership, elector_stop, elector_task) = if election.enabled {
        let store = KubeLeaseStore::new(&clients, &election.namespace, &election.lease_name);
        let (elector, handle) = Elector::new(store, election.clone());
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(elector.with_renew_events(renew_tx).run(stop_rx));
        (handle.guard, handle.leadership, Some(stop_tx), Some(task))
    } else {
        // Single-replica mode: this replica always leads, and says so.
        let l = Leadership { is_leader: true, holder: Some(election.identity.clone()), transitions_observed: 0, since: Instant::now(), last_renew: None, loss_cause: None };
        let (tx, rx) = watch::channel(Leadership { is_leader: false, ..l.clone() });
        // Sent as a change, so the observer and the term follower see a transition to leader.
        tx.send_replace(l);
        _standalone_leadership = Some(tx);
        (LeadershipGuard::always(), rx, None, None)
    };
    tracing::info!(identity = %election.identity, leader_election = election.enabled, lease = %election.lease_name, namespace = %election.namespace, "starting");

    let observer = Observer::new(&clients, election.clone(), metrics.clone(), guard.clone());
    let mut observer_task = tokio::spawn(observer.clone().run(leadership.clone(), renew_rx));

    // Follows leadership: opens a term (and a full reconcile) on gain, ends it on loss.
    let mut term_task = tokio::spawn({
        let (terms, leadership, bound) = (terms.clone(), leadership.clone(), election.renew_deadline);
        async move { terms.follow(leadership, bound, full_reconcile_tx).await }
    });

    let ready = Arc::new(AtomicBool::new(false));
    let controller_alive = Arc::new(AtomicBool::new(true));
    let admin = AdminState { metrics: metrics.clone(), leadership: leadership.clone(), election: election.clone(), ready: ready.clone(), controller_alive: controller_alive.clone() };
    let mut admin_task = tokio::spawn(server::serve(cfg.admin_addr, admin));

    let mut ctx = Context::new(clients.requests.clone(), guard.clone(), terms.clone(), metrics.clone(), &election.identity, Tuning { qdrant_timeout: cfg.qdrant_timeout, health_interval: cfg.health_interval, transfer_stall_timeout: cfg.transfer_stall_timeout });
    ctx.watch_namespace = cfg.namespace.clone();
    let ctx = Arc::new(ctx);
    let stop_controller = CancellationToken::new();
    let mut controller_task = tokio::spawn(controller::run(
        ctx,
        clients.watches.clone(),
        cfg.namespace.clone(),
        tokio_stream(full_reconcile_rx),
        stop_controller.clone().cancelled_owned(),
        ready,
    ));

    let mut elector_task = elector_task;
    tokio::select! {
        _ = terminate_signal() => {}
        r = &mut controller_task => {
            controller_alive.store(false, Ordering::SeqCst);
            anyhow::bail!("the controller stopped unexpectedly: {r:?}");
        }
        r = &mut admin_task => {
            anyhow::bail!("the admin server stopped: {}", match r { Ok(Err(e)) => format!("{e:#}"), other => format!("{other:?}") });
        }
        r = &mut term_task => match r {
            // A zombie writer is worse than a restart.
            Ok(Err(stuck)) => anyhow::bail!("{stuck}"),
            other => anyhow::bail!("the leadership follower stopped unexpectedly: {other:?}"),
        },
        r = &mut observer_task => {
            anyhow::bail!("the leadership observer stopped unexpectedly: {r:?}");
        }
        r = async { match elector_task.as_mut() { Some(t) => t.await, None => futures::future::pending().await } } => {
            anyhow::bail!("the elector stopped unexpectedly: {r:?}");
        }
    }

    // Graceful shutdown.
    let was_leader = leadership.borrow().is_leader;
    tracing::info!(identity = %election.identity, leader = was_leader, "shutting down");
    stop_controller.cancel();
    // One deadline for the whole stop, so it fits in the Pod's termination grace period.
    let deadline = Instant::now() + cfg.drain_timeout;
    // While the cancelled work winds down, the leader marks its own Pod "false": still the
    // leader, so the guard lets this last write through, and the Lease is released only
    // after both are done. Doing the two at once keeps the handover short on a busy leader.
    let stop_work = async { terms.stop(cfg.drain_timeout).await && tokio::time::timeout_at(deadline, &mut controller_task).await.is_ok() };
    let retire = async {
        if was_leader && election.enabled {
            if let Err(e) = observer.retire().await {
                tracing::warn!(error = %e, "clearing the leader annotation failed");
            }
        }
    };
    let (stopped, ()) = tokio::join!(stop_work, retire);
    if let (Some(stop), Some(task)) = (elector_stop, elector_task) {
        let mode = if stopped { StopMode::Release } else { StopMode::Keep };
        let _ = stop.send(mode);
        let _ = tokio::time::timeout(election.request_timeout() * 2, task).await;
    }
    if was_leader && election.enabled {
        observer.shutdown_event().await;
    }
    if !stopped {
        anyhow::bail!("in-flight work did not stop within --drain-timeout ({:?}); the Lease was not released", cfg.drain_timeout);
    }
    tracing::info!(identity = %election.identity, "stopped");
    Ok(())
}

fn tokio_stream(mut rx: mpsc::UnboundedReceiver<()>) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

//! The Kubernetes half of QdrantCollectionBackup: decides when a backup is due (`backupNow`
//! once per generation, or a schedule time passed), records it Running before it starts, and
//! hands it to [`super::run`] in the leader's term. A Running record that no task of this
//! process carries was left by a previous leader: it is resumed as a new attempt.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::crd::{BackupRecord, BackupState, QdrantCollectionBackup, QdrantCollectionBackupStatus};
use super::plan;
use super::run::{self, Job};
use super::{rfc3339, update_status};
use crate::controller::Context;
use crate::Error;

/// How soon to look again at a backup in progress (its task ends it; this is a safety net).
const RUNNING_RECHECK: Duration = Duration::from_secs(30);

fn run_key(ns: &str, name: &str) -> String {
    format!("QdrantCollectionBackup/{ns}/{name}")
}

pub async fn reconcile(cached: Arc<QdrantCollectionBackup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(term) = ctx.terms.current() else { return Ok(Action::await_change()) };
    term.clone().run(reconcile_inner(&cached, &ctx, &term)).await.unwrap_or(Err(Error::Cancelled))
}

/// The condition `Ready` for a status: the latest ended backup's outcome, or a problem.
fn ready(st: &QdrantCollectionBackupStatus, generation: Option<i64>, problem: Option<(&str, String)>, now: &Time) -> Condition {
    let latest = st.backups.iter().find(|r| r.state != BackupState::Running);
    let (ok, reason, message) = match (problem, latest) {
        (Some((reason, message)), _) => (false, reason, message),
        (None, Some(r)) if r.state == BackupState::Failed => (false, "BackupFailed", format!("backup {} failed: {}: {}", r.id, r.reason.as_deref().unwrap_or_default(), r.message.as_deref().unwrap_or_default())),
        (None, Some(r)) => (true, "Succeeded", format!("backup {} succeeded", r.id)),
        (None, None) => (true, "NoBackupYet", "no backup has ended yet".to_owned()),
    };
    crate::controller::status::condition("Ready", ok, reason, &message, generation, &st.conditions, now)
}

async fn reconcile_inner(cached: &QdrantCollectionBackup, ctx: &Arc<Context>, term: &crate::leader::term::Term) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let Some(b) = Api::<QdrantCollectionBackup>::namespaced(ctx.client.clone(), &ns).get_opt(&name).await? else {
        ctx.metrics.forget_backup(&ns, &name, &cached.spec.collection_name);
        return Ok(Action::await_change());
    };
    if b.metadata.deletion_timestamp.is_some() {
        ctx.metrics.forget_backup(&ns, &name, &b.spec.collection_name);
        return Ok(Action::await_change());
    }
    let now = jiff::Timestamp::now();
    let created = b.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    let generation = b.metadata.generation;
    let schedule = plan::parse_schedule(&b.spec.snapshots.backup_schedule);
    let st = b.status.clone().unwrap_or_default();

    // Metrics: the schedule and the last good backup (its creation before the first).
    let last_good = st.last_success_time.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok()).unwrap_or(created);
    let interval = schedule.as_ref().ok().and_then(Option::as_ref).and_then(|c| plan::interval(c, now)).unwrap_or(0.0);
    ctx.metrics.backup_schedule(&ns, &name, &b.spec.collection_name, interval, last_good.as_millisecond() as f64 / 1000.0);

    let key = run_key(&ns, &name);
    let running = st.backups.iter().find(|r| r.state == BackupState::Running).cloned();
    if let Some(r) = running {
        if ctx.runs.is_running(&key) {
            return Ok(Action::requeue(RUNNING_RECHECK));
        }
        // Left by a previous leader (or a cancelled term): resumed, same id, next attempt.
        let attempt = r.attempt + 1;
        let written = update_status::<QdrantCollectionBackup>(ctx, &ns, &name, |o| {
            let Some(rec) = o.status.get_or_insert_with(Default::default).backups.iter_mut().find(|x| x.id == r.id && x.state == BackupState::Running && x.attempt == r.attempt) else { return false };
            rec.attempt = attempt;
            true
        })
        .await?;
        // Only if this write made it the next attempt: the status read above may be older than
        // the end of a run of this process that finished meanwhile.
        if !written.is_some_and(|o| o.status.is_some_and(|s| s.backups.iter().any(|x| x.id == r.id && x.state == BackupState::Running && x.attempt == attempt))) {
            return Ok(Action::requeue(Duration::ZERO));
        }
        tracing::info!(namespace = %ns, backup = %name, id = %r.id, attempt, "resuming a backup a previous leader left running");
        start(ctx, term, &b, r.id, attempt);
        return Ok(Action::requeue(RUNNING_RECHECK));
    }

    // A malformed schedule is reported, and takes no scheduled backups; backupNow still works.
    let (cron, schedule_problem) = match schedule {
        Ok(c) => (c, None),
        Err(why) => (None, Some(("InvalidSchedule", why))),
    };
    let last_sched = st.last_schedule_time.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let plan::Due { manual, scheduled, next } = plan::due_now(cron.as_ref(), b.spec.snapshots.backup_now, generation, st.backup_now_generation, last_sched, created, now);
    let now_s = rfc3339(now);
    let now_t = Time(now);
    if (manual || scheduled.is_some()) && ctx.runs.is_running(&key) {
        // The last backup's task is still finishing (retention): the next starts after it.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if manual || scheduled.is_some() {
        let id = plan::id_at(now, &plan::owner_tag(b.metadata.uid.as_deref().unwrap_or_default()));
        let record = BackupRecord {
            id: id.clone(),
            backup_id: plan::backup_id(&b.spec.cluster, &b.spec.collection_name, &id),
            state: BackupState::Running,
            trigger: if manual { "Manual" } else { "Scheduled" }.into(),
            started_at: now_s.clone(),
            location: format!("s3://{}/{}{id}/", b.spec.snapshots.bucket_name, plan::collection_prefix(&b.spec.snapshots, &b.spec.cluster, &b.spec.collection_name)),
            attempt: 1,
            ..Default::default()
        };
        // Recorded Running before it starts: a new leader sees it and resumes it, never
        // starting a second one for the same trigger.
        let written = update_status::<QdrantCollectionBackup>(ctx, &ns, &name, |o| {
            let st = o.status.get_or_insert_with(Default::default);
            if st.backups.iter().any(|r| r.state == BackupState::Running || r.id == id) {
                return false;
            }
            st.backups.insert(0, record.clone());
            st.backups = plan::trim_records(std::mem::take(&mut st.backups), None);
            if manual {
                st.backup_now_generation = generation;
            }
            if let Some(t) = scheduled {
                st.last_schedule_time = Some(rfc3339(t));
            }
            st.next_schedule_time = next.map(rfc3339);
            st.observed_generation = generation;
            st.conditions = vec![ready(st, generation, schedule_problem.clone(), &now_t)];
            true
        })
        .await?;
        if written.is_some_and(|o| o.status.is_some_and(|s| s.backups.first().is_some_and(|r| r.id == id && r.state == BackupState::Running))) {
            start(ctx, term, &b, id, 1);
        }
        return Ok(Action::requeue(RUNNING_RECHECK));
    }
    update_status::<QdrantCollectionBackup>(ctx, &ns, &name, |o| {
        let st = o.status.get_or_insert_with(Default::default);
        let cond = ready(st, generation, schedule_problem.clone(), &now_t);
        let next_s = next.map(rfc3339);
        let changed = st.conditions.first().map(|c| (&c.status, &c.reason, &c.message)) != Some((&cond.status, &cond.reason, &cond.message)) || st.observed_generation != generation || st.next_schedule_time != next_s;
        (st.conditions, st.observed_generation, st.next_schedule_time) = (vec![cond], generation, next_s);
        changed
    })
    .await?;
    Ok(match next {
        // Woken for the next schedule time (a little after, so it is due).
        Some(t) => Action::requeue(Duration::from_millis(u64::try_from(t.duration_since(now).as_millis()).unwrap_or(0).saturating_add(200))),
        None => Action::await_change(),
    })
}

/// Starts the backup in the leader's term, once per resource in this process.
fn start(ctx: &Arc<Context>, term: &crate::leader::term::Term, b: &QdrantCollectionBackup, id: String, attempt: u32) {
    let (ns, name) = (b.namespace().unwrap_or_default(), b.name_any());
    let Some(running) = ctx.runs.start(run_key(&ns, &name)) else { return };
    let tag = plan::owner_tag(b.metadata.uid.as_deref().unwrap_or_default());
    let job = Job { namespace: ns, name, spec: b.spec.clone(), id, attempt, tag };
    let (ctx, term) = (ctx.clone(), term.clone());
    tokio::spawn(async move {
        term.run(run::run(ctx, job, running)).await;
    });
}

//! QdrantCollectionRestore: recovers a collection from a backup's manifest. The collection is
//! created from the backup's settings if missing; each shard is recovered, through a peer
//! that holds it, from a presigned URL of its snapshot, checked against its sha256; then the
//! points are counted exactly and compared with the backup's. Completed and Failed are
//! final. A restore left InProgress by a previous leader is run again from the start (every
//! step replaces what it writes, so running it twice gives the same collection).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::crd::{QdrantCollectionBackup, QdrantCollectionRestore, RestoreMode, RestorePhase, Snapshots};
use super::plan::{self, Manifest};
use super::{rfc3339, store, target, update_status};
use crate::collections::crd::QdrantCollection;
use crate::controller::Context;
use crate::operations::backup::{self as ops, Failure};
use crate::Error;

/// How soon to look again at a restore in progress.
const RUNNING_RECHECK: Duration = Duration::from_secs(30);
/// How long a collection the restore created may take to show every shard.
const PLACEMENT_WAIT: Duration = Duration::from_secs(60);
/// How often it is looked at meanwhile.
const PLACEMENT_POLL: Duration = Duration::from_millis(200);

fn run_key(ns: &str, name: &str) -> String {
    format!("QdrantCollectionRestore/{ns}/{name}")
}

pub async fn reconcile(cached: Arc<QdrantCollectionRestore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(term) = ctx.terms.current() else { return Ok(Action::await_change()) };
    term.clone().run(reconcile_inner(&cached, &ctx, &term)).await.unwrap_or(Err(Error::Cancelled))
}

async fn reconcile_inner(cached: &QdrantCollectionRestore, ctx: &Arc<Context>, term: &crate::leader::term::Term) -> Result<Action, Error> {
    let (ns, name) = (cached.namespace().unwrap_or_default(), cached.name_any());
    let Some(r) = Api::<QdrantCollectionRestore>::namespaced(ctx.client.clone(), &ns).get_opt(&name).await? else { return Ok(Action::await_change()) };
    let st = r.status.clone().unwrap_or_default();
    let key = run_key(&ns, &name);
    match st.phase {
        Some(RestorePhase::Completed | RestorePhase::Failed) => return Ok(Action::await_change()),
        // Looked at again now and then: if its end could not be recorded, it runs again.
        Some(RestorePhase::InProgress) if ctx.runs.is_running(&key) => return Ok(Action::requeue(RUNNING_RECHECK)),
        _ => {}
    }
    let attempt = st.attempt.unwrap_or(0) + 1;
    let generation = r.metadata.generation;
    let now = rfc3339(jiff::Timestamp::now());
    let Some(_) = update_status::<QdrantCollectionRestore>(ctx, &ns, &name, |o| {
        let s = o.status.get_or_insert_with(Default::default);
        if matches!(s.phase, Some(RestorePhase::Completed | RestorePhase::Failed)) || s.attempt.unwrap_or(0) + 1 != attempt {
            return false;
        }
        s.phase = Some(RestorePhase::InProgress);
        s.started_at.get_or_insert(now.clone());
        s.attempt = Some(attempt);
        s.message = Some(if attempt == 1 { "restoring".into() } else { format!("restoring again (attempt {attempt}) after a leader change") });
        s.observed_generation = generation;
        true
    })
    .await?
    .filter(|o| o.status.as_ref().is_some_and(|s| s.phase == Some(RestorePhase::InProgress) && s.attempt == Some(attempt)))
    else {
        return Ok(Action::await_change());
    };
    let Some(guard) = ctx.runs.start(key) else { return Ok(Action::await_change()) };
    let (ctx, term) = (ctx.clone(), term.clone());
    tokio::spawn(async move {
        let _running = guard;
        term.run(run(ctx, r)).await;
    });
    Ok(Action::await_change())
}

async fn run(ctx: Arc<Context>, r: QdrantCollectionRestore) {
    let (ns, name) = (r.namespace().unwrap_or_default(), r.name_any());
    let started = Instant::now();
    let outcome = restore(&ctx, &ns, &r).await;
    if matches!(&outcome, Err(f) if f.reason == "LeadershipLost") {
        return;
    }
    let now = rfc3339(jiff::Timestamp::now());
    let written = update_status::<QdrantCollectionRestore>(&ctx, &ns, &name, |o| {
        let s = o.status.get_or_insert_with(Default::default);
        if s.phase != Some(RestorePhase::InProgress) {
            return false;
        }
        s.completed_at = Some(now.clone());
        match &outcome {
            Ok(done) => {
                s.phase = Some(RestorePhase::Completed);
                s.message = Some(format!("restored {} shards, {} points, in {:.1} s", done.shards, done.points, started.elapsed().as_secs_f64()));
                (s.points_count, s.expected_points, s.shards, s.error, s.reason) = (Some(done.points), Some(done.expected), Some(done.shards), None, None);
            }
            Err(f) => {
                s.phase = Some(RestorePhase::Failed);
                s.message = Some(format!("restore failed: {}", f.message));
                (s.error, s.reason) = (Some(f.message.clone()), Some(f.reason.to_owned()));
                if let Some((points, expected)) = f.counts {
                    (s.points_count, s.expected_points) = (Some(points), Some(expected));
                }
            }
        }
        true
    })
    .await;
    match written {
        // Counted once, when its end is recorded (a restore whose end was not is run again).
        Ok(Some(o)) if o.status.as_ref().is_some_and(|s| matches!(s.phase, Some(RestorePhase::Completed | RestorePhase::Failed))) => {
            ctx.metrics.restores_total.with_label_values(&[if outcome.is_ok() { "completed" } else { "failed" }]).inc();
            if outcome.is_ok() {
                ctx.metrics.restore_duration_seconds.observe(started.elapsed().as_secs_f64());
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, restore = %name, "recording the end of a restore failed; the next look runs it again"),
    }
}

struct Done {
    shards: u32,
    points: u64,
    expected: u64,
}

/// A failure, with the counts when the points did not match.
struct Failed {
    reason: &'static str,
    message: String,
    counts: Option<(u64, u64)>,
}

impl From<Failure> for Failed {
    fn from(f: Failure) -> Self {
        Failed { reason: f.reason, message: f.message, counts: None }
    }
}

fn failed(reason: &'static str, message: String) -> Failed {
    Failed { reason, message, counts: None }
}

/// The S3 settings to read `backup_id` with (see the `backup` field's description).
async fn settings(ctx: &Context, ns: &str, r: &QdrantCollectionRestore) -> Result<Snapshots, Failed> {
    let backups = Api::<QdrantCollectionBackup>::namespaced(ctx.client.clone(), ns);
    let kube_err = |e: kube::Error| failed("KubernetesError", e.to_string());
    if let Some(named) = &r.spec.backup {
        return match backups.get_opt(named).await.map_err(kube_err)? {
            Some(b) => Ok(b.spec.snapshots),
            None => Err(failed("BackupNotFound", format!("QdrantCollectionBackup {ns}/{named} does not exist"))),
        };
    }
    let all = backups.list(&ListParams::default()).await.map_err(kube_err)?.items;
    let lists = |b: &QdrantCollectionBackup| b.status.as_ref().is_some_and(|s| s.backups.iter().any(|x| x.backup_id == r.spec.backup_id));
    let same = |b: &QdrantCollectionBackup| plan::parse_backup_id(&r.spec.backup_id).is_some_and(|(c, col, _)| b.spec.cluster == c && b.spec.collection_name == col);
    if let Some(b) = all.iter().find(|b| lists(b)).or_else(|| all.iter().find(|b| same(b))) {
        return Ok(b.spec.snapshots.clone());
    }
    let col = Api::<QdrantCollection>::namespaced(ctx.client.clone(), ns).get_opt(&r.spec.collection).await.map_err(kube_err)?;
    match col.and_then(|c| c.spec.snapshots) {
        Some(v) => serde_json::from_value(v).map_err(|e| failed("NoS3Settings", format!("QdrantCollection {ns}/{}: spec.snapshots: {e}", r.spec.collection))),
        None => Err(failed("NoS3Settings", format!("no QdrantCollectionBackup in {ns} lists or backs up {}, and no QdrantCollection {} has spec.snapshots: name one in spec.backup", r.spec.backup_id, r.spec.collection))),
    }
}

async fn restore(ctx: &Context, ns: &str, r: &QdrantCollectionRestore) -> Result<Done, Failed> {
    if r.spec.mode == RestoreMode::Merge {
        return Err(failed("UnsupportedMode", "mode merge is not supported: recovering a shard snapshot replaces the shard's points; use mode replace".into()));
    }
    let Some((b_cluster, b_collection, id)) = plan::parse_backup_id(&r.spec.backup_id) else {
        return Err(failed("InvalidBackupId", format!("backupId {:?} is not <cluster>/<collection>/<id>", r.spec.backup_id)));
    };
    let snapshots = settings(ctx, ns, r).await?;
    let store = store(ctx, ns, &snapshots).await?;
    let manifest_key = format!("{}{id}/{}", plan::collection_prefix(&snapshots, b_cluster, b_collection), plan::MANIFEST);
    let manifest: Manifest = match store.get(&manifest_key).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| failed("InvalidManifest", format!("{}: {e}", store.location(&manifest_key))))?,
        Err(super::s3::S3Error::Status { status: 404, .. }) => return Err(failed("BackupNotFound", format!("{} does not exist: the backup is missing, unfinished or deleted", store.location(&manifest_key)))),
        Err(e) => return Err(failed(e.reason(), e.to_string())),
    };
    if manifest.format != plan::FORMAT {
        return Err(failed("InvalidManifest", format!("manifest format {:?} is not {}", manifest.format, plan::FORMAT)));
    }
    let want_shards = manifest.shard_number().unwrap_or(1);
    let collection = r.spec.collection.as_str();
    let target = target(ctx, ns, &r.spec.cluster).await?;
    let mut layout = ops::layout(&target.client, &target.pods, collection).await?;
    if layout.is_none() {
        let body = plan::restore_body(&manifest.config, target.pods.len() as u32);
        let url = target.pods.first().map(|p| p.url.clone()).unwrap_or_default();
        ops::create(&target.client, &ctx.guard, &url, collection, &body).await?;
        layout = ops::layout(&target.client, &target.pods, collection).await?;
    }
    // Every shard placed on a peer that answers (a collection just created may take a moment).
    let deadline = Instant::now() + PLACEMENT_WAIT;
    let layout = loop {
        if let Some(l) = layout.take().filter(|l| (0..l.shard_number).all(|s| l.replicas.iter().any(|r| r.shard == s))) {
            break l;
        }
        if Instant::now() > deadline {
            return Err(failed("ShardUnavailable", format!("collection {collection} does not have every shard on a Pod that answers")));
        }
        tokio::time::sleep(PLACEMENT_POLL).await;
        layout = ops::layout(&target.client, &target.pods, collection).await?;
    };
    if layout.shard_number != want_shards {
        return Err(failed("ShardMismatch", format!("collection {collection} has {} shards, the backup {want_shards}: restore into a new collection name, or delete this one first", layout.shard_number)));
    }
    for shard in 0..want_shards {
        let via = layout.replicas.iter().filter(|x| x.shard == shard).max_by_key(|x| x.active).ok_or_else(|| failed("ShardUnavailable", format!("shard {shard} is on no Pod that answers")))?;
        // Each replica's snapshot of the shard, in turn, until one is recovered.
        let mut why = Some(failed("ShardMissing", format!("the backup has no snapshot of shard {shard}")));
        for piece in manifest.pieces.iter().filter(|p| p.shard == shard) {
            let presigned = store.presigned_get(&piece.key);
            // Qdrant may quote the URL in its error: the signature stays out of the status.
            let recovered = ops::recover(&target.client, &ctx.guard, via, collection, &presigned, &piece.sha256).await.map_err(|mut f| {
                f.message = super::s3::redact(&f.message.replace(&presigned, &store.location(&piece.key)));
                f
            });
            match recovered {
                Ok(()) => {
                    why = None;
                    break;
                }
                Err(f) if f.reason == "LeadershipLost" => return Err(f.into()),
                Err(f) => {
                    tracing::warn!(shard, key = %piece.key, error = %f, "recovering from this snapshot failed; trying the shard's next one");
                    why = Some(f.into());
                }
            }
        }
        if let Some(f) = why {
            return Err(f);
        }
    }
    let url = layout.replicas.iter().find(|x| x.active).map(|x| x.url.clone()).unwrap_or_default();
    let points = ops::count(&target.client, &url, collection).await?;
    let range = manifest.points_count;
    if points < range.min || points > range.max {
        return Err(Failed { reason: "PointCountMismatch", message: format!("{points} points after the restore; the backup held {}", if range.min == range.max { range.min.to_string() } else { format!("{}-{}", range.min, range.max) }), counts: Some((points, range.max)) });
    }
    Ok(Done { shards: want_shards, points, expected: range.max })
}

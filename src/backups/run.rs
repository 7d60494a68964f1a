//! One backup: a snapshot of every shard replica, from the peer that holds it, streamed to
//! S3 with its sha256, then the manifest (last: a backup is good only with it), then
//! retention. Its record in the status says Running until it ends Succeeded or Failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::crd::{BackupState, QdrantCollectionBackup, QdrantCollectionBackupSpec};
use super::plan::{self, Manifest, Piece, PointsRange};
use super::s3::Store;
use super::{rfc3339, store, target, update_status};
use crate::controller::Context;
use crate::leader::LeadershipGuard;
use crate::operations::backup::{self as ops, Failure, Replica};
use crate::qdrant::QdrantClient;

/// What a backup job works on.
#[derive(Clone, Debug)]
pub struct Job {
    pub namespace: String,
    pub name: String,
    pub spec: QdrantCollectionBackupSpec,
    pub id: String,
    pub attempt: u32,
    /// The resource's tag in backup ids (`plan::owner_tag`).
    pub tag: String,
}

struct Done {
    size: u64,
    pieces: u32,
    points: u64,
    location: String,
}

/// Runs the backup and records how it ended. Cancelled with the leadership term: then
/// nothing more is written, and the next leader resumes it.
pub async fn run(ctx: Arc<Context>, job: Job, running: super::RunGuard) {
    let started = Instant::now();
    let outcome = backup(&ctx, &job).await;
    let elapsed = started.elapsed().as_secs_f64();
    if matches!(&outcome, Err(f) if f.reason == "LeadershipLost") {
        return;
    }
    let (ns, name) = (job.namespace.as_str(), job.name.as_str());
    match &outcome {
        Ok((done, _)) => tracing::info!(namespace = ns, backup = name, id = %job.id, size = done.size, pieces = done.pieces, seconds = elapsed, "backup succeeded"),
        Err(f) => tracing::warn!(namespace = ns, backup = name, id = %job.id, reason = f.reason, message = %f.message, "backup failed"),
    }
    let now = jiff::Timestamp::now();
    let written = update_status::<QdrantCollectionBackup>(&ctx, ns, name, |b| {
        let st = b.status.get_or_insert_with(Default::default);
        let Some(r) = st.backups.iter_mut().find(|r| r.id == job.id && r.state == BackupState::Running) else { return false };
        r.completed_at = Some(rfc3339(now));
        r.duration_seconds = Some((elapsed * 10.0).round() / 10.0);
        match &outcome {
            Ok((d, _)) => {
                r.state = BackupState::Succeeded;
                (r.size_bytes, r.pieces, r.points_count, r.location) = (Some(d.size), Some(d.pieces), Some(d.points), d.location.clone());
                (r.reason, r.message) = (None, None);
                st.last_successful_backup = Some(r.backup_id.clone());
                st.last_success_time = r.completed_at.clone();
            }
            Err(f) => {
                r.state = BackupState::Failed;
                (r.reason, r.message) = (Some(f.reason.to_owned()), Some(f.message.clone()));
            }
        }
        true
    })
    .await;
    // The records as written: this one ended, and the failed ones whose leftovers retention
    // removes.
    let records = match written {
        Ok(Some(b)) => b.status.map(|st| st.backups).unwrap_or_default(),
        // Gone: a deleted resource's series are gone for good, and nothing more is done.
        Ok(None) => return,
        Err(e) => return tracing::warn!(error = %e, backup = name, "recording the end of a backup failed; the next look resumes it"),
    };
    if !records.iter().any(|r| r.id == job.id && r.state != BackupState::Running) {
        return;
    }
    ctx.metrics.backups_total.with_label_values(&[ns, name, if outcome.is_ok() { "succeeded" } else { "failed" }]).inc();
    if let Ok((done, _)) = &outcome {
        ctx.metrics.backup_duration_seconds.with_label_values(&[ns, name]).observe(elapsed);
        ctx.metrics.backup_size_bytes.with_label_values(&[ns, name]).set(i64::try_from(done.size).unwrap_or(i64::MAX));
    }
    // The next backup of this resource may start while retention runs.
    drop(running);
    if let Ok((_, store)) = &outcome {
        let failed: Vec<String> = records.into_iter().filter(|r| r.state == BackupState::Failed).map(|r| r.id).collect();
        retention(&ctx, &job, store, &failed).await;
    }
}

/// Deletes the good backups beyond `retentionCount` and what this resource's failed attempts
/// left, then lists in the status the backups still kept. A failure here loses nothing, and is
/// tried again after the next good backup.
async fn retention(ctx: &Context, job: &Job, store: &Store, failed: &[String]) {
    let s = &job.spec.snapshots;
    let prefix = plan::collection_prefix(s, &job.spec.cluster, &job.spec.collection_name);
    let keys = match store.list(&prefix).await {
        Ok(k) => k.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
        Err(e) => return tracing::warn!(error = %e, "listing backups for retention failed"),
    };
    let good = plan::good_backups(&prefix, &keys);
    let expired = plan::expired(&good, s.retention_count, &job.tag);
    // What failed attempts of this resource left (S3 was down when they tried to clean up).
    // Directories without a manifest that are not this resource's are left alone: another
    // resource backing up the same collection may be writing them.
    let mut orphans: Vec<&str> = keys.iter().filter_map(|k| k.strip_prefix(&prefix)?.split('/').next()).filter(|id| plan::is_owned(id, &job.tag) && !good.iter().any(|g| g == id) && failed.iter().any(|f| f == id)).collect();
    orphans.sort_unstable();
    orphans.dedup();
    for id in expired.iter().map(String::as_str).chain(orphans) {
        let dir = format!("{prefix}{id}/");
        let manifest = format!("{dir}{}", plan::MANIFEST);
        // Pieces first, the manifest last: an interrupted deletion leaves a backup that is
        // still listed, and deleted again next time, never pieces nobody lists.
        let mut ordered: Vec<&String> = keys.iter().filter(|k| k.starts_with(&dir) && **k != manifest).collect();
        ordered.extend(keys.iter().filter(|k| **k == manifest));
        for key in ordered {
            if let Err(e) = store.delete(&ctx.guard, key).await {
                return tracing::warn!(error = %e, key, "retention: deleting failed; tried again after the next backup");
            }
        }
    }
    let kept: Vec<String> = good.into_iter().filter(|g| !expired.contains(g)).collect();
    let _ = update_status::<QdrantCollectionBackup>(ctx, &job.namespace, &job.name, |b| {
        let st = b.status.get_or_insert_with(Default::default);
        let trimmed = plan::trim_records(st.backups.clone(), Some(&kept));
        let changed = trimmed != st.backups;
        st.backups = trimmed;
        changed
    })
    .await;
}

/// The backup, and the bucket it went to (for retention).
async fn backup(ctx: &Context, job: &Job) -> Result<(Done, Store), Failure> {
    let spec = &job.spec;
    let collection = spec.collection_name.as_str();
    let target = target(ctx, &job.namespace, &spec.cluster).await?;
    let store = store(ctx, &job.namespace, &spec.snapshots).await?;
    store.check_bucket().await.map_err(|e| Failure { reason: e.reason(), message: e.to_string() })?;
    let dir = format!("{}{}/", plan::collection_prefix(&spec.snapshots, &spec.cluster, collection), job.id);
    if job.attempt > 1 {
        if let Some(done) = finished(ctx, &store, &dir, job).await? {
            return Ok((done, store));
        }
    }
    let Some(layout) = ops::layout(&target.client, &target.pods, collection).await? else {
        return Err(Failure { reason: "CollectionNotFound", message: format!("collection {collection} does not exist in {}", spec.cluster) });
    };
    let uncovered = ops::uncovered(&layout);
    if !uncovered.is_empty() {
        let away = layout.unreachable.iter().map(|(p, e)| format!("{p} ({e})")).collect::<Vec<_>>().join(", ");
        return Err(Failure { reason: "ShardUnavailable", message: format!("shards {uncovered:?} have no Active replica on a Pod that answered; unreachable: {away}") });
    }
    let result = take(ctx, job, &target.client, &store, &layout, &dir).await;
    if let Err(f) = &result {
        if f.reason != "LeadershipLost" {
            discard(ctx, &store, &dir, job.attempt).await;
        }
    }
    result.map(|done| (done, store))
}

/// For a resumed backup: whether an earlier attempt completed it, its status write lost. Its
/// manifest then exists with every piece it lists, and the backup is that one. A manifest of
/// this directory that does not hold up (a piece missing) is deleted: it can only be an earlier
/// attempt's, cut off, and this attempt writes the backup anew.
async fn finished(ctx: &Context, store: &Store, dir: &str, job: &Job) -> Result<Option<Done>, Failure> {
    let s3 = |e: super::s3::S3Error| Failure { reason: e.reason(), message: e.to_string() };
    let manifest_key = format!("{dir}{}", plan::MANIFEST);
    let keys = store.list(dir).await.map_err(s3)?;
    if !keys.iter().any(|(k, _)| *k == manifest_key) {
        return Ok(None);
    }
    let bytes = store.get(&manifest_key).await.map_err(s3)?;
    let whole = serde_json::from_slice::<Manifest>(&bytes).ok().filter(|m| {
        m.format == plan::FORMAT && m.backup_id == plan::backup_id(&job.spec.cluster, &job.spec.collection_name, &job.id) && m.pieces.iter().all(|p| keys.iter().any(|(k, size)| *k == p.key && *size == p.size))
    });
    match whole {
        Some(m) => Ok(Some(Done { size: m.pieces.iter().map(|p| p.size).sum(), pieces: m.pieces.len() as u32, points: m.points_count.max, location: store.location(dir) })),
        None => {
            store.delete(&ctx.guard, &manifest_key).await.map_err(s3)?;
            Ok(None)
        }
    }
}

/// Snapshots, uploads and the manifest.
async fn take(ctx: &Context, job: &Job, client: &QdrantClient, store: &Store, layout: &ops::Layout, dir: &str) -> Result<Done, Failure> {
    let collection = job.spec.collection_name.as_str();
    let created_at = jiff::Timestamp::now();
    let counter = &layout.replicas.iter().find(|r| r.active).map(|r| r.url.clone()).unwrap_or_default();
    let before = ops::count(client, counter, collection).await?;
    let mut pieces = Vec::new();
    for r in layout.replicas.iter().filter(|r| r.active) {
        let (snapshot, checksum) = ops::snapshot(client, &ctx.guard, r, collection).await?;
        let key = plan::piece_key(dir, r.shard, r.peer_id, job.attempt);
        let uploaded = upload(client, store, &ctx.guard, r, collection, &snapshot, &key).await;
        if let Err(f) = ops::drop_snapshot(client, &ctx.guard, r, collection, &snapshot).await {
            tracing::warn!(pod = %r.pod, snapshot, error = %f, "a shard snapshot stays on its peer");
        }
        let (size, sha256) = uploaded?;
        if let Some(expected) = checksum.filter(|c| !c.eq_ignore_ascii_case(&sha256)) {
            return Err(Failure { reason: "ChecksumMismatch", message: format!("shard {} from {}: Qdrant's sha256 {expected}, uploaded {sha256}", r.shard, r.pod) });
        }
        pieces.push(Piece { key, shard: r.shard, peer_id: r.peer_id, pod: r.pod.clone(), size, sha256 });
    }
    let after = ops::count(client, counter, collection).await?;
    let manifest = Manifest {
        format: plan::FORMAT.into(),
        backup_id: plan::backup_id(&job.spec.cluster, collection, &job.id),
        cluster: job.spec.cluster.clone(),
        collection: collection.into(),
        created_at: rfc3339(created_at),
        completed_at: rfc3339(jiff::Timestamp::now()),
        config: layout.config.clone(),
        points_count: PointsRange { min: before.min(after), max: before.max(after) },
        pieces,
    };
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| Failure { reason: "Internal", message: e.to_string() })?;
    let len = bytes.len() as u64;
    store.put(&ctx.guard, &format!("{dir}{}", plan::MANIFEST), bytes.into(), len).await.map_err(|e| Failure { reason: e.reason(), message: format!("writing the manifest: {e}") })?;
    // Pieces of earlier attempts (a leader that stopped mid-way) are not part of this backup.
    if let Ok(keys) = store.list(dir).await {
        let listed = |k: &str| k.ends_with(plan::MANIFEST) || manifest.pieces.iter().any(|p| p.key == k);
        for (key, _) in keys.iter().filter(|(k, _)| !listed(k)) {
            if let Err(e) = store.delete(&ctx.guard, key).await {
                tracing::warn!(error = %e, key, "a piece of an earlier attempt stays");
            }
        }
    }
    let size = manifest.pieces.iter().map(|p| p.size).sum();
    Ok(Done { size, pieces: manifest.pieces.len() as u32, points: after, location: store.location(dir) })
}

/// Streams one snapshot from its peer to `key`, hashing it on the way: (bytes, hex sha256).
async fn upload(client: &QdrantClient, store: &Store, guard: &LeadershipGuard, r: &Replica, collection: &str, snapshot: &str, key: &str) -> Result<(u64, String), Failure> {
    let download = ops::download(client, r, collection, snapshot).await?;
    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let size = Arc::new(AtomicU64::new(0));
    // An error of the download surfaces in S3's request as a body error; this keeps its words.
    let source_error = Arc::new(Mutex::new(None::<String>));
    let (h, n, se) = (hasher.clone(), size.clone(), source_error.clone());
    let chunks = download.chunks.map(move |c| {
        match &c {
            Ok(b) => {
                h.lock().unwrap_or_else(|p| p.into_inner()).update(b);
                n.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            Err(e) => *se.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string()),
        }
        c
    });
    let put = match download.length {
        Some(len) => store.put(guard, key, reqwest::Body::wrap_stream(chunks), len).await,
        // Without a length S3 cannot take a stream: the snapshot is gathered first.
        None => {
            let parts: Vec<_> = chunks.collect().await;
            let mut body = Vec::new();
            for p in parts {
                body.extend_from_slice(&p.map_err(|e| Failure { reason: "QdrantError", message: format!("download of shard {} from {}: {e}", r.shard, r.pod) })?);
            }
            let len = body.len() as u64;
            store.put(guard, key, body.into(), len).await
        }
    };
    if let Some(e) = source_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(Failure { reason: "QdrantError", message: format!("download of shard {} from {}: {e}", r.shard, r.pod) });
    }
    put.map_err(|e| Failure { reason: e.reason(), message: format!("upload of shard {} from {}: {e}", r.shard, r.pod) })?;
    let sha = hasher.lock().unwrap_or_else(|p| p.into_inner()).clone().finalize();
    Ok((size.load(Ordering::Relaxed), sha.iter().map(|b| format!("{b:02x}")).collect()))
}

/// Removes what a failed attempt wrote: the manifest first (an earlier attempt's was checked
/// and dealt with before this one began, so one here is this attempt's), so that it is never
/// taken for a good backup, then this attempt's pieces. Best effort: what stays (S3 down) goes
/// with this resource's next good backup.
async fn discard(ctx: &Context, store: &Store, dir: &str, attempt: u32) {
    let Ok(keys) = store.list(dir).await else { return };
    let manifest = format!("{dir}{}", plan::MANIFEST);
    let mine = format!("-a{attempt}.snapshot");
    let mut ordered: Vec<&String> = keys.iter().map(|(k, _)| k).filter(|k| **k == manifest).collect();
    ordered.extend(keys.iter().map(|(k, _)| k).filter(|k| k.ends_with(&mine)));
    for key in ordered {
        if store.delete(&ctx.guard, key).await.is_err() {
            return;
        }
    }
}

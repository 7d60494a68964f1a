//! Pure decisions of backups and restores: object keys, the manifest, when a backup is due,
//! which backups retention deletes, and the collection a restore creates. No I/O here.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::crd::{BackupRecord, BackupState, Snapshots};

/// The manifest's `format`: what a restore accepts.
pub const FORMAT: &str = "qdrant-operator/backup-v1";
pub const MANIFEST: &str = "manifest.json";
/// Failed records kept in a status.
const FAILED_KEPT: usize = 5;
/// Succeeded records kept in a status at most.
pub const SUCCEEDED_KEPT: usize = 50;

/// The manifest, written last: a backup exists (is good) if and only if its manifest does.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: String,
    pub backup_id: String,
    pub cluster: String,
    pub collection: String,
    pub created_at: String,
    pub completed_at: String,
    /// `config` of Qdrant's `GET /collections/{name}` when the backup began.
    pub config: Value,
    /// Exact point counts before and after the snapshots were taken (equal without writes).
    pub points_count: PointsRange,
    pub pieces: Vec<Piece>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointsRange {
    pub min: u64,
    pub max: u64,
}

/// One shard replica's snapshot file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Piece {
    pub key: String,
    pub shard: u32,
    pub peer_id: u64,
    pub pod: String,
    pub size: u64,
    /// Hex sha256 of the file, computed while it was uploaded (and compared with Qdrant's).
    pub sha256: String,
}

impl Manifest {
    pub fn shard_number(&self) -> Option<u32> {
        self.config.pointer("/params/shard_number").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
    }
}

/// Where one collection's backups live: `<pathPrefix><cluster>/<collection>/`.
pub fn collection_prefix(s: &Snapshots, cluster: &str, collection: &str) -> String {
    format!("{}{cluster}/{collection}/", s.path_prefix.as_deref().unwrap_or_default())
}

/// The `backupId` of a backup: what the older operator called its snapshot name.
pub fn backup_id(cluster: &str, collection: &str, id: &str) -> String {
    format!("{cluster}/{collection}/{id}")
}

/// Splits a `backupId` into (cluster, collection, id).
pub fn parse_backup_id(backup_id: &str) -> Option<(&str, &str, &str)> {
    let mut parts = backup_id.split('/');
    let (cluster, collection, id) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && [cluster, collection, id].iter().all(|p| !p.is_empty())).then_some((cluster, collection, id))
}

/// A backup's id: its start time, then its resource's tag. Sortable by time, a valid key
/// segment, and never shared: two resources backing up one collection in the same second
/// (or two namespaces with the same cluster and collection names, into one bucket) get
/// directories of their own.
pub fn id_at(t: jiff::Timestamp, tag: &str) -> String {
    format!("{}-{tag}", t.strftime("%Y-%m-%d-%H-%M-%S"))
}

/// A resource's tag in its backups' ids: the first 8 hex digits of its uid. Retention and
/// clean-up touch only directories with their own resource's tag.
pub fn owner_tag(uid: &str) -> String {
    uid.chars().filter(char::is_ascii_hexdigit).take(8).collect::<String>().to_ascii_lowercase()
}

/// Whether backup `id` is of the resource tagged `tag`.
pub fn is_owned(id: &str, tag: &str) -> bool {
    !tag.is_empty() && id.ends_with(&format!("-{tag}"))
}

/// The key of one snapshot file. The attempt is part of it, so that a file a stopped leader
/// was still writing can never be taken for one of the attempt that completed.
pub fn piece_key(dir: &str, shard: u32, peer_id: u64, attempt: u32) -> String {
    format!("{dir}shard-{shard}/peer-{peer_id}-a{attempt}.snapshot")
}

/// The backup directories that have a manifest, oldest first, among `keys` under `prefix`.
pub fn good_backups(prefix: &str, keys: &[String]) -> Vec<String> {
    let mut dirs: Vec<String> = keys
        .iter()
        .filter_map(|k| k.strip_prefix(prefix)?.strip_suffix(MANIFEST)?.strip_suffix('/').filter(|id| !id.is_empty() && !id.contains('/')).map(str::to_owned))
        .collect();
    dirs.sort();
    dirs
}

/// The good backups (ids) that retention deletes: all but the newest `keep` of the
/// resource tagged `tag`; others' are never counted nor deleted.
pub fn expired(good: &[String], keep: Option<u32>, tag: &str) -> Vec<String> {
    let ours: Vec<&String> = good.iter().filter(|id| is_owned(id, tag)).collect();
    match keep {
        Some(keep) if ours.len() > keep as usize => ours[..ours.len() - keep as usize].iter().map(|s| (*s).clone()).collect(),
        _ => Vec::new(),
    }
}

/// A backup schedule, parsed: five cron fields, UTC.
pub fn parse_schedule(schedule: &str) -> Result<Option<croner::Cron>, String> {
    let schedule = schedule.trim();
    if schedule.is_empty() {
        return Ok(None);
    }
    if schedule.split_whitespace().count() != 5 && !schedule.starts_with('@') {
        return Err(format!("backupSchedule {schedule:?} must have five fields (minute hour day-of-month month day-of-week)"));
    }
    croner::Cron::from_str(schedule).map(Some).map_err(|e| format!("backupSchedule {schedule:?} is not a cron schedule: {e}"))
}

/// The first schedule time after `after`.
pub fn next_time(cron: &croner::Cron, after: jiff::Timestamp) -> Option<jiff::Timestamp> {
    cron.find_next_occurrence(&after.to_zoned(jiff::tz::TimeZone::UTC), false).ok().map(|z| z.timestamp())
}

/// Schedule times looked at for [`interval`]: enough to span a week of a daily schedule.
const INTERVAL_SAMPLES: usize = 16;

/// The longest time between consecutive schedule times from `from` (for the alert, which
/// must not fire over the weekend of a weekdays-only schedule).
pub fn interval(cron: &croner::Cron, from: jiff::Timestamp) -> Option<f64> {
    let mut t = next_time(cron, from)?;
    let mut longest = None::<f64>;
    for _ in 0..INTERVAL_SAMPLES {
        let n = next_time(cron, t)?;
        longest = Some(longest.unwrap_or(0.0).max(n.duration_since(t).as_secs_f64()));
        t = n;
    }
    longest
}

/// The schedule time a scheduled backup is due for at `now`, if any: the latest schedule time
/// not in the future, if it is after `last` (the last one acted upon, or the resource's
/// creation). Missed times are not caught up one by one: one backup covers them.
pub fn due(cron: &croner::Cron, last: jiff::Timestamp, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let latest = cron.find_previous_occurrence(&now.to_zoned(jiff::tz::TimeZone::UTC), true).ok()?.timestamp();
    (latest > last).then_some(latest)
}

/// What a backup resource asks for at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// `backupNow` of a generation not acted upon yet.
    pub manual: bool,
    /// The schedule time a scheduled backup is due for.
    pub scheduled: Option<jiff::Timestamp>,
    /// The schedule time after this one.
    pub next: Option<jiff::Timestamp>,
}

/// Pure: whether a backup is due, from the spec (`backup_now`, the parsed schedule), what the
/// status says was acted upon (`acted_generation`, `last_schedule`), the resource's generation
/// and creation time, and the time.
pub fn due_now(cron: Option<&croner::Cron>, backup_now: bool, generation: Option<i64>, acted_generation: Option<i64>, last_schedule: Option<jiff::Timestamp>, created: jiff::Timestamp, now: jiff::Timestamp) -> Due {
    let last = last_schedule.unwrap_or(created);
    let scheduled = cron.and_then(|c| due(c, last, now));
    Due { manual: backup_now && acted_generation != generation, scheduled, next: cron.and_then(|c| next_time(c, scheduled.unwrap_or(last).max(now))) }
}

/// The records a status keeps: the running one, the latest failures, and every one whose
/// backup is still in the bucket (`kept` ids; `None`: not known), at most the newest
/// [`SUCCEEDED_KEPT`]: the bucket, not the status, is what holds the backups, and a status
/// must stay far below etcd's object size limit whatever the schedule.
pub fn trim_records(mut records: Vec<BackupRecord>, kept: Option<&[String]>) -> Vec<BackupRecord> {
    records.sort_by(|a, b| b.id.cmp(&a.id));
    let (mut failed, mut succeeded) = (0, 0);
    records.retain(|r| match r.state {
        BackupState::Running => true,
        BackupState::Succeeded => {
            succeeded += 1;
            succeeded <= SUCCEEDED_KEPT && kept.is_none_or(|k| k.contains(&r.id))
        }
        BackupState::Failed => {
            failed += 1;
            failed <= FAILED_KEPT
        }
    });
    records
}

/// The body that creates a collection as a backup's config describes it, on a cluster of
/// `peers` peers (the replication factor is capped there). Only settings Qdrant accepts at
/// creation as it reports them are carried: vectors, shards, replication, write consistency,
/// payload on disk, sparse vectors, HNSW and quantization.
pub fn restore_body(config: &Value, peers: u32) -> Value {
    let params = config.get("params").cloned().unwrap_or_default();
    let rf = params.get("replication_factor").and_then(Value::as_u64).unwrap_or(1).min(u64::from(peers.max(1)));
    let wc = params.get("write_consistency_factor").and_then(Value::as_u64).unwrap_or(1).min(rf);
    let mut body = json!({
        "vectors": params.get("vectors").cloned().unwrap_or_default(),
        "shard_number": params.get("shard_number").cloned().unwrap_or(json!(1)),
        "replication_factor": rf,
        "write_consistency_factor": wc,
    });
    for (key, from) in [("on_disk_payload", params.get("on_disk_payload")), ("sparse_vectors", params.get("sparse_vectors")), ("hnsw_config", config.get("hnsw_config")), ("quantization_config", config.get("quantization_config"))] {
        if let Some(v) = from.filter(|v| !v.is_null()) {
            body[key] = v.clone();
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn ids_keys_and_backup_ids_round_trip() {
        let tag = owner_tag("0f8e7d6c-5b4a-3210-fedc-ba9876543210");
        assert_eq!(tag, "0f8e7d6c");
        let id = id_at(ts("2026-12-06T14:05:09Z"), &tag);
        assert_eq!(id, "2026-12-06-14-05-09-0f8e7d6c");
        assert!(is_owned(&id, &tag) && !is_owned(&id, "0f8e7d6d") && !is_owned(&id, ""));
        let bid = backup_id("k", "c", &id);
        assert_eq!(parse_backup_id(&bid), Some(("k", "c", id.as_str())));
        assert_eq!(parse_backup_id("k/c"), None);
        assert_eq!(parse_backup_id("k/c/x/y"), None);
        assert_eq!(piece_key("p/k/c/id/", 3, 7, 2), "p/k/c/id/shard-3/peer-7-a2.snapshot");
    }

    #[test]
    fn only_directories_with_a_manifest_are_backups_and_retention_keeps_the_newest() {
        let keys: Vec<String> = ["k/c/2026-01-01-00-00-00-aa/manifest.json", "k/c/2026-01-01-00-00-00-aa/shard-0/peer-1-a1.snapshot", "k/c/2026-01-02-00-00-00-aa/shard-0/peer-1-a1.snapshot", "k/c/2026-01-03-00-00-00-aa/manifest.json", "k/c/x/y/manifest.json", "k/c/2026-01-04-00-00-00-aa/manifest.json", "k/c/2025-01-01-00-00-00-bb/manifest.json"].iter().map(|s| s.to_string()).collect();
        let good = good_backups("k/c/", &keys);
        assert_eq!(good, ["2025-01-01-00-00-00-bb", "2026-01-01-00-00-00-aa", "2026-01-03-00-00-00-aa", "2026-01-04-00-00-00-aa"], "the running one (no manifest) is not a backup");
        assert_eq!(expired(&good, Some(2), "aa"), ["2026-01-01-00-00-00-aa"], "another resource's backup is neither counted nor deleted");
        assert!(expired(&good, Some(3), "aa").is_empty());
        assert!(expired(&good, Some(1), "cc").is_empty());
        assert!(expired(&good, None, "aa").is_empty(), "no retention count: keep all");
    }

    #[test]
    fn schedules_five_fields_utc_and_one_backup_for_missed_times() {
        assert!(parse_schedule("").unwrap().is_none());
        assert!(parse_schedule("* * * *").is_err());
        assert!(parse_schedule("61 * * * *").is_err());
        assert!(parse_schedule("0 0 * * * *").is_err(), "no seconds field");
        let every_minute = parse_schedule("* * * * *").unwrap().unwrap();
        assert_eq!(next_time(&every_minute, ts("2026-01-01T00:00:30Z")), Some(ts("2026-01-01T00:01:00Z")));
        assert_eq!(interval(&every_minute, ts("2026-01-01T00:00:30Z")), Some(60.0));
        assert_eq!(due(&every_minute, ts("2026-01-01T00:00:30Z"), ts("2026-01-01T00:00:59Z")), None);
        assert_eq!(due(&every_minute, ts("2026-01-01T00:00:30Z"), ts("2026-01-01T00:05:10Z")), Some(ts("2026-01-01T00:05:00Z")), "missed times: one backup");
        let daily = parse_schedule("0 2 * * *").unwrap().unwrap();
        assert_eq!(next_time(&daily, ts("2026-01-01T02:00:00Z")), Some(ts("2026-01-02T02:00:00Z")));
        assert_eq!(interval(&daily, ts("2026-01-01T00:00:00Z")), Some(86400.0));
        let weekdays = parse_schedule("0 2 * * 1-5").unwrap().unwrap();
        assert_eq!(interval(&weekdays, ts("2026-01-05T00:00:00Z")), Some(3.0 * 86400.0), "the weekend's gap");
    }

    #[test]
    fn backup_now_once_per_generation_and_the_schedule_from_the_last_time_acted_upon() {
        let every_minute = parse_schedule("* * * * *").unwrap().unwrap();
        let created = ts("2026-01-01T00:00:10Z");
        let first = due_now(None, true, Some(1), None, None, created, ts("2026-01-01T00:00:11Z"));
        assert_eq!(first, Due { manual: true, scheduled: None, next: None });
        assert!(!due_now(None, true, Some(1), Some(1), None, created, ts("2026-01-01T00:05:00Z")).manual, "acted upon: not again");
        assert!(due_now(None, true, Some(2), Some(1), None, created, ts("2026-01-01T00:05:00Z")).manual, "a new generation: again");
        assert!(!due_now(None, false, Some(2), Some(1), None, created, ts("2026-01-01T00:05:00Z")).manual);
        let early = due_now(Some(&every_minute), false, Some(1), None, None, created, ts("2026-01-01T00:00:30Z"));
        assert_eq!((early.scheduled, early.next), (None, Some(ts("2026-01-01T00:01:00Z"))), "nothing before the first time after creation");
        let on_time = due_now(Some(&every_minute), false, Some(1), None, None, created, ts("2026-01-01T00:01:00.2Z"));
        assert_eq!((on_time.scheduled, on_time.next), (Some(ts("2026-01-01T00:01:00Z")), Some(ts("2026-01-01T00:02:00Z"))));
        let done = due_now(Some(&every_minute), false, Some(1), None, Some(ts("2026-01-01T00:01:00Z")), created, ts("2026-01-01T00:01:30Z"));
        assert_eq!(done.scheduled, None, "that time was acted upon");
    }

    #[test]
    fn records_keep_running_kept_and_five_failures() {
        let rec = |id: &str, state| BackupRecord { id: id.into(), state, ..Default::default() };
        let mut records = vec![rec("01", BackupState::Succeeded), rec("02", BackupState::Succeeded), rec("10", BackupState::Running)];
        records.extend((11..18).map(|i| rec(&i.to_string(), BackupState::Failed)));
        let kept = ["02".to_string()];
        let out = trim_records(records, Some(&kept));
        let ids: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["17", "16", "15", "14", "13", "10", "02"]);
        let many: Vec<BackupRecord> = (100..200).map(|i| rec(&i.to_string(), BackupState::Succeeded)).collect();
        let out = trim_records(many, None);
        assert_eq!((out.len(), out[0].id.as_str(), out[49].id.as_str()), (SUCCEEDED_KEPT, "199", "150"), "without retention, the newest 50");
    }

    #[test]
    fn a_restore_creates_what_the_backup_had_with_replication_capped_at_the_peers() {
        let config = json!({"params": {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 2, "write_consistency_factor": 2, "on_disk_payload": true},
            "hnsw_config": {"m": 16}, "optimizer_config": {"indexing_threshold": 1}, "quantization_config": null, "wal_config": {}});
        let body = restore_body(&config, 3);
        assert_eq!(body, json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 6, "replication_factor": 2, "write_consistency_factor": 2, "on_disk_payload": true, "hnsw_config": {"m": 16}}));
        let small = restore_body(&config, 1);
        assert_eq!((small["replication_factor"].as_u64(), small["write_consistency_factor"].as_u64()), (Some(1), Some(1)));
    }
}

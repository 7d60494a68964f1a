//! Command-line flags with environment fallbacks, validated once at start-up.
//!
//! Every problem is reported with the flag that causes it, so a bad Deployment fails fast
//! with a message an operator can act on instead of misbehaving later.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Parser, Clone, Debug)]
#[command(name = "qdrant-operator", version, about = "Runs Qdrant clusters from QdrantCluster resources")]
pub struct Args {
    /// Namespace to watch for QdrantClusters; all namespaces when empty.
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    pub namespace: String,

    /// Address of the admin server (/metrics, /healthz, /readyz, /debug/leader).
    #[arg(long, env = "ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: String,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "plain")]
    pub log_format: LogFormat,

    /// Log filter, in tracing's EnvFilter syntax (for example `info` or `qdrant_operator=debug`).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Elect a leader among replicas. `false` runs a single replica that always leads.
    #[arg(long, env = "LEADER_ELECT", default_value = "true", action = ArgAction::Set)]
    pub leader_elect: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, env = "LEASE_NAME", default_value = "qdrant-operator")]
    pub lease_name: String,

    /// Namespace of the Lease and of the operator's own Pods.
    #[arg(long, env = "POD_NAMESPACE", default_value = "qdrant-operator")]
    pub pod_namespace: String,

    /// This replica's identity in the Lease: its Pod name.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// How long followers wait after last seeing the Lease change before taking over.
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// How long the leader keeps acting after the start of its last successful renewal.
    #[arg(long, env = "RENEW_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub renew_deadline: Duration,

    /// Interval between renewals and between acquisition attempts.
    #[arg(long, env = "RETRY_PERIOD", default_value = "2s", value_parser = humantime::parse_duration)]
    pub retry_period: Duration,

    /// Jitter factor of acquisition retries (client-go's 1.2).
    #[arg(long, env = "RETRY_JITTER", default_value = "1.2")]
    pub retry_jitter: f64,

    /// Longest time a shutting-down leader waits for its cancelled in-flight reconciles to
    /// stop before it exits without releasing the Lease. Keep it below the Pod's termination
    /// grace period.
    #[arg(long, env = "DRAIN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Deadline of each call to a Qdrant Pod's REST API. A Pod that does not answer in time
    /// counts as unreachable in the cluster's health.
    #[arg(long, env = "QDRANT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub qdrant_timeout: Duration,

    /// How often the leader asks each cluster's Qdrant Pods how they are, besides every
    /// change it sees in Kubernetes.
    #[arg(long, env = "HEALTH_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,

    /// A shard transfer that an operation waits for and whose source peer reports no new
    /// progress for this long is aborted and started again. Qdrant reports progress as it
    /// goes, so this bounds a stuck transfer, not a large one.
    #[arg(long, env = "TRANSFER_STALL_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub transfer_stall_timeout: Duration,
}

/// Validated settings: what the rest of the program uses.
#[derive(Clone, Debug)]
pub struct Config {
    pub namespace: Option<String>,
    pub admin_addr: SocketAddr,
    pub log_format: LogFormat,
    pub log_level: String,
    pub election: ElectionConfig,
    pub drain_timeout: Duration,
    pub qdrant_timeout: Duration,
    pub health_interval: Duration,
    pub transfer_stall_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ElectionConfig {
    pub enabled: bool,
    pub identity: String,
    pub lease_name: String,
    pub namespace: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    pub jitter: f64,
}

impl ElectionConfig {
    /// The defaults (15 s / 10 s / 2 s, jitter 1.2) for `identity`, as tests use them.
    #[cfg(test)]
    pub fn defaults_for(identity: &str) -> Self {
        ElectionConfig {
            enabled: true,
            identity: identity.into(),
            lease_name: "qdrant-operator".into(),
            namespace: "qdrant-operator".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            jitter: 1.2,
        }
    }

    /// Each Lease request gets this long: `max(1s, RD/2)`, so one slow request cannot use up
    /// the whole renew deadline.
    pub fn request_timeout(&self) -> Duration {
        (self.renew_deadline / 2).max(Duration::from_secs(1))
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_dns1123_label(s: &str) -> bool {
    !s.contains('.') && is_dns1123_subdomain(s)
}

impl Args {
    /// Checks every flag and returns all problems at once.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let admin_addr = match self.admin_addr.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                problems.push(format!("--admin-addr {:?} is not a host:port address: {e}", self.admin_addr));
                None
            }
        };
        if !self.namespace.is_empty() && !is_dns1123_label(&self.namespace) {
            problems.push(format!("--namespace {:?} is not a valid namespace name", self.namespace));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            problems.push(format!("--log-level {:?} is not a valid filter: {e}", self.log_level));
        }
        if !is_dns1123_subdomain(&self.lease_name) {
            problems.push(format!("--lease-name {:?} must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')", self.lease_name));
        }
        if !is_dns1123_label(&self.pod_namespace) {
            problems.push(format!("--pod-namespace (POD_NAMESPACE) {:?} is not a valid namespace name", self.pod_namespace));
        }
        let identity = self.pod_name.clone().unwrap_or_default();
        if self.leader_elect && identity.trim().is_empty() {
            problems.push("--pod-name (POD_NAME) is required when --leader-elect is true; set it from the downward API".into());
        }
        let (ld, rd, rp, j) = (self.lease_duration, self.renew_deadline, self.retry_period, self.retry_jitter);
        if rp.is_zero() {
            problems.push("--retry-period must be greater than 0".into());
        }
        if !j.is_finite() || j < 0.0 {
            problems.push(format!("--retry-jitter {j} must be a finite number >= 0"));
        }
        if ld <= rd {
            problems.push(format!("--lease-duration ({}) must be greater than --renew-deadline ({})", fmt(ld), fmt(rd)));
        }
        if j.is_finite() && j >= 0.0 && rd.as_secs_f64() <= j * rp.as_secs_f64() {
            problems.push(format!("--renew-deadline ({}) must be greater than --retry-jitter × --retry-period ({j} × {})", fmt(rd), fmt(rp)));
        }
        if ld.as_secs() < 1 || ld.subsec_nanos() != 0 {
            problems.push(format!("--lease-duration ({}) must be a whole number of seconds, at least 1s (the Lease stores seconds)", fmt(ld)));
        }
        if self.drain_timeout.is_zero() {
            problems.push("--drain-timeout must be greater than 0".into());
        }
        if self.qdrant_timeout.is_zero() {
            problems.push("--qdrant-timeout must be greater than 0".into());
        }
        if self.health_interval < Duration::from_secs(1) {
            problems.push(format!("--health-interval ({}) must be at least 1s", fmt(self.health_interval)));
        }
        if self.transfer_stall_timeout < Duration::from_secs(1) {
            problems.push(format!("--transfer-stall-timeout ({}) must be at least 1s", fmt(self.transfer_stall_timeout)));
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Config {
            namespace: (!self.namespace.is_empty()).then(|| self.namespace.clone()),
            admin_addr: admin_addr.expect("checked above"),
            log_format: self.log_format,
            log_level: self.log_level.clone(),
            election: ElectionConfig {
                enabled: self.leader_elect,
                identity: if identity.is_empty() { "standalone".into() } else { identity },
                lease_name: self.lease_name.clone(),
                namespace: self.pod_namespace.clone(),
                lease_duration: ld,
                renew_deadline: rd,
                retry_period: rp,
                jitter: j,
            },
            drain_timeout: self.drain_timeout,
            qdrant_timeout: self.qdrant_timeout,
            health_interval: self.health_interval,
            transfer_stall_timeout: self.transfer_stall_timeout,
        })
    }
}

fn fmt(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["qdrant-operator", "--pod-name", "op-0"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).expect("flags parse").validate()
    }

    fn err(extra: &[&str]) -> String {
        parse(extra).expect_err("should be rejected").to_string()
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.election.lease_duration, Duration::from_secs(15));
        assert_eq!(c.election.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.election.retry_period, Duration::from_secs(2));
        assert_eq!(c.election.lease_name, "qdrant-operator");
        assert_eq!(c.election.namespace, "qdrant-operator");
        assert_eq!(c.admin_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.namespace, None);
        assert!(c.election.enabled);
    }

    #[test]
    fn short_settings_are_valid() {
        let c = parse(&["--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms"]).unwrap();
        assert_eq!(c.election.retry_period, Duration::from_millis(500));
    }

    #[test]
    fn lease_not_longer_than_renew_deadline() {
        let e = err(&["--lease-duration", "5s", "--renew-deadline", "10s"]);
        assert!(e.contains("--lease-duration") && e.contains("--renew-deadline"), "{e}");
    }

    #[test]
    fn lease_equal_to_renew_deadline() {
        assert!(err(&["--lease-duration", "10s", "--renew-deadline", "10s"]).contains("--lease-duration (10s)"));
    }

    #[test]
    fn renew_deadline_not_above_jittered_retry() {
        let e = err(&["--renew-deadline", "2s", "--retry-period", "2s"]);
        assert!(e.contains("--renew-deadline (2s)") && e.contains("--retry-period"), "{e}");
    }

    #[test]
    fn renew_deadline_exactly_jitter_times_retry() {
        assert!(err(&["--renew-deadline", "12s", "--retry-period", "10s", "--lease-duration", "20s"]).contains("--retry-jitter"));
    }

    #[test]
    fn zero_retry_period() {
        assert!(err(&["--retry-period", "0s"]).contains("--retry-period must be greater than 0"));
    }

    #[test]
    fn negative_jitter() {
        assert!(err(&["--retry-jitter=-1"]).contains("--retry-jitter"));
    }

    #[test]
    fn nan_jitter() {
        assert!(err(&["--retry-jitter", "NaN"]).contains("--retry-jitter"));
    }

    #[test]
    fn fractional_lease_duration() {
        assert!(err(&["--lease-duration", "15500ms"]).contains("whole number of seconds"));
    }

    #[test]
    fn missing_pod_name_with_election() {
        let e = Args::try_parse_from(["qdrant-operator"]).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("--pod-name (POD_NAME)"), "{e}");
    }

    #[test]
    fn missing_pod_name_without_election_is_fine() {
        let c = Args::try_parse_from(["qdrant-operator", "--leader-elect=false"]).unwrap().validate().unwrap();
        assert!(!c.election.enabled);
        assert_eq!(c.election.identity, "standalone");
    }

    #[test]
    fn bad_lease_name() {
        assert!(err(&["--lease-name", "Qdrant_Operator"]).contains("--lease-name"));
    }

    #[test]
    fn bad_pod_namespace() {
        assert!(err(&["--pod-namespace", "a.b"]).contains("--pod-namespace"));
    }

    #[test]
    fn bad_admin_addr() {
        assert!(err(&["--admin-addr", "localhost"]).contains("--admin-addr"));
    }

    #[test]
    fn bad_watch_namespace() {
        assert!(err(&["--namespace", "UPPER"]).contains("--namespace"));
    }

    #[test]
    fn bad_log_level() {
        assert!(err(&["--log-level", "qdrant_operator=loud"]).contains("--log-level"));
    }

    #[test]
    fn zero_drain_timeout() {
        assert!(err(&["--drain-timeout", "0s"]).contains("--drain-timeout"));
    }

    #[test]
    fn qdrant_timings_must_be_usable() {
        assert!(err(&["--qdrant-timeout", "0s"]).contains("--qdrant-timeout"));
        assert!(err(&["--health-interval", "100ms"]).contains("--health-interval"));
    }

    #[test]
    fn unparsable_duration_names_flag() {
        let e = Args::try_parse_from(["qdrant-operator", "--lease-duration", "soon"]).unwrap_err().to_string();
        assert!(e.contains("--lease-duration"), "{e}");
    }

    #[test]
    fn bad_log_format_names_flag() {
        let e = Args::try_parse_from(["qdrant-operator", "--log-format", "xml"]).unwrap_err().to_string();
        assert!(e.contains("--log-format"), "{e}");
    }

    #[test]
    fn every_problem_is_reported() {
        let e = err(&["--lease-duration", "5s", "--renew-deadline", "10s", "--admin-addr", "x", "--lease-name", "_"]);
        assert_eq!(e.matches("\n  - ").count(), 3, "{e}");
    }
}

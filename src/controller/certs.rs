//! The TLS certificates the operator makes for a cluster with `tls.enabled` and no
//! `tls.secretName`, which is what the older JavaScript operator's manifests ask for.
//!
//! A cluster gets its own CA (Secret `<name>-ca`, `cacert.pem` and `cakey.pem`) and one server
//! certificate (Secret `<name>-server-cert`, `cert.pem`, `key.pem`, `cacert.pem`: the layout
//! Qdrant's `tls` settings and a user-provided Secret share) for both Services and every Pod
//! name, used for the client API and for p2p alike. Qdrant rereads its certificate files every
//! `tls.cert_ttl`, and Secret volumes are refreshed in place (no subPath), so a renewal
//! restarts nothing.
//!
//! Everything is decided from what the Secrets hold, so a new leader keeps what the last one
//! made: a certificate is replaced only when it is unreadable, does not cover a name the
//! cluster needs now, was not issued by the CA on record, or is due for renewal. A certificate
//! that exists without a CA key (the older operator never kept one) is kept until then.

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use x509_parser::extensions::GeneralName;

use super::build::headless_name;
use crate::crd::QdrantCluster;

/// Validity of a certificate when `tls.certificateValidity` is not set.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Renewal ahead of expiry when `tls.renewBefore` is not set.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// A CA outlives many certificates: it is replaced only when it would expire before a new
/// certificate it signs, which changes what every client must trust.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The DNS domain of the Kubernetes cluster, for the fully qualified names.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// How often Qdrant rereads its certificate files at most (`tls.cert_ttl`), in seconds.
const MAX_CERT_TTL: u64 = 3600;

pub const CERT_KEY: &str = "cert.pem";
pub const KEY_KEY: &str = "key.pem";
pub const CA_CERT_KEY: &str = "cacert.pem";
pub const CA_KEY_KEY: &str = "cakey.pem";

pub fn ca_secret_name(cluster: &str) -> String {
    format!("{cluster}-ca")
}

/// The name the older operator gave its generated certificate's Secret; kept, so that an
/// adopted cluster's certificate is found and kept.
pub fn server_secret_name(cluster: &str) -> String {
    format!("{cluster}-server-cert")
}

/// The Secret the Pods mount for TLS: the user's, or the operator's.
pub fn tls_secret_name(qc: &QdrantCluster) -> String {
    match qc.spec.tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => s.to_owned(),
        None => server_secret_name(&qc.metadata.name.clone().unwrap_or_default()),
    }
}

/// The PEM material of a cluster's generated TLS, as kept in its two Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    /// The CA's certificate and key; `None` for a certificate kept from before, whose CA key
    /// the operator never had.
    pub ca: Option<(String, String)>,
    pub cert: String,
    pub key: String,
    /// The CA bundle the Pods and the operator trust.
    pub ca_cert: String,
}

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    pub not_before: i64,
    pub not_after: i64,
    pub dns_names: Vec<String>,
}

/// Reads the first certificate of a PEM text; `None` when there is none or it is malformed.
pub fn inspect(pem: &str) -> Option<Info> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| san.value.general_names.iter().filter_map(|n| if let GeneralName::DNSName(d) = n { Some((*d).to_owned()) } else { None }).collect())
        .unwrap_or_default();
    Some(Info {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        dns_names,
    })
}

/// Whether the certificate `leaf` carries a valid signature of the CA certificate `ca`.
pub fn signed_by(leaf: &str, ca: &str) -> bool {
    let parse = |pem: &str| x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok().map(|(_, p)| p);
    let (Some(leaf), Some(ca)) = (parse(leaf), parse(ca)) else { return false };
    match (leaf.parse_x509(), ca.parse_x509()) {
        (Ok(leaf), Ok(ca)) => leaf.verify_signature(Some(ca.public_key())).is_ok(),
        _ => false,
    }
}

/// Every DNS name the certificate must cover: both Services and the Pods `0..pods`, each
/// short, namespaced and fully qualified, since clients use all of these forms.
pub fn dns_names(qc: &QdrantCluster, pods: i32) -> Vec<String> {
    let name = qc.metadata.name.clone().unwrap_or_default();
    let ns = qc.metadata.namespace.clone().unwrap_or_default();
    let headless = headless_name(&name);
    let forms = |host: String| [host.clone(), format!("{host}.{ns}"), format!("{host}.{ns}.svc"), format!("{host}.{ns}.svc.{CLUSTER_DOMAIN}")];
    let mut names: Vec<String> = [name.clone(), headless.clone()].into_iter().flat_map(forms).collect();
    names.extend((0..pods.max(0)).flat_map(|i| forms(format!("{name}-{i}.{headless}"))));
    names
}

/// `(validity, renewBefore)` of the cluster's certificates.
pub fn timings(qc: &QdrantCluster) -> (Duration, Duration) {
    let parse = |v: &Option<String>, default| v.as_deref().and_then(|v| humantime::parse_duration(v).ok()).unwrap_or(default);
    (parse(&qc.spec.tls.certificate_validity, DEFAULT_VALIDITY), parse(&qc.spec.tls.renew_before, DEFAULT_RENEW_BEFORE))
}

/// Qdrant's `tls.cert_ttl`: often enough that a renewed certificate is read well before the
/// old one expires.
pub fn cert_ttl(qc: &QdrantCluster) -> u64 {
    (timings(qc).1.as_secs() / 2).clamp(1, MAX_CERT_TTL)
}

/// What to do with the material found.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Keep,
    /// A new certificate from the CA on record.
    NewCertificate,
    /// A new CA, and a new certificate from it.
    NewCa,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Pure: decides from what the Secrets hold (`ca`: certificate and key; `server`: certificate,
/// key and CA bundle) whether to keep it, at `now` (Unix seconds).
pub fn plan(ca: Option<(&str, &str)>, server: Option<(&str, &str, &str)>, needed: &[String], now: i64, (validity, renew_before): (Duration, Duration)) -> Plan {
    // A CA is usable while it outlives the next certificate it would sign.
    let ca_info = ca.filter(|(_, key)| KeyPair::from_pem(key).is_ok()).and_then(|(cert, _)| inspect(cert));
    let ca_ok = ca_info.as_ref().is_some_and(|i| i.not_after.saturating_sub(now) > secs(validity) && i.not_before <= now);
    let leaf_ok = server.and_then(|(cert, key, bundle)| Some((cert, inspect(cert)?, KeyPair::from_pem(key).ok()?, bundle))).is_some_and(|(cert, info, _, bundle)| {
        let covers = needed.iter().all(|n| info.dns_names.contains(n));
        let fresh = info.not_after.saturating_sub(now) > secs(renew_before) && info.not_before <= now + 300;
        // Signed by the CA on record, which is also the bundle the Pods trust; without a CA on
        // record, the older operator's certificate is kept as it is.
        let from_ca = match ca_info.as_ref().and(ca) {
            Some((ca, _)) => signed_by(cert, ca) && bundle.trim() == ca.trim(),
            None => true,
        };
        covers && fresh && from_ca
    });
    match (leaf_ok, ca_ok) {
        (true, _) => Plan::Keep,
        (false, true) => Plan::NewCertificate,
        (false, false) => Plan::NewCa,
    }
}

/// When the certificate in `material` is due for renewal, as seconds from `now`.
pub fn renew_in(material: &Material, now: i64, renew_before: Duration) -> Option<Duration> {
    let info = inspect(&material.cert)?;
    let at = info.not_after.saturating_sub(secs(renew_before));
    Some(Duration::from_secs(u64::try_from(at.saturating_sub(now)).unwrap_or(0)))
}

/// Unix seconds as a certificate time; every time used here (now, plus at most the CA's ten
/// years) is in range.
fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A new CA for `cluster` (namespace/name, in its common name).
pub fn new_ca(cluster: &str, now: i64) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, format!("qdrant-operator CA for {cluster}"));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = at(now - 60);
    params.not_after = at(now + secs(CA_VALIDITY));
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A new server certificate for `names`, signed by the CA `(cert, key)`, valid from a minute
/// ago (clocks differ) for `validity`. Usable for serving and as a p2p client.
pub fn new_certificate(ca: (&str, &str), names: &[String], now: i64, validity: Duration) -> Result<(String, String), rcgen::Error> {
    let issuer = Issuer::from_ca_cert_pem(ca.0, KeyPair::from_pem(ca.1)?)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = at(now - 60);
    params.not_after = at(now + secs(validity));
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Pure apart from key generation: the material to use, from what exists and the plan.
pub fn material(cluster: &str, ca: Option<(String, String)>, server: Option<(String, String, String)>, needed: &[String], now: i64, timings: (Duration, Duration)) -> Result<Material, rcgen::Error> {
    let plan = plan(ca.as_ref().map(|(c, k)| (c.as_str(), k.as_str())), server.as_ref().map(|(c, k, b)| (c.as_str(), k.as_str(), b.as_str())), needed, now, timings);
    let ca = match (plan, ca) {
        (Plan::Keep, ca) => {
            let (cert, key, ca_cert) = server.unwrap_or_default();
            return Ok(Material { ca, cert, key, ca_cert });
        }
        (Plan::NewCertificate, Some(ca)) => ca,
        _ => new_ca(cluster, now)?,
    };
    let (cert, key) = new_certificate((&ca.0, &ca.1), needed, now, timings.0)?;
    Ok(Material { ca_cert: ca.0.clone(), ca: Some(ca), cert, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600;

    fn qc(pods: i32) -> (QdrantCluster, Vec<String>) {
        let spec = serde_json::from_value(serde_json::json!({"replicas": pods, "image": "qdrant/qdrant:v1.16.3", "tls": {"enabled": true}})).unwrap();
        let mut qc = QdrantCluster::new("c", spec);
        qc.metadata.namespace = Some("ns".into());
        let names = dns_names(&qc, pods);
        (qc, names)
    }

    fn t() -> (Duration, Duration) {
        (Duration::from_secs(30 * DAY as u64), Duration::from_secs(10 * DAY as u64))
    }

    #[test]
    fn names_cover_both_services_and_every_pod_in_every_form() {
        let (_, names) = qc(2);
        for n in ["c", "c.ns", "c.ns.svc", "c.ns.svc.cluster.local", "c-headless.ns.svc", "c-0.c-headless.ns", "c-1.c-headless.ns.svc.cluster.local"] {
            assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.starts_with("c-2.")));
    }

    #[test]
    fn a_new_cluster_gets_a_ca_and_a_certificate_for_its_names_that_is_then_kept() {
        let (_, names) = qc(3);
        let now = 1_800_000_000;
        let m = material("ns/c", None, None, &names, now, t()).unwrap();
        let info = inspect(&m.cert).unwrap();
        assert_eq!(info.dns_names, names);
        assert_eq!(info.not_after - now, 30 * DAY);
        let (ca_cert, ca_key) = m.ca.clone().unwrap();
        assert_eq!(ca_cert, m.ca_cert);
        assert!(signed_by(&m.cert, &ca_cert));
        let again = material("ns/c", Some((ca_cert, ca_key)), Some((m.cert.clone(), m.key.clone(), m.ca_cert.clone())), &names, now + DAY, t()).unwrap();
        assert_eq!(again, m, "nothing changes while the certificate is fresh");
    }

    #[test]
    fn a_certificate_is_renewed_from_the_same_ca_before_it_expires() {
        let (_, names) = qc(1);
        let now = 1_800_000_000;
        let m = material("ns/c", None, None, &names, now, t()).unwrap();
        let ca = m.ca.clone().unwrap();
        let server = (m.cert.clone(), m.key.clone(), m.ca_cert.clone());
        assert_eq!(renew_in(&m, now, t().1), Some(Duration::from_secs(20 * DAY as u64)));
        // Inside the renewal window, still valid: renewed.
        let later = now + 21 * DAY;
        assert_eq!(plan(Some((&ca.0, &ca.1)), Some((&server.0, &server.1, &server.2)), &names, later, t()), Plan::NewCertificate);
        let renewed = material("ns/c", Some(ca.clone()), Some(server), &names, later, t()).unwrap();
        assert_ne!(renewed.cert, m.cert);
        assert_eq!(renewed.ca, Some(ca), "the CA clients trust stays");
        assert_eq!(inspect(&renewed.cert).unwrap().not_after, later + 30 * DAY);
    }

    #[test]
    fn a_scale_up_reissues_the_certificate_for_the_new_pod_names() {
        let (qc1, one) = qc(1);
        let now = 1_800_000_000;
        let m = material("ns/c", None, None, &one, now, t()).unwrap();
        let three = dns_names(&qc1, 3);
        let ca = m.ca.clone().unwrap();
        assert_eq!(plan(Some((&ca.0, &ca.1)), Some((&m.cert, &m.key, &m.ca_cert)), &three, now, t()), Plan::NewCertificate);
        assert_eq!(plan(Some((&ca.0, &ca.1)), Some((&m.cert, &m.key, &m.ca_cert)), &one[..4], now, t()), Plan::Keep, "fewer names needed: kept");
    }

    #[test]
    fn a_certificate_without_a_ca_key_is_kept_until_due_then_replaced_with_a_new_ca() {
        let (_, names) = qc(1);
        let now = 1_800_000_000;
        let old = material("ns/c", None, None, &names, now, t()).unwrap();
        let server = (old.cert.clone(), old.key.clone(), old.ca_cert.clone());
        assert_eq!(plan(None, Some((&server.0, &server.1, &server.2)), &names, now, t()), Plan::Keep);
        let kept = material("ns/c", None, Some(server.clone()), &names, now, t()).unwrap();
        assert_eq!((kept.ca, kept.cert), (None, old.cert.clone()));
        assert_eq!(plan(None, Some((&server.0, &server.1, &server.2)), &names, now + 25 * DAY, t()), Plan::NewCa);
    }

    #[test]
    fn garbage_or_a_foreign_certificate_is_replaced() {
        let (_, names) = qc(1);
        let now = 1_800_000_000;
        let m = material("ns/c", None, None, &names, now, t()).unwrap();
        let other = material("ns/c", None, None, &names, now, t()).unwrap();
        let ca = m.ca.clone().unwrap();
        assert_eq!(plan(Some((&ca.0, &ca.1)), Some(("junk", "junk", "junk")), &names, now, t()), Plan::NewCertificate);
        assert_eq!(plan(Some((&ca.0, &ca.1)), Some((&other.cert, &other.key, &other.ca_cert)), &names, now, t()), Plan::NewCertificate, "signed by another CA");
        assert_eq!(plan(Some(("junk", &ca.1)), None, &names, now, t()), Plan::NewCa);
    }

    #[test]
    fn qdrant_rereads_certificates_at_least_twice_per_renewal_window() {
        let (mut qc, _) = qc(1);
        assert_eq!(cert_ttl(&qc), MAX_CERT_TTL);
        qc.spec.tls.renew_before = Some("1m".into());
        assert_eq!(cert_ttl(&qc), 30);
    }
}

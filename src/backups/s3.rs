//! S3-compatible storage for backups. Requests are signed by rusty-s3 as presigned URLs and
//! sent with reqwest, path-style (what MinIO, versitygw and most self-hosted stores need; AWS
//! and GCS accept it too). Every write passes the leadership guard, like writes to Kubernetes
//! and Qdrant.

use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::leader::LeadershipGuard;

/// How long a signed URL is valid. Qdrant fetches a restore's snapshots with these, so this
/// bounds one shard's recovery.
pub const URL_TTL: Duration = Duration::from_secs(3600);
/// Deadline of a request without a large body (list, delete, manifest).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why S3 failed, with a CamelCase reason for statuses.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("the S3 settings are not usable: {0}")]
    Config(String),
    #[error("S3 at {endpoint} is unreachable: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error("S3 refused the credentials (HTTP {status} {code}){}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    AccessDenied { status: u16, code: String, message: String },
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("S3 answered HTTP {status} {code} to {op}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status { op: &'static str, status: u16, code: String, message: String },
    #[error("this replica is not the leader; S3 write refused")]
    NotLeader,
}

impl S3Error {
    pub fn reason(&self) -> &'static str {
        match self {
            S3Error::Config(_) => "InvalidS3Settings",
            S3Error::Unreachable { .. } => "S3Unreachable",
            S3Error::AccessDenied { .. } => "S3AccessDenied",
            S3Error::NoSuchBucket(_) => "BucketNotFound",
            S3Error::Status { .. } => "S3Error",
            S3Error::NotLeader => "LeadershipLost",
        }
    }
}

/// One bucket, with the credentials to use it.
pub struct Store {
    bucket: Bucket,
    creds: Credentials,
    http: reqwest::Client,
    endpoint: String,
}

impl Store {
    pub fn new(http: reqwest::Client, endpoint: &str, bucket: &str, region: &str, access_key: &str, secret_key: &str) -> Result<Self, S3Error> {
        let url = reqwest::Url::parse(endpoint).map_err(|e| S3Error::Config(format!("s3EndpointURL {endpoint:?}: {e}")))?;
        let bucket = Bucket::new(url, UrlStyle::Path, bucket.to_owned(), region.to_owned()).map_err(|e| S3Error::Config(format!("s3EndpointURL {endpoint:?}: {e}")))?;
        Ok(Store { bucket, creds: Credentials::new(access_key.to_owned(), secret_key.to_owned()), http, endpoint: endpoint.to_owned() })
    }

    /// `s3://<bucket>/<key>`, for statuses.
    pub fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket.name())
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> S3Error {
        S3Error::Unreachable { endpoint: self.endpoint.clone(), message: e.to_string() }
    }

    /// A transport error, without its URL: a presigned URL carries the access key id and a
    /// signature that statuses and logs must not show.
    fn transport(&self, e: reqwest::Error) -> S3Error {
        self.unreachable(error_chain(&e.without_url()))
    }

    /// Maps an answer that is not 2xx to its error, from S3's XML `<Code>` and `<Message>`.
    async fn check(&self, op: &'static str, resp: reqwest::Response) -> Result<reqwest::Response, S3Error> {
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let body = tokio::time::timeout(CALL_TIMEOUT, resp.text()).await.ok().and_then(Result::ok).unwrap_or_default();
        let tag = |t: &str| body.split(&format!("<{t}>")).nth(1).and_then(|r| r.split(&format!("</{t}>")).next()).unwrap_or_default().to_owned();
        let (code, message) = (tag("Code"), tag("Message"));
        Err(match (status, code.as_str()) {
            (_, "NoSuchBucket") => S3Error::NoSuchBucket(self.bucket.name().to_owned()),
            (404, "") if op == "HeadBucket" => S3Error::NoSuchBucket(self.bucket.name().to_owned()),
            (401 | 403, _) | (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied") => S3Error::AccessDenied { status, code, message },
            _ => S3Error::Status { op, status, code, message },
        })
    }

    async fn send(&self, op: &'static str, req: reqwest::RequestBuilder) -> Result<reqwest::Response, S3Error> {
        let resp = tokio::time::timeout(CALL_TIMEOUT, req.send()).await.map_err(|_| self.unreachable(format!("no answer within {CALL_TIMEOUT:?}")))?.map_err(|e| self.transport(e))?;
        self.check(op, resp).await
    }

    /// That the bucket exists and the credentials may use it.
    pub async fn check_bucket(&self) -> Result<(), S3Error> {
        let url = self.bucket.head_bucket(Some(&self.creds)).sign(URL_TTL);
        self.send("HeadBucket", self.http.head(url)).await.map(drop)
    }

    /// Uploads `body` of `length` bytes to `key`, as the leader only. The body is streamed: it
    /// is never held in memory whole.
    pub async fn put(&self, guard: &LeadershipGuard, key: &str, body: reqwest::Body, length: u64) -> Result<(), S3Error> {
        let url = self.bucket.put_object(Some(&self.creds), key).sign(URL_TTL);
        let req = self.http.put(url).header(reqwest::header::CONTENT_LENGTH, length).body(body);
        let sent = guard.write(req.send()).await.map_err(|_| S3Error::NotLeader)?.map_err(|e| self.transport(e))?;
        self.check("PutObject", sent).await.map(drop)
    }

    /// A small object (a manifest), whole.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, S3Error> {
        let url = self.bucket.get_object(Some(&self.creds), key).sign(URL_TTL);
        let resp = self.send("GetObject", self.http.get(url)).await?;
        let bytes = tokio::time::timeout(CALL_TIMEOUT, resp.bytes()).await.map_err(|_| self.unreachable("the object did not arrive in time"))?.map_err(|e| self.transport(e))?;
        Ok(bytes.to_vec())
    }

    /// A URL that lets its holder (a Qdrant peer, for a restore) read `key` for [`URL_TTL`].
    pub fn presigned_get(&self, key: &str) -> String {
        self.bucket.get_object(Some(&self.creds), key).sign(URL_TTL).to_string()
    }

    /// Every key under `prefix`, with its size.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, S3Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.creds));
            action.with_prefix(prefix);
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let resp = self.send("ListObjectsV2", self.http.get(action.sign(URL_TTL))).await?;
            let text = tokio::time::timeout(CALL_TIMEOUT, resp.text()).await.map_err(|_| self.unreachable("the listing did not arrive in time"))?.map_err(|e| self.transport(e))?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text).map_err(|e| S3Error::Status { op: "ListObjectsV2", status: 200, code: "MalformedXML".into(), message: e.to_string() })?;
            out.extend(page.contents.into_iter().map(|c| (c.key, c.size)));
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Deletes `key`, as the leader only; a missing key is fine.
    pub async fn delete(&self, guard: &LeadershipGuard, key: &str) -> Result<(), S3Error> {
        let url = self.bucket.delete_object(Some(&self.creds), key).sign(URL_TTL);
        let sent = guard.write(tokio::time::timeout(CALL_TIMEOUT, self.http.delete(url).send())).await.map_err(|_| S3Error::NotLeader)?;
        let resp = sent.map_err(|_| self.unreachable(format!("no answer within {CALL_TIMEOUT:?}")))?.map_err(|e| self.transport(e))?;
        match self.check("DeleteObject", resp).await {
            Ok(_) | Err(S3Error::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `text` with the values of presigned-URL parameters that must stay private (the access key
/// id, the signature, a session token) blanked, wherever they are quoted, whole or cut off.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    for param in ["X-Amz-Credential=", "X-Amz-Signature=", "X-Amz-Security-Token="] {
        let mut from = 0;
        while let Some(at) = out[from..].find(param).map(|i| from + i + param.len()) {
            let end = out[at..].find(|c: char| matches!(c, '&' | ' ' | ')' | '"' | '\'' | '<' | '>' | '\n')).map_or(out.len(), |i| at + i);
            out.replace_range(at..end, "REDACTED");
            from = at + "REDACTED".len();
        }
    }
    out
}

/// An error with its causes: reqwest's own message says little ("error sending request").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The HTTP client backups use for S3: rustls on ring with the platform's roots, like the
/// Qdrant client's, and proxies from the environment (S3 is often reached through one).
pub fn http_client() -> Result<reqwest::Client, String> {
    let tls = crate::qdrant::tls_config(None, rustls_platform_verifier::Verifier::new).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        // A stalled upload or download fails instead of holding a backup forever.
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("qdrant-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_parameters_are_blanked_whole_or_cut_off() {
        let quoted = "Failed to download snapshot from http://s3:9000/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA123%2F20261206%2Fus-east-1&X-Amz-Date=20261206T142804Z&X-Amz-Signature=abcdef0123 (for url (http://s3:9000/b/k?X-Amz-Credential=AKIA1";
        let r = redact(quoted);
        assert!(!r.contains("AKIA") && !r.contains("abcdef"), "{r}");
        assert!(r.contains("X-Amz-Credential=REDACTED&X-Amz-Date=20261206T142804Z&X-Amz-Signature=REDACTED (for url"), "{r}");
        assert!(r.ends_with("X-Amz-Credential=REDACTED"), "a value cut off at the end: {r}");
        assert_eq!(redact("no URL here"), "no URL here");
    }
}

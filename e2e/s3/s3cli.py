#!/usr/bin/env python3
"""A small S3 client for the e2e suites, standard library only (no boto3), signed with AWS
SigV4 by hand. The suites reach it through e2e/utils.sh (s3_mb, s3_put, s3_keys, s3_get, s3_rm).

    s3cli.py mb BUCKET                       create a bucket
    s3cli.py put BUCKET KEY FILE [KEY FILE]  upload FILE ('-': stdin) as KEY; several pairs go
                                             one after the other on one keep-alive connection
    s3cli.py keys BUCKET [PREFIX]            object keys, one a line, sorted
    s3cli.py get BUCKET KEY                  the object's bytes on stdout
    s3cli.py rm BUCKET KEY                   delete an object

Reads S3_ENDPOINT (http://127.0.0.1:PORT: loopback only), S3_ACCESS_KEY, S3_SECRET_KEY and
S3_REGION (default us-east-1); S3CLI_MAX_KEYS (default 1000) is a listing's page size, which
the self-test lowers to exercise continuation. Exit status: 0 done; 1 the server answered
with an error (the message names the request, the HTTP status and S3's error code); 2 usage;
3 no answer at all (connection refused, closed or reset without a response, or timed out),
which is what e2e/s3/faultproxy.py's `down` produces. Nothing is retried."""
import datetime
import hashlib
import hmac
import http.client
import os
import sys
import urllib.parse
import xml.etree.ElementTree as ET

TIMEOUT = 10
NO_ANSWER = 3


def quote(s, safe="-_.~"):
    return urllib.parse.quote(s, safe=safe)


def canonical_query(query):
    """SigV4's canonical query string; sent as is, so what is signed is what the server sees."""
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(query.items()))


def sign(method, host, path, query, headers, body, access, secret, region, service="s3"):
    """The headers to send, with x-amz-date, x-amz-content-sha256 and Authorization added."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {**{k.lower(): v.strip() for k, v in headers.items()},
               "host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    signed = sorted(headers)
    canonical = "\n".join([
        method,
        quote(path, safe="/-_.~"),
        canonical_query(query),
        "".join(f"{k}:{headers[k]}\n" for k in signed),
        ";".join(signed),
        payload_hash,
    ])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access}/{scope}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={signature}")
    return headers


class NoAnswer(Exception):
    """The server (or the fault proxy) closed, reset or refused the connection, or timed out."""


class S3:
    """One keep-alive connection to the server; requests go on it one after the other."""

    def __init__(self, endpoint, access, secret, region):
        if not endpoint:
            raise ValueError("S3_ENDPOINT is not set (s3_up in e2e/utils.sh sets it)")
        u = urllib.parse.urlsplit(endpoint)
        if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost", "::1") or not u.port:
            raise ValueError(f"S3_ENDPOINT must be http://127.0.0.1:PORT (loopback), not {endpoint!r}")
        self.endpoint, self.host = endpoint, u.netloc
        self.access, self.secret, self.region = access, secret, region
        self.conn = http.client.HTTPConnection(self.host, timeout=TIMEOUT)

    def close(self):
        self.conn.close()

    def send(self, method, path, body=b"", query=None, headers=None, secret=None, unsigned=False):
        """Sends a request and returns the response with its body unread; raises NoAnswer."""
        query = query or {}
        if unsigned:
            hdrs = {"host": self.host}
        else:
            hdrs = sign(method, self.host, path, query, headers or {}, body, self.access,
                        self.secret if secret is None else secret, self.region)
        url = quote(path, safe="/-_.~") + ("?" + canonical_query(query) if query else "")
        try:
            self.conn.request(method, url, body=body, headers=hdrs)
            return self.conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            raise NoAnswer(f"{type(e).__name__}: {e}") from e

    def request(self, method, path, body=b"", **kw):
        """(status, body) of one request; raises NoAnswer."""
        r = self.send(method, path, body, **kw)
        try:
            return r.status, r.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            raise NoAnswer(f"{type(e).__name__} while reading the answer: {e}") from e


class S3Error(Exception):
    pass


def error_text(status, body):
    """'404 NoSuchKey: The specified key does not exist.' from S3's XML error document."""
    try:
        root = ET.fromstring(body)
        code, message = root.findtext("Code") or "", root.findtext("Message") or ""
        return f"{status} {code}: {message}".rstrip(": ")
    except ET.ParseError:
        return f"{status} {body[:200]!r}"


class Client:
    def __init__(self, s3):
        self.s3 = s3

    def call(self, what, method, path, ok, **kw):
        try:
            status, body = self.s3.request(method, path, **kw)
        except NoAnswer as e:
            raise NoAnswer(f"{what}: no answer from {self.s3.endpoint} ({e})") from None
        if status not in ok:
            raise S3Error(f"{what}: {error_text(status, body)}")
        return body

    def mb(self, bucket):
        self.call(f"create bucket {bucket}", "PUT", f"/{bucket}", (200,))

    def put(self, bucket, pairs):
        """pairs: (key, bytes), sent in order on one connection."""
        for key, data in pairs:
            self.call(f"put s3://{bucket}/{key}", "PUT", f"/{bucket}/{key}", (200,), body=data,
                      headers={"content-type": "application/octet-stream"})

    def keys(self, bucket, prefix=""):
        """Every key under prefix (ListObjectsV2, page after page), sorted."""
        keys, token = [], None
        page = os.environ.get("S3CLI_MAX_KEYS", "1000")
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": page}
            if token:
                query["continuation-token"] = token
            body = self.call(f"list s3://{bucket}/{prefix}", "GET", f"/{bucket}", (200,), query=query)
            try:
                root = ET.fromstring(body)
            except ET.ParseError as e:
                raise S3Error(f"list s3://{bucket}/{prefix}: not a listing ({e}): {body[:200]!r}") from None
            ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            keys += [c.findtext(f"{ns}Key") for c in root.findall(f"{ns}Contents")]
            token = root.findtext(f"{ns}NextContinuationToken")
            if root.findtext(f"{ns}IsTruncated") != "true":
                return sorted(keys)
            if not token:
                raise S3Error(f"list s3://{bucket}/{prefix}: truncated page without a continuation token")

    def get(self, bucket, key, out):
        what = f"get s3://{bucket}/{key}"
        r = None
        while True:
            try:
                if r is None:
                    r = self.s3.send("GET", f"/{bucket}/{key}")
                    if r.status != 200:
                        raise S3Error(f"{what}: {error_text(r.status, r.read())}")
                chunk = r.read(1 << 16)
            except (NoAnswer, OSError, http.client.HTTPException) as e:
                raise NoAnswer(f"{what}: no answer from {self.s3.endpoint} ({e})") from None
            if not chunk:
                break
            out.write(chunk)
        out.flush()

    def rm(self, bucket, key):
        self.call(f"delete s3://{bucket}/{key}", "DELETE", f"/{bucket}/{key}", (204,))


class Unreadable(Exception):
    pass


def read_file(name):
    """FILE's bytes ('-': stdin's)."""
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as e:
        raise Unreadable(f"cannot read {name}: {e}") from None


USAGE = "usage: s3cli.py mb BUCKET | put BUCKET KEY FILE [KEY FILE]... | keys BUCKET [PREFIX] | get BUCKET KEY | rm BUCKET KEY"


def main(argv):
    arities = {"mb": (1, 1), "keys": (1, 2), "get": (2, 2), "rm": (2, 2), "put": (3, None)}
    if not argv or argv[0] not in arities:
        print(USAGE, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    lo, hi = arities[cmd]
    if len(args) < lo or (hi is not None and len(args) > hi) or (cmd == "put" and len(args) % 2 == 0):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        s3 = S3(os.environ.get("S3_ENDPOINT", ""), os.environ.get("S3_ACCESS_KEY", ""),
                os.environ.get("S3_SECRET_KEY", ""), os.environ.get("S3_REGION") or "us-east-1")
    except ValueError as e:
        print(f"s3cli: {e}", file=sys.stderr)
        return 2
    client = Client(s3)
    try:
        if cmd == "mb":
            client.mb(args[0])
        elif cmd == "put":
            client.put(args[0], [(k, read_file(f)) for k, f in zip(args[1::2], args[2::2])])
        elif cmd == "keys":
            for k in client.keys(*args):
                print(k)
        elif cmd == "get":
            client.get(args[0], args[1], sys.stdout.buffer)
        elif cmd == "rm":
            client.rm(*args)
    except S3Error as e:
        print(f"s3cli: {e} (endpoint {s3.endpoint})", file=sys.stderr)
        return 1
    except NoAnswer as e:
        print(f"s3cli: {e}", file=sys.stderr)
        return NO_ANSWER
    except Unreadable as e:
        print(f"s3cli: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Whoever read stdout stopped (cmp at a difference, head): not an S3 error, no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        s3.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Round trip against the local S3 server (e2e/s3/s3.sh), signed with AWS SigV4 by hand by
s3cli.py's client (standard library only): create a bucket, PUT an object, GET it back byte for byte, list it,
and check that the server refuses a request signed with the wrong secret and an unsigned one,
so a server that ignores signatures fails this too. Reads S3_ENDPOINT, S3_ACCESS_KEY,
S3_SECRET_KEY and S3_REGION. Prints one line a check and closes with 'N passed, N failed'."""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository
from s3cli import S3  # noqa: E402  (the same SigV4 client the suites use, next to this file)


def main():
    s3 = S3(os.environ["S3_ENDPOINT"], os.environ["S3_ACCESS_KEY"], os.environ["S3_SECRET_KEY"],
            os.environ.get("S3_REGION", "us-east-1"))
    bucket, key = "qdrant-e2e-selftest", "snapshots/collection a/snap-1.snapshot"
    payload = os.urandom(256 * 1024) + "ünïcode ✓".encode()
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + detail}")
        passed, failed = passed + bool(ok), failed + (not ok)

    st, body = s3.request("PUT", f"/{bucket}")
    check("create bucket", st == 200, f"{st} {body[:300]!r}")
    st, body = s3.request("PUT", f"/{bucket}/{key}", body=payload,
                          headers={"content-type": "application/octet-stream"})
    check("put object", st == 200, f"{st} {body[:300]!r}")
    st, body = s3.request("GET", f"/{bucket}/{key}")
    check("get object returns the same bytes", st == 200 and body == payload,
          f"{st}, {len(body)} bytes back of {len(payload)}")
    st, body = s3.request("GET", f"/{bucket}", query={"list-type": "2", "prefix": "snapshots/"})
    check("list objects names it", st == 200 and b"<Key>snapshots/collection a/snap-1.snapshot</Key>" in body,
          f"{st} {body[:300]!r}")
    st, body = s3.request("GET", f"/{bucket}/{key}", secret="not-the-secret")
    check("wrong secret is refused", st == 403, f"{st} {body[:300]!r}")
    st, body = s3.request("GET", f"/{bucket}/{key}", unsigned=True)
    check("unsigned request is refused", st == 403, f"{st} {body[:300]!r}")
    st, body = s3.request("DELETE", f"/{bucket}/{key}")
    check("delete object", st == 204, f"{st} {body[:300]!r}")
    st, body = s3.request("GET", f"/{bucket}/{key}")
    check("deleted object is gone", st == 404, f"{st} {body[:300]!r}")
    st, body = s3.request("DELETE", f"/{bucket}")
    check("delete bucket", st == 204, f"{st} {body[:300]!r}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A loopback TCP proxy in front of the local S3 server, for fault tests (standard library only).

    faultproxy.py --listen 127.0.0.1:0 --target 127.0.0.1:PORT --state DIR
        serves; prints the port it listens on, and writes it to DIR/port and its PID to DIR/pid
        (DIR/port appears once it accepts connections)
    faultproxy.py --state DIR --set-mode MODE...
        checks MODE and writes it to DIR/mode in one rename, so the proxy never reads half of it

The mode is read from DIR/mode (absent: pass) at each new connection and at each request:
  pass                 forward everything
  down                 accept, then close at once without an answer: S3 is unreachable
  down-after-puts N    forward the first N PUT requests seen since the mode was set (every PUT
                       counts: PutObject, UploadPart, CreateBucket), and anything else until
                       then; after the Nth, behave like down
  slow SECONDS         hold every PUT request SECONDS (a number >= 0, such as 1.5) before
                       forwarding it, then forward it; other requests go through at once. The
                       hold is per request, in that connection's own thread: other connections
                       are not held, and the mode in force when a PUT arrives decides its hold
--set-mode adds a line "# set <ns> by <pid>" (lines starting with # are comments), so a mode
counts as newly set, and its PUT count starts again, whenever --set-mode writes it, even unchanged.

It follows HTTP/1.1 on the client's side only as far as counting requests needs: each request's
line and headers, then Content-Length bytes of body, request after request on a keep-alive
connection. A chunked request body (Transfer-Encoding) is refused with 501 and a message
saying so. Answers are copied back untouched. One line a connection and a request on stderr."""
import argparse
import ipaddress
import os
import re
import signal
import socket
import sys
import threading
import time

MAX_HEAD = 64 * 1024
CONNECT_TIMEOUT = 5


def log(msg):
    print(f"[faultproxy {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


SECONDS = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")  # no sign, exponent, inf or nan


def parse_mode(words):
    """(name, argument) of a mode from its words: ('pass'|'down', 0), ('down-after-puts', N)
    or ('slow', SECONDS as a float); ValueError if malformed."""
    if words in (["pass"], ["down"]):
        return words[0], 0
    if len(words) == 2 and words[0] == "down-after-puts" and words[1].isdigit():
        return words[0], int(words[1])
    if words[:1] == ["slow"]:
        if len(words) == 2 and SECONDS.fullmatch(words[1]):
            return words[0], float(words[1])
        raise ValueError(f"bad mode {' '.join(words)!r}: slow takes one SECONDS, "
                         "a number >= 0 such as 1.5")
    raise ValueError(f"unknown mode {' '.join(words)!r}: "
                     "pass | down | down-after-puts N | slow SECONDS")


def mode_text(mode, arg):
    """A parsed mode as it is written: 'down', 'down-after-puts 2', 'slow 1.5'."""
    return mode if mode in ("pass", "down") else f"{mode} {arg:g}"


def write_atomically(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Modes:
    """DIR/mode, read afresh at every decision, and the PUTs forwarded since it was last set."""

    def __init__(self, state):
        self.path = os.path.join(state, "mode")
        self.lock = threading.Lock()
        self.setting, self.puts = None, 0

    def _current(self):
        """The mode now; the PUT count starts again when DIR/mode changed since last read."""
        try:
            with open(self.path) as f:
                text = f.read()
        except FileNotFoundError:
            text = "pass"
        if text != self.setting:
            self.setting, self.puts = text, 0
        words = " ".join(line for line in text.splitlines() if not line.startswith("#")).split()
        try:
            return parse_mode(words or ["pass"])
        except ValueError as e:
            # --set-mode refuses what it cannot parse; a hand-written bad file counts as down,
            # loudly, rather than letting everything through.
            log(f"{self.path}: {e}; behaving like down")
            return "down", 0

    def admit_connection(self):
        """(admitted, the mode's text) for a new connection."""
        with self.lock:
            mode, n = self._current()
            return self._open(mode, n), mode_text(mode, n)

    def admit_request(self, method):
        """(admitted, seconds to hold it before forwarding, a note for the log) for one request.
        The caller holds it, outside the lock, so that no other connection waits."""
        with self.lock:
            mode, n = self._current()
            if not self._open(mode, n):
                return False, 0, f"refused ({mode_text(mode, n)})"
            if mode == "down-after-puts" and method == "PUT":
                self.puts += 1
                return True, 0, f"forwarded (PUT {self.puts} of {n})"
            if mode == "slow" and method == "PUT":
                return True, n, f"held {n:g} s, then forwarded ({mode_text(mode, n)})"
            return True, 0, "forwarded"

    def _open(self, mode, n):
        return mode in ("pass", "slow") or (mode == "down-after-puts" and self.puts < n)


class BadRequest(Exception):
    pass


class Unsupported(Exception):
    pass


def read_head(sock, buf):
    """The next request's head (bytes up to and with the blank line) and what follows it in buf;
    (None, b'') at a clean end of the connection."""
    while True:
        buf = buf.lstrip(b"\r\n")  # empty lines before a request line are allowed
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            return buf[:end + 4], buf[end + 4:]
        if len(buf) > MAX_HEAD:
            raise BadRequest(f"request head longer than {MAX_HEAD} bytes")
        chunk = sock.recv(65536)
        if not chunk:
            if buf:
                raise BadRequest("connection closed in the middle of a request head")
            return None, b""
        buf += chunk


def parse_head(head):
    """(method, target, content_length) of a request head; BadRequest for what it cannot follow."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"not an HTTP/1.x request line: {lines[0][:100]!r}")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(f"malformed header line {line[:100]!r}")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if "transfer-encoding" in headers:
        raise Unsupported("chunked (Transfer-Encoding) request bodies are not supported by "
                          "e2e/s3/faultproxy.py: send a Content-Length")
    lengths = set(headers.get("content-length", ["0"]))
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        raise BadRequest(f"bad Content-Length {sorted(lengths)}")
    return parts[0], parts[1], int(lengths.pop())


def close(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def copy_answers(upstream, client):
    """Answers go back untouched, until the server closes its side."""
    try:
        while data := upstream.recv(65536):
            client.sendall(data)
        client.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(conn_id, client, target, modes):
    admitted, mode = modes.admit_connection()
    if not admitted:
        log(f"conn {conn_id}: closed at once ({mode})")
        close(client)
        return
    try:
        upstream = socket.create_connection(target, timeout=CONNECT_TIMEOUT)
        upstream.settimeout(None)
    except OSError as e:
        log(f"conn {conn_id}: cannot reach {target[0]}:{target[1]} ({e}); closing")
        close(client)
        return
    answers = threading.Thread(target=copy_answers, args=(upstream, client), daemon=True)
    answers.start()
    buf, n = b"", 0
    try:
        while True:
            head, buf = read_head(client, buf)
            if head is None:
                try:
                    upstream.shutdown(socket.SHUT_WR)  # the client is done; let the answers finish
                except OSError:
                    pass
                answers.join()
                return
            n += 1
            method, path, length = parse_head(head)
            admitted, hold, note = modes.admit_request(method)
            log(f"conn {conn_id} req {n}: {method} {path}: {note}")
            if not admitted:
                return
            time.sleep(hold)  # this connection's thread only; its body waits in the socket
            upstream.sendall(head)
            body, buf = buf[:length], buf[length:]
            upstream.sendall(body)
            left = length - len(body)
            while left:
                chunk = client.recv(min(left, 65536))
                if not chunk:
                    raise BadRequest("connection closed in the middle of a request body")
                upstream.sendall(chunk)
                left -= len(chunk)
    except Unsupported as e:
        log(f"conn {conn_id} req {n}: refused: {e}")
        msg = f"faultproxy: {e}\n".encode()
        try:
            client.sendall(b"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain\r\n"
                           b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg))
        except OSError:
            pass
    except BadRequest as e:
        log(f"conn {conn_id}: {e}; closing")
    except OSError as e:
        log(f"conn {conn_id}: {type(e).__name__}: {e}; closing")
    finally:
        close(client, upstream)


def address(text, what):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"faultproxy: {what} must be HOST:PORT, not {text!r}")
    return host, int(port)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", help="loopback HOST:PORT to listen on (PORT 0: any free port)")
    p.add_argument("--target", help="HOST:PORT of the S3 server")
    p.add_argument("--state", required=True, help="directory of port, pid and mode")
    p.add_argument("--set-mode", nargs="+", metavar="MODE", help="write DIR/mode and exit")
    a = p.parse_args()
    if a.set_mode:
        try:
            parse_mode(a.set_mode)
        except ValueError as e:
            print(f"faultproxy: {e}", file=sys.stderr)
            sys.exit(2)
        os.makedirs(a.state, exist_ok=True)
        write_atomically(os.path.join(a.state, "mode"),
                         f"{' '.join(a.set_mode)}\n# set {time.time_ns()} by {os.getpid()}\n")
        return
    if not a.listen or not a.target:
        p.error("--listen and --target are needed to serve")
    listen, target = address(a.listen, "--listen"), address(a.target, "--target")
    if not ipaddress.ip_address(listen[0]).is_loopback:
        raise SystemExit(f"faultproxy: listens on loopback only, not {listen[0]}")
    os.makedirs(a.state, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    modes = Modes(a.state)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(listen)
    srv.listen(128)
    port = srv.getsockname()[1]
    write_atomically(os.path.join(a.state, "pid"), f"{os.getpid()}\n")
    write_atomically(os.path.join(a.state, "port"), f"{port}\n")
    print(port, flush=True)
    log(f"pid {os.getpid()} listening on {listen[0]}:{port}, forwarding to {target[0]}:{target[1]}")
    conn_id = 0
    try:
        while True:
            client, _ = srv.accept()
            conn_id += 1
            threading.Thread(target=serve, args=(conn_id, client, target, modes), daemon=True).start()
    finally:
        log("stopping")
        for f in ("port", "pid"):
            try:
                os.remove(os.path.join(a.state, f))
            except FileNotFoundError:
                pass


if __name__ == "__main__":
    main()

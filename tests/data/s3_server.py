"""Test support: a real S3-compatible server (moto's standalone server) on 127.0.0.1, plus a fault proxy.

:class:`MotoServer` starts ``moto_server`` on a free port in its own process group and stops it by
killing that group. :class:`FaultProxy` sits between boto3 and the server and injects the failures
an S3 client must survive: HTTP 503 answers, and GET bodies cut off after a number of bytes.
Used by tests/data/test_s3.py, test_wds.py, test_shards.py and benchmarks/bench_wds_loading.py.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
AWS_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_server_binary() -> str:
    candidate = Path(sys.executable).with_name("moto_server")
    return str(candidate) if candidate.exists() else "moto_server"


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


class MotoServer:
    """``moto_server -H 127.0.0.1 -p PORT`` as a child process group (state lives in memory)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> MotoServer:
        self.proc = subprocess.Popen(
            [moto_server_binary(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if wait:
            wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class FaultProxy:
    """An HTTP proxy to ``upstream_port`` that can fail requests on purpose.

    ``fail_next(n, status)`` answers the next ``n`` requests with ``status`` (default 503, S3's
    "slow down"); ``cut_next_gets(n, after)`` sends only the first ``after`` body bytes of the next
    ``n`` object GETs and then drops the connection. ``requests`` counts what reached the proxy.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.requests = 0
        self.failures_left = 0
        self.fail_status = 503
        self.cuts_left = 0
        self.cut_after = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.requests += 1
                    fail = proxy.failures_left > 0
                    proxy.failures_left -= int(fail)
                    cut = (not fail) and self.command == "GET" and "list-type" not in self.path and proxy.cuts_left > 0
                    proxy.cuts_left -= int(cut)
                if fail:
                    payload = b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"
                    self.send_response(proxy.fail_status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = f"127.0.0.1:{proxy.upstream_port}"
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                upstream_length = resp.getheader("Content-Length")
                if self.command == "HEAD":
                    self.send_header("Content-Length", upstream_length or "0")
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(data)))
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                if cut and len(data) > proxy.cut_after:
                    self.wfile.write(data[: proxy.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, n: int, status: int = 503) -> None:
        with self.lock:
            self.failures_left, self.fail_status = n, status

    def cut_next_gets(self, n: int, after: int) -> None:
        with self.lock:
            self.cuts_left, self.cut_after = n, after

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

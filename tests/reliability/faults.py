"""Real faults for the reliability tests: a small HTTP proxy that answers 5xx or stalls in
front of a real server (moto's S3, an MLflow tracking server), and an MLflow tracking
server process the tests start, kill and start again."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
              "expect"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Fault:
    """What the proxy does to the requests that ``match``: the first ``times`` of them
    (after ``armed_by`` has been forwarded, when given) get ``status`` or, with
    ``stall_seconds``, no answer at all for that long. ``every_other`` fails every other
    matching request instead."""

    status: int = 503
    times: int = 0
    stall_seconds: float = 0.0
    every_other: bool = False
    match: Callable[[str, str], bool] = lambda method, path: True
    armed_by: Callable[[str, str], bool] | None = None


@dataclass
class FaultyProxy:
    """A real HTTP proxy on a loopback port, forwarding to ``upstream`` unless a fault says otherwise."""

    upstream: str
    fault: Fault = field(default_factory=Fault)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, what happened)
    _matched: int = 0
    _armed: bool = False

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                action = proxy._decide(self.command, self.path)
                if action == "stall":
                    time.sleep(proxy.fault.stall_seconds)
                    self.close_connection = True  # the client gave up long ago: no answer at all
                    return
                if action == "fail":
                    error = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable</Code>"
                             b"<Message>injected by the test proxy</Message></Error>")
                    self.send_response(proxy.fault.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                target = urlparse(proxy.upstream)
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if body or self.command in ("PUT", "POST", "PATCH"):
                    headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                elif answer.getheader("Content-Length"):
                    self.send_header("Content-Length", answer.getheader("Content-Length"))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()
                with proxy.lock:
                    if proxy.fault.armed_by is not None and proxy.fault.armed_by(self.command, self.path):
                        proxy._armed = True

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _decide(self, method: str, path: str) -> str:
        with self.lock:
            fault = self.fault
            hit = fault.match(method, path) and (fault.armed_by is None or self._armed)
            action = "forward"
            if hit:
                self._matched += 1
                if fault.every_other:
                    action = "fail" if self._matched % 2 == 1 else "forward"
                elif self._matched <= fault.times:
                    action = "stall" if fault.stall_seconds else "fail"
            self.log.append((method, path, action))
            return action

    def set(self, fault: Fault) -> None:
        with self.lock:
            self.fault, self._matched, self._armed = fault, 0, False
            self.log.clear()

    def seen(self, method: str, path_part: str = "") -> list[str]:
        """What happened to each request with this method whose path contains ``path_part``."""
        with self.lock:
            return [action for m, p, action in self.log if m == method and path_part in p]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MlflowServer:
    """``mlflow server`` on a fixed loopback port over a SQLite store, as a process the
    test can kill (SIGKILL: a crash, not a clean stop) and start again on the same store.
    With ``admin_password``, MLflow's basic-auth app guards it (user ``admin``)."""

    def __init__(self, folder: Path, admin_password: str = "") -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_password = admin_password
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> None:
        command = [str(Path(sys.executable).parent / "mlflow"), "server",
                   "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                   "--default-artifact-root", (self.folder / "server-artifacts").as_uri(),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        env = dict(os.environ)
        if self.admin_password:
            config = self.folder / "basic_auth.ini"
            config.write_text("[mlflow]\ndefault_permission = READ\n"
                              f"database_uri = sqlite:///{self.folder / 'auth.db'}\nadmin_username = admin\n"
                              "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                              "auth_cache_ttl_seconds = 300\n")
            env.update(MLFLOW_AUTH_CONFIG_PATH=str(config), MLFLOW_AUTH_ADMIN_PASSWORD=self.admin_password,
                       MLFLOW_FLASK_SERVER_SECRET_KEY=os.urandom(16).hex())
            command += ["--app-name", "basic-auth"]
        log = open(self.folder / "server.log", "ab")  # noqa: SIM115 - the process keeps it
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2)
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    log_text = (self.folder / "server.log").read_text()[-3000:]
                    raise AssertionError(f"mlflow server did not start: {log_text}")
                time.sleep(0.2)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # the server and its uvicorn worker
            self.process.wait(timeout=30)
        self.process = None

"""Fixtures: a real `tmpipe webui serve` process and a fault-injecting proxy in front of it."""

import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest


class FaultProxy:
    """A reverse proxy on 127.0.0.1 that injects faults in front of a real server.

    Faults are scripted per request: "500" answers 500, "stall" holds the request without an
    answer until the client gives up, "drop_after" forwards the request and then answers 502 (the
    server did the work but the client never hears so), "pass" forwards.
    """

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.script: list[str] = []
        self.seen: list[tuple[str, str, str]] = []  # (method, path, fault)
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy.script.pop(0) if proxy.script else "pass"
                proxy.seen.append((self.command, self.path, fault))
                if fault == "500":
                    return self._answer(500, b'{"detail": "injected failure"}')
                if fault == "stall":
                    proxy._release.wait(timeout=10)
                    return None
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
                response = httpx.request(self.command, proxy.upstream + self.path, content=body, headers=headers)
                if fault == "drop_after":
                    return self._answer(502, b'{"detail": "injected bad gateway after forwarding"}')
                return self._answer(response.status_code, response.content)

            def _answer(self, status: int, payload: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webui_server(tmp_path):
    """`tmpipe webui serve` for real, in its own process, stopped by PID."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tmpipe", "webui", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(tmp_path / "webui.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"webui server did not start: {proc.stdout.read().decode()}")
        time.sleep(0.1)  # polling for readiness, not for timing assertions
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def fault_proxy(webui_server):
    with FaultProxy(webui_server) as proxy:
        yield proxy

"""A real server for the service tests: the app under uvicorn in a thread, on a loopback socket bound to a
free port, and one JSON call helper."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import uvicorn


@contextlib.contextmanager
def running(app):
    """Yields the base URL (``http://127.0.0.1:<port>``) while the app serves."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start within 20 s"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def call(base: str, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_process(model, *flags, env: dict | None = None, stderr_path=None, timeout: float = 120):
    """`recdistill serve MODEL --port P FLAGS` as a user starts it, in its own process. Yields
    ``(base_url, process, first_line)`` once /health answers; stderr goes to ``stderr_path`` if given.
    Stopped with SIGTERM (its exit code is in ``process.returncode`` afterwards)."""
    import os
    import subprocess
    import sys

    port = free_port()
    err = open(stderr_path, "w") if stderr_path else subprocess.STDOUT
    proc = subprocess.Popen([sys.executable, "-m", "recdistill", "serve", str(model), "--port", str(port), *flags],
                            stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        first = proc.stdout.readline()
        deadline = time.time() + timeout
        while True:
            assert proc.poll() is None, first + proc.stdout.read()
            try:
                if call(base, "GET", "/health")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            assert time.time() < deadline, "the server did not answer /health in time"
            time.sleep(0.2)
        yield base, proc, first
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if stderr_path:
            err.close()

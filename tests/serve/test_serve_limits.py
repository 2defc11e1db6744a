"""`serve` limits and operation: startup errors, the port bound before "serving", API keys, a body-size limit
before parsing, a per-request work cap, docs off by default, SIGTERM drains and exits 0. A real server (a
subprocess, or uvicorn in a thread) on loopback; each bad case is followed by a good request."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from recdistill.cli import main
from recdistill.serve.http_app import build_app
from recdistill.serve.source import open_model

KEY = "k" * 20 + "-test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port, method, path, body: bytes | None = None, headers=None, chunked=False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", **(headers or {})}
    if chunked:
        conn.putrequest(method, path)
        for k, v in {**headers, "Transfer-Encoding": "chunked"}.items():
            conn.putheader(k, v)
        conn.endheaders()
        for i in range(0, len(body), 65536):
            part = body[i:i + 65536]
            try:
                conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
    else:
        conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data else {}


@pytest.fixture(scope="module")
def keyed(tiny_recommenders):
    from serve_helpers import running

    app = build_app(open_model(tiny_recommenders["distill"]), max_k=20, max_batch=8, api_keys=[KEY],
                    max_body_bytes=10_000, max_batch_items=50)
    with running(app) as base:
        yield int(base.rsplit(":", 1)[1])


def _good(port):
    status, body = _request(port, "POST", "/recommend", json.dumps({"user": 1, "k": 3}).encode(), {"X-API-Key": KEY})
    assert status == 200 and len(body["items"]) == 3


def test_api_key_is_required_except_for_health(keyed):
    assert _request(keyed, "GET", "/health")[0] == 200
    status, body = _request(keyed, "POST", "/recommend", json.dumps({"user": 1}).encode())
    assert status == 401 and "X-API-Key" in body["error"]
    assert _request(keyed, "POST", "/recommend", json.dumps({"user": 1}).encode(), {"X-API-Key": KEY + "x"})[0] == 401
    _good(keyed)


def test_large_bodies_are_refused_before_parsing(keyed):
    big = json.dumps({"history": list(range(1, 5000)), "k": 3}).encode()
    status, body = _request(keyed, "POST", "/recommend", big, {"X-API-Key": KEY})
    assert status == 413 and "10000 bytes" in body["error"]
    _good(keyed)
    status, body = _request(keyed, "POST", "/recommend", big, {"X-API-Key": KEY}, chunked=True)
    assert status == 413
    _good(keyed)


def test_work_per_request_is_capped(keyed):
    batch = {"requests": [{"history": list(range(1, 31)), "k": 3}, {"history": list(range(1, 31)), "k": 3}]}
    status, body = _request(keyed, "POST", "/recommend/batch", json.dumps(batch).encode(), {"X-API-Key": KEY})
    assert status == 413 and "60 history items" in body["error"]
    _good(keyed)


def test_interactive_docs_are_off_by_default(keyed):
    assert _request(keyed, "GET", "/docs", headers={"X-API-Key": KEY})[0] == 404
    assert _request(keyed, "GET", "/openapi.json", headers={"X-API-Key": KEY})[0] == 404


@pytest.mark.parametrize("extra, message", [
    (["--port", "70000"], "--port 70000 is out of range"),
    (["--port", "0"], "--port 0 is out of range"),
    (["--max-k", "0"], "--max-k 0 is not valid"),
    (["--max-batch", "0"], "--max-batch 0 is not valid"),
    (["--host", "0.0.0.0"], "no API key is set"),
])
def test_startup_errors_are_clear(tiny_recommenders, capsys, monkeypatch, extra, message):
    monkeypatch.delenv("RECDISTILL_API_KEYS", raising=False)
    assert main(["serve", str(tiny_recommenders["student"]), *extra]) == 2
    assert message in capsys.readouterr().err


def test_a_port_in_use_and_short_keys_are_clear_errors(tiny_recommenders, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(tiny_recommenders["student"]), "--port", str(port)]) == 2
        assert "is in use" in capsys.readouterr().err
    keys = tmp_path / "keys"
    keys.write_text("short\n")
    assert main(["serve", str(tiny_recommenders["student"]), "--api-key-file", str(keys)]) == 2
    assert "shorter than 16" in capsys.readouterr().err


def test_serving_is_printed_after_binding_and_sigterm_drains_and_exits_zero(tiny_recommenders, tmp_path):
    port = _free_port()
    keys = tmp_path / "keys"
    keys.write_text(KEY + "\n")
    env = {**os.environ, "RECDISTILL_API_KEYS": ""}
    proc = subprocess.Popen([sys.executable, "-m", "recdistill", "serve", str(tiny_recommenders["student"]),
                             "--port", str(port), "--api-key-file", str(keys)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        while line and "serving" not in line:
            line = proc.stdout.readline()
        assert "serving" in line and "1 API key" in line
        # the port is bound when "serving" is printed: a connection succeeds at once
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                _good(port)
                break
            except (ConnectionError, OSError):
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "stopped on SIGTERM: open requests drained" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_oversize_headers_are_refused(keyed):
    status, body = _request(keyed, "GET", "/health", headers={"X-Big": "a" * 20_000})
    assert status == 431 and "headers over 16384 bytes" in body["error"]
    _good(keyed)


def test_the_bound_socket_answers_without_nagle_delays():
    """asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets; a proto-0 socket made every keep-alive answer
    after the first wait ~40 ms for a delayed ACK."""
    from recdistill.recipes.serve import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()

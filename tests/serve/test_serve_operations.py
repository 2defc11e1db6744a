"""`serve` in operation: several workers (uvicorn's supervisor), idle and slow connections closed, the JSON
access log, Prometheus /metrics (summed over workers). Real servers on loopback; every bad case is followed
by a good request that still answers correctly."""

from __future__ import annotations

import json
import re
import socket
import time

import numpy as np
import pytest
from serve_helpers import call, running, serve_process

from recdistill.serve.http_app import build_app
from recdistill.serve.observe import json_access_logger
from recdistill.serve.recommend import recommend_histories
from recdistill.serve.source import open_model

KEY = "m" * 20 + "-metrics-key"


def _expected(model, user: int, k: int) -> list[int]:
    served = open_model(model)
    (ids, _), = recommend_histories(served.scorer, served.max_len, [served.catalogue.history(user)], k)
    return ids.tolist()


def _count(metrics_text: str, path: str, status: str) -> float:
    pattern = rf'^recdistill_requests_total{{path="{re.escape(path)}",status="{status}"}} ([0-9.e+]+)$'
    found = re.search(pattern, metrics_text, re.M)
    return float(found.group(1)) if found else 0.0


def _metrics(base: str, headers=None) -> str:
    import urllib.request

    req = urllib.request.Request(base + "/metrics", headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read().decode()


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_two_workers_answer_correctly_and_metrics_sum_over_them(tiny_recommenders, tmp_path, backend):
    from recdistill.cli import main

    model = tiny_recommenders["student"]
    if backend == "onnxruntime":
        assert main(["export-model", str(model), "--out", str(tmp_path / "onnx")]) == 0
        model = tmp_path / "onnx"
    expected = {u: _expected(model, u, 4) for u in (1, 2, 3)}
    with serve_process(model, "--workers", "2", "--threads", "1", stderr_path=tmp_path / "err") as (base, proc, first):
        assert "2 worker(s) x 1 thread(s)" in first and f"({backend})" in first
        for _ in range(4):
            for user, ids in expected.items():
                status, body = call(base, "POST", "/recommend", {"user": user, "k": 4})
                assert status == 200 and [i["item"] for i in body["items"]] == ids
        assert call(base, "POST", "/recommend", {"user": 10_000})[0] == 404
        text = _metrics(base)
        # 12 good answers, whichever worker gave them (prometheus-client's multiprocess mode sums them)
        assert _count(text, "/recommend", "200") == 12 and _count(text, "/recommend", "404") == 1
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped on SIGTERM" in out


def test_bad_worker_flags_are_clear_errors(tiny_recommenders, capsys):
    from recdistill.cli import main

    for flags, message in ((["--workers", "0"], "--workers 0 is not valid"), (["--threads", "0"], "--threads 0"),
                           (["--idle-timeout", "0"], "--idle-timeout 0"), (["--port", "-1"], "--port -1 is out of range")):
        assert main(["serve", str(tiny_recommenders["student"]), *flags]) == 2
        assert message in capsys.readouterr().err


def _closed_within(port: int, send: bytes, limit: float) -> float:
    """Seconds until the server closes a connection that sent only ``send``."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit + 10) as s:
        start = time.perf_counter()
        if send:
            s.sendall(send)
        data = s.recv(65536)  # b"" once the server closes it
        assert data == b"", data
        return time.perf_counter() - start


def test_idle_and_slow_connections_are_closed(tiny_recommenders):
    model = tiny_recommenders["student"]
    with serve_process(model, "--idle-timeout", "1") as (base, proc, first):
        port = int(base.rsplit(":", 1)[1])
        assert "idle timeout 1 s" in first
        assert _closed_within(port, b"", 5) < 3  # opened, never sent a byte
        assert _closed_within(port, b"POST /recommend HTTP/1.1\r\nHost: x\r\n", 5) < 3  # headers never finished
        body = b'{"user": 1, "k": 3}'
        head = (b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body) + 10).encode() + b"\r\n\r\n")
        assert _closed_within(port, head + body, 5) < 3  # body shorter than announced
        # a keep-alive connection: the answer comes, then the idle connection is closed
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
            answer = s.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            start = time.perf_counter()
            while s.recv(65536):
                pass
            assert time.perf_counter() - start < 3
        status, good = call(base, "POST", "/recommend", {"user": 1, "k": 3})
        assert status == 200 and len(good["items"]) == 3
        # headers over 16 KiB are refused, whether they arrive in one piece (431) or trickle in (h11's 400)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
            got = s.recv(65536)
            assert got.startswith(b"HTTP/1.1 431"), got
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000)
            s.sendall(b"a" * 10_000)
            assert s.recv(65536).startswith(b"HTTP/1.1 400")
        assert call(base, "POST", "/recommend", {"user": 1, "k": 3}) == (status, good)


def test_json_access_log_lines(tiny_recommenders, tmp_path):
    err = tmp_path / "stderr"
    with serve_process(tiny_recommenders["student"], "--access-log", "json", stderr_path=err) as (base, proc, first):
        assert "JSON access log" in first
        assert call(base, "POST", "/recommend", {"user": 1, "k": 3}, {"X-Request-ID": "abc-123"})[0] == 200
        assert call(base, "POST", "/recommend", {"history": [10_000]})[0] == 422
        assert call(base, "GET", "/nope")[0] == 404
    lines = [json.loads(line) for line in err.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["path"] != "/health"]
    assert [(line["method"], line["path"], line["status"]) for line in mine] == [
        ("POST", "/recommend", 200), ("POST", "/recommend", 422), ("GET", "/nope", 404)]
    assert mine[0]["request_id"] == "abc-123" and len(mine[1]["request_id"]) == 32  # given, or made up
    assert all(line["latency_ms"] >= 0 and line["client"] == "127.0.0.1" for line in mine)


@pytest.fixture(scope="module")
def keyed_with_log(tiny_recommenders):
    app = build_app(open_model(tiny_recommenders["distill"]), max_k=20, api_keys=[KEY], max_body_bytes=2_000,
                    access_log=json_access_logger())
    with running(app) as base:
        yield base


def test_metrics_count_by_path_and_status_and_need_the_key(keyed_with_log):
    base, auth = keyed_with_log, {"X-API-Key": KEY}
    assert call(base, "GET", "/metrics")[0] == 401
    before = _metrics(base, auth)
    assert call(base, "POST", "/recommend", {"user": 1, "k": 3}, auth)[0] == 200
    assert call(base, "POST", "/recommend", {"user": 1, "k": 3})[0] == 401
    assert call(base, "POST", "/recommend", {"history": list(range(1, 2000))}, auth)[0] == 413
    assert call(base, "GET", "/items/3", None, auth)[0] == 200
    assert call(base, "GET", "/no/such/path", None, auth)[0] == 404
    after = _metrics(base, auth)
    for path, status in (("/recommend", "200"), ("/recommend", "401"), ("/recommend", "413"), ("/items/{id}", "200"),
                         ("other", "404")):
        assert _count(after, path, status) - _count(before, path, status) == 1, (path, status)
    assert _count(after, "/metrics", "401") >= 1 and "recdistill_request_seconds_bucket" in after and "recdistill_nonfinite_scores_total 0.0" in after
    status, body = call(base, "POST", "/recommend", {"user": 2, "k": 3}, auth)
    assert status == 200 and len(body["items"]) == 3


def test_nonfinite_answers_are_counted(tiny_recommenders):
    served = open_model(tiny_recommenders["student"])
    healthy = served.scorer

    class Damaged:
        name = "damaged"

        def __call__(self, padded):
            scores = healthy(padded)
            if (padded == 13).any():  # histories holding item 13 hit a damaged row
                scores[:, 5] = np.nan
            return scores

    served.scorer = Damaged()
    with running(build_app(served)) as base:
        assert call(base, "POST", "/recommend", {"history": [13]})[0] == 500
        assert call(base, "POST", "/recommend", {"history": [1, 2]})[0] == 200
        assert "recdistill_nonfinite_scores_total 1.0" in _metrics(base)


def test_openmp_threads_wait_passively_unless_the_user_chose(monkeypatch, capsys):
    import os

    from recdistill.cli import main

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    main([])
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    main([])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"

"""The HTTP part of ``benchmarks/serving/serving.py``: ``recdistill serve`` in its own process on a free loopback
port, and a bounded load generator (a fixed number of requests, ``concurrency`` client threads, each with
one keep-alive connection) that counts every request answered or lost."""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(model: str, threads: int, flags: tuple = (), env: dict | None = None):
    """``flags``: more ``serve`` flags (e.g. ``("--workers", "2")``); ``env``: more environment variables."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "recdistill", "serve", model, "--port", str(port),
                             "--threads", str(threads), *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited: {proc.stdout.read().decode()[-2000:]}") from None
                time.sleep(0.2)
        else:
            raise RuntimeError("the server did not answer /health within 120 s")
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


def load_test(port: int, bodies: list[dict], concurrency: int, requests: int, timeout_s: float = 30.0,
              headers: dict | None = None) -> dict:
    """Send ``requests`` POST /recommend requests (bodies used in turn) from ``concurrency`` threads."""
    latencies: list[float] = []
    lost: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            payload = json.dumps(bodies[i % len(bodies)])
            start = time.perf_counter()
            try:
                conn.request("POST", "/recommend", payload, {"Content-Type": "application/json", **(headers or {})})
                response = conn.getresponse()
                data = response.read()
                ok = response.status == 200 and b'"items"' in data
            except (OSError, http.client.HTTPException) as exc:
                ok, data = False, str(exc).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
            elapsed = time.perf_counter() - start
            with lock:
                (latencies.append(elapsed) if ok else lost.append(data[:200].decode(errors="replace")))
        conn.close()

    workers = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    return {"concurrency": concurrency, "requests": requests, "answered": len(latencies), "lost": len(lost),
            "lost_examples": lost[:3], "p50_ms": round(1000 * percentile(latencies, 50), 3),
            "p99_ms": round(1000 * percentile(latencies, 99), 3),
            "mean_ms": round(1000 * statistics.fmean(latencies), 3) if latencies else None,
            "requests_per_s": round(len(latencies) / wall, 1), "wall_s": round(wall, 2)}

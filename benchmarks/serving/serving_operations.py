"""What running ``recdistill serve`` for users costs: requests/s with 1 and 2 workers, with and without an API
key, and how long an oversize body takes to be refused. Writes ``serving_operations.json`` and the
"Operations" section of ``serving.md`` (the rest of that file is ``benchmarks/serving/serving.py``'s).

    python benchmarks/serving/serving_operations.py MODEL [--requests 1000] [--concurrency 8] [--rounds 5]

MODEL: an ``export-model`` folder (ONNX) or a checkpoint. The load generator runs on the same machine, so
on a small one it takes cores from the server: read the figures as a floor, and compare rows with each other.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.serving.serving_http import load_test, running_server  # noqa: E402

KEY = "bench-" + "k" * 32
SECTION = "<!-- serving_operations: written by benchmarks/serving/serving_operations.py -->"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.SubprocessError):
        return platform.processor() or "unknown"


def bodies_for(port: int) -> list[dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/health")
    users = json.loads(conn.getresponse().read())["users"]
    return [{"user": 1 + (i * 37) % users, "k": 10} for i in range(200)]


def interleaved_throughput(model: str, settings: dict, requests: int, concurrency: int, rounds: int) -> dict:
    """Every setting's server runs at once (idle ones cost nothing); each round measures each setting once, in
    a rotated order, so load from other jobs falls on all of them alike. The median round is reported."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        ports = {name: stack.enter_context(running_server(model, threads, flags, env))
                 for name, (threads, flags, env, headers) in settings.items()}
        bodies = bodies_for(next(iter(ports.values())))
        for name, port in ports.items():  # warm-up: every worker up and loaded
            load_test(port, bodies, concurrency, 200, headers=settings[name][3])
        runs: dict[str, list[dict]] = {name: [] for name in settings}
        names = list(settings)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                runs[name].append(load_test(ports[name], bodies, concurrency, requests, headers=settings[name][3]))
            print({n: [x["requests_per_s"] for x in v] for n, v in runs.items()}, flush=True)
    out = {}
    for name, measured in runs.items():
        median = sorted(measured, key=lambda m: m["requests_per_s"])[len(measured) // 2]
        out[name] = {**median, "requests_per_s_runs": [m["requests_per_s"] for m in measured],
                     "lost_total": sum(m["lost"] for m in measured)}
    return out


def refusal_ms(port: int, size: int, chunked: bool, tries: int = 15) -> float:
    """Median ms from sending the request head to reading a 413, for a body of ``size`` bytes."""
    body = b"[" + b"1," * (size // 2) + b"1]"
    times = []
    for _ in range(tries):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start = time.perf_counter()
        if chunked:
            conn.putrequest("POST", "/recommend")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            try:
                for i in range(0, len(body), 65536):
                    part = body[i:i + 65536]
                    conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                conn.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            try:
                conn.request("POST", "/recommend", body, {"Content-Type": "application/json"})
            except (BrokenPipeError, ConnectionResetError):
                pass
        response = conn.getresponse()
        response.read()
        times.append((time.perf_counter() - start) * 1000)
        assert response.status == 413, response.status
        conn.close()
    return round(statistics.median(times), 2)


def render(r: dict) -> str:
    rows = ["| setting | workers x threads | requests/s (median round) | every round | p50 ms | p99 ms | lost |", "|---|---|---|---|---|---|---|"]
    for name, m in r["throughput"].items():
        rows.append(f"| {name} | {m['layout']} | {m['requests_per_s']} | {m['requests_per_s_runs']} | {m['p50_ms']} | "
                    f"{m['p99_ms']} | {m['lost_total']} |")
    refusals = r["refusal_ms"]
    return "\n".join([
        SECTION, "", "## Operations: workers, API key, body limit", "",
        f"Machine: {r['cpu']}, {r['cores']} cores, no GPU. Load average before / after: {r['load_before']} / "
        f"{r['load_after']}. {r['note']}", "",
        f"Model: `{r['model']}`. Load generator: {r['requests']} requests per run from {r['concurrency']} client "
        "threads (one keep-alive connection each), on the same cores as the server; the settings' servers run "
        f"side by side and are measured in turn, {r['rounds']} rounds in rotated order, so other jobs' load falls "
        "on all of them alike.", "", *rows, "",
        f"Refusing a body over the limit (2 MiB default; {r['body_mb']} MB sent): {refusals['content_length']} ms when "
        f"Content-Length announces it (answered before the body is read), {refusals['chunked']} ms when it is sent "
        "chunked (counted as it arrives, refused at the limit); median of 15.", "",
        f"API key overhead: {r['auth_overhead_pct']} % fewer requests/s with a key than without (one constant-time "
        "comparison per key per request; within run-to-run noise when near 0).", ""])


def write_section(md: Path, section: str) -> None:
    text = md.read_text() if md.is_file() else ""
    head = text.split(SECTION)[0].rstrip("\n")
    tmp = md.with_suffix(".md.tmp")
    tmp.write_text((head + "\n\n" if head else "") + section)
    os.replace(tmp, md)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    load_before = [round(x, 2) for x in os.getloadavg()]
    plain = {"RECDISTILL_API_KEYS": ""}
    result = {"cpu": cpu_model(), "cores": cores, "model": args.model, "requests": args.requests,
              "concurrency": args.concurrency, "rounds": args.rounds, "load_before": load_before, "note": args.note, "throughput": {}}
    settings = {
        "1 worker, no key": (cores, ("--workers", "1"), plain, None),
        "2 workers, no key": (max(1, cores // 2), ("--workers", "2"), plain, None),
        "1 worker, API key": (cores, ("--workers", "1"), {"RECDISTILL_API_KEYS": KEY}, {"X-API-Key": KEY}),
    }
    measured = interleaved_throughput(args.model, settings, args.requests, args.concurrency, args.rounds)
    for name, (threads, flags, env, headers) in settings.items():
        result["throughput"][name] = {**measured[name], "layout": f"{flags[1]} x {threads}"}
    with running_server(args.model, cores, ("--workers", "1"), plain) as port:
        result["body_mb"] = 3
        result["refusal_ms"] = {"content_length": refusal_ms(port, 3_000_000, False),
                                "chunked": refusal_ms(port, 3_000_000, True)}
    t = result["throughput"]
    result["auth_overhead_pct"] = round(100 * (1 - t["1 worker, API key"]["requests_per_s"]
                                               / t["1 worker, no key"]["requests_per_s"]), 1)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    (out / "serving_operations.json").write_text(json.dumps(result, indent=2) + "\n")
    write_section(out / "serving.md", render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

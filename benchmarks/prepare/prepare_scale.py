"""Time and peak memory to prepare synthetic interaction files of 1 M, 10 M and 25 M rows per format.

Formats: CSV (text ids ``u123``/``i45``, header), MovieLens-1M (``ratings.dat`` + ``movies.dat``, ``::``) and
RecBole atomic (``.inter`` + ``.item``). Users draw their rows uniformly (about 50 interactions each),
items are ``rows / 250``. Each prepare runs in a fresh process (``--one``); the time is that of
``prepare_dataset`` (read, split, write), the memory the process's peak RSS. Targets (issue 14): 25 M
rows in under 60 s and under 6 GB on 2 cores, cost growing linearly.

    python benchmarks/prepare/prepare_scale.py --rows 1000000 10000000 25000000 --formats csv ml-1m recbole
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

ROOT = Path(__file__).resolve().parents[2]  # the repository root
RESULTS = ROOT / "benchmarks" / "results"
FORMATS = ("csv", "ml-1m", "recbole")


def _columns(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"user": rng.integers(1, max(rows // 50, 1) + 1, rows), "item": rng.integers(1, max(rows // 250, 10) + 1, rows),
            "rating": rng.integers(1, 6, rows), "timestamp": rng.integers(900_000_000, 1_600_000_000, rows)}


def _write(path: Path, table: pa.Table, delimiter: str, header: str = "", replace: bytes | None = None) -> None:
    """Write ``table`` without quoting; ``replace`` swaps the one-byte delimiter for ``::``."""
    options = pcsv.WriteOptions(include_header=False, delimiter=delimiter, quoting_style="none")
    tmp = path.with_suffix(".tmp")
    pcsv.write_csv(table, tmp, options)
    with path.open("wb") as out, tmp.open("rb") as src:
        out.write(header.encode())
        while chunk := src.read(64 << 20):
            out.write(chunk.replace(delimiter.encode(), replace) if replace else chunk)
    tmp.unlink()


def write_dataset(fmt: str, rows: int, folder: Path, seed: int = 0) -> list[str]:
    """The files of ``fmt`` under ``folder``; returns the dataset overrides that point at them."""
    folder.mkdir(parents=True, exist_ok=True)
    c = _columns(rows, seed)
    n_items = int(c["item"].max())
    ids = pa.array(np.arange(1, n_items + 1))
    titles = pa.array([f"Movie {i} ({1950 + i % 70})" for i in range(1, n_items + 1)])
    if fmt == "csv":
        users = pa.compute.binary_join_element_wise("u", pa.array(c["user"]).cast(pa.string()), "")
        items = pa.compute.binary_join_element_wise("i", pa.array(c["item"]).cast(pa.string()), "")
        table = pa.table({"user_id": users, "item_id": items, "rating": c["rating"], "timestamp": c["timestamp"]})
        _write(folder / "inter.csv", table, ",", header="user_id,item_id,rating,timestamp\n")
        return ["dataset=csv", f"dataset.path={folder / 'inter.csv'}", "dataset.title_col=null"]
    table = pa.table({"u": c["user"], "i": c["item"], "r": c["rating"], "t": c["timestamp"]})
    if fmt == "ml-1m":
        _write(folder / "ratings.dat", table, "\x1f", replace=b"::")
        genres = pa.array(["Drama|Comedy"] * n_items)
        _write(folder / "movies.dat", pa.table({"i": ids, "title": titles, "g": genres}), "\x1f", replace=b"::")
        return ["dataset=ml-1m", f"dataset.path={folder}"]
    _write(folder / "syn.inter", table, "\t",
           header="user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
    _write(folder / "syn.item", pa.table({"i": ids, "title": titles}), "\t",
           header="item_id:token\tmovie_title:token_seq\n")
    return ["dataset=recbole", f"dataset.path={folder}", "dataset.stem=syn"]


def _status_mb(field: str) -> int:
    """VmHWM (peak) or VmRSS of this process from /proc, in MB. Not ru_maxrss: Linux carries that over
    from the parent across fork and exec, so a child would report the driver's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_one(overrides: list[str], data_dir: str) -> dict:
    """Prepare in this process; the record of time and peak RSS."""
    from recdistill.config.compose import compose
    from recdistill.data.prepare import prepare_dataset
    from recdistill.recipes.dataset_settings import dataset_settings

    cfg = compose("prepare", [*overrides, f"paths.data_dir={data_dir}", "dataset.name=scale"])
    dataset = dataset_settings(cfg)
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before, rss_before = before.ru_utime + before.ru_stime, _status_mb("VmRSS")
    start = time.perf_counter()
    path = prepare_dataset(dataset, data_dir)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = json.loads((path / "stats.json").read_text())
    return {"seconds": round(seconds, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime - cpu_before, 2),
            "peak_rss_mb": _status_mb("VmHWM"), "rss_before_mb": rss_before,
            "users": stats["users"], "items": stats["items"], "interactions": stats["interactions"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 25_000_000])
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--work", default=None, help="folder for the synthetic files (default: a temp folder)")
    parser.add_argument("--out", default=str(RESULTS / "prepare_scale.json"))
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)   # internal: one prepare in a fresh process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[1:], args.one[0])))
        return
    out = Path(args.out)
    records = json.loads(out.read_text())["runs"] if out.is_file() else []
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)  # a --work folder that does not exist yet
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        for rows in args.rows:
            for fmt in args.formats:
                start = time.perf_counter()
                overrides = write_dataset(fmt, rows, Path(tmp) / f"{fmt}-{rows}")
                written = time.perf_counter() - start
                size = sum(p.stat().st_size for p in (Path(tmp) / f"{fmt}-{rows}").iterdir()) / 1e6
                done = subprocess.run([sys.executable, __file__, "--one", f"{tmp}/data-{fmt}-{rows}", *overrides],
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"{fmt} {rows}: prepare failed:\n{done.stderr[-2000:]}")
                record = {"format": fmt, "rows": rows, "file_mb": round(size, 1), **json.loads(done.stdout.splitlines()[-1]),
                          "generate_s": round(written, 1), "load_avg_1m_after": round(os.getloadavg()[0], 2)}
                print(json.dumps(record), flush=True)
                records = [r for r in records if (r["format"], r["rows"]) != (fmt, rows)] + [record]
                subprocess.run(["rm", "-rf", f"{tmp}/data-{fmt}-{rows}", f"{tmp}/{fmt}-{rows}"])
                _save(out, records)


def _save(out: Path, records: list[dict]) -> None:
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
               "pyarrow": pa.__version__, "note": f"{os.cpu_count()} CPUs, no GPU; how busy the machine was is in the load-average column"}
    records = sorted(records, key=lambda r: (r["format"], r["rows"]))
    out.write_text(json.dumps({"machine": machine, "runs": records}, indent=2) + "\n")
    lines = ["# Preparing synthetic interaction files at scale", "",
             "`python benchmarks/prepare/prepare_scale.py` (seed 0; ~50 interactions per user, items = rows / 250).",
             f"Machine: {machine['note']}; pyarrow {machine['pyarrow']}. Time of `prepare_dataset` (read, split, "
             "write Parquet) in a fresh process; peak RSS of that process. Targets: 25 M rows < 60 s, < 6 GB.", "",
             "CPU s: user + system seconds of all the process's threads during the prepare; on a busy machine (load",
             "average above the core count) the wall time includes waiting for a core and the CPU s is the steadier figure.",
             "RSS before: the process after its imports (torch is among them), before reading.",
             "Load avg: the machine's 1-minute load average right after the run (2 cores; above 2 means the run",
             "waited for a core, so its wall time overstates the cost).", "",
             "| format | rows | file MB | users | items | wall s | CPU s | CPU s per M rows | peak RSS MB | RSS before MB | load avg |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['format']} | {r['rows']:,} | {r['file_mb']:,.0f} | {r['users']:,} | {r['items']:,} | "
                     f"{r['seconds']:.1f} | {r['cpu_s']:.1f} | {r['cpu_s'] / (r['rows'] / 1e6):.2f} | "
                     f"{r['peak_rss_mb']:,} | {r['rss_before_mb']:,} | {r['load_avg_1m_after']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

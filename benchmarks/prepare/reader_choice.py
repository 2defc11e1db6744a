"""Which columnar reader: pyarrow.csv, polars or DuckDB on the same synthetic interactions file.

Writes a CSV of ``--rows`` rows (user_id,item_id,rating,timestamp, string ids as the CSV reader keeps
them) and times reading it into columns with each library, ids as strings. Polars and DuckDB are not
dependencies of recdistill: install them to rerun (``pip install polars duckdb``).

    python benchmarks/prepare/reader_choice.py --rows 2000000
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def write_file(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, rows // 50 + 2, rows)
    items = rng.integers(1, 50_000, rows)
    ratings = rng.integers(1, 6, rows)
    stamps = rng.integers(900_000_000, 1_600_000_000, rows)
    with path.open("w") as fh:
        fh.write("user_id,item_id,rating,timestamp\n")
        for start in range(0, rows, 1_000_000):
            end = min(rows, start + 1_000_000)
            fh.write("".join(f"u{u},i{i},{r},{t}\n" for u, i, r, t in zip(
                users[start:end], items[start:end], ratings[start:end], stamps[start:end])))


def read_pyarrow(path: Path) -> int:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    types = {"user_id": pa.string(), "item_id": pa.string(), "rating": pa.float64(), "timestamp": pa.float64()}
    return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types)).num_rows


def read_polars(path: Path) -> int:
    import polars as pl

    schema = {"user_id": pl.String, "item_id": pl.String, "rating": pl.Float64, "timestamp": pl.Float64}
    return pl.read_csv(path, schema_overrides=schema).height


def read_duckdb(path: Path) -> int:
    import duckdb

    sql = (f"SELECT * FROM read_csv('{path}', header=true, columns={{'user_id': 'VARCHAR', "
           "'item_id': 'VARCHAR', 'rating': 'DOUBLE', 'timestamp': 'DOUBLE'})")
    return duckdb.sql(sql).to_arrow_table().num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/reader_choice.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inter.csv"
        write_file(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        for name, reader in (("pyarrow.csv", read_pyarrow), ("polars", read_polars), ("duckdb", read_duckdb)):
            try:
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    assert reader(path) == args.rows
                    times.append(time.perf_counter() - start)
                results[name] = {"best_s": round(min(times), 3), "times_s": [round(t, 3) for t in times]}
            except ImportError:
                results[name] = {"skipped": "not installed"}
            print(name, results[name], flush=True)
    record = {"rows": args.rows, "file_mb": round(size_mb, 1), "repeats": args.repeats, "results": results,
              "peak_rss_mb_all_readers": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
              "machine": "2-core CPU VM, shared with other jobs while measured"}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()

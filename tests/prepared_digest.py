"""A digest of a prepared folder's content (not its bytes: Parquet metadata may differ between
library versions), to show the prepared ML-100K stays exactly what earlier versions wrote."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq


def prepared_digest(path: Path) -> str:
    sha = hashlib.sha256()
    for name in ("train", "val", "test", "items", "users"):
        table = pq.read_table(Path(path) / f"{name}.parquet")
        sha.update(json.dumps({"schema": [f"{f.name}:{f.type}" for f in table.schema],
                               "rows": table.to_pydict()}, sort_keys=True, default=str).encode())
    return sha.hexdigest()

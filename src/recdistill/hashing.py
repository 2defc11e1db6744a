"""A short stable hash of plain data (dicts, lists, numbers, strings): the identity of an export's ranker
and of a pipeline stage's config and inputs."""

from __future__ import annotations

import hashlib
import json


def stable_hash(value) -> str:
    blob = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]

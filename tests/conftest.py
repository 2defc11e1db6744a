"""Shared fixtures. Tests run on the CPU with small data they write themselves, or the real ML-100K
(from the cache folder, fetched once per machine)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

# One thread keeps timings stable and leaves the other core to the test runner on 2-core machines.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_tiny_prepared(path, num_users: int = 30, num_items: int = 40, min_len: int = 5, max_len: int = 25,
                       seed: int = 0):
    """Write a small prepared dataset (the format of recdistill.data.prepared) with learnable structure:
    each user walks through the catalogue in steps of 1 or 2 from a random start."""
    from recdistill.data.prepared import write_prepared

    rng = np.random.default_rng(seed)
    train_rows, val_rows, test_rows = [], [], []
    for user in range(1, num_users + 1):
        length = int(rng.integers(min_len, max_len + 1))
        start = int(rng.integers(1, num_items + 1))
        step = int(rng.integers(1, 3))
        seq = [((start - 1 + i * step) % num_items) + 1 for i in range(length)]
        # keep items unique per user so "seen items" exclusion is well defined
        seen, uniq = set(), []
        for item in seq:
            if item not in seen:
                uniq.append(item)
                seen.add(item)
        seq = uniq if len(uniq) >= 3 else [1, 2, 3]
        ts = list(range(1000, 1000 + len(seq)))
        train_rows.append({"user": user, "items": seq[:-2], "timestamps": ts[:-2]})
        val_rows.append({"user": user, "target": seq[-2], "timestamp": ts[-2]})
        test_rows.append({"user": user, "target": seq[-1], "timestamp": ts[-1]})
    items = pd.DataFrame({
        "item": np.arange(1, num_items + 1, dtype=np.int32),
        "original_id": [str(i) for i in range(1, num_items + 1)],
        "title": [f"Movie {i}" for i in range(1, num_items + 1)],
        "year": pd.array([1990 + i % 10 for i in range(1, num_items + 1)], dtype="Int32"),
        "genres": [["Drama"] for _ in range(num_items)],
    })
    users = pd.DataFrame({"user": np.arange(1, num_users + 1, dtype=np.int32),
                          "original_id": [str(u) for u in range(1, num_users + 1)]})
    train = pd.DataFrame(train_rows)
    stats = {"users": num_users, "items": num_items, "fingerprint": f"tiny-{seed}-{num_users}-{num_items}",
             "source": "tests"}
    return write_prepared(path, train, pd.DataFrame(val_rows), pd.DataFrame(test_rows), items, users, stats)


@pytest.fixture
def tiny_prepared(tmp_path):
    """A tiny prepared dataset folder at tmp_path/data/tiny."""
    return make_tiny_prepared(tmp_path / "data" / "tiny")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """The recdistill cache folder for tests: RECDISTILL_CACHE if set (so ML-100K is fetched once per
    machine), else the user's default cache."""
    return os.environ.get("RECDISTILL_CACHE") or os.path.expanduser("~/.cache/recdistill")


@pytest.fixture(scope="session")
def tiny_recommenders(tmp_path_factory):
    """A tiny trained student and a tiny distilled student (taught by a bigger tiny student through
    `recdistill export` with teacher=student, embedding distillation on), on one tiny prepared dataset.
    Returns ``{"prepared", "runs", "student", "distill"}`` (checkpoint paths) plus the training metrics."""
    from omegaconf import OmegaConf

    from recdistill.config import compose
    from recdistill.config.compose import conf_root
    from recdistill.data.prepared import load_prepared
    from recdistill.teacher_outputs.build import ExportSettings, export_files, student_ranker
    from recdistill.recipes.distill import train_distill
    from recdistill.recipes.student import train_student

    root = tmp_path_factory.mktemp("recommenders")
    prepared = make_tiny_prepared(root / "data" / "tiny")
    common = [f"prepared={prepared}", f"paths.runs_dir={root / 'runs'}", "student.max_len=8",
              "student.hidden_size=16", "student.num_blocks=1", "train.max_epochs=1", "train.batch_size=16",
              "run.progress_bar=false", "eval.sampled_negatives=10"]
    student = train_student(compose("student", [*common, "run.name=student"]))
    teacher = train_student(compose("student", [*common, "student.hidden_size=24", "run.name=teacher"]))
    export = ExportSettings(**{**OmegaConf.to_container(OmegaConf.load(conf_root() / "export" / "default.yaml")),
                               "candidates": "all", "top_k": 5, "shard_rows": 50, "progress_bar": False})
    outputs = root / "teacher_outputs"
    data = load_prepared(prepared)
    export_files(export, student_ranker([teacher.artefacts["best_checkpoint"]], data, True, "cpu"), data, outputs)
    distilled = train_distill(compose("distill", [*common, f"distill.teacher_outputs={outputs}", "run.name=distill"]))
    return {"prepared": prepared, "runs": root / "runs", "student": student.artefacts["best_checkpoint"],
            "distill": distilled.artefacts["best_checkpoint"], "student_metrics": student.metrics,
            "distill_metrics": distilled.metrics}

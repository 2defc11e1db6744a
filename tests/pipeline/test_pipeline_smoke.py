"""`recdistill pipeline --profile smoke` end to end through the CLI: a first run, a second run that skips
every stage, a resume after an interruption, and --from."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from recdistill.cli import main
from recdistill.pipeline import ORDER


def _stage_lines(text: str) -> dict[str, str]:
    """{stage: "running (...)" | "skipped: ..." | "done in ..."} from the pipeline's per-stage lines;
    for a stage that ran, the last line ("done in ...") wins."""
    lines = {}
    for match in re.finditer(r"^\[\d+/\d+\] (\w+)\s+(.*)$", text, flags=re.M):
        lines[match[1]] = match[2]
    return lines


def _ran(text: str) -> set[str]:
    return {stage for stage, line in _stage_lines(text).items() if line.startswith("done in")}


def _skipped(text: str) -> set[str]:
    return {stage for stage, line in _stage_lines(text).items() if line.startswith("skipped")}


@pytest.fixture
def tmp_path():
    """A private folder: pytest prunes old basetemp folders when other pytest sessions start, which can
    remove a long test's files while it runs on a shared machine."""
    folder = Path(tempfile.mkdtemp(prefix="recdistill-pipeline-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pipeline_args(tmp_path, cache_dir):
    return ["pipeline", "--profile", "smoke", f"paths.runs_dir={tmp_path / 'runs'}",
            f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={cache_dir}"]


def test_smoke_pipeline_runs_skips_resumes_and_reruns_from(pipeline_args, tmp_path, capsys):
    folder = tmp_path / "runs" / "pipeline-smoke"

    # 1. first run: every stage runs, the report is printed at the end
    assert main(pipeline_args) == 0
    out = capsys.readouterr().out
    assert _ran(out) == set(ORDER)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert all(manifest["stages"][s]["status"] == "done" for s in ORDER)
    report = folder / "report" / "report.md"
    assert f"report: {report}" in out and (folder / "report" / "report.html").is_file()
    text = report.read_text()
    assert "| student |" in text and "distilled" in text and "teacher" in text
    # outputs handed on: the teacher and the export read the student checkpoint, distillation the export
    stages = manifest["stages"]
    assert any(o.endswith(stages["student"]["outputs"]["checkpoint"]) for o in stages["teacher"]["overrides"])
    assert any(o.endswith(stages["export"]["outputs"]["teacher_outputs"]) for o in stages["distill"]["overrides"])

    # 2. second run: nothing to do
    assert main(pipeline_args) == 0
    out = capsys.readouterr().out
    assert _skipped(out) == set(ORDER) and not _ran(out), out

    # 3. an interrupted distillation (the process died mid-stage): only it and the report run again
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["stages"]["distill"]["status"] = "running"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert main(pipeline_args) == 0
    out = capsys.readouterr().out
    assert _ran(out) == {"distill", "report"}, out
    assert "last attempt running" in out
    assert _skipped(out) == {"prepare", "student", "teacher", "export"}

    # 4. --from distill: it and everything after it run again, the rest is skipped
    assert main([*pipeline_args, "--from", "distill"]) == 0
    out = capsys.readouterr().out
    assert _ran(out) == {"distill", "report"} and "running (--from distill)" in out
    assert _skipped(out) == {"prepare", "student", "teacher", "export"}

    # 5. a changed setting of one stage reruns that stage and the ones reading its outputs
    assert main([*pipeline_args, "distill:train.limit_train_batches=1"]) == 0
    out = capsys.readouterr().out
    assert _ran(out) == {"distill", "report"} and "config or inputs changed" in out

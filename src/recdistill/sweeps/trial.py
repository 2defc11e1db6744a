"""Run one trial as its own process and read what it left behind.

Each trial is ``python -m recdistill <command> paths.runs_dir=<sweep>/trials/<n> <overrides>``: its own
process, so its peak memory is its own and a crash (out of memory, an unsupported option) cannot take the
sweep down. The trial's run folder (``metrics.json``, ``stages.json``, ``environment.json``,
``config.yaml``) is the result; its stderr says why when there is none.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from recdistill.sweeps.applied import NO_APPLIED_CONFIG_ENV

# What out-of-memory looks like in a trial's stderr, on CUDA and on the CPU.
OOM_PATTERNS = ("CUDA out of memory", "OutOfMemoryError", "can't allocate memory", "MemoryError",
                "Cannot allocate memory")
MAX_REASON = 400



@dataclass
class TrialOutcome:
    status: str                     # ok | failed | timeout
    reason: str | None
    returncode: int | None
    wall_seconds: float
    run_dir: Path | None
    metrics: dict
    stages: list
    environment: dict
    batch_size: int | None


def trial_command(command_words: list[str], overrides: list[str], config_files: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "recdistill", *command_words]
    for path in config_files:
        argv += ["--config", str(path)]
    return argv + list(overrides)


def _tail(path: Path, n: int = 60) -> list[str]:
    if not path.is_file():
        return []
    return path.read_text(errors="replace").splitlines()[-n:]


def failure_reason(returncode: int | None, stderr_lines: list[str], timed_out: bool, timeout_s: float) -> str:
    """One line saying why a trial produced no results."""
    if timed_out:
        return f"timed out after {timeout_s:g} s"
    lines = [line.strip() for line in stderr_lines if line.strip()]
    for line in reversed(lines):
        if any(p in line for p in OOM_PATTERNS):
            return ("out of memory: " + line)[:MAX_REASON]
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else str(-returncode)
        hint = " (the system's out-of-memory killer sends this)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):][:MAX_REASON]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head:
            return line[:MAX_REASON]
    return f"exit status {returncode}" + (f": {lines[-1][:MAX_REASON]}" if lines else "")


def find_run_dir(trial_dir: Path) -> Path | None:
    """The run folder a trial created under its runs_dir (the newest one holding a config.yaml)."""
    candidates = [p for p in trial_dir.iterdir() if p.is_dir() and (p / "config.yaml").is_file()] if trial_dir.is_dir() else []
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def _read_json(path: Path, default):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def batch_size_used(run_dir: Path) -> int | None:
    """The training batch size the run used: the automatic search's answer if it ran, else the config's."""
    found = _read_json(run_dir / "batch_size_search.json", None)
    if isinstance(found, dict) and isinstance(found.get("train", {}).get("batch_size"), int):
        return found["train"]["batch_size"]
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    value = (cfg.get("train") or {}).get("batch_size")
    return value if isinstance(value, int) else None


def run_trial(argv: list[str], trial_dir: Path, timeout_s: float, cwd: str | None = None) -> TrialOutcome:
    """Run ``argv`` with stdout and stderr in ``trial_dir/{stdout,stderr}.log`` and read its run folder."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "command.txt").write_text(" ".join(argv) + "\n")
    # The sweep passes a best-settings file explicitly (--config), so the trial must not add it again.
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{NO_APPLIED_CONFIG_ENV: "1"})
    start = time.perf_counter()
    timed_out = False
    with open(trial_dir / "stdout.log", "wb") as out, open(trial_dir / "stderr.log", "wb") as err:
        # its own session, so a timeout can stop the trial's DataLoader workers with it
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
        finally:  # interrupted (Ctrl-C, SIGTERM turned into SystemExit): do not leave the trial running
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    wall = round(time.perf_counter() - start, 3)
    run_dir = find_run_dir(trial_dir)
    metrics = _read_json(run_dir / "metrics.json", None) if run_dir else None
    stages = _read_json(run_dir / "stages.json", []) if run_dir else []
    environment = _read_json(run_dir / "environment.json", {}) if run_dir else {}
    if returncode == 0 and not timed_out and metrics is not None:
        status, reason = "ok", None
    else:
        status = "timeout" if timed_out else "failed"
        reason = failure_reason(returncode, _tail(trial_dir / "stderr.log"), timed_out, timeout_s)
        if returncode == 0 and not timed_out:
            reason = f"the command exited 0 but wrote no metrics.json under {trial_dir}"
    return TrialOutcome(status, reason, returncode, wall, run_dir, metrics or {}, stages, environment,
                        batch_size_used(run_dir) if run_dir and status == "ok" else None)

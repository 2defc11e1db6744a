"""``distill.kd.weight=auto`` (and ``distill.ed.gamma=auto``): the distillation weights chosen on validation,
from grids that hold 0.

A teacher is worth listening to only if the student gets better on validation by listening: each weight of
``distill.auto.kd_weights`` trains one distilled student (its own run folder, same seed and data), and the
one with the best validation NDCG@10 is the result; a tie goes to the smaller weight, so a teacher that adds
nothing gets weight 0 and the result is the student alone, trained the same way. Test is reported for the
chosen run only. The curve (weight -> validation NDCG@10, epochs trained) is written to the chosen run's
``weight_selection.json`` and ``metrics.json`` (``kd_weight_chosen``) and shown by ``recdistill report``.

The student alone is an arm too: with ``distill.auto.student_run`` (a ``train student`` run of the same
seed, data and student settings; the pipeline passes its own) the student run's validation NDCG@10 is the
arm "student alone", the (0, 0) distillation arm is not trained, and when validation keeps the student alone
the result is a run folder that says so and points at the student's checkpoint. So the pipeline's distilled
student is never below the student alone on validation, by construction.

Cost: one distillation run per arm at most (kd alone: 3 by default; both auto: 3 x 2; the demo: 2 x 2, of
which the student run replaces one), less where a later arm falls behind the
best arm so far by more than ``distill.auto.behind`` (relative) at the same epoch, from
``distill.auto.after_epochs`` (10) on: such an arm is unlikely to win, so it stops (its best checkpoint stays
its result); the margin and the wait are a cost trade-off, not a guarantee.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf

from recdistill.engine import describe_environment
from recdistill.engine.rundir import atomic_write_json
from recdistill.errors import ConfigError
from recdistill.recipes.lifecycle import RunResult, open_run
from recdistill.report.selection import SELECTION_FILE  # one name for the file: the report reads it

AUTO = "auto"
MONITOR = "val/ndcg@10"


def wants_auto(cfg: DictConfig) -> bool:
    return str(cfg.distill.kd.weight) == AUTO or str(cfg.distill.ed.gamma) == AUTO


def _grid(cfg: DictConfig, key: str) -> list[float]:
    grid = list(cfg.distill.auto[key])
    if not grid or any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in grid):
        raise ConfigError(f"distill.auto.{key}={grid!r} is not valid; expected a list of numbers >= 0, e.g. [0, 0.2, 0.8]")
    if 0 not in grid:
        raise ConfigError(f"distill.auto.{key}={grid!r} must include 0: the student without that term is the arm "
                          "every weight has to beat")
    return sorted({float(w) for w in grid})


def weight_grid(cfg: DictConfig) -> list[tuple[float, float]]:
    """(kd.weight, ed.gamma) arms: each ``auto`` one over its ``distill.auto`` grid, the other as set. The
    first arm is always (0, 0) when both are ``auto``: the student alone, trained the same way."""
    kd = _grid(cfg, "kd_weights") if str(cfg.distill.kd.weight) == AUTO else [float(cfg.distill.kd.weight)]
    ed = _grid(cfg, "ed_gammas") if str(cfg.distill.ed.gamma) == AUTO else [float(cfg.distill.ed.gamma)]
    return [(w, g) for w in kd for g in ed]


STUDENT_ALONE = "student alone"


def choose(curve: list[dict]) -> dict:
    """The arm with the best validation NDCG@10; ties (to 6 decimals) go to the smaller weights, and to the
    student alone before a distillation arm with the same weights."""
    return max(curve, key=lambda arm: (round(float(arm["val_ndcg@10"]), 6), -float(arm["weight"]),
                                       -float(arm.get("gamma", 0.0)), arm.get("arm") == STUDENT_ALONE))


def student_alone_arm(student_run: str) -> dict:
    """The arm "student alone" from a finished ``train student`` run folder."""
    folder = Path(student_run).expanduser()
    metrics_file = folder / "metrics.json"
    checkpoints = sorted((folder / "checkpoints").glob("student-epoch=*.ckpt"))
    if not metrics_file.is_file() or not checkpoints:
        raise ConfigError(f"distill.auto.student_run={student_run} is not a finished `recdistill train student` run "
                          "(it needs metrics.json and checkpoints/student-epoch=*.ckpt); pass such a folder, or null")
    metrics = json.loads(metrics_file.read_text())
    return {"weight": 0.0, "gamma": 0.0, "arm": STUDENT_ALONE, "values": validation_curve_of(folder), "val_ndcg@10": float(metrics[MONITOR]),
            "run": str(folder), "checkpoint": str(checkpoints[-1]), "epochs": metrics.get("epochs_trained"),
            "stopped_behind_at_epoch": None}


class ValidationCurve(L.Callback):
    """Records the monitored validation score after every validation epoch."""

    def __init__(self):
        self.values: list[float] = []

    def on_validation_epoch_end(self, trainer, module):
        if not trainer.sanity_checking and MONITOR in trainer.callback_metrics:
            self.values.append(float(trainer.callback_metrics[MONITOR]))


class StopWhenBehind(L.Callback):
    """Stops an arm whose validation score, from epoch ``after`` on, is below ``(1 - behind)`` times the best
    arm's at the same epoch (the best arm's last value once it has no value for that epoch)."""

    def __init__(self, reference: list[float], after: int, behind: float):
        self.reference, self.after, self.behind = list(reference), int(after), float(behind)
        self.stopped_at: int | None = None

    def on_validation_epoch_end(self, trainer, module):
        if trainer.sanity_checking or not self.reference or MONITOR not in trainer.callback_metrics:
            return
        epoch = trainer.current_epoch
        if epoch + 1 < self.after:
            return
        best_so_far = max(self.reference[: epoch + 1] or self.reference)
        if float(trainer.callback_metrics[MONITOR]) < (1.0 - self.behind) * best_so_far:
            trainer.should_stop = True
            self.stopped_at = epoch


def train_distill_auto(cfg: DictConfig, train_one, extra_callbacks: list | None = None) -> RunResult:
    """Train one distilled student per weight of the grid with ``train_one(cfg, callbacks)``; return the
    chosen run's result with ``info["weight_selection"]``."""
    grid = weight_grid(cfg)
    curve, results, reference = [], {}, []
    student_run = cfg.distill.auto.get("student_run")
    if student_run:
        curve.append(student_alone_arm(str(student_run)))
        reference = curve[-1].pop("values")
        print(f"{STUDENT_ALONE} ({student_run}): val NDCG@10 {curve[-1]['val_ndcg@10']:.4f}", flush=True)
    for weight, gamma in grid:
        if student_run and weight == 0 and gamma == 0:
            continue   # the student run is this arm
        arm_cfg = OmegaConf.merge(cfg, {"distill": {"kd": {"weight": weight}, "ed": {"gamma": gamma}},
                                        "run": {"name": f"{cfg.run.name}-kd{weight:g}-ed{gamma:g}"}})
        recorder = ValidationCurve()
        stopper = StopWhenBehind(reference, int(cfg.distill.auto.after_epochs), float(cfg.distill.auto.behind))
        result = train_one(arm_cfg, [recorder, stopper, *(extra_callbacks or [])])
        results[(weight, gamma)] = result
        curve.append({"weight": weight, "gamma": gamma, "val_ndcg@10": float(result.metrics[MONITOR]),
                      "run": str(result.run_dir),
                      "epochs": len(recorder.values), "stopped_behind_at_epoch": stopper.stopped_at})
        if not reference or max(recorder.values or [0.0]) > max(reference):
            reference = recorder.values
        print(f"distill.kd.weight={weight:g} distill.ed.gamma={gamma:g}: val NDCG@10 {curve[-1]['val_ndcg@10']:.4f}"
              + (f" (stopped at epoch {stopper.stopped_at}: behind the best arm)" if stopper.stopped_at is not None else ""),
              flush=True)
    best = choose(curve)
    chosen = (student_alone_result(cfg, best) if best.get("arm") == STUDENT_ALONE
              else results[(best["weight"], best["gamma"])])
    selection = {"grid": [list(arm) for arm in grid], "curve": curve, "chosen_weight": best["weight"],
                 "chosen_gamma": best["gamma"], "chosen_arm": best.get("arm", "distilled"),
                 "rule": "best validation NDCG@10; ties to the smaller weight, and to the student alone; test "
                         "reported for the chosen run only"}
    record_selection(chosen, selection)
    return chosen


def validation_curve_of(run: Path) -> list[float]:
    """A finished run's validation NDCG@10 per epoch, from its CSV log (the early-stopping reference)."""
    import csv

    values = []
    for path in sorted(run.glob("logs/csv*/metrics.csv")):
        with open(path) as f:
            values += [float(row[MONITOR]) for row in csv.DictReader(f) if row.get(MONITOR)]
    return values


def student_alone_result(cfg: DictConfig, arm: dict) -> RunResult:
    """The distillation result when validation keeps the student alone: a run folder of its own (the
    selection is recorded there, not in the student's run) with the student run's metrics and checkpoint."""
    metrics = json.loads((Path(arm["run"]) / "metrics.json").read_text())
    metrics["student_alone"] = 1.0
    run = open_run(cfg, name=f"{cfg.run.name}-student-alone")
    run.finish("distill", metrics, [], describe_environment(),
               extra={"best_checkpoint": arm["checkpoint"], "student_alone": arm["run"]})
    return RunResult(run.path, metrics, [], {"best_checkpoint": arm["checkpoint"]},
                     {"teacher": None, "student_alone": arm["run"]})


def record_selection(result: RunResult, selection: dict) -> None:
    """Into the chosen run: ``weight_selection.json``, and ``kd_weight_chosen`` in ``metrics.json``."""
    result.info["weight_selection"] = selection
    result.metrics["kd_weight_chosen"] = selection["chosen_weight"]
    result.metrics["ed_gamma_chosen"] = selection["chosen_gamma"]
    if result.run_dir is None:
        return
    atomic_write_json(result.run_dir / SELECTION_FILE, selection)
    metrics_file = result.run_dir / "metrics.json"
    if metrics_file.is_file():
        saved = json.loads(metrics_file.read_text())
        target = saved["metrics"] if isinstance(saved.get("metrics"), dict) else saved
        target["kd_weight_chosen"] = selection["chosen_weight"]
        target["ed_gamma_chosen"] = selection["chosen_gamma"]
        atomic_write_json(metrics_file, saved)

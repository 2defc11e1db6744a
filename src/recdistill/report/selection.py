"""The report's account of ``distill.kd.weight=auto``: which weight validation chose, the curve behind it,
and a sentence a user can act on."""

from __future__ import annotations

import json

from recdistill.report.runs import RunInfo
from recdistill.report.tables import markdown_table

SELECTION_FILE = "weight_selection.json"


def teacher_check_lines(runs: list[RunInfo]) -> list[str]:
    """The teacher check a distilled run's export recorded (teacher against student on shared validation
    candidates), one sentence per export."""
    from pathlib import Path

    from recdistill.teacher_outputs.format import MANIFEST
    from recdistill.evaluation.teacher_check import sentence

    lines, seen = [], set()
    for run in runs:
        folder = (run.config.get("distill") or {}).get("teacher_outputs")
        manifest = Path(str(folder)) / MANIFEST if folder else None
        if manifest is None or manifest in seen or not manifest.is_file():
            continue
        seen.add(manifest)
        check = json.loads(manifest.read_text()).get("teacher_check")
        if check:
            lines += [f"**Teacher check** ({run.label}'s teacher outputs): {sentence(check)}", ""]
    return lines


def selection_lines(runs: list[RunInfo]) -> list[str]:
    parts = teacher_check_lines(runs)
    for run in runs:
        path = run.path / SELECTION_FILE
        if not path.is_file():
            continue
        sel = json.loads(path.read_text())
        curve = sel["curve"]
        rows = [[a.get("arm", "distilled"), f"{a['weight']:g}", f"{a.get('gamma', 0.0):g}", f"{a['val_ndcg@10']:.4f}",
                 str(a.get("epochs", "–")),
                 "stopped: behind the best arm" if a.get("stopped_behind_at_epoch") is not None else ""] for a in curve]
        chosen, gamma = float(sel["chosen_weight"]), float(sel.get("chosen_gamma", 0.0))
        first = curve[0]  # the grids start at 0 (or with the student alone): the arm with the least of the teacher
        best = next(a for a in curve if float(a["weight"]) == chosen and float(a.get("gamma", 0.0)) == gamma
                    and a.get("arm", "distilled") == sel.get("chosen_arm", "distilled"))
        alone = first.get("arm") == "student alone"
        base = "the student alone" if alone else f"kd.weight={first['weight']:g}, ed.gamma={first.get('gamma', 0.0):g}"
        if best is first:
            verdict = (f"Validation kept {base}: no weight of the teacher beat it (val NDCG@10 "
                       f"{first['val_ndcg@10']:.4f}), so that is the model. Listen to this teacher more only once it "
                       "ranks better than the student (train it longer, or on a GPU).")
            if alone:
                verdict = verdict.replace(f"Validation kept {base}", "Validation kept the student alone")
        else:
            verdict = (f"Validation chose kd.weight={chosen:g}, ed.gamma={gamma:g}: val NDCG@10 {best['val_ndcg@10']:.4f} "
                       f"against {first['val_ndcg@10']:.4f} for {base} ({best['val_ndcg@10'] - first['val_ndcg@10']:+.4f}; "
                       "one seed: run `--seeds 0,1,2` to see whether that is more than noise).")
        parts += [f"### Distillation weight ({run.label})", "",
                  "`distill.kd.weight=auto`: one distilled student per weight of the grid, the best validation "
                  "NDCG@10 kept (ties to the smaller weight); test is reported for that run only.", "",
                  markdown_table(["arm", "kd.weight", "ed.gamma", "val NDCG@10", "epochs", ""], rows), "", verdict, ""]
    parts += curve_over_seeds_lines(runs)
    return (["## Distillation: the teacher check and the weight chosen on validation", ""] + parts) if parts else []


def _arm_key(arm: dict) -> tuple[str, float, float]:
    return arm.get("arm", "distilled"), float(arm["weight"]), float(arm.get("gamma", 0.0))


def curve_over_seeds_lines(runs: list[RunInfo]) -> list[str]:
    """Each arm of the weight grid against the grid's first arm (the student alone, or weights 0), paired by
    seed over the seeds whose searches trained it: what one seed's choice cannot tell (is the best weight's
    lead more than noise?). Each seed's own choice stays its model; this table only reads the curves."""
    from recdistill.report.aggregate import interval_text, paired_interval

    first_label, base, arms, stopped = None, {}, {}, {}
    for run in runs:
        path = run.path / SELECTION_FILE
        seed = (run.config.get("efficiency") or {}).get("seed")
        if not path.is_file() or seed is None:
            continue
        curve = json.loads(path.read_text())["curve"]
        first = curve[0]
        first_label = ("the student alone" if first.get("arm") == "student alone"
                       else f"kd.weight {first['weight']:g}, ed.gamma {first.get('gamma', 0.0):g}")
        base[seed] = float(first["val_ndcg@10"])
        for arm in curve[1:]:
            arms.setdefault(_arm_key(arm), {})[seed] = float(arm["val_ndcg@10"])
            stopped[_arm_key(arm)] = stopped.get(_arm_key(arm), 0) + (arm.get("stopped_behind_at_epoch") is not None)
    if len(base) < 2:
        return []
    rows, best = [], None
    for key, values in sorted(arms.items(), key=lambda kv: kv[0][1:]):
        if len(values) < 2:
            continue
        diff = paired_interval(base, values)
        rows.append([f"{key[1]:g}", f"{key[2]:g}", str(len(values)),
                     interval_text(diff),
                     f"{stopped[key]} of {len(values)}"])
        if best is None or diff["mean"] > best[1]["mean"]:
            best = (key, diff)
    if not rows:
        return []
    (_, kd, ed), diff = best
    if diff["ci95_low"] > 0:
        verdict = (f"Over seeds, kd.weight {kd:g}, ed.gamma {ed:g} beats {first_label} on validation beyond "
                   "seed-to-seed noise.")
    elif diff["mean"] > 0:
        verdict = (f"Over seeds, kd.weight {kd:g}, ed.gamma {ed:g} leads {first_label} on validation by "
                   f"{diff['mean']:+.4f}, within noise (its interval holds 0).")
    else:
        verdict = f"Over seeds, no arm leads {first_label} on validation."
    return ["### The weight grid over seeds (validation, paired by seed)", "",
            f"Each arm minus {first_label}, validation NDCG@10, mean over the seeds with its 95 % interval; "
            "arms stopped early keep the best score they reached.", "",
            markdown_table(["kd.weight", "ed.gamma", "seeds", "minus " + first_label, "stopped early"], rows), "",
            verdict, ""]


def _check_of(runs: list[RunInfo]) -> dict | None:
    from pathlib import Path

    from recdistill.teacher_outputs.format import MANIFEST

    for run in runs:
        folder = (run.config.get("distill") or {}).get("teacher_outputs")
        manifest = Path(str(folder)) / MANIFEST if folder else None
        if manifest is not None and manifest.is_file():
            check = json.loads(manifest.read_text()).get("teacher_check")
            if check:
                return check
    return None


def headline_lines(runs: list[RunInfo], paired_val: tuple | None, paired_test: tuple | None) -> list[str]:
    """The headline's account of distillation: the teacher check in one line, what validation chose per seed,
    the distilled student against the student (paired over seeds when there are several), and a sentence a
    user can act on. ``paired_*``: (mean, low, high) of distilled minus student, or None."""
    from recdistill.evaluation.teacher_check import sentence

    chosen = []
    for run in runs:
        path = run.path / SELECTION_FILE
        if path.is_file():
            sel = json.loads(path.read_text())
            what = ("the student alone" if sel.get("chosen_arm") == "student alone"
                    else f"kd.weight {sel['chosen_weight']:g}, ed.gamma {sel.get('chosen_gamma', 0.0):g}")
            chosen.append(f"{run.label}: {what}")
    check = _check_of(runs)
    if not chosen and check is None:
        return []
    lines = []
    if check is not None:
        lines += [f"**Teacher check.** {sentence(check)}", ""]
    if chosen:
        lines += ["**Weights chosen on validation** (grids holding 0, the student alone an arm): "
                  + "; ".join(chosen) + ".", ""]
    if paired_val is not None and paired_test is not None:
        (vm, vl, vh), (tm, tl, th) = paired_val, paired_test
        lines += [f"**Distilled minus student, paired over seeds:** validation NDCG@10 {vm:+.4f} [{vl:+.4f}, {vh:+.4f}], "
                  f"test {tm:+.4f} [{tl:+.4f}, {th:+.4f}] (95 % intervals).", ""]
    lines += [f"**What to do.** {advice(check, chosen, paired_test)}", ""]
    return lines


def advice(check: dict | None, chosen: list[str], paired_test: tuple | None) -> str:
    """One sentence a user can act on, from what was measured (never a claim the intervals do not carry)."""
    worse = (check is not None and "teacher_minus_student" in check and check["users"] > 1
             and check["teacher_minus_student"]["ci95_high"] < 0)
    if chosen and all(c.endswith("the student alone") for c in chosen):
        return ("Use the student alone: no weight of this teacher beat it on validation. "
                + ("The teacher ranks below the student; train it longer (or on a GPU) before distilling again."
                   if worse else "A stronger teacher, or more seeds, may change that."))
    if paired_test is not None and paired_test[1] > 0:
        return "Use the distilled student: it beats the student alone on test beyond seed-to-seed noise."
    if paired_test is not None:
        tail = (" The teacher ranks below the student, so a weight validation gives it may be noise; train the "
                "teacher longer (or on a GPU) before expecting more from it." if worse
                else " Run more seeds, or train a stronger teacher, to tell.")
        return ("The distilled student is never below the student on validation (the student is an arm of the "
                "search); on test the difference is within noise." + tail)
    return ("One seed: run the pipeline with `--seeds 0,1,2` to see whether the difference is more than noise"
            + ("; the teacher ranks below the student, so train it longer (or on a GPU) first." if worse else "."))

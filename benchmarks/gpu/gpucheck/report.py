"""Verdicts over the rows of a GPU check, and its markdown table.

A check is ``pass``, ``fail`` or ``n/a`` (cannot be judged on this device); any ``fail``, and any arm that
ended in an error or on its time limit, makes the whole run fail (exit status 1)."""

from __future__ import annotations

MIN_MEMORY_CHANGE = 0.05   # precision arms: peaks closer than 5 % count as "no change" (the prototype's bug)
MIN_TIME_CHANGE = 0.05
ROUNDTRIP_TOLERANCE = 1e-2  # times max(1, largest |logit|): bf16 rounding of identical computations


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def precision_check(rows: list[dict], cuda: bool) -> dict:
    """fp32, bf16-mixed and bf16-true must give the dtypes they promise, and on CUDA different peaks."""
    name = "precision takes effect (fp32 / bf16-mixed / bf16-true)"
    if not {"precision-fp32", "precision-bf16-mixed", "precision-bf16-true"} <= {r["arm"] for r in rows}:
        return {"check": name, "status": "n/a", "detail": "needs all three precision arms; not all selected (--only)"}
    got = {r["setting"]: r for r in rows if r["arm"].startswith("precision-") and r["status"] == "ok"}
    missing = [s for s in ("fp32", "bf16-mixed", "bf16-true") if s not in got]
    if missing:
        return {"check": name, "status": "fail", "detail": f"could not compare: {', '.join(missing)} did not run"}
    problems = [f"{s}: activations are {got[s]['activation_dtype']}, expected {want}"
                for s, want in (("fp32", "float32"), ("bf16-mixed", "bfloat16"), ("bf16-true", "bfloat16"))
                if got[s]["activation_dtype"] != want]
    if got["bf16-true"]["lora_dtype"] != "bfloat16":
        problems.append(f"bf16-true: adapters are {got['bf16-true']['lora_dtype']}, expected bfloat16")
    detail = []
    if cuda:
        pairs = (("fp32", "bf16-mixed"), ("fp32", "bf16-true"), ("bf16-mixed", "bf16-true"))
        for a, b in pairs:
            ma, mb = got[a]["peak_allocated_mb"], got[b]["peak_allocated_mb"]
            change = _rel(ma, mb)
            detail.append(f"{a} {ma:.0f} MB vs {b} {mb:.0f} MB ({change:.0%})")
            if change < MIN_MEMORY_CHANGE:
                problems.append(f"peak memory of {a} and {b} differs by {change:.1%} (< {MIN_MEMORY_CHANGE:.0%}): "
                                "the precision switch changed nothing")
        t32, t16 = got["fp32"]["step_s"], got["bf16-true"]["step_s"]
        if _rel(t32, t16) < MIN_TIME_CHANGE:
            detail.append(f"warning: fp32 and bf16-true step times within {MIN_TIME_CHANGE:.0%} ({t32:.4f} vs {t16:.4f} s)")
    else:
        detail.append("peak memory not compared: no CUDA allocator on a CPU; dtypes checked")
    status = "fail" if problems else "pass"
    return {"check": name, "status": status, "detail": "; ".join(problems + detail)}


def _arm_row(rows: list[dict], arm: str, name: str) -> tuple[dict | None, dict | None]:
    """The row of ``arm`` and None, or None and the check's result when the arm was not selected or did not run."""
    row = next((r for r in rows if r["arm"] == arm), None)
    if row is None:
        return None, {"check": name, "status": "n/a", "detail": "not selected (--only)"}
    if row["status"] != "ok":
        return None, {"check": name, "status": "n/a" if row["status"] == "skipped" else "fail",
                      "detail": f"{row['status']}: {row.get('reason', '')}"}
    return row, None


def roundtrip_check(rows: list[dict]) -> dict:
    name = "adapters save -> load onto a fresh base -> same logits"
    row, unusable = _arm_row(rows, "qlora-roundtrip", name)
    if unusable:
        return unusable
    tol = ROUNDTRIP_TOLERANCE * max(1.0, row["logit_scale"])
    loaded, without = row["max_abs_diff_loaded"], row["max_abs_diff_without_adapters"]
    detail = (f"{row['quantization']}: max |logit difference| after loading {loaded:.3g} (tolerance {tol:.3g}); "
              f"without the adapters {without:.3g}")
    ok = loaded <= tol and without > max(10 * loaded, tol)
    return {"check": name, "status": "pass" if ok else "fail", "detail": detail}


def batch_size_check(rows: list[dict], cuda: bool) -> dict:
    name = "train.batch_size=auto finds a size"
    row, unusable = _arm_row(rows, "batch-size-auto", name)
    if unusable:
        return unusable
    hit_oom = any(not t["fits"] for t in row["tries"])
    ok = row["found_batch_size"] >= 1 and (hit_oom or not cuda)
    return {"check": name, "status": "pass" if ok else "fail",
            "detail": f"{row['found_batch_size']}: {row['rule']}" + ("" if hit_oom or not cuda else
                                                                     "; no out-of-memory was met under the cap")}


def arms_check(rows: list[dict]) -> dict:
    bad = [f"{r['arm']}: {r['status']} ({r.get('reason', '')[:200]})" for r in rows if r["status"] in ("error", "timeout")]
    return {"check": "every arm ran or was skipped for a stated reason", "status": "fail" if bad else "pass",
            "detail": "; ".join(bad) or f"{len(rows)} rows"}


def checks(rows: list[dict], cuda: bool) -> list[dict]:
    return [precision_check(rows, cuda), roundtrip_check(rows), batch_size_check(rows, cuda), arms_check(rows)]


def lm_summary(rows: list[dict]) -> list[dict]:
    """Per preset: the default efficiency settings against efficiency=none."""
    out = []
    for preset in dict.fromkeys(r.get("preset") for r in rows if r["arm"].startswith("lm-") and r["status"] == "ok"):
        pair = {r["setting"]: r for r in rows if r.get("preset") == preset and r["status"] == "ok"}
        none, default = pair.get("efficiency=none"), pair.get("efficiency=default")
        if none and default and none["peak_allocated_mb"] and default["peak_allocated_mb"]:
            out.append({"preset": preset, "memory_change": default["peak_allocated_mb"] / none["peak_allocated_mb"] - 1,
                        "speedup": default["tokens_per_s"] / none["tokens_per_s"]})
    return out


def adapters_table(rows: list[dict]) -> list[str]:
    """Seed 001's section 4 on one page: LoRA vs QLoRA vs attention kernel, both shapes."""
    picked = [r for r in rows if r["arm"].startswith(("adapters-", "qlora-smollm2", "qlora-llama2"))]
    if not picked:
        return []
    out = ["", "LoRA vs QLoRA NF4 vs attention kernel (seed 001, section 4):", "",
           "| shape | setting | status | step s | tokens/s | MFU | peak allocated MB | peak reserved MB |",
           "|---|---|---|---|---|---|---|---|"]
    for r in sorted(picked, key=lambda r: r["arm"].split("-", 1)[1]):
        shape = r.get("shape", r["arm"].split("-", 1)[1])
        status = r["status"] + (f": {r['reason']}" if r.get("reason") else "")
        out.append(f"| {shape} | {r.get('setting', 'ilora qlora-nf4 sdpa')} | {status} | {_cell(r.get('step_s'))} | "
                   f"{_cell(r.get('tokens_per_s'))} | {_cell(r.get('mfu'))} | {_cell(r.get('peak_allocated_mb'))} | "
                   f"{_cell(r.get('peak_reserved_mb'))} |")
    return out


SKIP_COLUMNS = {"arm", "tries", "rule", "reason", "status", "note"}


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render(record: dict) -> str:
    env, lines = record["environment"], []
    lines += ["# GPU check", "", f"Device: **{env['device_name']}** ({env['device']}), {env.get('memory_gib', '-')} GiB; "
              f"torch {env['torch']}, transformers {env['transformers']}, peft {env['peft']}, lightning {env['lightning']}, "
              f"bitsandbytes {env['bitsandbytes']}, flash-attn {env['flash_attn']}. MFU against {record['peak']}. "
              f"Wall time {record['wall_s']:.0f} s (budget {record['budget_s']:.0f} s){', tiny shapes' if record['tiny'] else ''}.",
              "", f"**Verdict: {record['verdict'].upper()}**", "", "| check | status | detail |", "|---|---|---|"]
    lines += [f"| {c['check']} | {c['status']} | {c['detail']} |" for c in record["checks"]]
    teacher = next((r for r in record["rows"] if r["arm"] == "adapters-llama2-7b" and r.get("setting", "").startswith("ilora")
                    and r["status"] == "ok"), None)
    if teacher:
        mfu = f", MFU {teacher['mfu']:.1%}" if teacher.get("mfu") is not None else ""
        lines += ["", f"Teacher on the Llama-2-7B shape ({teacher['setting']}, batch {teacher['batch']} x {teacher['seq_len']} "
                  f"tokens): {teacher['tokens_per_s']:,.0f} tokens/s{mfu}. FLOPs per token: 4 N + 12 L d T (frozen base, "
                  "adapters trained; see docs/gpu.md)."]
    lines += adapters_table(record["rows"])
    if record["lm_summary"]:
        lines += ["", "LM presets, default efficiency against efficiency=none (seed 002 claimed about 38 % less memory):", "",
                  "| preset | peak memory change | tokens/s ratio |", "|---|---|---|"]
        lines += [f"| {s['preset']} | {s['memory_change']:+.0%} | {s['speedup']:.2f}x |" for s in record["lm_summary"]]
    for arm in dict.fromkeys(r["arm"] for r in record["rows"]):
        rows = [r for r in record["rows"] if r["arm"] == arm]
        cols = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in SKIP_COLUMNS
                and not isinstance(rows[0].get(k, 0), (list, dict))]
        lines += ["", f"## {arm}", "", "| status | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for r in rows:
            status = r["status"] + (f": {r['reason']}" if r.get("reason") else "") + (f" ({r['note']})" if r.get("note") else "")
            lines.append(f"| {status} | " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"

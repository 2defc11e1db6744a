"""Markdown for ``benchmarks/results/serving.md`` from the JSON record of ``benchmarks/serving/serving.py``."""

from __future__ import annotations


def render(r: dict) -> str:
    t = r["teacher"]
    key = f"cand{t['candidates']}_ndcg@10"
    speed = {s["backend"]: s for s in r["student_speed"]}
    lines = ["# Serving: the distilled student against the LLM teacher", "",
             f"Machine: {r['machine']}. Load average before / after: {r['load_average_before']} / "
             f"{r['load_average_after']}. Threads: {r['threads']} (torch and ONNX Runtime). "
             f"Student: `{r['student']['checkpoint']}` ({r['student']['kind']}, hidden "
             f"{r['student']['model']['hidden_size']}, {r['student']['model']['num_blocks']} blocks, max_len "
             f"{r['student']['model']['max_len']}); one recommendation = pad the history, score the whole catalogue, "
             "leave seen items out, top-10." + (f" {r['note']}" if r.get("note") else ""), "",
             "## Student, in process", "",
             "| backend | batch 1 p50 ms | batch 1 p99 ms | batch 1 users/s | batch 64 p50 ms | batch 64 users/s | "
             "all users in one call, users/s | CPU ms per user: batch 1 / 64 / all | users per CPU-second, all |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in r["student_speed"]:
        lines.append(f"| {s['backend']} | {s['batch1_p50_ms']} | {s['batch1_p99_ms']} | {s['batch1_users_per_s']} | "
                     f"{s['batch64_p50_ms']} | {s['batch64_users_per_s']} | {s['all_users_users_per_s']} "
                     f"({s['users']} users) | {s['batch1_cpu_ms_per_user']} / {s['batch64_cpu_ms_per_user']} / "
                     f"{s['all_users_cpu_ms_per_user']} | {s['all_users_users_per_cpu_s']} |")
    lines += ["", f"Repeats: {r['student_speed'][0]['repeats']}. Wall times of long calls include waiting for a "
              "core when the machine is shared; the CPU time (every thread of the process counted) does not.", "",
              "## Student through HTTP (`recdistill serve` on the ONNX export, loopback, one user per request)", "",
              "| concurrency | requests | answered | lost | p50 ms | p99 ms | requests/s |", "|---|---|---|---|---|---|---|"]
    for h in r["http"]:
        lines.append(f"| {h['concurrency']} | {h['requests']} | {h['answered']} | {h['lost']} | {h['p50_ms']} | "
                     f"{h['p99_ms']} | {h['requests_per_s']} |")
    lines += ["", "The load generator (Python threads, one keep-alive connection each) runs on the same 2 cores as "
              "the server, so the requests/s are a floor for the server alone.", "",
              "## Teacher against student, same users, same candidates", "",
              f"Teacher: {t['llm']}, adapters: {t['adapter']}; {t['users']} validation users, {t['candidates']} "
              f"candidates each (target + {t['candidates'] - 1} unseen), scored by likelihood with the prompt's KV "
              f"cache reused, {t['batch']} prompts per call, mean prompt {t['mean_prompt_tokens']} tokens "
              f"(model load {t['load_s']} s, not counted).", "",
              "| | wall seconds per user | CPU seconds per user | NDCG@10 over the 20 candidates, same users |",
              "|---|---|---|---|",
              f"| teacher | {t['seconds_per_user']} | {t['cpu_seconds_per_user']} | {t['teacher_' + key]} |",
              f"| student, ONNX, all users batched | {1 / speed['onnxruntime']['all_users_users_per_s']:.2e} | "
              f"{speed['onnxruntime']['all_users_cpu_ms_per_user'] / 1000:.2e} | "
              f"{t['student_' + key]} (all {t['all_users']} users: {t['student_' + key + '_all_users']}) |",
              f"| student, HTTP, one request | {r['http'][0]['p50_ms'] / 1000:.2e} (p50) | | same model |", "",
              f"**The student is {r['cheaper_x_cpu_time']:,.0f} times cheaper per user than the teacher in CPU "
              f"time ({r['cheaper_x_batched']:,.0f} times in wall time, batched; "
              f"{r['cheaper_x_batch1_http']:,.0f} times for one user through HTTP)**"
              + (f", at {100 * t['student_' + key] / t['teacher_' + key]:.0f} % of the teacher's NDCG@10 on these "
                 f"{t['users']} users." if t["teacher_" + key] > 0 and t["adapter"] != "untrained" else
                 ". No ratio of quality is given: the teacher measured here is not a trained one (below).")]
    if t["adapter"] == "untrained":
        lines += ["", "The teacher's adapters here are untrained (no trained SmolLM2 teacher existed on this "
                  "machine): its cost is that of the trained teacher (same model, same prompts, same scoring), "
                  "but its NDCG is only a floor, not what a trained teacher reaches. Rerun with "
                  "`--teacher-adapter runs/<teacher run>/adapter` to measure a trained one."]
    lines += ["", f"With {t['users']} teacher users the NDCG figures are noisy; the student's over all users is the "
              "steadier one."]
    return "\n".join(lines) + "\n"

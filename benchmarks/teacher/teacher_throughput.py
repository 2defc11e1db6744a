"""Teacher training throughput: our LightningModule (iLoRA experts, projector, gate, answer-only logits)
against a plain transformers ``Trainer`` + PEFT LoRA on the same model, the same prompts (token ids)
and the same batch size.

Each variant runs in its own process (a fresh peak-memory counter; the model load is excluded by
resetting the counter just before training) and the variants alternate ``--repeats`` times, so load
from other jobs on the shared CPU hits both alike. Reported: answer tokens/s and all tokens/s over
the steps after ``--warmup``, peak resident memory during training, and achieved FLOP/s as a share of
the fp32 matrix-product FLOP/s measured in the same process.

FLOPs counted: forward = 2 x (weights of the decoder's linear layers) x (padded tokens) + attention
scores and mixing (4 x layers x T^2 x hidden per sequence) + the LM head (2 x head weights x positions
whose logits are computed: the answer span for ours, every position for the baseline). Training =
2 x forward (the frozen base needs activation gradients but no weight gradients; LoRA's own FLOPs
are negligible and not counted). Each variant is credited with the work it really does.

    python benchmarks/teacher/teacher_throughput.py                 # SmolLM2-135M, batch 8, 4 steps, 2 repeats
    python benchmarks/teacher/teacher_throughput.py --llm tiny-llama --steps 3 --repeats 1

Writes ``benchmarks/results/teacher_throughput.json`` (every trial) and ``.md`` (medians).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = ("ours_ilora", "hf_trainer_peft_lora")


def _batches(args, tokenizer, data, student):
    from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
    from recdistill.teacher.data import PromptCollator, PromptDataset, train_samples
    from benchmarks.teacher.teacher_common import prompt_settings

    enc = PromptEncoder(tokenizer, data.titles, load_templates())
    settings = prompt_settings(int(student.max_len), history_items=args.history, num_candidates=args.candidates,
                               seed=0)
    ds = PromptDataset(train_samples(data, "last", 1, data.users()[: args.steps * args.batch_size]), enc,
                       data.num_items, settings, "train", train=True)
    collate = PromptCollator(enc.slot_id, settings.student_len, with_prompts=False)
    return enc, [collate([ds[i] for i in range(s, s + args.batch_size)]) for s in range(0, args.steps * args.batch_size,
                                                                                       args.batch_size)]


def _right_padded(batch, pad_id):
    """The same rows right-padded, as a plain transformers pipeline pads them."""
    import torch

    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    out = {"input_ids": torch.full_like(ids, pad_id), "attention_mask": torch.zeros_like(mask),
           "labels": torch.full_like(labels, -100)}
    for b in range(ids.shape[0]):
        keep = mask[b] > 0
        n = int(keep.sum())
        out["input_ids"][b, :n], out["attention_mask"][b, :n], out["labels"][b, :n] = ids[b][keep], 1, labels[b][keep]
    return out


def _flops(model, batch, logit_positions: int) -> float:
    import torch

    cfg = model.config
    body = sum(m.weight.numel() for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and ".layers." in name and "lora" not in name)
    head = cfg.vocab_size * cfg.hidden_size
    bsz, width = batch["input_ids"].shape
    forward = 2 * body * bsz * width + 4 * cfg.num_hidden_layers * width * width * cfg.hidden_size * bsz
    forward += 2 * head * logit_positions
    return 2.0 * forward


def worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from benchmarks.common.machine import matmul_flops
    from benchmarks.teacher.teacher_common import cache_dir, linear_gate_spec, llm_config, prepared, student_for

    from recdistill.engine.memory import peak_memory, reset_peak_memory

    peak_flops = matmul_flops()
    data = prepared(args.prepared)
    student = student_for(data, None)
    torch.manual_seed(0)
    step_times: list[float] = []
    if args.variant == "ours_ilora":
        import lightning as L

        from recdistill.config import compose
        from recdistill.engine import OptimizerSettings
        from recdistill.recipes.lifecycle import efficiency
        from recdistill.recipes.teacher_settings import teacher_eval_settings
        from recdistill.teacher.build import build_teacher
        from recdistill.teacher.module import TeacherModule

        teacher, loaded = build_teacher(llm_config(args.llm), linear_gate_spec(), student, cache_dir())
        enc, batches = _batches(args, loaded.tokenizer, data, student)
        eff = efficiency(compose("teacher", ["efficiency.fused_adamw=auto", "efficiency.scheduler=cosine",
                                             "efficiency.warmup_ratio=0.0", "efficiency.min_lr_ratio=0.0"]))
        evaluation = teacher_eval_settings(compose("teacher", []).teacher.eval)  # unused: training only
        module = TeacherModule(teacher, enc, data.titles, OptimizerSettings(8e-4, 0.0, (0.9, 0.999)), eff, evaluation,
                               num_candidates=args.candidates)

        class Timer(L.Callback):
            def on_train_batch_start(self, *a):
                self.t = time.perf_counter()

            def on_train_batch_end(self, *a):
                step_times.append(time.perf_counter() - self.t)

        loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
        trainer = L.Trainer(accelerator="cpu", max_steps=args.steps, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[Timer()],
                            limit_val_batches=0, precision="32-true")
        reset_peak_memory()
        trainer.fit(module, train_dataloaders=loader)
        base = loaded.model
        logits = [b["input_ids"].shape[0] * (int(b["input_ids"].shape[1] - b["labels"].ne(-100).any(0).nonzero().min()) + 1)
                  for b in batches]
    else:
        from peft import LoraConfig, get_peft_model
        from transformers import Trainer, TrainerCallback, TrainingArguments

        from recdistill.teacher.llm import load_llm

        loaded = load_llm(llm_config(args.llm), cache_dir())
        enc, batches = _batches(args, loaded.tokenizer, data, student)
        plain = [_right_padded(b, enc.slot_id) for b in batches]
        model = get_peft_model(loaded.model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.1, task_type="CAUSAL_LM",
                                                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                        "gate_proj", "up_proj", "down_proj"]))
        model.train()

        class Timer(TrainerCallback):
            def on_step_begin(self, *a, **k):
                self.t = time.perf_counter()

            def on_step_end(self, *a, **k):
                step_times.append(time.perf_counter() - self.t)

        with tempfile.TemporaryDirectory() as tmp:
            targs = TrainingArguments(output_dir=tmp, per_device_train_batch_size=1, max_steps=args.steps,
                                      learning_rate=8e-4, lr_scheduler_type="cosine", warmup_steps=0,
                                      report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True,
                                      dataloader_num_workers=0, remove_unused_columns=False, disable_tqdm=True)
            # One dataset item = one prepared batch, so both variants see exactly the same batches.
            trainer = Trainer(model=model, args=targs, train_dataset=plain, data_collator=lambda rows: rows[0],
                              callbacks=[Timer()])
            reset_peak_memory()
            trainer.train()
        base = loaded.model
        logits = [b["input_ids"].numel() for b in plain]
    memory = peak_memory()
    measured = range(args.warmup, len(step_times))
    seconds = sum(step_times[i] for i in measured)
    tokens = sum(int(batches[i]["attention_mask"].sum()) for i in measured)
    answers = sum(int(batches[i]["labels"].ne(-100).sum()) for i in measured)
    flops = sum(_flops(base, batches[i], logits[i]) for i in measured)
    return {"variant": args.variant, "llm": args.llm, "batch_size": args.batch_size, "steps": len(step_times),
            "warmup_steps": args.warmup, "seconds_per_step": seconds / max(1, len(measured)),
            "tokens_per_second": tokens / seconds, "answer_tokens_per_second": answers / seconds,
            "peak_rss_mb": memory.get("peak_rss_mb"), "rss_scope": memory.get("rss_scope"),
            "achieved_flops": flops / seconds, "matmul_flops": peak_flops, "flops_share": flops / seconds / peak_flops,
            "mean_tokens_per_sample": tokens / (len(measured) * args.batch_size), "threads": args.threads,
            "step_seconds": [round(t, 3) for t in step_times]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llm", default="smollm2-135m")
    p.add_argument("--prepared", default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--history", type=int, default=10)
    p.add_argument("--candidates", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    if args.variant:
        print("RESULT " + json.dumps(worker(args)))
        return 0
    from benchmarks.common.machine import load_average

    trials = []
    for repeat in range(args.repeats):
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, "--variant", variant] + [
                f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("variant", "repeats", "out")
                and v is not None]
            load = load_average()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"{variant} failed")
            trial = json.loads(line[7:]) | {"repeat": repeat, "load_average_before": load}
            trials.append(trial)
            print(f"{variant} repeat {repeat}: {trial['tokens_per_second']:.1f} tokens/s, "
                  f"{trial['seconds_per_step']:.2f} s/step, peak {trial['peak_rss_mb']} MB, load {load}", flush=True)
    med = {v: {k: statistics.median(t[k] for t in trials if t["variant"] == v)
               for k in ("tokens_per_second", "answer_tokens_per_second", "seconds_per_step", "peak_rss_mb",
                         "achieved_flops", "matmul_flops", "flops_share")} for v in VARIANTS}
    ours, base = med["ours_ilora"], med["hf_trainer_peft_lora"]
    summary = {"speedup_tokens_per_second": ours["tokens_per_second"] / base["tokens_per_second"],
               "peak_memory_ratio": ours["peak_rss_mb"] / base["peak_rss_mb"]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "teacher_throughput.json").write_text(json.dumps({"trials": trials, "medians": med, "summary": summary},
                                                            indent=2) + "\n")
    rows = ["# Teacher training throughput", "",
            f"{args.llm}, batch {args.batch_size}, {args.steps} steps ({args.warmup} warm-up step excluded), "
            f"{args.repeats} alternating repeats per variant (medians), {args.threads} threads, "
            f"{trials[0]['mean_tokens_per_sample']:.0f} tokens per prompt on average. The 2-core CPU is shared "
            "with other jobs; the load average before each trial is in the JSON.", "",
            "| variant | tokens/s | answer tokens/s | s/step | peak RSS MB | achieved GFLOP/s | share of fp32 matmul |",
            "|---|---|---|---|---|---|---|"]
    for v in VARIANTS:
        m = med[v]
        rows.append(f"| {v} | {m['tokens_per_second']:.1f} | {m['answer_tokens_per_second']:.2f} | "
                    f"{m['seconds_per_step']:.2f} | {m['peak_rss_mb']:.0f} | {m['achieved_flops'] / 1e9:.1f} | "
                    f"{m['flops_share']:.1%} (of {m['matmul_flops'] / 1e9:.0f} GFLOP/s) |")
    rows += ["", f"Ours vs baseline: **{summary['speedup_tokens_per_second']:.2f}x** tokens/s at "
                 f"**{summary['peak_memory_ratio']:.2f}x** the peak memory."]
    (out / "teacher_throughput.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

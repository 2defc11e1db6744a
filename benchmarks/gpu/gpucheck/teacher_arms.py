"""Arms on the iLoRA teacher (``recdistill.teacher.model.ILoRATeacher`` around a Llama built from a config):
precision, adapters x attention kernel, gradient accumulation, scoring batch size, ``batch_size=auto``.

Every arm returns a list of rows (dicts); ``status`` is ``ok`` or ``skipped`` (with ``reason``)."""

from __future__ import annotations

import importlib.util
import time

import torch

from benchmarks.gpu.gpucheck.common import (Context, Skip, build_llm, flops_per_token, free, make_teacher, teacher_batch,
                             timed_steps)

# setting -> (Lightning precision, dtype the LLM is built in). "gpu-default" is what the recipe runs on a
# GPU by default: llm.dtype=auto under efficiency.precision=auto, both as the engine resolves them
# (Context.base_dtype, Context.precision: a bf16 base under bf16-mixed on a bf16 GPU).
PRECISIONS = {"fp32": ("32-true", torch.float32), "bf16-mixed": ("bf16-mixed", torch.float32),
              "bf16-true": ("bf16-true", torch.float32)}


def sizes(ctx: Context, batch: int, seq: int) -> tuple[int, int]:
    return (2, 64) if ctx.tiny else (batch, seq)


def _optimizer(teacher, lr: float = 1e-4):
    """The engine's AdamW under ``efficiency.fused_adamw=auto`` (fused when every parameter is on CUDA)."""
    from recdistill.engine.optim import build_optimizer

    return build_optimizer(teacher, lr=lr, fused="auto")


def _throughput(row: dict, ctx: Context, shape: dict, tokens: int, seq: int) -> dict:
    row["tokens_per_s"] = round(tokens / row["step_s"], 1)
    if ctx.peak_tflops:
        row["mfu"] = round(row["tokens_per_s"] * flops_per_token(shape, seq) / (ctx.peak_tflops * 1e12), 4)
    return row


def train_row(ctx: Context, teacher, shape: dict, batch: int, seq: int, accumulate: int = 1) -> dict:
    """Time ``accumulate`` forward+backward passes and one AdamW step under the autocast of
    ``efficiency.precision=auto`` (bf16 on a GPU, none on a CPU)."""
    b = teacher_batch(batch, seq, shape["vocab_size"], ctx.device)
    opt = _optimizer(teacher)
    teacher.train()

    def step():
        for _ in range(accumulate):
            with ctx.autocast():
                loss = teacher(**b).loss / accumulate
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    row = timed_steps(step, ctx)
    return _throughput(row, ctx, shape, batch * seq * accumulate, seq)


def precision(ctx: Context, setting: str) -> list[dict]:
    """One training step of the teacher under one Lightning precision, through Lightning Fabric's precision
    plugins (the ones the Trainer uses): fp32 casts nothing, bf16-mixed autocasts, bf16-true converts the
    module to bf16."""
    from lightning.fabric import Fabric

    if setting == "gpu-default" and not ctx.cuda:
        raise Skip("the GPU's default (bf16 base under bf16-mixed); on a CPU llm.dtype=auto is fp32: the fp32 arm")
    lightning_precision, base_dtype = (ctx.precision, ctx.base_dtype) if setting == "gpu-default" else PRECISIONS[setting]
    shape = ctx.shape("smollm2-135m")
    batch, seq = sizes(ctx, 16, 512)
    torch.set_float32_matmul_precision("high")  # efficiency.matmul_precision's default
    fabric = Fabric(accelerator="cuda" if ctx.cuda else "cpu", devices=1, precision=lightning_precision)
    inner = make_teacher(build_llm(shape, base_dtype, "sdpa", ctx.device), ctx.device)
    teacher = fabric.setup_module(inner)
    opt = fabric.setup_optimizers(_optimizer(teacher))
    b = teacher_batch(batch, seq, shape["vocab_size"], ctx.device)
    teacher.train()
    # Fabric casts outputs back to fp32, so the dtype is read inside: the first decoder layer's MLP output.
    seen = []
    hook = inner.llm.model.layers[0].mlp.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.no_grad():
        teacher(**b)
    hook.remove()
    activation_dtype = str(seen[0])[6:]

    def step():
        fabric.backward(teacher(**b).loss)
        opt.step()
        opt.zero_grad(set_to_none=True)

    row = _throughput(timed_steps(step, ctx), ctx, shape, batch * seq, seq)
    lora_dtype = next(p.dtype for n, p in inner.named_parameters() if "lora_A" in n)
    return [{"setting": setting, "lightning_precision": lightning_precision, "llm_built_in": str(base_dtype)[6:],
             "activation_dtype": activation_dtype, "lora_dtype": str(lora_dtype)[6:], "batch": batch, "seq_len": seq, **row}]


def adapters_attention(ctx: Context, shape_name: str) -> list[dict]:
    """iLoRA adapters on a bf16 base with each attention kernel, and PEFT's plain LoRA with SDPA."""
    shape = ctx.shape(shape_name)
    batch, seq = sizes(ctx, 8 if shape_name == "llama2-7b" else 16, 512)
    rows = []
    for mode, attn in (("ilora", "sdpa"), ("ilora", "eager"), ("ilora", "flash_attention_2"), ("lora", "sdpa")):
        head = {"setting": f"{mode} {str(ctx.base_dtype)[6:]} {attn}", "shape": ctx.label(shape_name), "batch": batch, "seq_len": seq}
        if attn == "flash_attention_2" and not (ctx.cuda and importlib.util.find_spec("flash_attn")):
            rows.append({**head, "status": "skipped", "reason": "needs CUDA and the flash-attn package"
                         + ("" if ctx.cuda else " (no CUDA here)")})
            continue
        try:  # one kernel failing (FlashAttention-2 builds vary) must not lose the other rows
            teacher = make_teacher(build_llm(shape, ctx.base_dtype, attn, ctx.device), ctx.device, mode=mode)
            rows.append({**head, **train_row(ctx, teacher, shape, batch, seq)})
        except Exception as exc:  # noqa: BLE001 - recorded as this row's error, which fails the check
            rows.append({**head, "status": "error", "reason": f"{type(exc).__name__}: {str(exc)[:300]}"})
        teacher = None
        free(ctx.device)
    return rows


def accumulation(ctx: Context) -> list[dict]:
    """Gradient accumulation 1 / 4 / 8 at micro-batch 8 (seed 001, section 5): memory should not grow."""
    shape = ctx.shape("smollm2-135m")
    batch, seq = sizes(ctx, 8, 512)
    teacher = make_teacher(build_llm(shape, ctx.base_dtype, "sdpa", ctx.device), ctx.device)
    rows = []
    for k in (1, 4, 8):
        row = train_row(ctx, teacher, shape, batch, seq, accumulate=k)
        rows.append({"setting": f"accumulate {k}", "batch": batch, "seq_len": seq, "accumulate": k,
                     "s_per_sample": round(row["step_s"] / (batch * k), 6), **row})
    return rows


def _scoring_batch(ctx: Context, shape: dict, prompts: int, seq: int, candidates: int):
    g = torch.Generator().manual_seed(1)
    b = teacher_batch(prompts, seq, shape["vocab_size"], ctx.device)
    batch = {"prompt_ids": b["input_ids"], "prompt_mask": b["attention_mask"], "prompt_slots": b["item_slots"],
             "student_seq": b["student_seq"],
             "candidates": torch.randint(1, 1683, (prompts, candidates), generator=g)}
    titles = [[3]] + [torch.randint(3, shape["vocab_size"], (int(n),), generator=g).tolist()
                      for n in torch.randint(3, 11, (1682,), generator=g)]
    return batch, titles


def inference_batch(ctx: Context) -> list[dict]:
    """Candidate scoring (``teacher.scoring.score_candidates``, KV cache reused) with 64 vs 256 candidate
    continuations per forward (``teacher.eval.candidate_batch_size``; seed 001 section 3.5)."""
    from recdistill.teacher.scoring import score_candidates

    shape = ctx.shape("smollm2-135m")
    prompts, seq = sizes(ctx, 16, 256)
    candidates = 20
    teacher = make_teacher(build_llm(shape, ctx.base_dtype, "sdpa", ctx.device), ctx.device).eval()
    batch, titles = _scoring_batch(ctx, shape, prompts, seq, candidates)
    answers = [t + [2] for t in titles]  # each title and EOS (id 2)
    rows, first = [], None
    for chunk in (64, 256):
        def step():
            with ctx.autocast():
                step.scores = score_candidates(teacher, batch, answers, pad_id=0, chunk_size=chunk)

        row = timed_steps(step, ctx, warmup=1, max_steps=5)
        first = step.scores if first is None else first
        rows.append({"setting": f"candidate_batch_size {chunk}", "prompts": prompts, "seq_len": seq,
                     "candidates_per_prompt": candidates, "candidates_per_s": round(prompts * candidates / row["step_s"], 1),
                     "max_abs_score_diff_vs_64": round(float((step.scores.float() - first.float()).abs().max()), 5), **row})
    return rows


def batch_size_auto(ctx: Context) -> list[dict]:
    """``train.batch_size=auto``'s search (``engine.batch_size``) on the teacher's training step. On CUDA the
    process is capped at 16 GiB (``torch.cuda.set_per_process_memory_fraction``) so the doubling meets a
    real out-of-memory in seconds instead of filling a 141 GB card; the answer is for that cap."""
    from recdistill.engine.batch_size import SearchSettings, search_batch_size, training_step_fn

    shape = ctx.shape("smollm2-135m")
    _, seq = sizes(ctx, 8, 512)
    cap_gib = None
    if ctx.cuda:
        cap_gib = 16.0
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * 2**30 / total))
        settings = SearchSettings(margin=0.1, start=8, max_batch_size=4096, cpu_memory_mb=None, cpu_memory_fraction=0.5)
    else:
        settings = SearchSettings(margin=0.1, start=2, max_batch_size=4, cpu_memory_mb=64_000, cpu_memory_fraction=0.5)
    teacher = make_teacher(build_llm(shape, ctx.base_dtype, "sdpa", ctx.device), ctx.device)
    step = training_step_fn(teacher, lambda b: teacher(**b).loss,
                            lambda n: teacher_batch(n, seq, shape["vocab_size"], "cpu", seed=n), ctx.device, ctx.precision)
    start = time.perf_counter()
    result = search_batch_size(step, ctx.device, settings, num_examples=100_000)
    return [{"setting": "train.batch_size=auto", "seq_len": seq, "memory_cap_gib": cap_gib,
             "found_batch_size": result.batch_size, "rule": result.rule, "tries": result.tries,
             "search_s": round(time.perf_counter() - start, 2)}]

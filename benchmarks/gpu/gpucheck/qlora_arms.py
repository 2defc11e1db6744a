"""QLoRA arms: an NF4 training step on each shape, and the save -> load -> same logits check.

A 4-bit base can only be made by ``from_pretrained`` with a ``BitsAndBytesConfig``, so the random-weight
model is first saved to the scratch folder and then loaded through the project's own loader
(``recdistill.teacher.llm.load_llm``, ``llm.quantization=nf4``), the path a user's run takes."""

from __future__ import annotations

import time

import torch

from benchmarks.gpu.gpucheck.common import Context, build_llm, free, make_teacher, require, require_cuda, teacher_batch
from benchmarks.gpu.gpucheck.teacher_arms import sizes, train_row

NO_TOKENIZER = "none: the check feeds random token ids"


def _saved_base(ctx: Context, shape_name: str, dtype: torch.dtype) -> tuple[str, float]:
    folder = ctx.scratch / f"base-{shape_name}-{'tiny' if ctx.tiny else 'full'}-{str(dtype)[6:]}"
    start = time.perf_counter()
    if not (folder / "config.json").is_file():
        model = build_llm(ctx.shape(shape_name), dtype, "sdpa", ctx.device)
        model.save_pretrained(str(folder))
        del model
        free(ctx.device)
    return str(folder), round(time.perf_counter() - start, 2)


def _load(ctx: Context, folder: str, quantization: str, dtype: str):
    from recdistill.teacher.llm import LLMSettings, load_llm

    settings = LLMSettings(source=folder, dtype=dtype, attn_implementation="sdpa", quantization=quantization,
                           gradient_checkpointing=False)
    start = time.perf_counter()
    loaded = load_llm(settings, str(ctx.scratch), tokenizer=NO_TOKENIZER)
    return loaded, round(time.perf_counter() - start, 2)


def qlora_step(ctx: Context, shape_name: str) -> list[dict]:
    require_cuda(ctx, "QLoRA (bitsandbytes NF4)")
    require("bitsandbytes")
    shape = ctx.shape(shape_name)
    batch, seq = sizes(ctx, 8 if shape_name == "llama2-7b" else 16, 512)
    print(f"stage: saving the random {shape_name} base", flush=True)
    folder, save_s = _saved_base(ctx, shape_name, ctx.base_dtype)
    print("stage: loading it in NF4", flush=True)
    loaded, load_s = _load(ctx, folder, "nf4", "bfloat16")
    print("stage: training steps", flush=True)
    teacher = make_teacher(loaded.model, ctx.device, quantized=True)
    row = train_row(ctx, teacher, shape, batch, seq)
    return [{"setting": "ilora qlora-nf4 sdpa", "shape": ctx.label(shape_name), "batch": batch, "seq_len": seq,
             "save_s": save_s, "load_nf4_s": load_s, **row}]


def _logits(teacher, batch: dict, ctx: Context) -> torch.Tensor:
    teacher.eval()
    with torch.no_grad(), ctx.autocast():
        return teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()


def roundtrip(ctx: Context) -> list[dict]:
    """Train the adapters a few steps, save them (``teacher.checkpoint.save_adapter``), build a fresh
    quantized base, load them (``load_adapter_weights``) and compare logits on the same batch. Also the
    fresh model's logits before loading, to show the adapters carry something the comparison would miss."""
    import importlib.util

    from recdistill.teacher.checkpoint import load_adapter_weights, save_adapter

    if ctx.cuda and importlib.util.find_spec("bitsandbytes"):
        quant, dtype, note = "nf4", "bfloat16", None
    else:
        quant, dtype = "none", "float32"
        note = ("unquantized: NF4 needs CUDA and bitsandbytes" + ("" if ctx.cuda else " (no CUDA here)")
                + "; the save/load path is the same")
    shape = ctx.shape("smollm2-135m")
    folder, _ = _saved_base(ctx, "smollm2-135m", getattr(torch, dtype))
    loaded, _ = _load(ctx, folder, quant, dtype)
    teacher = make_teacher(loaded.model, ctx.device, quantized=quant != "none")
    opt = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=1e-2)
    train = teacher_batch(4, 64, shape["vocab_size"], ctx.device)
    teacher.train()
    for _ in range(3):  # so the LoRA B matrices are no longer zero
        with ctx.autocast():
            teacher(**train).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    probe = teacher_batch(4, 64, shape["vocab_size"], ctx.device, seed=7)
    before = _logits(teacher, probe, ctx)
    adapter = save_adapter(teacher, ctx.scratch / "adapter", {"written_by": "benchmarks/gpu/gpu_check.py"})
    del teacher, loaded, opt
    free(ctx.device)
    fresh = make_teacher(_load(ctx, folder, quant, dtype)[0].model, ctx.device, quantized=quant != "none")
    untrained = _logits(fresh, probe, ctx)
    load_adapter_weights(fresh, adapter)
    after = _logits(fresh, probe, ctx)
    row = {"setting": f"save -> load ({quant})", "quantization": quant,
           "max_abs_diff_loaded": float((after - before).abs().max()),
           "max_abs_diff_without_adapters": float((untrained - before).abs().max()),
           "logit_scale": float(before.abs().max())}
    if note:
        row["note"] = note
    return [row]


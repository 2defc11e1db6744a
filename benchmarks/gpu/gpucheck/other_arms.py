"""Arms on the student (SASRec: an epoch on ML-100K-sized synthetic data, ``torch.compile``) and on the
LM presets (``efficiency=none`` against the default efficiency settings)."""

from __future__ import annotations

import time

import torch

from benchmarks.gpu.gpucheck.common import (NUM_ITEMS, Context, autocast, free, make_student, package_yaml,
                                            reset_peaks, sync, timed_steps)

ML100K_USERS, ML100K_INTERACTIONS = 943, 100_000


def _student_windows(ctx: Context, max_len: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Training windows as the student's data module cuts them: each user's history minus the validation
    and test items, in windows of ``max_len + 1`` from the newest end, inputs left-padded. History lengths
    are drawn to match ML-100K (943 users, 100k ratings, at least 20 each)."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # the length draw below uses the global generator
    users = 24 if ctx.tiny else ML100K_USERS
    extra = torch.distributions.Exponential(1 / 86.0).sample((users,)) if not ctx.tiny else torch.zeros(users)
    lengths = (20 + extra).long()
    inputs, targets = [], []
    for n in lengths.tolist():
        seq = torch.randint(1, NUM_ITEMS + 1, (n - 2,), generator=g)
        for end in range(len(seq), 1, -max_len):
            w = seq[max(0, end - max_len - 1):end]
            pad = max_len + 1 - len(w)
            w = torch.cat([torch.zeros(pad, dtype=torch.long), w])
            inputs.append(w[:-1])
            targets.append(torch.where(w[:-1] > 0, w[1:], 0))
    return torch.stack(inputs).to(ctx.device), torch.stack(targets).to(ctx.device)


def student_epoch(ctx: Context) -> list[dict]:
    """One epoch of the student's training (``student.module.sequence_loss``, full-catalogue CE, batch 128,
    the engine's AdamW and autocast under the ``auto`` settings: fused and bf16 on a GPU) after a one-epoch
    warm-up. The data sit on the device: the real DataLoader adds host-to-device copies, small at this size."""
    from recdistill.engine.optim import build_optimizer
    from recdistill.student.module import sequence_loss

    inputs, targets = _student_windows(ctx)
    model = make_student(ctx.device).train()
    opt = build_optimizer(model, lr=1e-3, betas=(0.9, 0.98), fused="auto")
    batch = 128

    def epoch():
        order = torch.randperm(len(inputs), device=ctx.device)
        for i in range(0, len(order), batch):
            rows = order[i:i + batch]
            with ctx.autocast():
                loss = sequence_loss(model, {"inputs": inputs[rows], "targets": targets[rows]}, "ce")
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    row = timed_steps(epoch, ctx, warmup=1, max_steps=3)
    positions = int((targets > 0).sum())
    return [{"setting": "epoch, batch 128", "users": int(ML100K_USERS if not ctx.tiny else 24), "windows": len(inputs),
             "positions": positions, "epoch_s": row["step_s"], "positions_per_s": round(positions / row["step_s"], 1),
             **row}]


def student_compile(ctx: Context) -> list[dict]:
    """``efficiency.compile=true`` on the student as ``StudentModule.compile_model`` does it
    (``nn.Module.compile``, inductor): the first compiled step's time (the compile) and the steady step,
    against eager. On a CPU the test compiles with the ``eager`` backend (inductor needs minutes there)."""
    from recdistill.engine.optim import build_optimizer
    from recdistill.student.module import sequence_loss

    inputs, targets = _student_windows(ctx)
    b = {"inputs": inputs[:128], "targets": targets[:128]}
    backend = "inductor" if ctx.cuda else "eager"
    rows = []
    for compiled in (False, True):
        model = make_student(ctx.device).train()
        opt = build_optimizer(model, lr=1e-3, fused="auto")

        def step():
            with ctx.autocast():
                sequence_loss(model, b, "ce").backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        first_s = None
        if compiled:
            model.compile(backend=backend)
            reset_peaks(ctx.device)
            start = time.perf_counter()
            step()
            sync(ctx.device)
            first_s = round(time.perf_counter() - start, 2)
        row = timed_steps(step, ctx, warmup=2, max_steps=20)
        rows.append({"setting": f"compile ({backend})" if compiled else "eager", "batch": 128,
                     "first_step_s (compile)": first_s, **row})
        del model, opt
        free(ctx.device)
    return rows


def _efficiency(name: str):
    """An ``efficiency`` config file of the package as the engine's :class:`Efficiency`."""
    from recdistill.engine.settings import Efficiency

    return Efficiency.from_dict(package_yaml("efficiency", name))


def lm_preset(ctx: Context, preset: str) -> list[dict]:
    """The LM (``recdistill.causal_lm.model.GPT``, byte vocabulary, dropout 0.1, the lm defaults) at batch 8 and
    the preset's full context: ``efficiency=none`` against ``efficiency=default`` as resolved on this
    device by the engine (``resolve_precision``, ``build_optimizer``'s fused rule). Same seed and data for both."""
    from recdistill.engine.optim import build_optimizer
    from recdistill.engine.precision import resolve_precision
    from recdistill.causal_lm.model import GPT, preset_config

    name, batch, context = ("tiny", 2, 64) if ctx.tiny else (preset, 8, None)
    rows = []
    for eff_name in ("none", "default"):
        eff = _efficiency(eff_name)
        precision = resolve_precision(eff.precision, ctx.accelerator)
        cfg = preset_config(name, 257, context_length=context, dropout=0.1, uniform_dropout=eff.uniform_dropout,
                            gradient_checkpointing=eff.gradient_checkpointing)
        torch.set_float32_matmul_precision(eff.matmul_precision)
        torch.manual_seed(0)
        model = GPT(cfg).to(ctx.device).train()
        opt = build_optimizer(model, lr=3e-4, fused=eff.fused_adamw)
        x = torch.randint(0, 257, (batch, cfg.context_length + 1), device=ctx.device)
        settings = {"precision": precision, "fused_adamw": bool(opt.defaults["fused"]),
                    "uniform_dropout": eff.uniform_dropout, "matmul_precision": eff.matmul_precision,
                    "gradient_checkpointing": eff.gradient_checkpointing}

        def step():
            with autocast(ctx.device, precision):
                loss = model.loss(x[:, :-1], x[:, 1:])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        row = timed_steps(step, ctx)
        rows.append({"setting": f"efficiency={eff_name}", "preset": ctx.label(preset), **settings, "batch": batch,
                     "context": cfg.context_length, "parameters": model.num_parameters(),
                     "tokens_per_s": round(batch * cfg.context_length / row["step_s"], 1), **row})
        del model, opt
        free(ctx.device)
    return rows


"""What every arm of the GPU check shares: the run context, peak-memory and step timing, the model
shapes built from their configs with random weights, synthetic teacher batches, and the peak bf16 rates
MFU is measured against.

Nothing here downloads: the LLMs are ``LlamaForCausalLM`` built from a config (speed and memory do not
depend on the weights), the student is a randomly initialised SASRec, the data are random ids.
The arms use recdistill's components directly (they take plain settings; only ``recipes/`` and ``config/``
read OmegaConf), so a GPU machine needs no omegaconf.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

# Shapes from the models' published config.json files. Options that change neither speed nor memory
# (rope theta, norm epsilon) are left at transformers' defaults.
LLM_SHAPES = {
    "llama2-7b": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                      tie_word_embeddings=False),
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         tie_word_embeddings=True),
    # --tiny: every LLM arm runs this shape instead, so the CPU test takes seconds
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True),
}
NUM_ITEMS = 1682  # ML-100K's catalogue, for the student and the placeholder slots

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, TFLOP/s; the first whose name
# appears as a word in the device name is used. H100/H200 are the SXM figures; the NVL cards run at
# lower clocks and get no figure here (pass --peak-tflops).
PEAK_BF16_TFLOPS = [("H200 NVL", None), ("H100 NVL", None), ("H100 PCIe", 756.0), ("H200", 989.4), ("H100", 989.4), ("A100", 312.0), ("L40S", 362.1),
                    ("L4", 121.0), ("A10", 125.0), ("A6000", 154.8)]


class Skip(Exception):
    """An arm that cannot run here; the message says why (a missing package, no CUDA)."""


@dataclass
class Context:
    device: str            # "cuda" or "cpu"
    tiny: bool             # tiny shapes (the CPU test)
    scratch: Path          # a folder for saved models and adapters, removed by the caller
    loop_seconds: float    # each timed loop stops after this long (or max_steps)
    peak_tflops: float | None = None

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def accelerator(self) -> str:
        return "gpu" if self.cuda else "cpu"

    @property
    def precision(self) -> str:
        """``efficiency.precision=auto`` as the engine resolves it here (bf16-mixed on a bf16 GPU, 32-true on a CPU)."""
        from recdistill.engine.precision import resolve_precision

        return resolve_precision("auto", self.accelerator)

    @property
    def base_dtype(self) -> torch.dtype:
        """The LLM's dtype under ``llm.dtype=auto`` as the engine resolves it on a GPU; fp32 under ``--device cpu``
        (the engine's CPU rule, which it would not apply on a machine that also has CUDA)."""
        from recdistill.engine.precision import resolve_dtype

        return resolve_dtype("auto") if self.cuda else torch.float32

    def autocast(self):
        """The autocast of :attr:`precision` (see :func:`autocast`)."""
        return autocast(self.device, self.precision)

    def label(self, name: str) -> str:
        """How a shape is named in the record: ``tiny (for <name>)`` under ``--tiny``."""
        return f"tiny (for {name})" if self.tiny else name

    def shape(self, name: str) -> dict:
        return LLM_SHAPES["tiny" if self.tiny else name]


def autocast(device: str, precision: str):
    """The autocast Lightning applies under a resolved precision: bf16 for ``bf16-mixed``, fp16 for
    ``16-mixed``, none otherwise (``*-true`` precisions convert the module instead)."""
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16
    return torch.autocast(device, dtype=dtype, enabled=precision.endswith("-mixed"))


def require(*modules: str) -> None:
    """Raise :class:`Skip` naming the first missing module."""
    for m in modules:
        if importlib.util.find_spec(m) is None:
            hint = {"bitsandbytes": "pip install bitsandbytes (CUDA wheel)",
                    "flash_attn": "pip install flash-attn --no-build-isolation"}.get(m, f"pip install {m}")
            raise Skip(f"needs the {m} package, not installed here: {hint}")


def require_cuda(ctx: Context, what: str) -> None:
    if not ctx.cuda:
        raise Skip(f"{what} needs a CUDA GPU; not run on {ctx.device}")


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def reset_peaks(device: str) -> float | None:
    """Free what can be freed and reset the CUDA peaks; returns MB still allocated (what the arm's
    peak includes before its first step: weights and leftovers)."""
    free(device)
    if device != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats()
    return round(torch.cuda.memory_allocated() / 2**20, 1)


def peaks(device: str) -> dict:
    if device != "cuda":
        return {"peak_allocated_mb": None, "peak_reserved_mb": None}
    return {"peak_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "peak_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1)}


def timed_steps(step, ctx: Context, warmup: int = 2, max_steps: int = 10) -> dict:
    """Run ``step()`` ``warmup`` times untimed, then timed until ``max_steps`` or ``ctx.loop_seconds``.
    Peaks are reset before the warm-up, so they include the first step (optimizer state)."""
    before = reset_peaks(ctx.device)
    for _ in range(1 if ctx.tiny else warmup):
        step()
    sync(ctx.device)
    times, end = [], time.perf_counter() + ctx.loop_seconds
    least = 1 if ctx.tiny else 2
    while len(times) < (1 if ctx.tiny else max_steps) and (len(times) < least or time.perf_counter() < end):
        start = time.perf_counter()
        step()
        sync(ctx.device)
        times.append(time.perf_counter() - start)
    return {"step_s": round(statistics.median(times), 5), "timed_steps": len(times),
            "allocated_before_mb": before, **peaks(ctx.device)}


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def build_llm(shape: dict, dtype: torch.dtype, attn: str, device: str):
    """A frozen ``LlamaForCausalLM`` of ``shape`` with seeded random weights, created on ``device`` in
    ``dtype`` directly (a 7B model never exists in fp32 on the host)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**shape, use_cache=False)
    config._attn_implementation = attn  # as recdistill.teacher.llm builds its tiny Llama
    torch.manual_seed(0)
    with torch.device(device), default_dtype(dtype):
        model = LlamaForCausalLM(config)
    model.requires_grad_(False)
    return model


def make_student(device: str):
    """The default student (student/sasrec.yaml: 50 positions, hidden 64, 2 blocks), random weights."""
    from recdistill.student.sasrec import SASRec

    torch.manual_seed(0)
    return SASRec(NUM_ITEMS, max_len=50, hidden_size=64, num_blocks=2, num_heads=1, dropout=0.2).to(device).eval()


def package_yaml(group: str, option: str) -> dict:
    """A config option of the package as plain values, read with PyYAML (a transformers dependency), not
    omegaconf: the files have no interpolation. An option that builds on another of its group
    (``defaults: [default]``, as ``recdistill.config.compose`` reads it) is read over that one."""
    import yaml

    import recdistill

    path = Path(recdistill.__file__).parent / "config" / "conf" / group / f"{option}.yaml"
    own = yaml.safe_load(path.read_text())
    values: dict = {}
    for base in own.pop("defaults", []):
        values = _merged(values, package_yaml(group, base))
    return _merged(values, own)


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def make_teacher(llm, device: str, mode: str = "ilora", quantized: bool = False):
    """The project's :class:`ILoRATeacher` around ``llm`` with the default adapters (teacher/ilora.yaml:
    r 8, 4 experts, alpha 32, dropout 0.1, all seven projections) behind a linear gate over the whole
    history, as this check always measured."""
    from recdistill.teacher.model import ILoRATeacher, TeacherSpec
    from recdistill.teacher.molora import MoLoRAConfig

    lora = package_yaml("teacher", "ilora")["lora"]
    adapters = MoLoRAConfig(r=lora["r"], num_experts=lora["num_experts"] if mode == "ilora" else 1, alpha=lora["alpha"],
                            dropout=lora["dropout"], target_modules=tuple(lora["target_modules"]),
                            scaling_rule=lora["scaling"], top_layers=lora["top_layers"])
    spec = TeacherSpec(mode, adapters, gate="linear", gate_window=None)
    return ILoRATeacher(llm, make_student(device), spec, quantized=quantized)


def teacher_batch(batch: int, seq_len: int, vocab: int, device: str, answer: int = 8, seed: int = 0) -> dict:
    """A training batch as the teacher's collate makes it: a placeholder slot every 12 tokens carrying an
    item id, the last ``answer`` tokens labelled, a 50-item student history; every token is real."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, seq_len), generator=g)
    slots = torch.zeros_like(ids)
    slots[:, 4:seq_len - answer:12] = torch.randint(1, NUM_ITEMS + 1, slots[:, 4:seq_len - answer:12].shape, generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, -answer:] = ids[:, -answer:]
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "item_slots": slots, "labels": labels,
           "student_seq": torch.randint(1, NUM_ITEMS + 1, (batch, 50), generator=g)}
    return {k: v.to(device) for k, v in out.items()}


def flops_per_token(shape: dict, seq_len: int) -> float:
    """Training FLOPs per token of LoRA fine-tuning on a frozen base: forward 2N and the backward pass for
    the inputs 2N (no weight gradients for frozen weights) over the N weights of the decoder layers, plus
    attention scores and weighted sums, 4 L d T forward and twice that backward (PaLM's convention,
    causal masking not discounted). Embeddings and the answer-only head are left out."""
    d, ff, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    head_dim = d // shape["num_attention_heads"]
    kv = shape["num_key_value_heads"] * head_dim
    n = layers * (2 * d * d + 2 * d * kv + 3 * d * ff)
    return 4 * n + 12 * layers * d * seq_len


def peak_bf16_tflops(device_name: str) -> tuple[float | None, str]:
    for key, tflops in PEAK_BF16_TFLOPS:
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])", device_name):
            if tflops is None:
                break
            return tflops, f"{key}: {tflops} TFLOP/s dense bf16 (NVIDIA data sheet)"
    return None, f"no peak known for {device_name!r}; pass --peak-tflops to get MFU"

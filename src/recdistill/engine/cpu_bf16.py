"""Does bf16 pay on this CPU? Decided at run time, per machine, never assumed.

Machines of the same kind differ: one build machine had no native bf16 (a bf16 product ran ~300x slower
than fp32), an AMD EPYC with AVX512-BF16 ran SmolLM2-shaped bf16 products 4.4x faster than fp32, and an
Intel Xeon that also lists ``avx512_bf16`` (no AMX exposed by its hypervisor) ran them at 0.51x fp32's rate
(benchmarks/results/cpu_bf16.md). So the processor's flags only say whether to look; a short timed probe
(a [1024 x 576] x [576 x 1536] product, SmolLM2's MLP shape, in fp32 and bf16: 0.34 s on the 2-core Intel Xeon) says whether
bf16 is actually faster, and its answer is cached per machine (processor, flags, torch version, threads) in
``<cache>/cpu_bf16.json``.

``RECDISTILL_CPU_BF16=1`` / ``0`` overrides the decision (for a machine whose probe is disturbed by other
jobs, or to compare both on purpose).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from recdistill.engine.rundir import atomic_write_json

# bf16 must beat fp32 by this factor on the probe to be chosen: autocast adds casts that a bare product
# does not pay, so a tie is not enough (the machine: 4.4x on the probe, 1.95x on a whole step).
MIN_SPEEDUP = 1.5
PROBE_SHAPE = (1024, 576, 1536)
NATIVE_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CpuBf16:
    """The decision and its evidence, as recorded in ``environment.json``."""

    fast: bool                      # bf16 is used where ``auto`` may choose it
    flags: tuple[str, ...]          # which of NATIVE_FLAGS the processor lists
    fp32_gflops: float | None       # the probe's rates (None: no probe ran)
    bf16_gflops: float | None
    reason: str

    def to_dict(self) -> dict:
        return {**asdict(self), "flags": list(self.flags)}


def processor_flags() -> set[str]:
    """The CPU flags of /proc/cpuinfo (empty where there is none, e.g. on macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_flags() -> tuple[str, ...]:
    flags = processor_flags()
    found = [f for f in NATIVE_FLAGS if f in flags]
    # torch's own checks, where the flags file is missing or says less than torch sees
    if "avx512_bf16" not in found and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():
        found.append("avx512_bf16")
    if "amx_bf16" not in found and getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
        found.append("amx_bf16")
    return tuple(found)


def _rate(dtype: torch.dtype, repeats: int = 6) -> float:
    m, k, n = PROBE_SHAPE
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    for _ in range(2):  # warm-up: oneDNN builds its kernel on the first call
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def probe_rates() -> tuple[float, float]:
    """(fp32, bf16) GFLOP/s of the probe product at the current thread count, alternated twice, best of each."""
    fp32 = bf16 = 0.0
    for _ in range(2):
        fp32 = max(fp32, _rate(torch.float32))
        bf16 = max(bf16, _rate(torch.bfloat16))
    return fp32, bf16


def decide(flags: tuple[str, ...], rates: tuple[float, float] | None) -> CpuBf16:
    """The rule, apart from the measuring (tests give it flags and rates)."""
    if not flags:
        return CpuBf16(False, flags, None, None, "the processor lists no AVX512-BF16 or AMX: bf16 is emulated, fp32 used")
    fp32, bf16 = rates
    ratio = bf16 / fp32 if fp32 > 0 else 0.0
    fast = ratio >= MIN_SPEEDUP
    verdict = "bf16 used" if fast else f"fp32 used (bf16 must reach {MIN_SPEEDUP}x)"
    return CpuBf16(fast, flags, round(fp32, 1), round(bf16, 1),
                   f"{'/'.join(flags)} listed; a probe product ran bf16 at {bf16:.0f} GFLOP/s against fp32's "
                   f"{fp32:.0f} ({ratio:.2f}x): {verdict}")


def _cache_file() -> Path:
    root = os.environ.get("RECDISTILL_CACHE") or "~/.cache/recdistill"
    return Path(os.path.expanduser(root)) / "cpu_bf16.json"


def _machine_key(flags: tuple[str, ...]) -> str:
    return "|".join([platform.processor() or platform.machine(), model_name(), ",".join(flags), torch.__version__,
                     str(torch.get_num_threads())])


def model_name() -> str:
    """The processor's model name from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _cached(key: str) -> CpuBf16 | None:
    try:
        saved = json.loads(_cache_file().read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(saved, dict):
        return None
    try:
        return CpuBf16(bool(saved["fast"]), tuple(saved["flags"]), saved["fp32_gflops"], saved["bf16_gflops"],
                       str(saved["reason"]))
    except (KeyError, TypeError):
        return None


def _store(key: str, result: CpuBf16) -> None:
    path = _cache_file()
    try:
        saved = json.loads(path.read_text())
        saved = saved if isinstance(saved, dict) else {}
    except (OSError, ValueError):
        saved = {}
    try:
        atomic_write_json(path, {**saved, key: result.to_dict()})
    except OSError:
        pass  # a read-only cache only costs the probe again next time


@functools.lru_cache(maxsize=None)
def cpu_bf16() -> CpuBf16:
    """This machine's answer: the environment override, the cached probe, or a new probe."""
    override = os.environ.get("RECDISTILL_CPU_BF16")
    if override in ("0", "1"):
        return CpuBf16(override == "1", native_flags(), None, None,
                       f"RECDISTILL_CPU_BF16={override} set: {'bf16' if override == '1' else 'fp32'} used")
    flags = native_flags()
    if not flags:
        return decide(flags, None)
    key = _machine_key(flags)
    cached = _cached(key)
    if cached is not None:
        return cached
    result = decide(flags, probe_rates())
    _store(key, result)
    return result

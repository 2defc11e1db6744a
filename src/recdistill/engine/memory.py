"""Peak memory per stage: CUDA allocator peaks, and the process's peak resident set on the CPU.

Linux keeps a resettable high-water mark of a process's resident memory (``VmHWM`` in
``/proc/self/status``, reset by writing ``5`` to ``/proc/self/clear_refs``). No library exposes this, so
we read it here. Where it cannot be reset (other systems, locked-down containers) we fall back to
``getrusage``'s lifetime peak and say so in the record (``rss_scope: process``).
"""

from __future__ import annotations

import resource
import sys

import torch


def proc_field_mb(field_name: str, path: str = "/proc/self/status") -> float | None:
    """A ``kB`` field of a Linux ``/proc`` file in MB (``VmHWM``, ``VmRSS`` of this process;
    ``MemAvailable`` of ``/proc/meminfo``); None where the file or the field does not exist."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def current_rss_mb() -> float | None:
    """The process's resident set now (Linux), or None."""
    return proc_field_mb("VmRSS")


def _read_hwm_mb() -> float | None:
    return proc_field_mb("VmHWM")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _lifetime_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


class MemoryProbe:
    """Reads and resets peak memory. One per process is enough."""

    def __init__(self) -> None:
        self.rss_resettable = _reset_hwm() and _read_hwm_mb() is not None

    def reset(self) -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
        if self.rss_resettable:
            _reset_hwm()

    def read(self) -> dict:
        out: dict = {}
        if self.rss_resettable:
            out["peak_rss_mb"] = round(_read_hwm_mb() or 0.0, 1)
            out["rss_scope"] = "stage"
        else:
            out["peak_rss_mb"] = round(_lifetime_rss_mb(), 1)
            out["rss_scope"] = "process"
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["peak_cuda_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            out["peak_cuda_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
        return out


_PROBE: MemoryProbe | None = None


def probe() -> MemoryProbe:
    global _PROBE
    if _PROBE is None:
        _PROBE = MemoryProbe()
    return _PROBE


def peak_memory() -> dict:
    """Peak memory since the last reset."""
    return probe().read()


def reset_peak_memory() -> None:
    probe().reset()


def merge_peaks(a: dict, b: dict) -> dict:
    """Element-wise maximum of two peak readings."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, (int, float)):
            out[key] = max(out.get(key, 0.0), value)
        else:
            out.setdefault(key, value)
    return out

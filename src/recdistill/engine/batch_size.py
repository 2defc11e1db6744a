"""Automatic batch size: the largest batch that fits, with a margin (``train.batch_size=auto``).

The rule (settings in ``efficiency.batch_size_search``):

* **CUDA**: run one real step (forward, backward, optimizer step for training; forward only for
  inference) at ``start``, doubling while it fits; the first size that raises CUDA out-of-memory ends the
  doubling and a bisection between the last size that ran and that one finds the largest size that runs.
  The answer is that size times ``1 - margin`` (room for fragmentation and for batches that happen to
  be longer), rounded down to a multiple of 8.
* **CPU**: nothing raises when memory runs out; the process swaps or the kernel kills it. So the step is
  run at doubling sizes while its peak resident memory (``VmHWM``, reset per try) stays under a budget:
  ``cpu_memory_mb``, or ``cpu_memory_fraction`` of (available memory + what the process already holds).
  Peak memory is linear in the batch size for these models, so a line through the last two sizes
  gives the largest size whose predicted peak is within ``budget x (1 - margin)``; the answer is never
  more than twice the largest size measured, and is rounded down to a multiple of 8.

Both stop at ``max_batch_size`` and at the number of examples. Lightning's ``Tuner.scale_batch_size``
covers only the CUDA half (it doubles until CUDA raises) and has no margin or CPU budget, which is why
this is written here; it is driven by a plain ``step(batch_size)`` function so training and inference
(a teacher's scoring batch) use the same search. The answer and every size tried are written to
``batch_size_search.json`` in the run folder.
"""

from __future__ import annotations

import gc
import random
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import torch

from recdistill.engine.memory import current_rss_mb, probe, proc_field_mb
from recdistill.errors import RecdistillError


@dataclass
class SearchSettings:
    """``efficiency.batch_size_search`` (its defaults and their meaning: ``config/conf/efficiency/default.yaml``),
    checked here once."""

    margin: float
    start: int
    max_batch_size: int
    cpu_memory_mb: float | None
    cpu_memory_fraction: float

    @classmethod
    def from_config(cls, node) -> "SearchSettings":
        """From the ``efficiency.batch_size_search`` mapping (a dict or a config node)."""
        return cls(**{f.name: node[f.name] for f in fields(cls)})

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.margin) < 1.0:
            raise RecdistillError(f"efficiency.batch_size_search.margin={self.margin} must be in [0, 1)")
        if int(self.start) < 1 or int(self.max_batch_size) < int(self.start):
            raise RecdistillError("efficiency.batch_size_search needs 1 <= start <= max_batch_size "
                                  f"(got start={self.start}, max_batch_size={self.max_batch_size})")


@dataclass
class BatchSizeResult:
    batch_size: int
    device: str                      # "cuda" or "cpu"
    kind: str                        # "train" or "inference"
    rule: str                        # one sentence: why this number
    margin: float
    budget_mb: float | None = None   # CPU only
    tries: list[dict] = field(default_factory=list)  # {"batch_size", "fits", "peak_mb"}

    def as_dict(self) -> dict:
        return asdict(self)


def _round_down(n: int) -> int:
    return n if n < 8 else n - n % 8


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc)


def cpu_budget_mb(settings: SearchSettings) -> float:
    """The CPU memory budget for the process's peak RSS (see the module docstring)."""
    if settings.cpu_memory_mb is not None:
        return float(settings.cpu_memory_mb)
    available = proc_field_mb("MemAvailable", "/proc/meminfo")
    if available is None:
        raise RecdistillError("cannot read available memory on this system; set "
                              "efficiency.batch_size_search.cpu_memory_mb to a budget in MB")
    return float(settings.cpu_memory_fraction) * (available + (current_rss_mb() or 0.0))


def _search_cuda(step: Callable[[int], None], settings: SearchSettings, limit: int, kind: str) -> BatchSizeResult:
    tries: list[dict] = []

    def fits(size: int) -> bool:
        torch.cuda.reset_peak_memory_stats()
        try:
            step(size)
            tries.append({"batch_size": size, "fits": True,
                          "peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)})
            return True
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is an answer; the rest is re-raised
            if not _is_oom(exc):
                raise
            tries.append({"batch_size": size, "fits": False, "peak_mb": None})
            return False
        finally:
            gc.collect()
            torch.cuda.empty_cache()

    good, bad, size = 0, None, int(settings.start)
    while size <= limit:
        if not fits(size):
            bad = size
            break
        good = size
        size *= 2
    if good == 0:
        raise RecdistillError(f"even batch size {settings.start} runs out of CUDA memory; lower "
                              "efficiency.batch_size_search.start, use QLoRA/gradient checkpointing, or a bigger GPU")
    if bad is None and good < limit and fits(limit):
        good = limit
    while bad is not None and bad - good > max(1, good // 16):
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    answer = max(1, _round_down(int(good * (1.0 - settings.margin))))
    rule = (f"largest size that ran on CUDA was {good}; x (1 - margin {settings.margin}) rounded down to a "
            f"multiple of 8 -> {answer}")
    return BatchSizeResult(answer, "cuda", kind, rule, float(settings.margin), None, tries)


def _search_cpu(step: Callable[[int], None], settings: SearchSettings, limit: int, kind: str) -> BatchSizeResult:
    budget = cpu_budget_mb(settings)
    usable = budget * (1.0 - float(settings.margin))
    meter = probe()
    tries: list[dict] = []
    size = int(settings.start)
    while size <= limit:
        meter.reset()
        step(size)
        peak = float(meter.read()["peak_rss_mb"])
        gc.collect()
        tries.append({"batch_size": size, "fits": peak <= usable, "peak_mb": round(peak, 1)})
        if peak > usable:
            break
        if len(tries) >= 2 and tries[-2]["fits"]:
            slope = (peak - tries[-2]["peak_mb"]) / (size - tries[-2]["batch_size"])
            if peak + slope * size > usable:  # the next doubling would not fit: stop measuring
                break
        size *= 2
    ok = [t for t in tries if t["fits"]]
    if not ok:
        raise RecdistillError(f"batch size {settings.start} already needs {tries[0]['peak_mb']:.0f} MB, over the "
                              f"CPU budget of {usable:.0f} MB; raise efficiency.batch_size_search.cpu_memory_mb")
    largest = ok[-1]["batch_size"]
    if len(ok) >= 2:
        (s1, p1), (s2, p2) = [(t["batch_size"], t["peak_mb"]) for t in ok[-2:]]
        slope = max((p2 - p1) / (s2 - s1), 1e-9)
        predicted = int((usable - p2) / slope) + s2
        answer = min(predicted, 2 * largest, limit)
    else:
        answer = largest
    answer = max(1, _round_down(max(answer, largest)))  # the largest size measured fits by definition
    rule = (f"CPU peak RSS measured at {', '.join(str(t['batch_size']) for t in tries)}; the largest size whose "
            f"linearly predicted peak stays within budget {budget:.0f} MB x (1 - margin {settings.margin}), "
            f"at most 2 x {largest} and {limit}, rounded down to a multiple of 8 -> {answer}")
    return BatchSizeResult(answer, "cpu", kind, rule, float(settings.margin), round(budget, 1), tries)


def search_batch_size(step: Callable[[int], None], device: str, settings: SearchSettings,
                      num_examples: int | None = None, kind: str = "train") -> BatchSizeResult:
    """Find the batch size for ``step(batch_size)`` (which runs one real step at that size) on ``device``
    ("cuda"/"gpu" or "cpu"); see the module docstring for the rule."""
    limit = int(settings.max_batch_size)
    if num_examples is not None:
        limit = max(1, min(limit, int(num_examples)))
    start = min(int(settings.start), limit)
    settings = SearchSettings(settings.margin, start, limit, settings.cpu_memory_mb, settings.cpu_memory_fraction)
    if device in ("cuda", "gpu"):
        return _search_cuda(step, settings, limit, kind)
    return _search_cpu(step, settings, limit, kind)


# -- steps for the search ---------------------------------------------------------------------------------

def _to(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def batch_maker(loader: torch.utils.data.DataLoader) -> Callable[[int], object]:
    """``make(n)``: a batch of ``n`` examples drawn from ``loader``'s dataset through its collate function
    (with repetition when ``n`` exceeds the dataset), i.e. exactly what training would see."""
    dataset = loader.dataset
    n_examples = len(dataset)
    rng = random.Random(0)

    def make(n: int):
        rows = [rng.randrange(n_examples) for _ in range(n)]
        return loader.collate_fn([dataset[i] for i in rows])

    return make


def _autocast(device: str, precision: str):
    if precision.startswith("bf16") and precision.endswith("mixed"):
        return torch.autocast("cuda" if device in ("cuda", "gpu") else "cpu", dtype=torch.bfloat16)
    if precision == "16-mixed" and device in ("cuda", "gpu"):
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", enabled=False)


def training_step_fn(model: torch.nn.Module, loss_fn: Callable[[object], torch.Tensor], make_batch, device: str,
                     precision: str = "32-true") -> Callable[[int], None]:
    """One training step at size ``n``: forward and loss under the run's autocast, backward, and an AdamW
    step (its state costs memory too) with lr 0 on a throwaway optimizer, so the weights do not change.
    The random-number state is restored afterwards, so the search does not change the run's randomness."""
    torch_device = torch.device("cuda" if device in ("cuda", "gpu") else "cpu")

    def step(n: int) -> None:
        batch = _to(make_batch(n), torch_device)
        model.to(torch_device).train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=0.0)
        with torch.random.fork_rng(devices=[torch_device] if torch_device.type == "cuda" else []):
            with _autocast(device, precision):
                loss = loss_fn(batch)
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        del optimizer, loss, batch

    return step


SEARCH_FILE = "batch_size_search.json"


def recorded_batch_size(run_dir, kind: str = "train") -> int | None:
    """The size a run's earlier search found (a resumed run keeps it rather than searching again)."""
    import json

    path = run_dir.path / SEARCH_FILE
    entry = json.loads(path.read_text()).get(kind) if path.is_file() else None
    return int(entry["batch_size"]) if entry else None


def record_search(run_dir, result: BatchSizeResult) -> None:
    """Add the result to ``batch_size_search.json`` in the run folder (one entry per kind)."""
    from recdistill.engine.rundir import atomic_write_json

    path = run_dir.path / SEARCH_FILE
    existing = {}
    if path.is_file():
        import json

        existing = json.loads(path.read_text())
    existing[result.kind] = result.as_dict()
    atomic_write_json(path, existing)


def lightning_loss_fn(module) -> Callable[[object], torch.Tensor]:
    """``batch -> loss`` from a LightningModule's own ``training_step``, for workloads whose loss lives
    there. Outside ``Trainer.fit`` its ``self.log`` calls only warn; that warning is silenced here."""
    import warnings

    def loss(batch):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*self.log.*")
            out = module.training_step(batch, 0)
        return out["loss"] if isinstance(out, dict) else out

    return loss


def find_training_batch_size(trainer, module, model: torch.nn.Module, loader, settings_node, run_dir=None,
                             loss_fn=None) -> BatchSizeResult:
    """The whole ``train.batch_size=auto`` step for a Lightning workload: device and precision from the
    ``trainer``, batches from the training ``loader``, the loss from ``loss_fn`` (default: the module's
    ``training_step``); the result is recorded in ``run_dir`` when given."""
    device = "cuda" if trainer.accelerator.__class__.__name__ == "CUDAAccelerator" else "cpu"
    step = training_step_fn(model, loss_fn or lightning_loss_fn(module), batch_maker(loader), device,
                            str(trainer.precision))
    result = search_batch_size(step, device, SearchSettings.from_config(settings_node),
                               num_examples=len(loader.dataset))
    if run_dir is not None:
        record_search(run_dir, result)
    print(f"train.batch_size=auto -> {result.batch_size}: {result.rule}")
    return result

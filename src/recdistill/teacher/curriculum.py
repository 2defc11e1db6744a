"""LLaRA's curriculum: text-only prompts first, hybrid prompts (titles + item embeddings) more and more.

LLaRA (and iLoRA, which inherits its data code) picks per training batch: hybrid with probability
``step / max_steps``, else text-only, where every ``[HistoryEmb]`` / ``[CansEmb]`` becomes a fixed ``[PH]``
token and the projector is frozen for that step. Here the choice is per sample and deterministic: sample
(user, position) in epoch e is hybrid when a uniform number seeded by (seed, e, user, position) falls
below the share ``min(1, step / (ramp x total_steps))``. A text-only sample keeps its placeholder slot as
the plain pad token (our ``[PH]``): its item embedding is not swapped in, so the projector gets no
gradient from it, and a batch with no hybrid sample leaves the projector untouched (no gradient, so
AdamW skips it, weight decay included). The gate still reads the student, as in iLoRA.
``teacher.curriculum_unit=batch`` draws once per optimizer step instead (seeded by (seed, e, step)), so a
whole batch is hybrid or text-only, as their collate function does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recdistill.errors import ConfigError

CURRICULA = ("none", "llara")
UNITS = ("sample", "batch")


@dataclass
class Curriculum:
    """``teacher.curriculum``, ``teacher.curriculum_ramp`` and ``teacher.prompt.seed`` (defaults:
    ``config/conf/teacher/ilora.yaml``; read by ``recipes.teacher_settings.curriculum``), checked here once."""

    kind: str        # none = every prompt hybrid from the first step; llara = the growing share
    seed: int
    ramp: float      # the share reaches 1 after this fraction of the optimizer steps (LLaRA: the whole run)
    unit: str        # sample = one draw per prompt; batch = one per step, the whole batch alike (LLaRA's code)

    def __post_init__(self):
        if self.kind not in CURRICULA:
            raise ConfigError(f"teacher.curriculum={self.kind!r} is not valid; choose one of: {', '.join(CURRICULA)}")
        if self.unit not in UNITS:
            raise ConfigError(f"teacher.curriculum_unit={self.unit!r} is not valid; choose one of: {', '.join(UNITS)}")
        if not 0.0 < float(self.ramp) <= 1.0:
            raise ConfigError(f"teacher.curriculum_ramp={self.ramp} is not valid; expected in (0, 1]")

    def hybrid_share(self, step: int, total_steps: int) -> float:
        """The expected share of hybrid prompts at optimizer step ``step`` (0-based) of ``total_steps``."""
        if self.kind == "none":
            return 1.0
        return min(1.0, (int(step) + 1) / max(1.0, float(self.ramp) * int(total_steps)))

    def hybrid_mask(self, users, positions, epoch: int, step: int, total_steps: int) -> torch.Tensor:
        """``[B]`` booleans: which samples get the hybrid prompt."""
        share = self.hybrid_share(step, total_steps)
        if share >= 1.0:
            return torch.ones(len(users), dtype=torch.bool)
        if self.unit == "batch":
            hybrid = np.random.default_rng([int(self.seed), 11, int(epoch), int(step)]).random() < share
            return torch.full((len(users),), bool(hybrid), dtype=torch.bool)
        draws = [np.random.default_rng([int(self.seed), 11, int(epoch), int(u) & 0xFFFFFFFF,
                                        int(p) & 0xFFFFFFFF]).random() for u, p in zip(users, positions)]
        return torch.tensor(draws) < share

    def apply(self, batch: dict, epoch: int, step: int, total_steps: int) -> tuple[dict, torch.Tensor]:
        """The batch with the text-only samples' item slots cleared, and the hybrid mask."""
        mask = self.hybrid_mask(batch["user"].tolist(), batch["position"].tolist(), epoch, step, total_steps)
        if bool(mask.all()):
            return batch, mask
        slots = batch["item_slots"].clone()
        slots[~mask.to(slots.device)] = 0
        return {**batch, "item_slots": slots}, mask

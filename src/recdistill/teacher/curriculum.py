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

``teacher.curriculum_counter=epoch`` is the share their code reaches as it runs: the collate function counts
its calls, but each of their 8 non-persistent DataLoader workers holds a copy that starts again at every
epoch, against a maximum of ``epochs x batches / 8``; so the share restarts at every epoch and ends it at
``1 / epochs`` (0.2 at their 5 epochs). ``run`` (ours) grows it over the whole run to 1, as described.

``teacher.curriculum_placeholder=random_row`` shows their ``[PH]`` token in a text-only prompt's slot: a
token they add to Llama's vocabulary, whose new embedding row transformers 4.28 (their pinned version)
draws from N(0, initializer_range^2) and LoRA leaves frozen. Here the row is that draw, seeded by the
prompt seed, held beside the model (:meth:`ILoRATeacher.use_text_only_row`) instead of resizing the base
model's embeddings; ``pad`` (ours) keeps the pad token's embedding. Only training shows text-only prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recdistill.errors import ConfigError
from recdistill.teacher.model import TEXT_ONLY_SLOT

CURRICULA = ("none", "llara")
UNITS = ("sample", "batch")
COUNTERS = ("run", "epoch")
PLACEHOLDERS = ("pad", "random_row")


@dataclass
class Curriculum:
    """``teacher.curriculum``, ``curriculum_ramp``, ``curriculum_unit``, ``curriculum_counter``,
    ``curriculum_placeholder`` and ``teacher.prompt.seed`` (defaults: ``config/conf/teacher/ilora.yaml``; read
    by ``recipes.teacher_settings.curriculum``), checked here once."""

    kind: str        # none = every prompt hybrid from the first step; llara = the growing share
    seed: int
    ramp: float      # the share reaches 1 after this fraction of the optimizer steps (LLaRA: the whole run)
    unit: str        # sample = one draw per prompt; batch = one per step, the whole batch alike (LLaRA's code)
    counter: str                 # run = the share grows over the run; epoch = restarts each epoch (their code)
    placeholder: str             # what a text-only slot shows: pad = the pad token; random_row = their [PH]

    def __post_init__(self):
        if self.kind not in CURRICULA:
            raise ConfigError(f"teacher.curriculum={self.kind!r} is not valid; choose one of: {', '.join(CURRICULA)}")
        if self.unit not in UNITS:
            raise ConfigError(f"teacher.curriculum_unit={self.unit!r} is not valid; choose one of: {', '.join(UNITS)}")
        if self.counter not in COUNTERS:
            raise ConfigError(f"teacher.curriculum_counter={self.counter!r} is not valid; choose one of: "
                              f"{', '.join(COUNTERS)}")
        if self.placeholder not in PLACEHOLDERS:
            raise ConfigError(f"teacher.curriculum_placeholder={self.placeholder!r} is not valid; choose one of: "
                              f"{', '.join(PLACEHOLDERS)}")
        if not 0.0 < float(self.ramp) <= 1.0:
            raise ConfigError(f"teacher.curriculum_ramp={self.ramp} is not valid; expected in (0, 1]")

    def hybrid_share(self, step: int, total_steps: int, epoch: int = 0, steps_per_epoch: int | None = None) -> float:
        """The expected share of hybrid prompts at optimizer step ``step`` (0-based) of ``total_steps``; with
        ``counter=epoch`` the count restarts at each epoch of ``steps_per_epoch`` steps."""
        if self.kind == "none":
            return 1.0
        if self.counter == "epoch" and steps_per_epoch:
            step = int(step) - int(epoch) * int(steps_per_epoch)
        return min(1.0, (int(step) + 1) / max(1.0, float(self.ramp) * int(total_steps)))

    def text_only_row(self, hidden_size: int, std: float) -> torch.Tensor:
        """Their ``[PH]`` embedding: ``[hidden_size]`` drawn from N(0, std^2), seeded by the prompt seed (so a
        resumed run draws the same row)."""
        generator = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + 17)
        return torch.randn(int(hidden_size), generator=generator) * float(std)

    def hybrid_mask(self, users, positions, epoch: int, step: int, total_steps: int,
                    steps_per_epoch: int | None = None) -> torch.Tensor:
        """``[B]`` booleans: which samples get the hybrid prompt."""
        share = self.hybrid_share(step, total_steps, epoch, steps_per_epoch)
        if share >= 1.0:
            return torch.ones(len(users), dtype=torch.bool)
        if self.unit == "batch":
            hybrid = np.random.default_rng([int(self.seed), 11, int(epoch), int(step)]).random() < share
            return torch.full((len(users),), bool(hybrid), dtype=torch.bool)
        draws = [np.random.default_rng([int(self.seed), 11, int(epoch), int(u) & 0xFFFFFFFF,
                                        int(p) & 0xFFFFFFFF]).random() for u, p in zip(users, positions)]
        return torch.tensor(draws) < share

    def apply(self, batch: dict, epoch: int, step: int, total_steps: int,
              steps_per_epoch: int | None = None) -> tuple[dict, torch.Tensor]:
        """The batch with the text-only samples' item slots marked ``TEXT_ONLY_SLOT`` (no item embedding
        swapped in), and the hybrid mask."""
        mask = self.hybrid_mask(batch["user"].tolist(), batch["position"].tolist(), epoch, step, total_steps,
                                steps_per_epoch)
        if bool(mask.all()):
            return batch, mask
        slots = batch["item_slots"].clone()
        text_only = ~mask.to(slots.device)
        slots[text_only] = torch.where(slots[text_only] > 0, TEXT_ONLY_SLOT, slots[text_only])
        return {**batch, "item_slots": slots}, mask

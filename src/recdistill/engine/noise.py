"""Noise off by default: messages of our libraries that tell the user nothing about their run.

Each filter names one message, so anything else (a real warning) still shows. ``RECDISTILL_VERBOSE=1``
keeps them all.
"""

from __future__ import annotations

import logging
import os
import warnings

# Lightning, through Python warnings
WARNINGS = (
    r".*module\(s\) in eval mode.*",          # the frozen LLM / student are in eval mode on purpose
    r".*is smaller than the logging interval.*",  # the interval is chosen per run (engine.progress)
    r".*`past_key_values` is deprecated.*",      # transformers, about the KV-cache argument our scoring passes
)
# Lightning's start-up and checkpoint chatter (the run's own lines say which device and checkpoint it used)
LIGHTNING_CHATTER = ("💡 Tip:", "GPU available:", "TPU available:", "HPU available:",
                     "Loading `train_dataloader` to estimate", "Restoring states from the checkpoint path",
                     "Loaded model weights from the checkpoint")
# Messages to drop from these loggers (plain substrings)
LOG_MESSAGES = {
    "lightning.pytorch.utilities.rank_zero": LIGHTNING_CHATTER,  # and the Tip: advertising for its cloud
    "lightning.fabric.utilities.rank_zero": LIGHTNING_CHATTER,
    "transformers": ("are deprecated. Use `cache` instead",),   # our scoring passes the KV cache positionally
}


class _DropMessages(logging.Filter):
    def __init__(self, needles: tuple[str, ...]):
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(needle in message for needle in self.needles)


def quiet_noise() -> None:
    if os.environ.get("RECDISTILL_VERBOSE"):
        return
    for pattern in WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # other FutureWarnings arrive once per call site; once in all is enough (appended, so that the
    # filters above and quiet_lightning's still win)
    warnings.filterwarnings("once", category=FutureWarning, append=True)
    for name, needles in LOG_MESSAGES.items():
        logger = logging.getLogger(name)
        # a logger's own filters see its own records; records of child loggers (transformers.models...)
        # reach only its handlers' filters
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, _DropMessages) for f in target.filters):
                target.addFilter(_DropMessages(needles))

"""Load a trained LM from a Lightning checkpoint (or the run folder holding one) onto the CPU."""

from __future__ import annotations

from pathlib import Path

from recdistill.engine.checkpoint_files import read_checkpoint_file
from recdistill.errors import RecdistillError
from recdistill.causal_lm.model import GPT, GPTConfig


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.ckpt`` file as given, or ``<run>/checkpoints/best.ckpt`` for a run folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / "checkpoints" / "best.ckpt"
        if candidate.is_file():
            return candidate
        raise RecdistillError(f"{path} has no checkpoints/best.ckpt; give the .ckpt file itself")
    if not path.is_file():
        raise RecdistillError(f"checkpoint {path} does not exist")
    return path


def load_lm(path: str | Path, map_location: str = "cpu") -> tuple[GPT, dict]:
    """The model (eval mode) and the checkpoint's ``meta`` (tokenizer, corpus, phase, token folder...)."""
    path = resolve_checkpoint(path)
    ckpt = read_checkpoint_file(path, "LM checkpoint")
    hparams = ckpt.get("hyper_parameters", {})
    if "model_config" not in hparams:
        raise RecdistillError(f"{path} is not an LM checkpoint written by `recdistill lm train` (no model_config)")
    model = GPT(GPTConfig.from_dict(hparams["model_config"]))
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    meta = dict(hparams.get("meta", {}))
    meta["checkpoint"] = str(path)
    meta["global_step"] = ckpt.get("global_step")
    return model.eval().to(map_location), meta

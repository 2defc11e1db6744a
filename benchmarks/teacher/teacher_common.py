"""Shared by the teacher benchmarks: the prepared data, a student, the prompts, machine facts."""

from __future__ import annotations

import os

import torch


def prepared(path: str | None):
    """``path`` if given, else ML-100K prepared (or found) under the default data folder."""
    from recdistill.config import compose
    from recdistill.recipes.lifecycle import prepared_data

    overrides = [f"prepared={path}"] if path else []
    return prepared_data(compose("teacher", overrides))


def student_for(data, checkpoint: str | None):
    """The student of ``checkpoint``, or a randomly initialised SASRec (speed does not depend on its weights)."""
    if checkpoint:
        from recdistill.student.checkpoint import load_student_for

        return load_student_for(checkpoint, data)[0]
    from recdistill.student.sasrec import SASRec

    torch.manual_seed(0)
    return SASRec(data.num_items, max_len=50, hidden_size=64).eval()


def llm_config(name: str, **overrides):
    from omegaconf import OmegaConf

    from recdistill.config.compose import conf_root
    from recdistill.teacher.llm import LLMSettings

    cfg = OmegaConf.load(conf_root() / "llm" / f"{name}.yaml")
    for k, v in overrides.items():
        OmegaConf.update(cfg, k, v)
    return LLMSettings.from_dict(OmegaConf.to_container(cfg, resolve=True))


def cache_dir() -> str:
    return os.environ.get("RECDISTILL_CACHE") or os.path.expanduser("~/.cache/recdistill")


def linear_gate_spec(mode: str = "ilora", **lora_changes):
    """teacher/ilora.yaml's adapters (r 8, 4 experts, alpha 32, dropout 0.1, all seven projections, iLoRA's
    scaling) with ``lora_changes``, behind a linear gate over the student's whole history (what these
    benchmarks measured; the YAML's iLoRA gate is the conv router over 10 items). ``mode=lora``: one expert."""
    import dataclasses

    from recdistill.config import compose
    from recdistill.recipes.teacher_settings import teacher_spec

    spec = teacher_spec(compose("teacher", ["teacher.gate=linear", "teacher.gate_window=null", f"teacher.mode={mode}"]).teacher)
    return dataclasses.replace(spec, lora=dataclasses.replace(spec.lora, **lora_changes))


def prompt_settings(student_len: int, **changes):
    """teacher.prompt of the YAML (10 history items, 20 candidates, no cut, template 0, seed 0) for a student
    reading ``student_len`` items, with ``changes``."""
    import dataclasses

    from recdistill.config import compose
    from recdistill.recipes.teacher_settings import prompt_settings as from_config

    return dataclasses.replace(from_config(compose("teacher", []).teacher.prompt, student_len), **changes)

"""Helpers shared by the teacher tests (no tests here): the tiny Llama with the SmolLM2 tokenizer, a
real SASRec student on the tiny dataset, a student checkpoint in the format `train student` writes, and the
teacher's settings built from the YAML defaults (the settings classes have none of their own)."""

from __future__ import annotations

import dataclasses
import functools
import os

import torch
from omegaconf import OmegaConf

from recdistill.config.compose import conf_root

CACHE = os.environ.get("RECDISTILL_CACHE") or os.path.expanduser("~/.cache/recdistill")


def llm_cfg(name: str = "tiny-llama", **overrides):
    """The ``llm`` group's YAML file with ``overrides``, as the plain settings the teacher's parts take."""
    from recdistill.teacher.llm import LLMSettings

    cfg = OmegaConf.load(conf_root() / "llm" / f"{name}.yaml")
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return LLMSettings.from_dict(OmegaConf.to_container(cfg, resolve=True))


@functools.lru_cache(maxsize=1)
def yaml_teacher_config():
    """The ``teacher`` command's config as the YAML files give it (read-only, so shared)."""
    from recdistill.config import compose

    return compose("teacher", [])


def molora_config(**changes):
    """``teacher.lora`` of the YAML (r=8, K=4, alpha=32, dropout 0.1, every projection, iLoRA's scaling),
    with ``changes`` (checked again)."""
    from recdistill.recipes.teacher_settings import teacher_spec

    return dataclasses.replace(teacher_spec(yaml_teacher_config().teacher).lora, **changes)


def linear_gate_spec(mode: str = "ilora", **lora_changes):
    """The YAML's teacher in ``mode`` with a linear gate over the student's whole history (the gate these
    tests were written for; the YAML's iLoRA default is the conv router over 10 items)."""
    from recdistill.teacher.model import TeacherSpec

    lora = molora_config(**{**lora_changes, **({"num_experts": 1} if mode == "lora" else {})})
    return TeacherSpec(mode, lora, gate="linear", gate_window=None)


def prompt_settings(student_len: int = 10, **changes):
    """``teacher.prompt`` of the YAML (10 history items, 20 candidates, no cut, template 0, seed 0) for a
    student reading ``student_len`` items, with ``changes``."""
    from recdistill.recipes.teacher_settings import prompt_settings as from_config

    return dataclasses.replace(from_config(yaml_teacher_config().teacher.prompt, student_len), **changes)


def optim_settings(**changes):
    """The teacher's AdamW groups as ``train/teacher.yaml`` sets them (lr 8e-4, router x 0.3, bridge decay
    1e-5), with ``changes`` (checked again)."""
    from recdistill.recipes.teacher_settings import teacher_optim_settings

    return dataclasses.replace(teacher_optim_settings(yaml_teacher_config()), **changes)


def make_curriculum(kind: str, **changes):
    """The YAML's curriculum settings (seed 0, ramp 1.0) with ``kind`` and ``changes`` (checked again)."""
    from recdistill.recipes.teacher_settings import curriculum

    return dataclasses.replace(curriculum(yaml_teacher_config().teacher), kind=kind, **changes)


@functools.lru_cache(maxsize=1)
def tokenizer():
    """The SmolLM2 tokenizer, built from the GGUF's metadata once per machine (then read from the cache)."""
    from recdistill.teacher.llm import load_tokenizer

    return load_tokenizer(llm_cfg(), CACHE)


def make_student(num_items: int = 40, max_len: int = 10, hidden: int = 16, seed: int = 0):
    from recdistill.student.sasrec import SASRec

    torch.manual_seed(seed)
    return SASRec(num_items, max_len=max_len, hidden_size=hidden, num_blocks=1).eval()


def make_teacher(mode: str = "ilora", student=None, dropout: float = 0.0, seed: int = 1, nonzero_lora: bool = True,
                 num_experts: int = 4, **llm_overrides):
    """A tiny teacher whose LoRA B matrices are random (not zero), so the adapters change the outputs."""
    from recdistill.teacher.build import build_teacher

    student = student if student is not None else make_student()
    spec = linear_gate_spec(mode, dropout=dropout, **({"num_experts": num_experts} if mode == "ilora" else {}))
    torch.manual_seed(seed)
    teacher, loaded = build_teacher(llm_cfg(**llm_overrides), spec, student, CACHE, tokenizer=tokenizer())
    if nonzero_lora:
        with torch.no_grad():
            for name, p in teacher.named_parameters():
                if p.requires_grad and "lora_B" in name:
                    p.normal_(0, 0.2)
    return teacher.eval(), loaded


def write_student_checkpoint(path, model, data) -> str:
    """A checkpoint as `recdistill train student` writes it (see recdistill.student.checkpoint)."""
    shape = {k: v for k, v in model.config.items() if k != "num_items"}
    # the student's settings as StudentModule saves them (the loader rebuilds the model from these)
    student = {"name": "sasrec", "loss": "ce", "num_negatives": 1, "negatives_from_history": False, **shape}
    cfg = {"student": shape}
    ckpt = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"cfg": cfg, "student": student, "num_items": model.num_items,
                                 "dataset_meta": {"name": data.name, "fingerprint": data.fingerprint}},
            "epoch": 0, "global_step": 0}
    torch.save(ckpt, path)
    return str(path)

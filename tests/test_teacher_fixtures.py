"""Helpers shared by the teacher tests (no tests here): the tiny Llama with the SmolLM2 tokenizer, a
real SASRec student on the tiny dataset, and a student checkpoint in the format `train student` writes."""

from __future__ import annotations

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
    from recdistill.teacher.model import TeacherSpec
    from recdistill.teacher.molora import MoLoRAConfig

    student = student if student is not None else make_student()
    spec = TeacherSpec(mode, MoLoRAConfig(8, num_experts if mode == "ilora" else 1, 32, dropout))
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

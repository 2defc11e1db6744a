"""Builder functions: config -> the teacher's parts. Shared by training, evaluation, export, tests and
benchmarks, so every path builds the model the same way (which is what makes adapters load back)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from recdistill.config import check_choice, check_positive
from recdistill.data.prepared import PreparedData, load_prepared
from recdistill.data.prompts import PromptEncoder, load_templates
from recdistill.errors import ConfigError
from recdistill.teacher.curriculum import CURRICULA, Curriculum
from recdistill.teacher.data import PromptSettings
from recdistill.teacher.llm import LoadedLLM, load_llm
from recdistill.teacher.model import MODES, ILoRATeacher, TeacherSpec
from recdistill.teacher.molora import MoLoRAConfig
from recdistill.teacher.molora.gate import GATES
from recdistill.teacher.optim import TeacherOptimSettings


def cache_dir(cfg: DictConfig) -> str:
    return os.path.expanduser(str(cfg.paths.cache_dir))


def prepared_data(cfg: DictConfig) -> PreparedData:
    given = cfg.get("prepared")
    if given:
        return load_prepared(Path(os.path.expanduser(str(given))))
    from recdistill.data.prepare import ensure_prepared

    return load_prepared(ensure_prepared(cfg))


def validate_teacher_config(cfg: DictConfig) -> None:
    """Check the ``teacher`` group of a composed config (keys named in full in the messages)."""
    t = cfg.teacher
    if str(t.get("kind", "llm")) != "llm":
        raise ConfigError(f"teacher={t.get('kind')} cannot be trained here; `recdistill train teacher` trains an LLM "
                          "teacher (teacher=ilora or teacher=lora)")
    check_choice(cfg, "teacher.mode", MODES)
    for key in ("lora.r", "lora.num_experts", "lora.alpha", "prompt.history_items", "prompt.num_candidates",
                "eval.candidate_batch_size", "eval.max_new_tokens"):
        check_positive(cfg, f"teacher.{key}")
    check_choice(cfg, "teacher.eval.method", ("likelihood", "generate", "both"))
    if "gate" in t:
        check_choice(cfg, "teacher.gate", GATES)
    if t.get("gate_window") is not None:
        check_positive(cfg, "teacher.gate_window")
    if "protocol" in t.eval:
        check_choice(cfg, "teacher.eval.protocol", ("likelihood", "llara"))
    if "curriculum" in t:
        check_choice(cfg, "teacher.curriculum", CURRICULA)
    check_choice(cfg, "teacher.eval.score_norm", ("sum", "mean"))
    check_choice(cfg, "teacher.data.train_positions", ("all", "last"))
    if t.prompt.max_tokens is not None:
        check_positive(cfg, "teacher.prompt.max_tokens")
    if bool(cfg.efficiency.get("compile", False)):
        # Not wired for the teacher yet: compiling a 30-layer LLM with per-sample gates takes many minutes
        # on a CPU and was not measured; refusing beats a knob that silently does nothing.
        raise ConfigError("efficiency.compile=true is not supported by the teacher yet; use efficiency.compile=false")
    check_positive(cfg, "train.batch_size")
    check_positive(cfg, "train.eval_batch_size")
    check_positive(cfg, "train.lr")


def teacher_spec(teacher_cfg: DictConfig) -> TeacherSpec:
    lora = teacher_cfg.lora
    num_experts = int(lora.num_experts) if str(teacher_cfg.mode) == "ilora" else 1
    window = teacher_cfg.get("gate_window")
    return TeacherSpec(str(teacher_cfg.mode), MoLoRAConfig(int(lora.r), num_experts, float(lora.alpha),
                                                           float(lora.dropout), tuple(lora.target_modules)),
                       gate=str(teacher_cfg.get("gate", "linear")), gate_window=None if window is None else int(window))


def effective_llm_config(llm_cfg: DictConfig, eff: DictConfig | None) -> DictConfig:
    """The ``llm`` group with ``efficiency.gradient_checkpointing`` folded in (either switch turns it on)."""
    merged = OmegaConf.to_container(llm_cfg, resolve=True)
    if eff is not None and bool(eff.get("gradient_checkpointing", False)):
        merged["gradient_checkpointing"] = True
    return OmegaConf.create(merged)


def build_teacher(llm_cfg: DictConfig, spec: TeacherSpec, student, cache: str, tokenizer=None,
                  uniform_dropout: bool = True) -> tuple[ILoRATeacher, LoadedLLM]:
    """The LLM with its adapters. ``uniform_dropout`` is ``efficiency.uniform_dropout`` (iLoRA mode; plain
    LoRA keeps PEFT's dropout)."""
    loaded = load_llm(llm_cfg, cache, tokenizer=tokenizer)
    teacher = ILoRATeacher(loaded.model, student, spec, quantized=loaded.quantization != "none",
                           gradient_checkpointing=bool(llm_cfg.gradient_checkpointing), uniform_dropout=uniform_dropout)
    return teacher, loaded


def build_encoder(tokenizer, data: PreparedData, prompt_cfg: DictConfig) -> PromptEncoder:
    return PromptEncoder(tokenizer, data.titles, load_templates(prompt_cfg.file))


def prompt_settings(prompt_cfg: DictConfig, student) -> PromptSettings:
    return PromptSettings(history_items=int(prompt_cfg.history_items), num_candidates=int(prompt_cfg.num_candidates),
                          max_tokens=None if prompt_cfg.max_tokens is None else int(prompt_cfg.max_tokens),
                          eval_template=int(prompt_cfg.eval_template), seed=int(prompt_cfg.seed),
                          student_len=int(student.max_len))


def optim_settings(train_cfg: DictConfig, eff: DictConfig) -> TeacherOptimSettings:
    """iLoRA's AdamW groups from the ``train`` group (``router_lr_scale``, ``bridge_weight_decay``)."""
    return TeacherOptimSettings(lr=float(train_cfg.lr), weight_decay=float(train_cfg.get("weight_decay", 0.0)),
                                bridge_weight_decay=float(train_cfg.get("bridge_weight_decay", 0.0)),
                                router_lr_scale=float(train_cfg.get("router_lr_scale", 1.0)),
                                betas=tuple(train_cfg.get("betas", (0.9, 0.999))), fused=eff.fused_adamw)


def curriculum(teacher_cfg: DictConfig) -> Curriculum:
    return Curriculum(str(teacher_cfg.get("curriculum", "none")), int(teacher_cfg.prompt.seed),
                      float(teacher_cfg.get("curriculum_ramp", 1.0)))

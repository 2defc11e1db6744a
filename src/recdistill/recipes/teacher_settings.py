"""The teacher recipe's config readers: the ``teacher``, ``llm`` and ``train`` groups checked and turned
into the plain settings the teacher's parts take (``TeacherSpec`` with its ``MoLoRAConfig``,
``TeacherOptimSettings``, ``Curriculum``, ``PromptSettings``, ``TeacherEvalSettings``). Shared by
``recipes/teacher.py`` and ``recipes/export.py``.

Each setting's default is in the YAML (``config/conf/teacher/ilora.yaml``, ``train/teacher.yaml``); the
settings classes have none. Each is checked once: a class that mirrors a group checks its own fields in
``__post_init__`` (built here, by :func:`validate_teacher_config`, before a run folder exists); the keys no
class holds, and the combinations, are checked here. Code outside a run (tests, benchmarks) builds the
same settings from ``compose("teacher", overrides)``."""

from __future__ import annotations

import os
import re

from omegaconf import DictConfig, OmegaConf

from recdistill.config import check_choice, check_positive
from recdistill.errors import ConfigError
from recdistill.teacher.curriculum import Curriculum
from recdistill.teacher.build import build_encoder
from recdistill.teacher.data import EVAL_TEMPLATE_RANDOM, PromptSettings
from recdistill.teacher.evaluation import GENERATION_MONITOR, SELECTIONS, TeacherEvalSettings
from recdistill.teacher.model import MODES, TeacherSpec
from recdistill.teacher.molora import MoLoRAConfig
from recdistill.teacher.optim import TeacherOptimSettings
from recdistill.teacher.prompt_encoder import CANDIDATE_LISTINGS, TOKENIZATIONS, PromptEncoder, check_answer_form


def cache_dir(cfg: DictConfig) -> str:
    return os.path.expanduser(str(cfg.paths.cache_dir))


def validate_teacher_config(cfg: DictConfig) -> None:
    """Check the ``teacher`` group of a composed config (keys named in full in the messages): the settings
    classes are built once here so that their own checks run before anything is loaded or written."""
    t = cfg.teacher
    if str(t.kind) != "llm":
        raise ConfigError(f"teacher={t.kind} cannot be trained here; `recdistill train teacher` trains an LLM "
                          "teacher (teacher=ilora or teacher=lora)")
    check_choice(cfg, "teacher.mode", MODES)
    check_choice(cfg, "teacher.prompt.candidates", CANDIDATE_LISTINGS)
    check_positive(cfg, "teacher.data.length_bucket_batches", allow_zero=True)
    check_choice(cfg, "teacher.eval.protocol", ("likelihood", "llara"))
    checkpoint_monitor(cfg)
    teacher_spec(t)
    curriculum(t)
    _check_combinations(t)
    check_choice(cfg, "teacher.data.train_positions", ("all", "last"))
    prompt_settings(t.prompt, student_len=1)  # the student's max_len comes with it later; the prompt keys are checked now
    teacher_eval_settings(t.eval)
    if bool(cfg.efficiency.compile):
        # Not wired for the teacher yet: compiling a 30-layer LLM with per-sample gates takes many minutes
        # on a CPU and was not measured; refusing beats a knob that silently does nothing.
        raise ConfigError("efficiency.compile=true is not supported by the teacher yet; use efficiency.compile=false")
    check_positive(cfg, "train.batch_size")
    check_positive(cfg, "train.eval_batch_size")
    teacher_optim_settings(cfg)


def _check_combinations(t) -> None:
    """Settings that are each valid but together would be ignored or would train on empty prompts."""
    if str(t.mode) == "lora" and (t.gate_window is not None or str(t.gate) != "linear"):
        raise ConfigError(f"teacher.gate={t.gate} / teacher.gate_window={t.gate_window} have no effect with "
                          "teacher.mode=lora (one plain LoRA has no gate); use teacher=ilora for a gated mixture, "
                          "or leave teacher.gate=linear and teacher.gate_window=null")
    schedule = {"curriculum_unit": "sample", "curriculum_counter": "run", "curriculum_placeholder": "pad"}
    changed = [f"teacher.{k}={t[k]}" for k, plain in schedule.items() if str(t[k]) != plain]
    if str(t.curriculum) == "none" and changed:
        raise ConfigError(f"{', '.join(changed)} have no effect with teacher.curriculum=none (every prompt is "
                          "hybrid from the first step); use teacher.curriculum=llara, or leave them out")
    if str(t.curriculum) == "llara" and str(t.prompt.candidates) == "tokens":
        # A text-only prompt drops every item embedding, so a tokens-only listing would show no candidate.
        raise ConfigError("teacher.curriculum=llara with teacher.prompt.candidates=tokens leaves the text-only "
                          "prompts with no candidates (their [CansEmb] slots carry no embedding); list them as "
                          "titles (teacher.prompt.candidates=titles), drop the listing "
                          "(teacher.prompt.candidates=none), or use teacher.curriculum=none")


def checkpoint_monitor(cfg) -> str:
    """``train.monitor``, with ``auto`` resolved by ``teacher.eval.select_on``: ``val/cand<N>_ndcg@10``
    (likelihood_ndcg) or ``val/gen_hr@1`` (hr1_x_valid_ratio: LLaRA / iLoRA's selection, the hits over every
    answer, i.e. HR@1 over valid answers x ValidRatio). A candidate metric named for another candidate count
    would never be logged (the checkpoint would silently never be selected), so it is an error; so is a
    selection whose metric validation does not compute, or an explicit monitor beside a non-default
    ``select_on`` (one of the two would be ignored)."""
    n = int(cfg.teacher.prompt.num_candidates)
    monitor = str(cfg.train.monitor)
    check_choice(cfg, "teacher.eval.select_on", SELECTIONS)
    select_on = str(cfg.teacher.eval.select_on)
    if select_on == "hr1_x_valid_ratio" and str(cfg.teacher.eval.method) == "likelihood":
        raise ConfigError("teacher.eval.select_on=hr1_x_valid_ratio selects on generated answers, which "
                          "teacher.eval.method=likelihood never produces; set teacher.eval.method=generate or both")
    if monitor == "auto":
        return GENERATION_MONITOR if select_on == "hr1_x_valid_ratio" else f"val/cand{n}_ndcg@10"
    if select_on != "likelihood_ndcg" and monitor != GENERATION_MONITOR:
        raise ConfigError(f"train.monitor={monitor} and teacher.eval.select_on={select_on} name different "
                          f"selection metrics; leave train.monitor=auto (or set it to {GENERATION_MONITOR})")
    named = re.match(r"(?:val|test)/cand(\d+)_", monitor)
    if named and int(named.group(1)) != n:
        raise ConfigError(f"train.monitor={monitor} names metrics over {named.group(1)} candidates but "
                          f"teacher.prompt.num_candidates={n}; use train.monitor=auto or val/cand{n}_ndcg@10")
    return monitor


def teacher_spec(teacher_cfg: DictConfig) -> TeacherSpec:
    """``teacher.mode``, ``gate``, ``gate_window`` and ``lora`` (one expert for ``mode=lora``: the
    ``lora.num_experts`` key is then not read)."""
    lora = teacher_cfg.lora
    num_experts = int(lora.num_experts) if str(teacher_cfg.mode) == "ilora" else 1
    window = teacher_cfg.gate_window
    return TeacherSpec(str(teacher_cfg.mode), MoLoRAConfig(int(lora.r), num_experts, float(lora.alpha),
                                                           float(lora.dropout), tuple(lora.target_modules),
                                                           scaling_rule=str(lora.scaling),
                                                           top_layers=None if lora.top_layers is None
                                                           else int(lora.top_layers)),
                       gate=str(teacher_cfg.gate), gate_window=None if window is None else int(window))


def teacher_optim_settings(cfg: DictConfig) -> TeacherOptimSettings:
    """iLoRA's AdamW groups from the ``train`` group (``router_lr_scale``, ``bridge_weight_decay``)."""
    t = cfg.train
    return TeacherOptimSettings(lr=float(t.lr), weight_decay=float(t.weight_decay),
                                bridge_weight_decay=float(t.bridge_weight_decay),
                                router_lr_scale=float(t.router_lr_scale), betas=tuple(t.betas),
                                fused=cfg.efficiency.fused_adamw, weight_decay_form=str(t.weight_decay_form))


def curriculum(teacher_cfg: DictConfig) -> Curriculum:
    """LLaRA's curriculum (or none), seeded by ``teacher.prompt.seed``."""
    return Curriculum(str(teacher_cfg.curriculum), int(teacher_cfg.prompt.seed), float(teacher_cfg.curriculum_ramp),
                      str(teacher_cfg.curriculum_unit), counter=str(teacher_cfg.curriculum_counter),
                      placeholder=str(teacher_cfg.curriculum_placeholder))


def announce_cpu_precision(cfg: DictConfig) -> None:
    """Say what ``auto`` picks for the LLM on this CPU and why, when a setting is left to it."""
    from recdistill.engine.precision import explain_cpu_choice, resolve_accelerator

    if resolve_accelerator(cfg.efficiency.accelerator) != "cpu":
        return
    if str(cfg.efficiency.precision) == "auto" or str(cfg.llm.dtype) == "auto":
        print(explain_cpu_choice(), flush=True)


def effective_llm_config(llm_cfg: DictConfig, eff: DictConfig | None) -> dict:
    """The ``llm`` group (a plain dict) with ``efficiency.gradient_checkpointing`` folded in (either switch
    turns it on)."""
    merged = OmegaConf.to_container(llm_cfg, resolve=True)
    if eff is not None and bool(eff.gradient_checkpointing):
        merged["gradient_checkpointing"] = True
    return merged


# What an adapter saved before a prompt option existed was trained with (not a second default: the YAML
# holds the one default; this is the history of older adapters).
BEFORE_THE_OPTION = {"candidates": "titles", "tokenize": "pieces", "rewrite_titles": False, "answer_form": "eos",
                     "template_unit": "sample"}


def _prompt_option(prompt_cfg, key: str):
    return prompt_cfg[key] if key in prompt_cfg else BEFORE_THE_OPTION[key]


def eval_template_setting(value) -> int | str:
    """``teacher.prompt.eval_template``: a template number (0-based) or ``random``."""
    if value == EVAL_TEMPLATE_RANDOM:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"teacher.prompt.eval_template={value!r} is not valid; choose a template number "
                          f"(0-based) or {EVAL_TEMPLATE_RANDOM}")
    return value


def _check_tokenization(prompt_cfg) -> str:
    tokenize = _prompt_option(prompt_cfg, "tokenize")
    if tokenize not in TOKENIZATIONS:
        raise ConfigError(f"teacher.prompt.tokenize={tokenize!r} is not valid; choose one of: {', '.join(TOKENIZATIONS)}")
    if tokenize == "whole_string" and prompt_cfg["max_tokens"] is not None:
        raise ConfigError("teacher.prompt.tokenize=whole_string cannot cut prompts (LLaRA / iLoRA never do); set "
                          "teacher.prompt.max_tokens=null or teacher.prompt.tokenize=pieces")
    rewrite = _prompt_option(prompt_cfg, "rewrite_titles")
    if not isinstance(rewrite, bool):
        raise ConfigError(f"teacher.prompt.rewrite_titles={rewrite!r} is not valid; choose true or false")
    check_answer_form(_prompt_option(prompt_cfg, "answer_form"), tokenize)
    return tokenize


def prompt_settings(prompt_cfg, student_len: int) -> PromptSettings:
    """``teacher.prompt`` (a config node, or the plain dict an adapter saved) checked, with the student's
    ``max_len``."""
    for key in ("history_items", "num_candidates") + (("max_tokens",) if prompt_cfg["max_tokens"] is not None else ()):
        value = prompt_cfg[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"teacher.prompt.{key}={value!r} is not valid; expected a number > 0")
    _check_tokenization(prompt_cfg)
    return PromptSettings(history_items=int(prompt_cfg["history_items"]),
                          num_candidates=int(prompt_cfg["num_candidates"]),
                          max_tokens=None if prompt_cfg["max_tokens"] is None else int(prompt_cfg["max_tokens"]),
                          eval_template=eval_template_setting(prompt_cfg["eval_template"]), seed=int(prompt_cfg["seed"]),
                          student_len=int(student_len), template_unit=str(_prompt_option(prompt_cfg, "template_unit")))


def prompt_encoder(tokenizer, data, prompt_cfg) -> PromptEncoder:
    """The prompt encoder ``teacher.prompt`` describes (a config node, or the dict an adapter saved: options
    it predates are read as it was trained, ``BEFORE_THE_OPTION``)."""
    return build_encoder(tokenizer, data, prompt_cfg["file"], str(_prompt_option(prompt_cfg, "candidates")),
                         tokenize=_check_tokenization(prompt_cfg),
                         rewrite_titles=bool(_prompt_option(prompt_cfg, "rewrite_titles")),
                         answer_form=str(_prompt_option(prompt_cfg, "answer_form")))


def teacher_eval_settings(eval_cfg) -> TeacherEvalSettings:
    """``teacher.eval``: how ``train teacher`` and ``eval teacher`` score validation and test prompts."""
    return TeacherEvalSettings(method=str(eval_cfg.method), score_norm=str(eval_cfg.score_norm),
                               candidate_batch_size=int(eval_cfg.candidate_batch_size),
                               max_new_tokens=int(eval_cfg.max_new_tokens), kv_cache=bool(eval_cfg.kv_cache),
                               min_new_tokens=int(eval_cfg.min_new_tokens))

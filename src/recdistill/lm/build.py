"""Builder functions: from the composed config to the tokenizer, token files, model config and run name.

The commands (``commands.py``) and the benchmarks call these, so both run the same recipe.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from recdistill.config import check_choice, check_positive
from recdistill.errors import ConfigError
from recdistill.lm.corpus import corpus_name, load_corpus
from recdistill.lm.model import PRESETS, GPTConfig, preset_config
from recdistill.lm.quantize import check_mode
from recdistill.lm.tokenizer import TOKENIZERS, load_tokenizer
from recdistill.lm.tokens import TokenFile, corpus_fingerprint, write_token_files

PHASES = ("pretrain", "finetune")
DEFAULT_CORPUS = {"pretrain": "shakespeare", "finetune": "chitchat"}
SHAPE_KNOBS = ("d_model", "n_layers", "n_heads", "context_length")


def validate(cfg: DictConfig) -> None:
    if cfg.lm.preset not in PRESETS:  # checked first: before any corpus is fetched
        raise ConfigError(f"unknown lm.preset={cfg.lm.preset!r}; choose one of: {', '.join(PRESETS)}")
    check_choice(cfg, "lm.phase", PHASES)
    check_choice(cfg, "lm.tokenizer", TOKENIZERS)
    check_mode(str(cfg.lm.quantize))
    for key in ("train.max_steps", "train.batch_size", "train.eval_batch_size", "train.lr",
                "train.val_every_steps", "train.progress_every_steps"):
        check_positive(cfg, key)
    for key in ("train.limit_val_batches", "train.eval_max_batches", "lm.train_stride", *[f"lm.{k}" for k in SHAPE_KNOBS]):
        check_positive(cfg, key, allow=(None,))
    if cfg.lm.phase == "finetune" and not cfg.lm.init_from:
        raise ConfigError("lm.phase=finetune needs lm.init_from=<pretrain checkpoint or run folder>")


def resolve_corpus(cfg: DictConfig) -> str:
    corpus = str(cfg.lm.corpus)
    return DEFAULT_CORPUS[str(cfg.lm.phase)] if corpus == "auto" else corpus


def cache_dir(cfg: DictConfig) -> Path:
    return Path(str(cfg.paths.cache_dir)).expanduser()


def prepare_tokens(cfg: DictConfig, corpus: str, tokenizer, progress: bool = True) -> TokenFile:
    """The token folder for ``corpus`` under ``<data_dir>/lm/``, tokenized now if it does not exist."""
    val_fraction, seed = float(cfg.lm.val_fraction), int(cfg.lm.split_seed)
    fingerprint = corpus_fingerprint(corpus, tokenizer.name, val_fraction, seed)
    folder = Path(str(cfg.paths.data_dir)).expanduser() / "lm" / f"{corpus_name(corpus)}-{tokenizer.name}-{fingerprint}"
    if not (folder / "meta.json").is_file():
        docs = load_corpus(corpus, cache_dir(cfg))
        write_token_files(docs, tokenizer, folder, val_fraction, seed,
                          extra_meta={"corpus": corpus, "fingerprint": fingerprint}, progress=progress)
    return TokenFile(folder)


def build_tokenizer(cfg: DictConfig, name: str | None = None):
    return load_tokenizer(name or str(cfg.lm.tokenizer), cache_dir(cfg))


def model_config(cfg: DictConfig, vocab_size: int, base: GPTConfig | None = None) -> GPTConfig:
    """The model shape from the preset and knobs; for fine-tuning, ``base`` (the pretrained model's
    shape), where the shape knobs may only repeat the pretrained values."""
    lm = cfg.lm
    runtime = dict(dropout=float(lm.dropout), attention=str(lm.attention),
                   gradient_checkpointing=bool(cfg.efficiency.gradient_checkpointing),
                   uniform_dropout=bool(cfg.efficiency.get("uniform_dropout", False)))
    if base is None:
        return preset_config(str(lm.preset), vocab_size, **{k: lm[k] for k in SHAPE_KNOBS}, **runtime)
    for knob in SHAPE_KNOBS:
        if lm[knob] is not None and lm[knob] != getattr(base, knob):
            raise ConfigError(
                f"lm.{knob}={lm[knob]} differs from the pretrained model's {getattr(base, knob)}; "
                f"fine-tuning keeps the pretrained shape, drop the lm.{knob} override"
            )
    return GPTConfig.from_dict({**base.to_dict(), **runtime})


def run_name(cfg: DictConfig, corpus: str, model_cfg: GPTConfig) -> str:
    """``lm_<corpus>_d<d_model>_l<n_layers>`` plus ``_finetune`` and ``_int8`` when they apply, unless
    ``run.name`` is set."""
    if cfg.run.get("name"):
        return str(cfg.run.name)
    name = f"lm_{corpus_name(corpus)}_d{model_cfg.d_model}_l{model_cfg.n_layers}"
    if cfg.lm.phase == "finetune":
        name += "_finetune"
    if cfg.lm.quantize == "int8":
        name += "_int8"
    return name

"""Every config value is type-checked as it is set (``key=value`` overrides, ``--config`` files, a run's
saved config), before anything runs: ``efficiency.seed=abc`` is a clear error, not a ``ValueError`` deep
inside a run.

The expected type of a key is its YAML default's (``int``, ``float``, ``bool``, ``str``, ``list``,
``dict``; an ``int`` is fine where a ``float`` is expected, and a number where a string is: ``run.name=2024``
becomes ``"2024"``). Keys whose default is ``null``, or that take more than one type, are declared in
``DECLARED`` below: a list of type names and literal strings (``"auto"``). ``tests/test_config_types.py``
fails when a key defaults to ``null`` without a declaration here.
"""

from __future__ import annotations

from recdistill.errors import ConfigError

NUMBER_OR_NULL = ["null", "int", "float"]
PATH_OR_NULL = ["null", "str"]
INT_OR_NULL = ["null", "int"]

DECLARED: dict[str, list] = {
    # several types
    "train.batch_size": ["int", "auto"],
    "efficiency.devices": ["int", "str", "list"],
    "efficiency.compile": ["bool", "str"],
    "efficiency.fused_adamw": ["bool", "auto"],
    "efficiency.pin_memory": ["bool", "auto"],
    "efficiency.precision": ["str", "int"],
    "distill.kd.weight": ["float", "int", "auto"],
    "distill.ed.gamma": ["float", "int", "auto"],
    "teacher.prompt.eval_template": ["int", "random"],
    # null = "not set" / "all" / "from the preset"
    "efficiency.gradient_clip_val": NUMBER_OR_NULL,
    "efficiency.warmup_start_ratio": NUMBER_OR_NULL,
    "efficiency.batch_size_search.cpu_memory_mb": NUMBER_OR_NULL,
    "train.limit_train_batches": NUMBER_OR_NULL,
    "train.limit_val_batches": NUMBER_OR_NULL,
    "train.limit_test_batches": NUMBER_OR_NULL,
    "train.eval_max_batches": INT_OR_NULL,
    "train.resume": PATH_OR_NULL,
    "prepared": PATH_OR_NULL,
    "run.name": PATH_OR_NULL,
    "pipeline.dir": PATH_OR_NULL,
    "bench.validate_section": PATH_OR_NULL,
    "dataset.path": PATH_OR_NULL,
    "dataset.items_path": PATH_OR_NULL,
    "dataset.stem": PATH_OR_NULL,
    "dataset.title_field": PATH_OR_NULL,
    "dataset.title_col": PATH_OR_NULL,          # null = the file has no titles
    "dataset.rating_col": PATH_OR_NULL,
    "dataset.genres_col": PATH_OR_NULL,
    "dataset.rating_threshold": NUMBER_OR_NULL,
    "dataset.limit": INT_OR_NULL,
    "distill.teacher_outputs": PATH_OR_NULL,
    "distill.item_embeddings": PATH_OR_NULL,
    "distill.auto.student_run": PATH_OR_NULL,
    "embed.out": PATH_OR_NULL,
    "distill.kd.top_k": INT_OR_NULL,
    "distill.kd.consistency_k": INT_OR_NULL,
    "export.out_dir": PATH_OR_NULL,
    "export.student_checkpoint": PATH_OR_NULL,
    "export.limit": INT_OR_NULL,
    "lm.init_from": PATH_OR_NULL,
    "lm.d_model": INT_OR_NULL,
    "lm.n_layers": INT_OR_NULL,
    "lm.n_heads": INT_OR_NULL,
    "lm.context_length": INT_OR_NULL,
    "lm.train_stride": INT_OR_NULL,
    "teacher.adapter": PATH_OR_NULL,
    "teacher.gate_window": INT_OR_NULL,
    "teacher.lora.top_layers": INT_OR_NULL,
    "eval.candidates.limit_users": INT_OR_NULL,
    "pipeline.seeds": ["null", "list"],
    "teacher.checkpoint": PATH_OR_NULL,
    "teacher.student_checkpoint": PATH_OR_NULL,
    "teacher.prompt.file": PATH_OR_NULL,
    "teacher.prompt.max_tokens": INT_OR_NULL,
    "teacher.data.limit_users": INT_OR_NULL,
}

NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "list": "a list",
         "dict": "a mapping", "null": "null"}


def type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    for name, kind in (("int", int), ("float", float), ("str", str), ("list", list), ("dict", dict)):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _fits(value, expected: str) -> bool:
    actual = type_name(value)
    if expected in NAMES:
        return actual == expected or (expected == "float" and actual == "int")
    return value == expected  # a literal such as "auto"


def checked_value(key: str, value, default, default_known: bool = True):
    """``value`` for ``key`` if it has the declared type, or its default's; else a ConfigError. Returns the
    value to store (numbers given for a string key become strings)."""
    allowed = DECLARED.get(key)
    if allowed is None:
        if not default_known or default is None:
            return value  # a key added with +key=..., or an undeclared null (the test catches those)
        allowed = [type_name(default)]
    if any(_fits(value, kind) for kind in allowed):
        if isinstance(value, list) and default_known and isinstance(default, list) and default and value:
            _check_items(key, value, default)
        return value
    if "str" in allowed and type_name(value) in ("int", "float"):
        return str(value)
    expected = " or ".join(NAMES.get(k, repr(k)) for k in allowed)
    shown = f"{default!r}" if default_known else "none"
    raise ConfigError(f"{key}={value!r} is not valid: expected {expected} (the default is {shown})")


def _check_items(key: str, value: list, default: list) -> None:
    kinds = {type_name(x) for x in default}
    if len(kinds) != 1:
        return
    (kind,) = kinds
    for item in value:
        if not _fits(item, kind):
            raise ConfigError(f"{key}={value!r} is not valid: expected a list of {NAMES.get(kind, kind)} values "
                              f"(the default is {default!r})")


def default_of(defaults: dict, dotted: str) -> tuple[object, bool]:
    """``(default value, known)`` of a dotted key in the defaults tree; unknown for a key added with +."""
    node = defaults
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None, False
    return node, True

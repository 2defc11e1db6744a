"""A group option that builds on another (``defaults: [ilora]`` in ``teacher/lora.yaml``): the keys it sets
override, every other key and its ``config show`` comment come from the option it builds on."""

from omegaconf import OmegaConf

from recdistill.config.compose import compose, conf_root, option_files
from recdistill.config.show import show_config


def _differences(a: dict, b: dict, prefix: str = "") -> set[str]:
    keys = set(a) | set(b)
    out = set()
    for key in keys:
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out |= _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            out.add(f"{prefix}{key}")
    return out


def test_lora_teacher_overrides_ilora_only_where_it_says():
    assert option_files("teacher", "lora") == [conf_root() / "teacher" / "ilora.yaml", conf_root() / "teacher" / "lora.yaml"]
    ilora = OmegaConf.to_container(compose("teacher").teacher)
    lora = OmegaConf.to_container(compose("teacher", ["teacher=lora"]).teacher)
    assert "defaults" not in lora
    assert _differences(ilora, lora) == {"mode", "gate", "gate_window", "lora.num_experts"}
    assert list(lora) == list(ilora)  # same key order as the file it builds on


def test_efficiency_none_turns_off_only_the_optimisations():
    default = OmegaConf.to_container(compose("student").efficiency)
    none = OmegaConf.to_container(compose("student", ["efficiency=none"]).efficiency)
    assert _differences(default, none) == {"precision", "uniform_dropout", "fused_adamw", "scheduler", "pin_memory",
                                           "persistent_workers", "matmul_precision"}


def test_config_show_keeps_the_comments_of_inherited_keys():
    shown = show_config("teacher", ["teacher=lora"]).splitlines()
    line = next(x for x in shown if x.strip().startswith("alpha: 32"))
    assert "# LoRA alpha (iLoRA: 32)" in line                       # from teacher/ilora.yaml
    line = next(x for x in shown if x.strip().startswith("num_experts: 1"))
    assert "# plain LoRA: one expert" in line                       # lora.yaml's own comment wins
    assert not any(x.strip().startswith("defaults:") for x in shown)

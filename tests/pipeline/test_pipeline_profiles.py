"""Every profile's overrides are valid for every stage they reach (a stage renaming a key breaks this
test, not a user's 20-minute demo halfway)."""

from __future__ import annotations

import pytest

from recdistill.config import compose, list_options
from recdistill.pipeline import STAGES
from recdistill.pipeline.overrides import applies_to, route


@pytest.mark.parametrize("profile", list_options("profile"))
def test_profile_overrides_compose_for_every_stage(profile):
    cfg = compose("pipeline", [f"profile={profile}"])
    assert cfg.profile.name == profile and cfg.profile.description
    for name, stage in STAGES.items():
        if not stage.root:
            continue
        base = compose(stage.root, [])
        overrides = [x for x in cfg.profile["all"] if applies_to(base, x)] + list(cfg.profile[name])
        compose(stage.root, overrides)  # raises ConfigError naming the bad key


def test_routing_of_command_line_overrides():
    stages = ("prepare", "student", "teacher", "export", "distill")
    pipeline, common, per_stage = route(
        ["paths.runs_dir=/x", "pipeline.until=student", "efficiency.seed=3", "student:train.lr=0.01",
         "teacher:llm.source=/models/m"], stages)
    assert pipeline == ["paths.runs_dir=/x", "pipeline.until=student"]
    assert common == ["efficiency.seed=3"]
    assert per_stage["student"] == ["train.lr=0.01"] and per_stage["teacher"] == ["llm.source=/models/m"]
    assert applies_to(compose("student", []), "efficiency.seed=3")
    assert not applies_to(compose("prepare", []), "efficiency.seed=3")
    assert applies_to(compose("prepare", []), "dataset=ml-1m")  # a group choice

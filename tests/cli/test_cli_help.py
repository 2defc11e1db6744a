"""A command line that explains itself: `config show` with each key's comment, per-command examples in
`--help` that stay valid, group help that names the subcommands."""

import pytest

from recdistill.cli import COMMANDS, main
from recdistill.cli_help import EXAMPLES
from recdistill.config import compose


@pytest.mark.parametrize("words", [w for w, (root, _) in EXAMPLES.items() if root])
def test_every_example_composes(words):
    root, examples = EXAMPLES[words]
    for _, rest in examples:
        overrides = [w for w in rest.split() if "=" in w and not w.startswith("--")]
        compose(root, overrides)  # raises ConfigError on a key or group that does not exist


def test_examples_belong_to_real_commands():
    known = {c.words for c in COMMANDS}
    assert set(EXAMPLES) <= known


def test_config_show_prints_values_with_their_comments(capsys):
    assert main(["config", "show", "distill", "distill.kd.weight=0.5"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.strip().startswith("weight: 0.5"))
    assert "# kd.weight: scale of L_rd" in line
    # a comment continued over several lines of the YAML file is joined
    avg = next(l for l in out.splitlines() if l.strip().startswith("average_over:"))
    assert "DLLM2Rec" in avg and "all_positions" in avg
    # a group file's opening lines describe the file, not its first key
    assert "# Training loop settings" not in next(l for l in out.splitlines() if "max_epochs:" in l)
    assert main(["config", "show", "nonsense"]) == 2
    assert "choose one of" in capsys.readouterr().err


def test_help_is_specific_to_each_command(capsys):
    texts = {}
    for words in (("train", "student"), ("train", "distill")):
        with pytest.raises(SystemExit):
            main([*words, "--help"])
        texts[words] = capsys.readouterr().out
    assert "student.loss=bce" in texts[("train", "student")] and "student.loss=bce" not in texts[("train", "distill")]
    assert "distill.dros.enabled=true" in texts[("train", "distill")]
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "subcommands" not in top and "student | teacher | distill" in top

"""The examples each command's ``--help`` ends with: the overrides a user of that command reaches for.

Kept apart from ``cli.py`` (the command table) so they can grow without touching it. Every example's
``key=value`` words are composed against the command's config in ``tests/test_cli_help.py``, so a
renamed key cannot leave a stale example here.
"""

from __future__ import annotations

# command words -> (config root the overrides belong to, [(what it does, the words after the command)])
EXAMPLES: dict[tuple[str, ...], tuple[str | None, list[tuple[str, str]]]] = {
    ("data", "prepare"): ("prepare", [
        ("MovieLens-1M from a local copy", "dataset=ml-1m dataset.path=~/data/ml-1m"),
        ("your own CSV of user,item,timestamp", "dataset=csv dataset.path=interactions.csv"),
        ("the first 100 users only, for a quick look", "dataset.limit=100 dataset.name=ml-100k-small"),
    ]),
    ("train", "student"): ("student", [
        ("a shorter run", "train.max_epochs=50 train.early_stopping_patience=5"),
        ("the original SASRec loss (BCE, one negative)", "student.loss=bce student.num_negatives=1"),
        ("a wider model, another seed", "student.hidden_size=128 efficiency.seed=1"),
        ("the largest batch that fits", "train.batch_size=auto"),
    ]),
    ("eval", "student"): ("student", [
        ("full ranking only (no sampled protocol)", "eval.sampled_negatives=0"),
    ]),
    ("train", "teacher"): ("teacher", [
        ("the required frozen student", "teacher.student_checkpoint=runs/<student run>/checkpoints/<best>.ckpt"),
        ("plain LoRA (LLaRA) instead of iLoRA", "teacher=lora"),
        ("a short CPU run", "train.limit_train_batches=10 train.limit_val_batches=2 teacher.data.train_positions=last"),
        ("a tiny random LLM, to check the machinery", "llm=tiny-llama"),
    ]),
    ("eval", "teacher"): ("teacher", [
        ("on 16 test users only", "train.limit_test_batches=2 train.eval_batch_size=8"),
    ]),
    ("export",): ("export", [
        ("an LLM teacher, last position of 50 users", "teacher.adapter=runs/<teacher run>/adapter export.positions=last export.limit=50"),
        ("a bigger SASRec as the teacher", "teacher=student teacher.checkpoint=<big .ckpt> export.candidates=all"),
        ("item embeddings as DLLM2Rec reads them", "teacher.export.embedding_pooling=last"),
    ]),
    ("train", "distill"): ("distill", [
        ("the required teacher outputs", "distill.teacher_outputs=runs/teacher_outputs/<name>"),
        ("ranking distillation only", "distill.ed.gamma=0"),
        ("DLLM2Rec's DROS term and untied embeddings", "distill.dros.enabled=true distill.ed.tie=untied"),
        ("few exported positions", "distill.kd.average_over=all_positions"),
    ]),
    ("pipeline",): (None, [
        ("one minute, to check an install", "--profile smoke"),
        ("DLLM2Rec's student settings", "--profile dllm2rec"),
        ("rerun distillation with another weight", "--from distill distill:distill.kd.weight=0.5"),
        ("another seed for every stage", "efficiency.seed=1"),
        ("three seeds, teacher once; the report gives intervals and the paired comparison", "--seeds 0,1,2"),
    ]),
    ("config", "show"): (None, [
        ("what `train distill` will run with", "distill distill.kd.weight=0.5"),
        ("the student's settings", "student"),
    ]),
    ("bench", "student"): (None, [
        ("batch sizes", "--grid train.batch_size=64,128,256"),
    ]),
    ("lm", "train"): ("lm", [
        ("a longer pretraining run", "train.max_steps=5000"),
        ("fine-tune on dialogue", "lm.phase=finetune lm.init_from=runs/<pretrain run>"),
    ]),
}

OVERRIDES_HELP = ("config overrides as key=value (examples below; `recdistill config show COMMAND` lists every key "
                  "with its meaning)")


def epilog(words: tuple[str, ...]) -> str | None:
    root, examples = EXAMPLES.get(words, (None, []))
    if not examples:
        return None
    command = "recdistill " + " ".join(words)
    lines = ["examples:"]
    for what, rest in examples:
        lines += [f"  # {what}", f"  {command} {rest}"]
    if root:
        lines += ["", f"every key, with its meaning: recdistill config show {root}"]
    return "\n".join(lines)

"""The ``recdistill`` command line.

Commands are declared in one table below; each points at a function ``(args) -> int`` of a recipe
(``recdistill.recipes``), imported only when that command runs (so ``--help`` stays fast). Config overrides
are trailing ``key=value`` words, as on Hydra's command line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass, field

from recdistill.cli_help import OVERRIDES_HELP, epilog
from recdistill.errors import RecdistillError


@dataclass(frozen=True)
class Arg:
    flags: tuple
    kwargs: dict = field(default_factory=dict)


def arg(*flags, **kwargs) -> Arg:
    return Arg(flags, kwargs)


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    target: str  # "module:function"
    help: str
    args: tuple[Arg, ...] = ()
    overrides: bool = True
    defaults: dict = field(default_factory=dict)


SEEDS = arg("--seeds", default=None, metavar="S1,S2,..",
            help="one run per seed (efficiency.seed), then mean, sd and 95 %% interval over them")
CONFIG_FILE = arg("--config", action="append", default=[], metavar="FILE",
                  help="YAML file of config values merged before the overrides (repeatable)")
RESUME = arg("--resume", default=None, metavar="RUN",
             help="continue an interrupted run folder from its last checkpoint (same as train.resume=RUN)")

COMMANDS: tuple[Command, ...] = (
    Command(("data", "prepare"), "recdistill.recipes.prepare:prepare_command",
            "read a dataset, split it leave-one-out by time, write parquet files", (CONFIG_FILE,)),
    Command(("train", "student"), "recdistill.recipes.student:train_command",
            "train the SASRec student and evaluate it on validation and test", (SEEDS, CONFIG_FILE, RESUME)),
    Command(("eval", "student"), "recdistill.recipes.student:evaluate_command",
            "evaluate a student checkpoint on validation and test",
            (arg("checkpoint", help="path to a student .ckpt file"), CONFIG_FILE)),
    Command(("eval", "distill"), "recdistill.recipes.student:evaluate_command",
            "evaluate a distilled-student checkpoint on validation and test",
            (arg("checkpoint", help="path to a .ckpt file from `recdistill train distill`"), CONFIG_FILE),
            defaults={"kind": "distill"}),
    Command(("train", "teacher"), "recdistill.recipes.teacher:train_command",
            "fine-tune the LLM teacher the iLoRA way (or plain LoRA) with the frozen student", (CONFIG_FILE, RESUME)),
    Command(("eval", "teacher"), "recdistill.recipes.teacher:evaluate_command",
            "evaluate a teacher adapter over its 20 candidates",
            (arg("adapter", help="path to a teacher adapter folder"), CONFIG_FILE)),
    Command(("export",), "recdistill.recipes.export:export_command",
            "write the teacher's top-K and item embeddings to files for distillation", (CONFIG_FILE,)),
    Command(("embed-items",), "recdistill.recipes.embed_items:embed_command",
            "embed every item's text (title, year, genres) with the frozen LLM, for new items and the content "
            "baseline", (CONFIG_FILE,)),
    Command(("train", "distill"), "recdistill.recipes.distill:train_command",
            "train a student the DLLM2Rec way from exported teacher outputs", (SEEDS, CONFIG_FILE, RESUME)),
    Command(("pipeline",), "recdistill.pipeline:run",
            "prepare, student, teacher, export, distill, report, skipping stages already done",
            (arg("--from", dest="from_stage", default=None, metavar="STAGE", help="rerun from this stage on"),
             arg("--profile", default="demo", help="demo | smoke | cpu | dllm2rec | full | paper"),
             arg("--seeds", default=None, metavar="S1,S2,..", help="one student and distilled run per seed, "
                 "teacher once (pipeline.teacher_per_seed=true: per seed); the report aggregates over seeds"),
             CONFIG_FILE)),
    Command(("config", "show"), "recdistill.config.show:show",
            "print a command's resolved config with each key's comment",
            (arg("target", metavar="COMMAND", help="prepare | student | teacher | export | distill | pipeline | lm | bench"),
             CONFIG_FILE)),
    Command(("report",), "recdistill.recipes.report:report",
            "render a markdown and HTML report for one run or a comparison of runs",
            (arg("runs", nargs="+", help="run folders"), arg("--out", default=None, help="output folder")), False),
    *(
        Command(("bench", workload), "recdistill.recipes.bench:bench_command",
                f"sweep efficiency knobs for the {workload} workload, one process per trial",
                (arg("--grid", nargs="+", default=[], metavar="KEY=V1,V2", help="values to sweep, e.g. train.batch_size=64,128"),
                 arg("--sweep", default=None, metavar="FILE", help="sweep YAML file instead of --grid"),
                 arg("--out", default=None, help="output folder (default bench_runs/<workload>-<time>)"),
                 arg("--apply-best", default=None, metavar="METRIC",
                     help="write the best setting to a config file that later runs pick up"),
                 CONFIG_FILE),
                defaults={"workload": workload})
        for workload in ("student", "teacher", "distill", "lm")
    ),
    Command(("bench", "report"), "recdistill.recipes.bench:report_command",
            "re-render a sweep's tables and plots", (arg("dir", help="sweep folder"),), False),
    Command(("recommend",), "recdistill.recipes.serve:recommend_command",
            "top-K recommendations from a checkpoint or an exported ONNX model",
            (arg("model", help="a .ckpt from `train student`/`train distill`, or an `export-model` folder/.onnx"),
             arg("--users", default=None, help="user ids, e.g. 1,2,3"),
             arg("--all-users", action="store_true", help="every user of the dataset"),
             arg("--history", nargs="+", default=None, metavar="ITEM", help="item ids or titles, oldest first"),
             arg("--history-file", default=None, help="a file with one item id or title per line, oldest first"),
             arg("-k", type=int, default=10, help="items per user (default 10)"),
             arg("--include-seen", action="store_true", help="do not leave out the items of the history"),
             arg("--out", default=None, help="write all rows to FILE.parquet or FILE.jsonl"),
             arg("--data", default=None, help="prepared dataset folder (default: the one the checkpoint was trained on)"),
             arg("--batch-size", type=int, default=256), arg("--no-progress", action="store_true")), False),
    Command(("export-model",), "recdistill.recipes.serve:export_model_command",
            "write a student or distilled checkpoint as a self-contained ONNX model",
            (arg("checkpoint"), arg("--format", default="onnx", help="onnx (the only one; TorchScript was dropped)"),
             arg("--out", default=None, help="output folder (default: <run>/checkpoints/<kind>-<format>)"),
             arg("--data", default=None, help="prepared dataset folder (default: the one it was trained on)")), False),
    Command(("add-items",), "recdistill.recipes.serve:add_items_command",
            "add new items (title, year, genres) to a distilled model without retraining; writes an ONNX model",
            (arg("model", help="a .ckpt from `train distill` with distill.item_embeddings"),
             arg("items", help="CSV with a title column, and year, genres (|-separated), original_id where known"),
             arg("--out", default=None, help="output folder (default: <run>/checkpoints/distill-onnx-added-items)"),
             arg("--data", default=None, help="prepared dataset folder (default: the one it was trained on)")), False),
    Command(("serve",), "recdistill.recipes.serve:serve_command",
            "serve recommendations over HTTP (FastAPI + uvicorn) from a checkpoint or an exported model",
            (arg("model"), arg("--host", default="127.0.0.1", help="default loopback only"),
             arg("--port", type=int, default=8000), arg("--data", default=None),
             arg("--max-k", type=int, default=100), arg("--max-batch", type=int, default=256),
             arg("--max-body-bytes", type=int, default=2 * 1024 * 1024, help="larger bodies get 413 unread"),
             arg("--max-batch-items", type=int, default=100_000, help="history items per request, all histories"),
             arg("--workers", type=int, default=1, help="worker processes (uvicorn's supervisor; default 1)"),
             arg("--threads", type=int, default=None,
                 help="torch / ONNX Runtime threads per worker (default: cores // workers, at least 1)"),
             arg("--idle-timeout", type=float, default=5.0, metavar="SECONDS",
                 help="close a connection idle this long, or whose request has not fully arrived (default 5)"),
             arg("--access-log", choices=["json"], default=None,
                 help="one JSON line per request on stderr (method, path, status, latency_ms, request_id)"),
             arg("--api-key-file", default=None, help="API keys, one per line (or RECDISTILL_API_KEYS); "
                 "clients send one in X-API-Key"),
             arg("--allow-unauthenticated", action="store_true", help="serve a network address without a key"),
             arg("--ssl-certfile", default=None, help="TLS certificate (PEM), with --ssl-keyfile"),
             arg("--ssl-keyfile", default=None),
             arg("--docs", action="store_true", help="FastAPI's interactive docs at /docs (load from a CDN)")), False),
    Command(("lm", "train"), "recdistill.recipes.lm:train_command",
            "train a small causal LM from scratch (pretrain) or fine-tune it on dialogue", (CONFIG_FILE, RESUME)),
    Command(("lm", "eval"), "recdistill.recipes.lm:evaluate_command",
            "perplexity, size, memory and speed of an LM checkpoint, fp32 and int8",
            (arg("checkpoint"), CONFIG_FILE)),
    Command(("lm", "generate"), "recdistill.recipes.lm:generate_command",
            "sample text from an LM checkpoint",
            (arg("checkpoint"), arg("--prompt", default=""), arg("--max-new-tokens", type=int, default=200),
             arg("--temperature", type=float, default=0.8), arg("--top-k", type=int, default=50),
             arg("--int8", action="store_true"), arg("--seed", type=int, default=0)), False),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recdistill",
        description="LLM-enhanced sequential recommendation: SASRec student, iLoRA teacher, "
        "DLLM2Rec distillation, efficiency sweeps, small LMs.",
    )
    from recdistill import __version__

    parser.add_argument("--version", action="version", version=f"recdistill {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {(): top}
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for command in COMMANDS:
        for depth in range(1, len(command.words)):
            prefix = command.words[:depth]
            if prefix not in groups:
                names = [c.words[depth] for c in COMMANDS if c.words[:depth] == prefix]
                sub = groups[prefix[:-1]].add_parser(
                    prefix[-1], help=" | ".join(names), description=f"recdistill {' '.join(prefix)}"
                )
                parsers[prefix] = sub
                groups[prefix] = sub.add_subparsers(dest=f"sub{depth}", metavar="SUBCOMMAND")
        p = groups[command.words[:-1]].add_parser(command.words[-1], help=command.help, description=command.help,
                                                  epilog=epilog(command.words),
                                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        for a in command.args:
            p.add_argument(*a.flags, **a.kwargs)
        if command.overrides:
            p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
        p.set_defaults(_command=command, **command.defaults)
        parsers[command.words] = p
    parser.set_defaults(_parsers=parsers)
    return parser


def _load(target: str):
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("recdistill"):
            raise RecdistillError(f"this command is not available in this version ({module_name} is missing)") from exc
        raise
    return getattr(module, func_name)


def main(argv: list[str] | None = None) -> int:
    # before torch is first imported (commands import it lazily): OpenMP threads that wait by sleeping, not
    # spinning, so two recdistill processes on a small machine do not steal each other's cores. A policy the
    # user chose is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "_command", None)
    if command is None:
        words = tuple(v for k, v in sorted(vars(args).items()) if (k == "command" or k.startswith("sub")) and v)
        parsers = args._parsers
        (parsers.get(words) or parser).print_help()
        return 0 if not words else 2
    if getattr(args, "resume", None):
        args.overrides = [*args.overrides, f"train.resume={args.resume}"]
    try:
        return int(_load(command.target)(args) or 0)
    except RecdistillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

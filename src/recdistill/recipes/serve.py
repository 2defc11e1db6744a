"""``recdistill recommend``, ``export-model`` and ``serve``: open the model, call the components in
``recdistill.serve``, print. No work happens here.

These commands read no config (their few settings are flags, checked here or by the component they go
to), so they accept no ``efficiency`` knob (see :mod:`recdistill.recipes.knobs`)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from recdistill.errors import RecdistillError
from recdistill.serve.auth import API_KEY_ENV, read_api_keys


def _histories_requested(args, served) -> tuple[list, list]:
    """(labels, histories) for --history / --history-file / --users / --all-users."""
    from recdistill.serve.catalogue import read_history_file

    chosen = [name for name, value in (("--history", args.history), ("--history-file", args.history_file),
                                       ("--users", args.users), ("--all-users", args.all_users)) if value]
    if len(chosen) != 1:
        raise RecdistillError("choose exactly one of --users, --all-users, --history, --history-file"
                              + (f" (got {', '.join(chosen)})" if chosen else ""))
    cat = served.catalogue
    if args.history or args.history_file:
        tokens = args.history if args.history else read_history_file(args.history_file)
        if not tokens:
            raise RecdistillError("the history is empty; give at least one item id or title")
        return ["history"], [cat.item_ids(tokens)]
    if args.all_users:
        users = cat.users()
    else:
        try:
            users = [int(u) for u in args.users.replace(",", " ").split()]
        except ValueError:
            raise RecdistillError(f"--users {args.users!r} is not a list of user ids, e.g. --users 1,2,3") from None
    return users, [cat.history(u) for u in users]


def write_rows(rows: list[dict], out: Path) -> None:
    """Parquet (``.parquet``) or JSON lines (``.jsonl``), written to a temporary name and renamed."""
    from recdistill.engine.rundir import atomic_write_bytes, atomic_write_text
    from recdistill.serve.catalogue import as_frame

    check_out(out)
    frame = as_frame(rows)
    try:
        if out.suffix == ".parquet":
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            atomic_write_bytes(out, buffer.getvalue())
        else:
            atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    except OSError as exc:  # the temporary file is removed; a file already at --out is left as it was
        raise RecdistillError(f"cannot write --out {out}: {exc.strerror or exc}; choose a path you can write to") from None


def check_out(out: Path) -> None:
    """What is wrong with ``--out`` before any work is done: its suffix, a folder in its place, a parent
    that is a file or cannot be written to."""
    import os

    if out.suffix not in (".parquet", ".jsonl", ".json"):
        raise RecdistillError(f"--out {out}: choose a .parquet or a .jsonl file")
    if out.is_dir():
        raise RecdistillError(f"--out {out} is a folder; give a file name, e.g. {out / 'recommendations.parquet'}")
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise RecdistillError(f"--out {out}: {parent} is a file, not a folder; choose another path")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise RecdistillError(f"--out {out}: {parent} is not writable by you; choose another path")


def print_table(rows: list[dict], max_users: int = 5, labels: list | None = None, k: int | None = None) -> None:
    users = list(labels) if labels is not None else list(dict.fromkeys(r["user"] for r in rows))
    for user in users[:max_users]:
        print(f"\nuser {user}")
        mine = [r for r in rows if r["user"] == user]
        if k is not None and len(mine) < k:
            # the history leaves fewer than k items (it covers the catalogue, or k is above it): said, not hidden
            print(f"  only {len(mine)} of the {k} items asked for: every other item is in the history "
                  "(--include-seen keeps them)")
        if mine:
            print(f"  {'rank':>4}  {'item':>6}  {'score':>8}  title")
        for r in mine:
            print(f"  {r['rank']:>4}  {r['item']:>6}  {r['score']:>8.3f}  {r['title']}")
    if len(users) > max_users:
        print(f"\n... and {len(users) - max_users} more users (write them all with --out FILE.parquet)")


def recommend_command(args) -> int:
    from recdistill.serve.recommend import recommend_histories, recommendation_rows
    from recdistill.serve.source import open_model

    out = Path(args.out).expanduser() if args.out else None
    if out is not None:
        check_out(out)
    served = open_model(args.model, args.data)
    labels, histories = _histories_requested(args, served)
    results = recommend_histories(served.scorer, served.max_len, histories, args.k,
                                  exclude_seen=not args.include_seen, batch_size=args.batch_size,
                                  progress=len(histories) > args.batch_size and not args.no_progress)
    rows = recommendation_rows(labels, results, served.catalogue)
    if out is not None:
        write_rows(rows, out)
        print(f"wrote {len(rows)} recommendations for {len(labels)} users to {out}")
    if out is None or len(labels) <= 5:
        print_table(rows, labels=labels, k=args.k)
    return 0


def export_model_command(args) -> int:
    from recdistill.serve.onnx_export import export_model
    from recdistill.serve.source import open_recommender

    rec, catalogue = open_recommender(args.checkpoint, args.data)
    out = Path(args.out) if args.out else Path(args.checkpoint).expanduser().with_suffix("").parent / (
        Path(args.checkpoint).stem.split("-epoch")[0] + f"-{args.format}")
    meta = {"kind": rec.kind, "checkpoint": str(args.checkpoint), "dataset": rec.dataset,
            "dataset_fingerprint": rec.dataset_fingerprint, "model": rec.model_config, "epoch": rec.epoch}
    path = export_model(rec.model, catalogue, out, meta, args.format)
    print(f"exported the {rec.kind} model to {path} (item table and user histories beside it)")
    return 0


def add_items_command(args) -> int:
    """``recdistill add-items MODEL items.csv``: embed the new items' text with the LLM the model's item
    embeddings came from and write an ``export-model`` folder whose catalogue includes them."""
    import time

    from recdistill.data.sources import cache_dir
    from recdistill.teacher.item_embeddings import read_item_embeddings
    from recdistill.serve.add_items import extend_catalogue, extend_model, normalise_like_training, read_new_items
    from recdistill.serve.onnx_export import export_model
    from recdistill.serve.source import open_recommender
    from recdistill.teacher.item_text import embed_texts, item_text
    from recdistill.teacher.llm import LLMSettings, load_llm

    rec, catalogue = open_recommender(args.model, args.data)
    distill = (rec.cfg or {}).get("distill") or {}
    source = distill.get("item_embeddings")
    if rec.kind != "distill" or not source:
        raise RecdistillError(f"{args.model} was not trained with distill.item_embeddings, so there is no record of "
                              "how its items were embedded; train it with `recdistill train distill "
                              "distill.item_embeddings=<file from recdistill embed-items>`")
    items = read_new_items(args.items)
    raw_training, meta = read_item_embeddings(source, rec.num_items)
    if "llm_settings" not in meta:
        raise RecdistillError(f"{source} predates add-items (its .json has no llm_settings); rewrite it with "
                              "`recdistill embed-items` and retrain, or embed with the same LLM by hand")
    start = time.perf_counter()
    llm = load_llm(LLMSettings.from_dict(meta["llm_settings"]), str(cache_dir(None)))
    texts = [item_text(t, y, g, meta["text"]) for t, y, g in zip(items["title"], items["year"], items["genres"])]
    raw_new = embed_texts(llm.model, llm.tokenizer, texts, meta["pooling"], progress=False)
    embed_seconds = time.perf_counter() - start
    rows = normalise_like_training(raw_new, raw_training, str(distill["ed"]["normalize"]))
    model = extend_model(rec.model, rows)
    extended = extend_catalogue(catalogue, items)
    out = Path(args.out) if args.out else Path(args.model).expanduser().parent / "distill-onnx-added-items"
    info = {"kind": rec.kind, "checkpoint": str(args.model), "dataset": rec.dataset,
            "dataset_fingerprint": rec.dataset_fingerprint, "model": {**rec.model_config, "num_items": extended.num_items},
            "epoch": rec.epoch,
            "added_items": {"count": len(items), "first_id": catalogue.num_items + 1, "texts": texts,
                            "embed_seconds": round(embed_seconds, 3), "llm": meta["llm"]}}
    path = export_model(model, extended, out, info, "onnx")
    print(f"added {len(items)} items (ids {catalogue.num_items + 1}..{extended.num_items}) in {embed_seconds:.1f} s "
          f"(LLM load and embedding; {embed_seconds / len(items):.2f} s per item); model written to {path}")
    return 0


LOOPBACK = ("127.0.0.1", "localhost", "::1")
def check_serve_args(args) -> list[str]:
    """Everything `serve` can refuse before it loads a model: numbers out of range, and a network address
    without an API key (unless --allow-unauthenticated). Returns the API keys."""
    if not 1 <= int(args.port) <= 65535:
        raise RecdistillError(f"--port {args.port} is out of range; expected 1..65535")
    for name in ("max_k", "max_batch", "max_body_bytes", "max_batch_items", "workers", "threads"):
        value = getattr(args, name, 1)
        if value is not None and int(value) < 1:
            raise RecdistillError(f"--{name.replace('_', '-')} {value} is not valid; expected an integer >= 1")
    if not 0 < float(getattr(args, "idle_timeout", 5)) <= 3600:
        raise RecdistillError(f"--idle-timeout {args.idle_timeout} is not valid; expected seconds in (0, 3600]")
    keys = read_api_keys(getattr(args, "api_key_file", None))
    if args.host not in LOOPBACK and not keys and not getattr(args, "allow_unauthenticated", False):
        raise RecdistillError(f"--host {args.host} is reachable from the network and no API key is set; give "
                              f"--api-key-file FILE (or {API_KEY_ENV}), or say --allow-unauthenticated")
    return keys


def bind(host: str, port: int):
    """The listening socket, bound now, so "serving" is printed only once the port is ours."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto is IPPROTO_TCP, and the
    # connections accepted here inherit it. With proto 0 every keep-alive answer after the first waited
    # ~40 ms for the client's delayed ACK (uvicorn writes the head and the body separately).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        reason = "is in use" if exc.errno == 98 else f"cannot be bound ({exc.strerror})"
        raise RecdistillError(f"{host}:{port} {reason}; choose another --port or --host") from None
    sock.listen(2048)  # connections queue from now on; uvicorn accepts them once the app has started
    return sock


def serve_command(args) -> int:
    """Check the flags and the model here (so a mistake is one clear line before anything listens), bind
    the port, then serve: in this process with one worker, under uvicorn's supervisor with several."""
    import shutil
    import tempfile

    from recdistill.serve.app_factory import ServeSettings, default_threads
    from recdistill.serve.source import open_model

    keys = check_serve_args(args)
    workers = int(args.workers)
    threads = int(args.threads) if args.threads else default_threads(workers)
    settings = ServeSettings(model=str(Path(args.model).expanduser().absolute()),
                             data=str(Path(args.data).expanduser().absolute()) if args.data else None,
                             threads=threads, max_k=args.max_k, max_batch=args.max_batch,
                             max_body_bytes=args.max_body_bytes, max_batch_items=args.max_batch_items,
                             docs=args.docs, access_log=args.access_log,
                             api_key_file=str(Path(args.api_key_file).expanduser().absolute()) if args.api_key_file else None)
    served = open_model(settings.model, settings.data, threads)
    sock = bind(args.host, args.port)
    where = "loopback only" if args.host in LOOPBACK else "reachable from the network"
    tls = {"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile} if args.ssl_certfile else {}
    scheme = "https" if tls else "http"
    auth = f"{len(keys)} API key(s)" if keys else "no API key"
    print(f"serving {served.kind} model {args.model} ({served.scorer.name}) on {scheme}://{args.host}:{args.port} "
          f"({where}, {auth}, {workers} worker(s) x {threads} thread(s), idle timeout {args.idle_timeout:g} s"
          f"{', JSON access log on stderr' if args.access_log else ''})", flush=True)
    work = Path(tempfile.mkdtemp(prefix="recdistill-serve-"))  # private (0700): settings and metrics files
    try:
        if workers == 1:
            from recdistill.serve.app_factory import app_from_settings

            stopped = _serve_in_process(app_from_settings(settings, served), sock, args, tls)
        else:
            del served  # each worker opens its own copy; the parent only supervises
            stopped = _serve_workers(settings, work, sock, args, tls, workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if stopped is None:
        raise RecdistillError("a worker failed to start (its error is above); nothing is served")
    print(f"stopped{' on ' + stopped if stopped else ''}: open requests drained", flush=True)
    return 0


def _uvicorn_config(app, args, tls: dict, **extra):
    import uvicorn

    from recdistill.serve.timeouts import HEADER_LIMIT_BYTES, DeadlineH11Protocol

    # idle keep-alive connections, and requests that do not arrive complete, are closed after --idle-timeout
    return uvicorn.Config(app, log_level="warning", access_log=False, http=DeadlineH11Protocol,
                          timeout_keep_alive=float(args.idle_timeout), h11_max_incomplete_event_size=HEADER_LIMIT_BYTES,
                          **tls, **extra)


def _serve_in_process(app, sock, args, tls: dict) -> str:
    import signal

    import uvicorn

    # uvicorn handles SIGTERM / SIGINT itself, then restores these handlers and raises the signal again:
    # ours note it, so a stop asked for is a clean exit (0), not a death by signal
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, frame: received.append(number))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.Server(_uvicorn_config(app, args, tls)).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return "/".join(sorted({signal.Signals(n).name for n in received}))


def _serve_workers(settings, work: Path, sock, args, tls: dict, workers: int) -> str | None:
    """uvicorn's own supervisor: it starts the workers on the socket bound here, restarts one that dies,
    and on SIGTERM / SIGINT stops them (each drains its open requests). Returns the signal's name, or None
    when a worker could not start."""
    import os

    from uvicorn.supervisors import Multiprocess

    from recdistill.serve.app_factory import SETTINGS_ENV, write_settings

    class Supervisor(Multiprocess):
        stopped_by = ""

        def handle_int(self):
            self.stopped_by = "SIGINT"
            super().handle_int()

        def handle_term(self):
            self.stopped_by = "SIGTERM"
            super().handle_term()

    # the workers are fresh interpreters that inherit this environment: the settings file's name, and
    # prometheus-client's multiprocess folder (read when it is imported, so set before they start)
    os.environ[SETTINGS_ENV] = str(write_settings(settings, work))
    metrics_dir = work / "metrics"
    metrics_dir.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    config = _uvicorn_config("recdistill.serve.app_factory:create_app", args, tls, factory=True, workers=workers)
    supervisor = Supervisor(config, sockets=[sock])
    supervisor.run()
    return supervisor.stopped_by or None

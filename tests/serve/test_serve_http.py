"""`recdistill serve`: the real FastAPI app under uvicorn on a free loopback port. Good requests answer
what `recommend` answers; every bad request is a 4xx with a clear message and the server keeps serving."""

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import uvicorn

from recdistill.cli import main
from recdistill.serve.http_app import build_app
from recdistill.serve.source import open_model


def _call(base: str, method: str, path: str, body=None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def server(tiny_recommenders, tmp_path_factory):
    """uvicorn in a thread, on a loopback socket bound to a free port, serving the exported distilled model."""
    folder = tmp_path_factory.mktemp("served") / "distill"
    assert main(["export-model", str(tiny_recommenders["distill"]), "--out", str(folder)]) == 0
    app = build_app(open_model(folder), max_k=20, max_batch=8)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not instance.started and time.time() < deadline:
        time.sleep(0.05)
    assert instance.started
    yield {"base": f"http://127.0.0.1:{sock.getsockname()[1]}", "folder": folder}
    instance.should_exit = True
    thread.join(10)


def test_good_requests_match_recommend(server, tiny_recommenders, tmp_path):
    base = server["base"]
    status, health = _call(base, "GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["items"] == 40 and health["backend"] == "onnxruntime"
    assert _call(base, "GET", "/items/7") == (200, {"item": 7, "original_id": "7", "title": "Movie 7"})

    out = tmp_path / "cli.jsonl"
    assert main(["recommend", str(tiny_recommenders["distill"]), "--users", "3", "-k", "5", "--out", str(out)]) == 0
    cli = [json.loads(line) for line in out.read_text().splitlines()]
    status, answer = _call(base, "POST", "/recommend", {"user": 3, "k": 5})
    assert status == 200 and [i["item"] for i in answer["items"]] == [r["item"] for r in cli]
    assert [i["score"] for i in answer["items"]] == pytest.approx([r["score"] for r in cli], abs=1e-4)

    out2 = tmp_path / "cli2.jsonl"
    assert main(["recommend", str(tiny_recommenders["distill"]), "--history", "Movie 3", "4", "-k", "3",
                 "--out", str(out2)]) == 0
    cli2 = [json.loads(line)["item"] for line in out2.read_text().splitlines()]
    status, answer = _call(base, "POST", "/recommend", {"history": ["Movie 3", 4], "k": 3})
    assert status == 200 and [i["item"] for i in answer["items"]] == cli2 and "note" not in answer

    status, batch = _call(base, "POST", "/recommend/batch", {"requests": [{"user": 3, "k": 5}, {"history": ["movie 3", 4], "k": 3}]})
    assert status == 200 and [[i["item"] for i in r["items"]] for r in batch["results"]] == [[r["item"] for r in cli], cli2]

    status, answer = _call(base, "POST", "/recommend", {"history": list(range(1, 13)), "k": 3})  # max_len is 8
    assert status == 200 and "history cut" in answer["note"] and "4 older ones ignored" in answer["note"]
    assert not {i["item"] for i in answer["items"]} & set(range(1, 13))
    status, answer = _call(base, "POST", "/recommend", {"history": [5], "k": 40 // 2, "exclude_seen": False})
    assert status == 200 and 5 in [i["item"] for i in answer["items"]]


@pytest.mark.parametrize("method, path, body, raw, status, message", [
    ("POST", "/recommend", {"history": [999]}, None, 422, "unknown item id 999"),
    ("POST", "/recommend", {"history": ["No Such Film"]}, None, 422, "unknown item 'No Such Film'"),
    ("POST", "/recommend", {"history": []}, None, 422, "history is empty"),
    ("POST", "/recommend", {"history": [1], "k": 0}, None, 422, "k=0 is out of range; expected 1..20"),
    ("POST", "/recommend", {"history": [1], "k": 21}, None, 422, "k=21 is out of range"),
    ("POST", "/recommend", {"history": [1], "k": "5"}, None, 422, "k: Input should be a valid integer"),
    ("POST", "/recommend", {"history": [1.5]}, None, 422, "history[0]: expected an item id (integer) or a title"),
    ("POST", "/recommend", {"history": ["x" * 501]}, None, 422, "history[0]: expected an item id"),
    ("POST", "/recommend", None, b"", 400, "the body is empty"),
    ("POST", "/recommend", None, b"\xff\xfe", 400, "malformed"),
    ("GET", "/nope", None, None, 404, "no endpoint /nope"),
    ("GET", "/recommend", None, None, 405, "Method Not Allowed"),
    ("POST", "/recommend", {"history": "Movie 3"}, None, 422, "history: Input should be a valid list"),
    ("POST", "/recommend", {"user": 99}, None, 404, "unknown user 99"),
    ("POST", "/recommend", {"user": True}, None, 422, "user: Input should be a valid integer"),
    ("POST", "/recommend", {"user": 1, "history": [2]}, None, 422, "not both or neither"),
    ("POST", "/recommend", {}, None, 422, "not both or neither"),
    ("POST", "/recommend", {"history": [1], "kk": 3}, None, 422, "kk: Extra inputs are not permitted"),
    ("POST", "/recommend", None, b'{"history": [1,', 400, "malformed JSON"),
    ("POST", "/recommend", None, b"[1, 2]", 422, "Input should be a valid dictionary"),
    ("POST", "/recommend/batch", {"requests": []}, None, 422, "requests has 0 entries; expected 1..8"),
    ("POST", "/recommend/batch", {"requests": [{"user": 1}] * 9}, None, 422, "requests has 9 entries"),
    ("POST", "/recommend/batch", {"requests": [{"user": 1}, {"history": [0]}]}, None, 422, "unknown item id 0"),
    ("GET", "/items/41", None, None, 404, "unknown item id 41"),
    ("GET", "/items/abc", None, None, 422, "item_id: Input should be a valid integer"),
])
def test_bad_requests_are_clear_4xx_and_the_server_keeps_serving(server, method, path, body, raw, status, message):
    got_status, got = _call(server["base"], method, path, body, raw)
    assert got_status == status and message in got["error"], got
    assert _call(server["base"], "POST", "/recommend", {"user": 1, "k": 2})[0] == 200


def test_cli_serves_a_checkpoint_on_loopback(tiny_recommenders):
    """`recdistill serve CKPT` as a user starts it: a subprocess on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "recdistill", "serve", str(tiny_recommenders["student"]),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.time() + 120
        while time.time() < deadline:
            try:
                status, health = _call(base, "GET", "/health")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.2)
        assert status == 200 and health["backend"] == "torch" and health["kind"] == "student"
        status, answer = _call(base, "POST", "/recommend", {"history": [1, 2, 3], "k": 4})
        assert status == 200 and len(answer["items"]) == 4
    finally:
        proc.terminate()
        proc.wait(10)
    assert "loopback only" in proc.stdout.read()

"""The report of real training runs, opened in a real headless Chromium: the page renders (a screenshot
that is not blank) and every image on it loads (naturalWidth > 0). Skipped, saying why, where Chromium is
not installed (`apt-get install -y chromium`; .ci/run installs it)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import matplotlib.image
import pytest

from recdistill.cli import main
from recdistill.report import render_report

BROWSER = next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (apt-get install -y chromium); "
                                                        "the report's HTML is not checked in a browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

# appended to a copy of the page: once everything has loaded, list every image and its decoded size
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const found = Array.from(document.images).map(i => ({src: i.getAttribute("src"), width: i.naturalWidth}));
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>"""


def browser(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def test_report_of_real_runs_renders_in_chromium(tiny_prepared, tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):  # two seeds of one kind: the page has the headline with an interval and "Over seeds"
        assert main(["train", "student", f"prepared={tiny_prepared}", f"paths.runs_dir={runs}", "student.hidden_size=16",
                     "student.num_blocks=1", "student.max_len=10", "train.batch_size=8", "train.max_epochs=1",
                     "run.progress_bar=false", "eval.sampled_negatives=10", f"efficiency.seed={seed}"]) == 0
    folders = sorted(p for p in runs.iterdir() if p.is_dir())
    files = render_report(folders, tmp_path / "report")
    page = files.html.read_text(encoding="utf-8")
    assert "## Over seeds" not in page and "<h2>Over seeds</h2>" in page
    expected = sorted(re.findall(r'<img alt="[^"]*" src="([^"]+)"', page))
    assert "headline-ndcg10.png" in expected and "cost-per-stage.png" in expected

    check = files.html.with_name("check.html")
    check.write_text(page.replace("</body>", IMAGE_CHECK + "\n</body>"), encoding="utf-8")
    dom = browser(tmp_path, "--virtual-time-budget=10000", "--dump-dom", check.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the page script did not run: {dom.stdout[-500:]}"
    images = json.loads(html.unescape(found.group(1)))
    assert sorted(i["src"] for i in images) == expected
    assert all(i["width"] > 0 for i in images), [i for i in images if i["width"] == 0]  # every image decoded

    shot = tmp_path / "page.png"
    done = browser(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", files.html.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert pixels[..., :3].std() > 0.05  # text, tables and figures, not a blank page

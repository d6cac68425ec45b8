"""The asv dashboard, opened in headless Chromium: `asv publish` of the committed results
(results/asv), made self-contained by convbench.asv_support.publish, served over http on
127.0.0.1 (asv's pages fetch JSON, which file:// forbids). Checks that the benchmark list
and a graph render. Skipped with the reason where Chromium, asv or npm is missing.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from convbench import asv_support

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "asv"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=15000", "--window-size=1400,1000"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium here (Debian: apt-get install -y chromium; .ci/run installs it)")


def result_files() -> list[Path]:
    return [p for p in RESULTS.glob("*/*.json") if p.name != "machine.json"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("asv")
    browser = chromium()
    assert result_files(), "results/asv holds no asv results: run asv over the history (results/README.md)"
    html = tmp_path_factory.mktemp("dashboard") / "html"
    code = asv_support.publish(html)
    if code == 2:
        pytest.skip("asv's JavaScript libraries could not be fetched from the npm registry "
                    "(npm missing or offline): the page would load them from CDNs")
    assert code == 0, "asv publish failed"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    profile = tmp_path_factory.mktemp("chromium-profile")

    def dump(page: str) -> str:
        url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
        done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "HOME": str(profile)})
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    yield html, dump
    server.shutdown()


def test_benchmark_list_renders(site):
    html, dump = site
    names = set(json.loads((html / "index.json").read_text())["benchmarks"])
    assert "correlate.Correlate.time_correlate" in names
    dom = dump("index.html")
    assert "failed to load" not in dom, "asv's error page: a JavaScript library did not load"
    assert dom.count('class="benchmark-plot"') == len(names)
    missing = [n for n in names if n not in dom]
    assert not missing, f"benchmarks not listed on the page: {missing}"


def test_graph_renders(site):
    html, dump = site
    dom = dump("index.html#correlate.Correlate.time_correlate")
    assert '<canvas class="flot-base"' in dom, "no plot canvas on the graph page"
    # the legend names the candidates, and each commit with a result is a point
    assert "candidate-ndimage_scipy" in dom
    graphs = list((html / "graphs").rglob("correlate.Correlate.time_correlate*.json"))
    points = [json.loads(p.read_text()) for p in graphs]
    assert any(len(p) >= 2 for p in points), "the graph has fewer than two commits"

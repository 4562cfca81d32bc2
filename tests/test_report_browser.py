"""report.html in a real headless Chromium, driven over the DevTools protocol: it renders, every chart is on the
page, the console stays clean, nothing is fetched from anywhere, and a screenshot lands in test-artifacts/.

Needs Debian's chromium (`apt-get install -y chromium`) and the websocket-client package. Without them the test
fails, saying how to install them: a report nobody looked at in a browser is not tested.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.reporting.report import write_report
from harness.reporting.verdict import verdict
from harness.results.schema import parse_results
from tests.test_report import make_results, write_run

pytestmark = pytest.mark.heavy  # Chromium: not in `make check`

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]
INSTALL_HINT = "install it as root: apt-get update && apt-get install -y chromium"


def _chromium() -> str:
    """$CHROMIUM when set, else Debian's chromium on PATH."""
    configured = os.environ.get("CHROMIUM")
    for candidate in [configured] if configured else [shutil.which("chromium"), "/usr/bin/chromium"]:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    where = f"$CHROMIUM={configured} is not an executable" if configured else "no `chromium` on PATH"
    pytest.fail(f"headless Chromium is not installed ({where}): {INSTALL_HINT}", pytrace=False)


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket: commands and collected events."""

    def __init__(self, ws_url: str) -> None:
        try:
            import websocket
        except ImportError:
            pytest.fail(
                "the websocket-client package is missing: .venv/bin/pip install websocket-client", pytrace=False
            )
        # no Origin header: Chromium refuses DevTools websockets from origins it was not told to allow
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise AssertionError(f"{method} failed: {msg['error']}")
                return dict(msg.get("result", {}))
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        for ev in self.events:
            if ev["method"] == method:
                return ev
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg
        raise AssertionError(f"no {method} within {timeout_s} s")

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise AssertionError(f"evaluating {expression!r} threw: {res['exceptionDetails']}")
        return res["result"].get("value")

    def drain(self, quiet_s: float = 0.5) -> None:
        """Collect events until the page has been quiet for `quiet_s`."""
        self.ws.settimeout(quiet_s)
        try:
            while True:
                msg = json.loads(self.ws.recv())
                if "method" in msg:
                    self.events.append(msg)
        except Exception as e:  # websocket-client raises its own timeout class
            if "timed out" not in str(e).lower() and type(e).__name__ != "WebSocketTimeoutException":
                raise
        finally:
            self.ws.settimeout(30)

    def errors(self) -> list[str]:
        out = []
        for ev in self.events:
            p = ev.get("params", {})
            if ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif ev["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
            elif ev["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                out.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
        return out

    def close(self) -> None:
        self.ws.close()


@contextlib.contextmanager
def chromium_page(exe: str, tmp_path: Path) -> Iterator[DevTools]:
    """A fresh headless Chromium (own profile, DevTools on a free loopback port) and its first page."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = (tmp_path / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if proc.poll() is not None:
                log.flush()
                pytest.fail(
                    f"chromium exited with {proc.returncode}: {(tmp_path / 'chromium.log').read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("chromium did not open its DevTools port within 60 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        dt = DevTools(page["webSocketDebuggerUrl"])
        try:
            yield dt
            with contextlib.suppress(Exception):  # the browser may close the socket before it answers
                dt.call("Browser.close")
        finally:
            dt.close()
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    exe = _chromium()  # fails, not skips, when Chromium is missing
    run_dir = write_run(tmp_path / "results", make_results())
    _, html_path = write_report(run_dir)
    charts_written = len(list(run_dir.glob("report-*.png")))
    assert charts_written == 3

    with chromium_page(exe, tmp_path) as dt:
        _check_page(dt, html_path, charts_written)


def _check_page(dt: DevTools, html_path: Path, charts_written: int) -> None:
    dt.call("Runtime.enable")
    dt.call("Log.enable")
    dt.call("Page.enable")
    dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    dt.call("Page.navigate", url=html_path.resolve().as_uri())
    dt.wait_for("Page.loadEventFired")
    dt.drain()

    assert dt.evaluate("document.title") == "Benchmark report: 20261126-233000-fraud"
    assert dt.evaluate("document.querySelector('h1').textContent") == "Benchmark report: 20261126-233000-fraud"
    assert dt.evaluate("document.querySelector('h2').textContent") == "Scenario fraud"
    rec = dt.evaluate("document.querySelector('.recommendation').innerText")
    assert "codegen-c and onnx share tier 2" in rec and "Choose within it by latency" in rec

    # every chart is on the page, once, and laid out with a real size
    assert dt.evaluate("document.querySelectorAll('svg').length") == charts_written
    assert dt.evaluate("document.querySelectorAll('figure.chart svg').length") == charts_written
    sizes = dt.evaluate(
        "[...document.querySelectorAll('figure.chart svg')].map(s => {"
        "const r = s.getBoundingClientRect(); return [r.width, r.height, s.querySelectorAll('path').length]; })"
    )
    assert len(sizes) == charts_written
    for width, height, paths in sizes:
        assert width > 300 and height > 100 and paths > 20, sizes
    # the tier table rendered in tier order
    first_cells = dt.evaluate(
        "[...document.querySelectorAll('section.scenario table')[0].querySelectorAll('tbody tr')]"
        ".map(tr => tr.cells[1].textContent)"
    )
    v = verdict(parse_results(make_results()).scenarios[0])
    assert first_cells == [a.adapter for tier in v.tiers for a in tier]  # tier by tier, cheapest first
    assert first_cells[-1] == "pmml"

    # offline: the page fetched nothing (no image, script, style or font from anywhere)
    assert dt.evaluate("performance.getEntriesByType('resource').length") == 0
    assert dt.errors() == []

    full_height = int(dt.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
    clip = {"x": 0, "y": 0, "width": 1280, "height": full_height, "scale": 1}
    shot = dt.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)
    data = base64.b64decode(shot["data"])
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / "report.png"
    out.write_bytes(data)
    assert out.stat().st_size > 50_000
    width, height = _png_size(out.read_bytes())
    assert (width, height) == (1280, full_height)
    assert dt.errors() == []

"""What the adapter micro-benchmarks share: scenario bundles, the `harness serve` child behind `rest`, and a
pool that keeps one checked adapter open at a time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adapters.base import Adapter
from adapters.bundle import Bundle
from adapters.registry import adapter_class
from harness.bench.procs import wait_http_ok

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SCENARIOS = ("fraud", "maintenance", "cross_sell")
ADAPTERS = ("native", "onnx", "codegen-c", "h2o-mojo", "pmml", "pfa", "rest")
BATCHES = (1, 64, 1024)
CHECK_ROWS = max(BATCHES)  # the rows every benchmark draws from, all checked against the reference
ATOL = 1e-5
REST_SERVES = "onnx"
SERVER_START_S = 90.0


def bench_seconds() -> float:
    return float(os.environ.get("BENCH_SECONDS", "1.0"))


def table_path() -> Path:
    p = Path(os.environ.get("BENCH_TABLE", "results/bench-table.json"))
    return p if p.is_absolute() else ROOT / p


# ------------------------------------------------------------------------------------------ bundles


def scenario_formats(name: str) -> list[str]:
    from harness.scenario import load_scenario

    return list(load_scenario(ROOT / "scenarios" / f"{name}.yaml").formats)


def runs_on(adapter: str, formats: list[str]) -> bool:
    """native and rest (hosting onnx) run on every bundle; the others need their format in the bundle."""
    if adapter == "native":
        return True
    if adapter == "rest":
        return REST_SERVES in formats
    return adapter in formats


def float32_flip_rows(bundle: Bundle, X: np.ndarray) -> np.ndarray:
    """Rows a float32 ONNX tree ensemble may legitimately score differently (a value and a threshold that
    round across each other in float32): the same rows the build's parity gate leaves out for onnx."""
    info = bundle.format_info("onnx")
    if info.get("input_dtype", "float32") == "float64":
        return np.zeros(X.shape[0], dtype=bool)
    from harness.modelbuild import ir as ir_mod
    from harness.modelbuild.export_onnx import float32_flip_rows as flips

    ir = ir_mod.from_dict(json.loads(bundle.verified_path("ir").read_text()))
    return flips(ir, X)


# ------------------------------------------------------------------------------------------ rest server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m harness.cli serve --bundle B --adapter onnx --port P` on loopback, ready when returned."""

    def __init__(self, bundle_dir: Path, adapter: str, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"serve-{bundle_dir.parent.name}-{adapter}-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        argv = [sys.executable, "-m", "harness.cli", "serve", "--bundle", str(bundle_dir)]
        argv += ["--adapter", adapter, "--port", str(self.port)]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        alive = lambda: self.proc.poll() is None  # noqa: E731
        wait_http_ok(f"{self.url}/v2/health/ready", alive, SERVER_START_S, "harness serve", self.tail)

    def tail(self) -> str:
        self._log.flush()
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "no output"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ------------------------------------------------------------------------------------------ adapter pool


@dataclass
class Loaded:
    """One open adapter, checked against the reference on its first CHECK_ROWS rows."""

    scenario: str
    name: str
    adapter: Adapter
    bundle: Bundle
    X: np.ndarray  # (CHECK_ROWS, n_features) reference rows
    p: np.ndarray  # their reference (native) predictions
    skip: np.ndarray  # rows left out of the comparison (float32 threshold flips for onnx)
    check_call_s: float  # wall time of the CHECK_ROWS-row check call: a first estimate of the batch cost
    server: Server | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self, X: np.ndarray, rows: slice, what: str) -> None:
        """Predictions of X (= self.X[rows]) equal the reference within ATOL, else the benchmark stops."""
        got = self.adapter.predict(X)
        want = self.p[rows]
        diff = np.where(self.skip[rows], 0.0, np.abs(got - want))
        bad = ~(diff <= ATOL)  # also catches NaN
        if bad.any():
            i = int(np.argmax(bad))
            row = (rows.start or 0) + i
            raise AssertionError(
                f"{self.scenario}/{self.name} {what}: reference row {row}: got {got[i]!r}, reference {want[i]!r} "
                f"(|diff| {abs(got[i] - want[i]):.3g} > {ATOL:g}); {int(bad.sum())} rows differ"
            )

    def close(self) -> None:
        try:
            self.adapter.close()
        finally:
            if self.server is not None:
                self.server.stop()


class Pool:
    """Builds each scenario once, keeps one adapter open at a time."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.bundles: dict[str, Path] = {}
        self.current: Loaded | None = None

    def bundle_dir(self, scenario: str) -> Path:
        if scenario not in self.bundles:
            from harness.modelbuild.pipeline import build
            from harness.scenario import load_scenario

            res = build(load_scenario(ROOT / "scenarios" / f"{scenario}.yaml"), artifacts=ARTIFACTS)
            self.bundles[scenario] = res.bundle_dir
        return self.bundles[scenario]

    def get(self, scenario: str, name: str) -> Loaded:
        cur = self.current
        if cur is not None and (cur.scenario, cur.name) == (scenario, name):
            return cur
        self.close()
        self.current = self._open(scenario, name)
        return self.current

    def _open(self, scenario: str, name: str) -> Loaded:
        root = self.bundle_dir(scenario)
        bundle = Bundle.open(root)
        X_all, _, p_all = bundle.reference()
        if X_all.shape[0] < CHECK_ROWS:
            raise RuntimeError(f"bundle {root} has {X_all.shape[0]} reference rows, the benchmark needs {CHECK_ROWS}")
        X = np.ascontiguousarray(X_all[:CHECK_ROWS])
        p = p_all[:CHECK_ROWS]
        server = None
        if name == "rest":
            server = Server(root, REST_SERVES, self.log_dir)
            options: dict[str, Any] = {"url": server.url}
        else:
            options = {}
        try:
            adapter = adapter_class(name).load(bundle, **options)
        except BaseException:
            if server is not None:
                server.stop()
            raise
        uses_onnx = name in ("onnx", "rest")
        skip = float32_flip_rows(bundle, X) if uses_onnx else np.zeros(CHECK_ROWS, dtype=bool)
        loaded = Loaded(scenario, name, adapter, bundle, X, p, skip, 0.0, server)
        loaded.extra = {"model_id": bundle.model_id, "rows_not_compared": int(skip.sum())}
        if server is not None:
            loaded.extra["server"] = f"harness serve --adapter {REST_SERVES} on loopback"
        try:
            t0 = time.perf_counter()
            loaded.check(X, slice(0, CHECK_ROWS), f"{CHECK_ROWS}-row check")
            loaded.check_call_s = time.perf_counter() - t0
        except BaseException:
            loaded.close()
            raise
        return loaded

    def close(self) -> None:
        cur, self.current = self.current, None
        if cur is not None:
            cur.close()

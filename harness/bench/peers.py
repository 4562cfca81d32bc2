"""Peers: what a user would deploy instead, measured on the same broker, by the same generator and measurer.

`mlserver-kafka` is Seldon MLServer 1.7.1 in its Kafka mode, serving the bundle's LightGBM model with
MLServer's own LightGBM runtime. It is installed by the harness, on first use, into a virtual environment of
its own (`$HARNESS_CACHE_DIR/peers/mlserver-1.7.1`, pins in peer_requirements/), so its pins never touch the
project's. Its wire protocol is MLServer's, not ours: the load generator writes one Open Inference Protocol
(V2) request per record (the record key is our record id, which MLServer uses as the request id; the
`mlserver-model` header names the model) and the measurer reads V2 responses, taking the intended send time
from the schedule (MLServer does not carry our headers through). Queueing/scoring splits are therefore not
available for it; end-to-end latency, throughput, CPU and accuracy are.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from harness.bench.errors import RunError
from harness.bench.procs import Child
from harness.kafka.broker import free_port

MLSERVER_VERSION = "1.7.1"
REQUIREMENTS = Path(__file__).parent / "peer_requirements" / f"mlserver-{MLSERVER_VERSION}.txt"
MODEL_NAME = "model"
MODEL_HEADER = ("mlserver-model", MODEL_NAME.encode())


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "kafka-model-harness"))


def mlserver_env(log: Any = None, timeout_s: float = 900.0) -> Path:
    """The peer's virtual environment (installed once; reinstalled when the pins change). Returns its bin/."""
    root = cache_dir() / "peers" / f"mlserver-{MLSERVER_VERSION}"
    key = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = root / ".installed"
    if stamp.is_file() and stamp.read_text().strip() == key:
        return root / "venv" / "bin"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time
        if stamp.is_file() and stamp.read_text().strip() == key:
            return root / "venv" / "bin"
        if log:
            log(f"installing MLServer {MLSERVER_VERSION} into {root} (first use; its own virtual environment)")
        shutil.rmtree(root / "venv", ignore_errors=True)
        steps = [
            [sys.executable, "-m", "venv", str(root / "venv")],
            [str(root / "venv" / "bin" / "pip"), "install", "-q", "--no-deps", "-r", str(REQUIREMENTS)],
        ]
        for argv in steps:
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise RunError(f"installing MLServer did not finish within {timeout_s:.0f} s") from None
            if proc.returncode != 0:
                last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise RunError(f"could not install MLServer {MLSERVER_VERSION}: {last[0]}")
        stamp.write_text(key + "\n")
    return root / "venv" / "bin"


class MlserverKafka:
    """MLServer in Kafka mode on the session's topics: reads V2 requests from the input topic, writes V2
    responses to the output topic; also serves V2 over REST (the in-process micro-benchmark uses it)."""

    def __init__(self, bundle_dir: Path, native_file: str, bootstrap: str, input_topic: str, output_topic: str):
        self.name = f"MLServer {MLSERVER_VERSION} (Kafka)"
        self.bundle_dir = bundle_dir
        self.native_file = native_file
        self.bootstrap = bootstrap
        self.input_topic = input_topic
        self.output_topic = output_topic
        self.http_port = free_port()
        self.child: Child | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _write_settings(self, folder: Path) -> None:
        model = folder / MODEL_NAME
        model.mkdir(parents=True)
        shutil.copyfile(self.bundle_dir / self.native_file, model / "model.txt")
        (model / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": MODEL_NAME,
                    "implementation": "mlserver_lightgbm.LightGBMModel",
                    "parameters": {"uri": "./model.txt", "version": "v1"},
                }
            )
        )
        (folder / "settings.json").write_text(
            json.dumps(
                {
                    "debug": False,
                    "kafka_enabled": True,
                    "kafka_servers": self.bootstrap,
                    "kafka_topic_input": self.input_topic,
                    "kafka_topic_output": self.output_topic,
                    "http_port": self.http_port,
                    "grpc_port": free_port(),
                    "metrics_port": free_port(),
                }
            )
        )

    def start(self) -> None:
        bin_dir = mlserver_env()
        self._dir = Path(tempfile.mkdtemp(prefix="harness-mlserver-"))
        self._write_settings(self._dir)
        env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(bin_dir.parent)}
        argv = [str(bin_dir / "mlserver"), "start", str(self._dir)]
        try:
            ready = f"{self.url}/v2/models/{MODEL_NAME}/ready"
            child = self.child = Child.serving(self.name, argv, ready, 120.0, env=env)
            deadline = time.monotonic() + 60
            while not any("Reading messages from consumer" in ln for ln in list(child.lines)):
                if time.monotonic() > deadline or not child.alive():
                    raise RunError(f"{self.name} did not start consuming: {child.tail()}")
                time.sleep(0.1)
            time.sleep(1.0)  # its consumer (no group: all partitions, from the end) fetches its first positions
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _tree(self) -> list[psutil.Process]:
        if self.child is None:
            return []
        try:
            root = psutil.Process(self.child.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def pids(self) -> list[int]:
        return [p.pid for p in self._tree()]

    def cpu_seconds(self) -> float:
        """MLServer's main process and its inference workers."""
        total = 0.0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total if self.child is not None else float("nan")

    def peak_rss_mib(self) -> float:
        from harness.bench.procs import peak_rss_mib

        return sum(peak_rss_mib(p.pid) for p in self._tree()) if self.child is not None else float("nan")

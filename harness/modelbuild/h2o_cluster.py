"""A local H2O cluster for training (harness/modelbuild/train_h2o.py).

Cluster. `train()` needs an H2O cluster: it uses the one an enclosing `with h2o_cluster():` started,
or starts one for its own call and shuts it down before returning. A build that trains several H2O
models wraps them in one `with h2o_cluster():` to pay H2O's start-up (~6 s) once. The cluster is a new
local H2O (its own JVM, the h2o package's h2o.jar) started with `H2OLocalServer.start` and connected
with `h2o.connect` -- what `h2o.init` does, minus `h2o.init`'s "attach to whatever already listens on
port 54321", which could adopt (and later shut down) somebody else's cluster. On exit:
`h2o.cluster().shutdown()`, then wait for the process to end (SIGTERM after 15 s, SIGKILL after
30 s) and remove its temp files. The training frame is removed after training; the H2O model stays
in the cluster (`trained.h2o_estimator`, for in-cluster predictions or coefficients) until the
cluster shuts down. Note: an H2OFrame upload goes through CSV, H2O's number parser and its column
compression, which move ~9% of random doubles by one ulp (measured); H2O trains on those values.
The native predictions are genmodel's on the exact doubles, so the cluster's own `predict` can
differ from them on rows that sit on a split value (tests/test_h2o.py shows genmodel reproduces the
cluster exactly on the values the cluster holds).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Any

# ---------------------------------------------------------------------------------------------------
# The H2O cluster
# ---------------------------------------------------------------------------------------------------

_cluster_lock = threading.Lock()
_active: H2OCluster | None = None


class H2OCluster:
    """A local H2O cluster of one node (its own JVM), started on enter and shut down on exit."""

    def __init__(self, max_mem_mb: int = 1024, nthreads: int = 2, base_port: int = 54321) -> None:
        self.max_mem_mb = max_mem_mb
        self.nthreads = nthreads
        self.base_port = base_port
        self._server: Any = None

    def start(self) -> None:
        import h2o
        from h2o.backend import H2OLocalServer

        self._server = H2OLocalServer.start(
            nthreads=self.nthreads,
            max_mem_size=self.max_mem_mb << 20,
            enable_assertions=False,
            port=f"{self.base_port}+",
            name=f"harness-{uuid.uuid4().hex[:12]}",
            verbose=False,
        )
        try:
            # h2o.connect prints a "your H2O is N months old" notice to stdout: not ours to show.
            with contextlib.redirect_stdout(io.StringIO()):
                h2o.connect(server=self._server, verbose=False)
            h2o.no_progress()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """`h2o.cluster().shutdown()`, wait for the JVM to exit (else terminate, kill), remove its temp files."""
        import h2o

        server, self._server = self._server, None
        if server is None:
            return
        with contextlib.suppress(Exception):
            h2o.cluster().shutdown()
        proc = getattr(server, "_process", None)
        if proc is not None:
            for step in (None, proc.terminate, proc.kill):  # shut down by REST, else SIGTERM, else SIGKILL
                if step is not None:
                    step()
                try:
                    proc.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    continue
            server._process = None
        tmp = getattr(server, "_tempdir", None)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._server is not None and bool(self._server.is_running())

    def __enter__(self) -> H2OCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def h2o_cluster(max_mem_mb: int = 1024, nthreads: int = 2) -> Iterator[H2OCluster]:
    """Use the active cluster, or start one for the duration of the block (then shut it down)."""
    global _active
    with _cluster_lock:
        outer = _active
    if outer is not None and outer.running:
        yield outer
        return
    cluster = H2OCluster(max_mem_mb=max_mem_mb, nthreads=nthreads)
    with cluster:
        with _cluster_lock:
            _active = cluster
        try:
            yield cluster
        finally:
            with _cluster_lock:
                _active = None

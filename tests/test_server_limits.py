"""`harness serve` under load and faults, on a real uvicorn server on loopback: predict off the event loop
(health answers while a large batch is scored), a cap on rows per request, bounded concurrency, and 5xx
bodies that say what failed without the exception's internals."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from adapters.errors import EngineUnavailable
from adapters.identity import IdentityAdapter
from harness.scoring.server import create_app
from tests.test_rest import N_FEATURES, ThreadServer, assert_v2_error, bundle  # noqa: F401 (bundle: a fixture)


class SlowAdapter(IdentityAdapter):
    """Sleeps `delay_s` per batch (the GIL released, as a native engine would), then gives the identity's scores;
    `started` is set on entry."""

    name = "slow"
    delay_s = 2.0

    def _open(self) -> None:
        self.started = threading.Event()

    def _predict(self, X: np.ndarray) -> np.ndarray:
        self.started.set()
        time.sleep(self.delay_s)
        return super()._predict(X)


class LeakyAdapter(IdentityAdapter):
    """Fails like a library does: an exception whose text holds internals, or the engine gone; the identity's
    scores otherwise."""

    name = "leaky"

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if X[0, 0] == 1.0:
            raise ValueError("cannot open /srv/models/secret-key.pem: permission denied")
        if X[0, 0] == 2.0:
            raise EngineUnavailable("the JVM is not running")
        return super()._predict(X)


def infer_body(n_rows: int, first: float = 0.5) -> bytes:
    data = np.full((n_rows, N_FEATURES), 0.5)
    data[:, 0] = first
    return orjson.dumps(
        {"inputs": [{"name": "input", "shape": [n_rows, N_FEATURES], "datatype": "FP64", "data": data.reshape(-1)}]},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def post(url: str, body: bytes, timeout: float = 30) -> httpx.Response:
    return httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=timeout)


def test_health_answers_while_a_large_request_is_scored(bundle: Path) -> None:  # noqa: F811
    slow = SlowAdapter.load(bundle)
    assert isinstance(slow, SlowAdapter)
    big = infer_body(50_000)  # ~3 MB of JSON, parsed off the event loop too
    with ThreadServer(create_app(slow, "m")) as srv:
        answer: list[httpx.Response] = []
        t = threading.Thread(target=lambda: answer.append(post(f"{srv.url}/v2/models/m/infer", big)))
        t.start()
        assert slow.started.wait(20), "the large request never reached predict"
        times = []
        with httpx.Client(base_url=srv.url) as c:
            for _ in range(7):
                t0 = time.perf_counter()
                assert c.get("/v2/health/ready").json() == {"ready": True}
                times.append(time.perf_counter() - t0)
        assert t.is_alive(), "the large request finished before the health checks: nothing was overlapped"
        t.join(30)
    assert answer and answer[0].status_code == 200 and answer[0].json()["outputs"][0]["shape"] == [50_000]
    assert statistics.median(times) < 0.1, times  # the event loop is free: milliseconds, not the 2 s of predict
    assert max(times) < 1.0, times


def test_rows_per_request_are_capped(bundle: Path) -> None:  # noqa: F811
    adapter = LeakyAdapter.load(bundle)
    with ThreadServer(create_app(adapter, "m", max_rows=100)) as srv:
        url = f"{srv.url}/v2/models/m/infer"
        assert_v2_error(post(url, infer_body(101)), 413, "at most 100 per request")
        assert post(url, infer_body(100)).json()["outputs"][0]["shape"] == [100]


def test_a_500_says_what_failed_without_internals_and_the_server_keeps_serving(bundle: Path) -> None:  # noqa: F811
    adapter = LeakyAdapter.load(bundle)
    with ThreadServer(create_app(adapter, "m")) as srv:
        url = f"{srv.url}/v2/models/m/infer"
        msg = assert_v2_error(post(url, infer_body(3, first=1.0)), 500, "adapter 'leaky' failed to score a batch of 3")
        assert "error id" in msg
        for internal in ("secret", ".pem", "/srv", "permission", "ValueError", "Traceback"):
            assert internal not in msg
        r = post(url, infer_body(2, first=2.0))
        assert_v2_error(r, 503, "the JVM is not running")  # the engine gone: retry later, not the batch's fault
        assert r.headers.get("retry-after") == "1"
        assert post(url, infer_body(2)).json()["outputs"][0]["data"] == [0.5, 0.5]


def test_concurrency_is_bounded_and_overflow_is_503(bundle: Path) -> None:  # noqa: F811
    slow = SlowAdapter.load(bundle)
    assert isinstance(slow, SlowAdapter)
    with ThreadServer(create_app(slow, "m", workers=1, max_waiting=1)) as srv:
        url = f"{srv.url}/v2/models/m/infer"
        answers: list[int] = []
        threads = [threading.Thread(target=lambda: answers.append(post(url, infer_body(1)).status_code))]
        threads[0].start()
        assert slow.started.wait(20)  # one batch scoring ...
        threads.append(threading.Thread(target=lambda: answers.append(post(url, infer_body(1)).status_code)))
        threads[1].start()
        time.sleep(0.5)  # ... one waiting for the only worker ...
        r = post(url, infer_body(1))  # ... and no room for a third
        assert_v2_error(r, 503, "busy")
        assert r.headers.get("retry-after") == "1"
        for t in threads:
            t.join(30)
    assert sorted(answers) == [200, 200]


@pytest.mark.parametrize("bad", [{"max_rows": 0}, {"workers": 0}, {"max_waiting": -1}])
def test_bad_limits_are_refused(bundle: Path, bad: dict[str, int]) -> None:  # noqa: F811
    from adapters.errors import AdapterError

    with pytest.raises(AdapterError, match=next(iter(bad))):
        create_app(LeakyAdapter.load(bundle), "m", **bad)

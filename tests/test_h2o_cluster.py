"""The local H2O cluster's start-up on a busy machine: a JVM the h2o client gave up on is ended, not left behind
(the h2o package leaves it running), and only the JVM of that start's own name is."""

from __future__ import annotations

import subprocess
import sys
import time

from harness.modelbuild.h2o_cluster import START_TIMEOUT_S, _kill_jvm_named


def _fake_h2o(name: str) -> subprocess.Popen[bytes]:
    """A process whose command line looks like an H2O JVM's: `... -name NAME ... h2o.jar`."""
    code = "import time; time.sleep(120)"
    return subprocess.Popen([sys.executable, "-c", code, "-name", name, "/x/h2o/backend/bin/h2o.jar"])


def test_a_jvm_given_up_on_is_killed_by_its_name_and_no_other() -> None:
    mine, other = _fake_h2o("harness-aaaaaaaaaaaa"), _fake_h2o("harness-bbbbbbbbbbbb")
    try:
        time.sleep(0.3)  # both have exec'd: their command lines are there to read
        _kill_jvm_named("harness-aaaaaaaaaaaa")
        assert mine.wait(timeout=10) == -9
        assert other.poll() is None
    finally:
        for p in (mine, other):
            p.kill()
            p.wait()


def test_the_start_waits_longer_than_the_h2o_packages_minute() -> None:
    assert START_TIMEOUT_S >= 180

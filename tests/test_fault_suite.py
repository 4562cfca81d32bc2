"""The fault suite as tests (`pytest -m faults`; not in the default run, it takes ~8 minutes): every fault of
harness/faults/cases.py in both guarantees, on a broker of the suite's own. Nothing is lost anywhere,
nothing is misrouted, and exactly-once writes no duplicate. `harness faults` runs the same and prints the table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.faults.cases import CASES, Env
from harness.faults.suite import make_env
from harness.scoring.settings import GUARANTEES

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path]) -> Iterator[Env]:
    e, broker = make_env(tmp_path_factory.mktemp("faults"), 20_000, bundles["fraud"], print)
    try:
        yield e
    finally:
        broker.stop()


@pytest.mark.parametrize("guarantee", GUARANTEES)
@pytest.mark.parametrize("case", list(CASES))
def test_every_record_is_accounted_for(env: Env, case: str, guarantee: str) -> None:
    title, run = CASES[case]
    ledger = run(env, guarantee)
    print(f"{title} ({guarantee}): {ledger}")
    assert ledger.sent > 0
    assert ledger.lost == 0, ledger
    assert ledger.misrouted == 0, ledger
    if guarantee == "exactly-once":
        assert ledger.duplicates == 0, ledger
    assert ledger.scored + ledger.dead_lettered - ledger.duplicates <= ledger.sent

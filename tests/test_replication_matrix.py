"""The replication matrix as tests (`pytest -m faults`; not in the default run: ~40 minutes): every fault of
harness/faults/cluster_faults.py with the scorer under load on a three-node cluster of the suite's own, in both
guarantees, while a second scorer joins the group. Nothing is lost, nothing is misrouted, exactly-once writes
no duplicate, and the fault was carried out on the node it names. `harness faults --matrix` runs the same and
prints the table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.faults.pipeline import ClusterEnv
from harness.faults.replication import MATRIX
from harness.faults.suite import cluster_env
from harness.scoring.settings import GUARANTEES

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def cenv(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path]) -> Iterator[ClusterEnv]:
    with cluster_env(tmp_path_factory.mktemp("matrix"), bundles["fraud"], print) as env:
        yield env


@pytest.mark.parametrize("guarantee", GUARANTEES)
@pytest.mark.parametrize("case", list(MATRIX))
def test_every_record_is_accounted_for(cenv: ClusterEnv, case: str, guarantee: str) -> None:
    title, run = MATRIX[case]
    if case == "isolate" and cenv.isolation is None:
        pytest.fail(f"the isolation row cannot run here: {cenv.isolation_missing}")
    ledger = run(cenv, guarantee)
    print(f"{title} ({guarantee}): {ledger}")
    assert ledger.sent > 0
    assert ledger.lost == 0, ledger
    assert ledger.misrouted == 0, ledger
    if guarantee == "exactly-once":
        assert ledger.duplicates == 0, ledger
    assert ledger.scored == ledger.sent, ledger
    assert not any("not restored" in n for n in ledger.notes), ledger.notes
    assert ledger.notes and "node" in ledger.notes[0], ledger.notes  # what the fault did, to which node
    assert ledger.timing is not None

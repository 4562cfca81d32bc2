"""The fault suite: `harness faults` (or `python -m harness.faults`) runs the scoring loop on its own
embedded broker through every fault it must survive, in both delivery guarantees, and prints what became of
every record sent: scored, dead-lettered, lost, duplicated.

    chaos.py      an adapter that misbehaves on cue (NaN, inf, exceptions, hangs, an engine that is down)
    ledger.py     reads the output and dead-letter topics back and accounts for every record sent
    processes.py  scorer and model-server processes (start, kill -9, restart) and a steady-rate sender
    cases.py      the faults: kill -9 twice in a backlog, broker restart, model server restart, poison
                  records, NaN, exceptions, a hung engine, an engine outage
    suite.py      runs the cases and prints the table

The pytest marker `faults` runs the same cases as tests (tests/test_fault_suite.py); they are left out of
the default test run (several minutes).
"""

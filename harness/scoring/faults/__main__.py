"""`python -m harness.scoring.faults`: the fault suite (see suite.py)."""

import sys

from harness.scoring.faults.suite import main

sys.exit(main())

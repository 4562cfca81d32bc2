"""`python -m harness.faults`: the fault suite (see suite.py)."""

import sys

from harness.faults.suite import main

sys.exit(main())

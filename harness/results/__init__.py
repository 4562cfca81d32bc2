"""The results of a run: what the benchmark writes (results/<run-id>/results.json) and reporting reads.

schema.py       the typed model of results.json, each point's validity checks as its methods
stats.py        medians, intervals and how two figures are judged
consistency.py  figures of one strategy that cannot all be true
fmt.py          numbers as people read them
errors.py       results.json missing, malformed or of an unknown schema
"""

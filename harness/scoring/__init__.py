"""The production path, what a team deploys: the wire format and its contracts, the scoring loop, the
`harness score` service, and the Open Inference Protocol (V2) server. Sees models only through the
adapter contract (adapters/base.py)."""

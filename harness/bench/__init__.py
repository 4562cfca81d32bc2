"""Benchmarking: the open-loop load generator, the measurer, the rate search, the scorer processes behind
one `Scorer` protocol (Python loop, Kafka Streams app, model server), micro-benchmarks and the run
orchestrator (`harness run`)."""

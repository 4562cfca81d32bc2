# The two set-up commands of the README. Both install what they need, are idempotent, and are quick
# when everything is already there.
#   make demo   run the default suite end to end on the embedded Kafka broker
#   make test   lint, type-check and run the whole test suite on a real broker
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test bench setup chromium

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v java >/dev/null || { echo "error: Java 17 is not on PATH (apt-get install openjdk-17-jdk-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: Maven is not on PATH (apt-get install maven)"; exit 1; }
	@command -v gcc >/dev/null || { echo "error: gcc is not on PATH (apt-get install gcc)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/harness run scenarios/fraud.yaml

test: $(STAMP) chromium
	$(BIN)/ruff check harness adapters jvm tests
	$(BIN)/ruff format --check harness adapters jvm tests
	$(BIN)/mypy harness adapters jvm
	$(BIN)/pytest -q

# the report's browser test renders report.html in Debian's headless Chromium
chromium:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "warning: could not install chromium (apt-get install chromium); the browser test will fail"; }

bench: $(STAMP)
	$(BIN)/pytest tests/bench -q --benchmark-only --benchmark-json=results/bench.json -p no:randomly

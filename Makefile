# The two set-up commands of the README. Both install what they need, are idempotent, and are quick
# when everything is already there.
#   make demo   run the default suite end to end on the embedded Kafka broker
#   make test   lint, type-check and run the whole test suite on a real broker (what CI runs)
#   make check  lint, type-check and the broker-free unit tests: a quick check while developing
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)
# the scoring loop's native hot path (native/: Rust, PyO3, librdkafka built from source), rebuilt when its
# sources change; cargo is taken from PATH or rustup's ~/.cargo/bin
NATIVE_SRC := $(sort $(wildcard native/src/*.rs)) native/Cargo.toml native/Cargo.lock native/pyproject.toml native/harness_native.pyi
NATIVE := $(VENV)/.native-$(shell cat $(NATIVE_SRC) | sha256sum | cut -c1-12)
CARGO_PATH := $(CURDIR)/$(BIN):$(HOME)/.cargo/bin:$(PATH)

.PHONY: demo test check lint bench setup toolchain chromium promtool iptables faults soak lock repeatability

# root installs system packages itself; anyone else through sudo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

setup: $(STAMP) $(NATIVE)

# the exact versions in requirements.lock (the tested set), then the project itself without resolving again
$(STAMP): pyproject.toml requirements.lock | toolchain
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# harness_native into the venv: cargo builds librdkafka from its vendored source (its configure + make, ~3 min
# on 2 cores the first time; native/target keeps the build), with TLS through the system's OpenSSL
$(NATIVE): $(STAMP) $(NATIVE_SRC)
	@PATH="$(CARGO_PATH)" command -v cargo >/dev/null || { echo "error: Rust's cargo is neither on PATH nor in ~/.cargo/bin (install Rust 1.85 or newer with rustup)"; exit 1; }
	PATH="$(CARGO_PATH)" $(BIN)/python -m pip install -q --no-build-isolation --no-deps ./native
	rm -f $(VENV)/.native-*
	touch $(NATIVE)

demo: $(STAMP) $(NATIVE)
	$(BIN)/harness run scenarios/fraud.yaml

LINTED := harness adapters contestants jvm tests
lint: $(STAMP) $(NATIVE)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy harness adapters contestants jvm

test: $(STAMP) chromium promtool lint
	$(BIN)/pytest -q

# no broker, no JVM cluster, no Maven, no browser: under 3 minutes on a 2-core machine
check: $(STAMP) lint
	$(BIN)/pytest -q -m "not kafka and not heavy and not faults" -p no:cacheprovider

# Java 17 (the broker, the JVM-backed formats, the Kafka Streams app), Maven (their jars), gcc (the C model),
# and what librdkafka's build needs (make, pkg-config, the OpenSSL headers): installed with apt-get when
# missing, as Chromium and promtool are. Rust (native/) is checked where it is built, $(NATIVE)
toolchain:
	@{ command -v java >/dev/null && java -version 2>&1 | grep -qE 'version "(1[7-9]|2[0-9])'; } && \
	  command -v mvn >/dev/null && command -v gcc >/dev/null && command -v make >/dev/null && \
	  pkg-config --exists openssl 2>/dev/null || { \
	  command -v apt-get >/dev/null || { echo "error: Java 17, Maven, gcc, make, pkg-config and libssl-dev are needed and apt-get is not here to install them"; exit 1; }; \
	  echo "installing Java 17, Maven, gcc, make, pkg-config and libssl-dev (apt-get) ..."; \
	  { $(APT) update -qq && $(APT) install -y -qq openjdk-17-jdk-headless maven gcc make pkg-config libssl-dev >/dev/null; } || \
	  { echo "error: could not install them: apt-get install openjdk-17-jdk-headless maven gcc make pkg-config libssl-dev"; exit 1; }; }

# the report's browser test renders report.html in Debian's headless Chromium
chromium:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && \
	  ($(APT) update -qq && $(APT) install -y -qq chromium >/dev/null) || \
	  echo "warning: could not install chromium (apt-get install chromium); the browser test will fail"; }

# the alerting rules are checked with Prometheus's own promtool (Debian's prometheus package)
promtool:
	@command -v promtool >/dev/null || { command -v apt-get >/dev/null && \
	  ($(APT) update -qq && $(APT) install -y -qq prometheus >/dev/null) || \
	  echo "warning: could not install promtool (apt-get install prometheus); the rules test will fail"; }

# the fault suite: the single-broker cases and the replication matrix on a three-node cluster (about an hour);
# the matrix's isolation row cuts a node off with iptables (root), installed here when missing
faults: $(STAMP) $(NATIVE) iptables
	$(BIN)/harness faults

# the 30-minute soak: a random matrix fault about every minute, both guarantees (results/<id>-soak/)
soak: $(STAMP) $(NATIVE) iptables
	$(BIN)/harness faults --soak 30m

iptables:
	@command -v iptables >/dev/null || { command -v apt-get >/dev/null && \
	  ($(APT) update -qq && $(APT) install -y -qq iptables >/dev/null) || \
	  echo "warning: could not install iptables (apt-get install iptables); the isolation row will fail"; }

bench: $(STAMP) $(NATIVE)
	$(BIN)/pytest tests/bench -q --benchmark-only --benchmark-json=results/bench.json -p no:randomly

# re-resolve requirements.lock from pyproject.toml's ranges (after changing a dependency); review the diff
lock: $(STAMP)
	$(BIN)/python -m pip install -q uv
	{ echo "# The exact library versions \`make\` installs (the tested set), resolved from pyproject.toml's ranges with"; \
	  echo "# extras [dev] (= every adapter, the report, the test tools). Regenerate with \`make lock\` after changing the"; \
	  echo "# dependencies; results.json records the versions a run measured with."; \
	  $(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header --no-annotate; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

# three `make demo` runs one after another, then whether they agree (per adapter spread, recommendation)
repeatability: $(STAMP) $(NATIVE)
	@runs=""; for i in 1 2 3; do \
	  d=$$($(BIN)/harness run scenarios/fraud.yaml | tail -1) || exit 1; runs="$$runs $$d"; done; \
	  $(BIN)/harness repeatability $$runs

# The production path in a container: `harness score` (the scoring loop, with its native hot path built in
# the first stage), `harness serve` (the V2 model server), `harness monitor` and `harness publish`. Configuration by environment (HARNESS_<OPTION>, see
# `harness score --help`), metrics and health on HARNESS_METRICS_PORT, a non-root user, the locked Python
# environment (requirements.lock), and a JRE for the JVM-backed formats (PMML, H2O MOJO) with their jars
# resolved at build time (no Maven at run time).
#
#   docker build -t kafka-model-harness .
#   docker run --rm kafka-model-harness score --help
# the scoring loop's native hot path (native/: Rust, PyO3, librdkafka built from source) as a wheel
FROM python:3.11-slim-bookworm AS native
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates gcc g++ make pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/* \
 && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY requirements.lock ./
RUN pip install --no-cache-dir "$(grep '^maturin==' requirements.lock)"
COPY native ./native
RUN maturin build --release --manylinux off -m native/Cargo.toml -o /wheels

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -r requirements.lock
COPY --from=native /wheels /wheels
RUN /venv/bin/pip install --no-cache-dir --no-deps /wheels/*.whl
COPY harness ./harness
COPY adapters ./adapters
COPY jvm ./jvm
# the JVM class path (pypmml's jars + h2o-genmodel from Maven Central) resolved once, into /opt
ENV HARNESS_CACHE_DIR=/opt/harness-cache HARNESS_MAVEN_ARGS="-Dmaven.repo.local=/opt/m2"
RUN /venv/bin/pip install --no-cache-dir --no-deps . \
 && /venv/bin/python -c "from jvm.inprocess import classpath; print(len(classpath()), 'jars')"

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 harness
COPY --from=build /venv /venv
COPY --from=build /opt/m2 /opt/m2
COPY --from=build /opt/harness-cache /opt/harness-cache
ENV PATH=/venv/bin:$PATH HARNESS_CACHE_DIR=/opt/harness-cache HARNESS_STATE_DIR=/tmp/harness PYTHONUNBUFFERED=1
USER harness
WORKDIR /home/harness
EXPOSE 9100
ENTRYPOINT ["harness"]
CMD ["--help"]

"""The machine a run measured on, recorded in results.json so figures are never read without it."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from harness.kafka.config import KafkaTarget
from harness.results.schema import Environment


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def environment(target: KafkaTarget, libraries: dict[str, str]) -> Environment:
    import psutil

    from harness.kafka.broker import kafka_version

    return Environment(
        hostname=socket.gethostname(),
        cpu_model=cpu_model(),
        cpu_count=os.cpu_count(),
        memory_gib=round(psutil.virtual_memory().total / 2**30, 1),
        os=platform.platform(),
        python=platform.python_version(),
        kafka_version=kafka_version() if target.embedded else "external cluster",
        bootstrap=target.bootstrap,
        embedded_broker=target.embedded,
        brokers=target.brokers,
        libraries=libraries,
        load_average_at_start=list(os.getloadavg()),
        machine_note=(
            f"{os.cpu_count()} cores, shared: broker, load generator, measurer and scorer all run on this machine; "
            "compare figures as ratios within one run"
        ),
    )

"""Where commands find Kafka: an explicit bootstrap plus librdkafka properties, or the embedded broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


def read_client_properties(path: Path | None) -> dict[str, str]:
    """Read a Java-properties-style file of librdkafka settings (key=value, # comments)."""
    if path is None:
        return {}
    if not path.is_file():
        raise HarnessError(f"client properties file {path} does not exist")
    props: dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if sep < 0:
            raise HarnessError(f"{path}:{n}: expected key=value, got {line!r}")
        props[line[:sep].strip()] = line[sep + 1 :].strip()
    return props


# Every producer whose records matter: acknowledged only once every in-sync replica has the record (with the
# cluster's min.insync.replicas 2, at least two), and retried without duplicates or reordering.
DURABLE_PRODUCER: dict[str, Any] = {"acks": "all", "enable.idempotence": True}


@dataclass
class KafkaTarget:
    bootstrap: str
    properties: dict[str, str] = field(default_factory=dict)
    embedded: bool = False
    brokers: int = 1  # how many brokers the cluster has (the embedded cluster: 3)

    def client_config(self, **extra: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        conf.update(self.properties)
        conf.update(extra)
        return conf


def resolve_kafka(
    bootstrap: str | None, client_config: Path | None = None, timeout_s: float = 10.0, brokers: int = 1
) -> KafkaTarget:
    """The cluster a command talks to: `bootstrap` when given (it must answer), else the client config's
    bootstrap.servers (`harness broker start --secure` writes one per principal), else the embedded broker
    (`brokers` 1) or the embedded cluster (`brokers` 3), started here when it is not running yet."""
    from harness.kafka.broker import Broker
    from harness.kafka.cluster import Cluster
    from harness.kafka.node import broker_count

    props = read_client_properties(client_config)
    bootstrap = bootstrap or props.pop("bootstrap.servers", None)
    props.pop("bootstrap.servers", None)
    if bootstrap:
        n = broker_count(bootstrap, timeout_s=timeout_s, properties=props)
        if not n:
            raise HarnessError(
                f"Kafka at {bootstrap} does not answer a metadata request within {timeout_s:.0f} s "
                "(check the address, the listener, and the security settings in --client-config)"
            )
        return KafkaTarget(bootstrap=bootstrap, properties=props, brokers=n)
    if brokers > 1:
        cst = Cluster().start(brokers)
        return KafkaTarget(bootstrap=cst.bootstrap, properties=props, embedded=True, brokers=len(cst.nodes))
    st = Broker().start()
    return KafkaTarget(bootstrap=st.bootstrap, properties=props, embedded=True)

"""The embedded broker, secured (`harness broker start --secure`): SASL/SCRAM over TLS for clients, Kafka's own
authorizer (StandardAuthorizer, KRaft) with ACLs, certificates generated for the broker.

    listener    protocol                         who
    CLIENT      SASL_SSL, SCRAM-SHA-512           every client: admin, scorer, publisher (passwords generated)
    INTERNAL    SSL, client certificate required  the broker to itself (User:CN=harness-broker)
    CONTROLLER  SSL, client certificate required  the KRaft controller (the same certificate)

Principals and what the ACLs let them do (allow.everyone.if.no.acl.found=false: nothing else):

    admin      a super user: creates topics for tests and tools, manages ACLs
    scorer     reads every topic (input, model); writes every topic but the model topics (results, dead letters,
               alerts, shadow results) -- a DENY on the model topics' prefix; consumer groups; transactions
    publisher  reads and writes every topic, the model topics included (`harness publish`, `harness retrain`)

The model topics are the names given by `--model-topic` (default `models`), matched as prefixes: `models` covers
`models`, `models.fraud`, ... The state folder (`.harness/secure-broker/secure/`, mode 0700) holds the CA and the
broker's certificate, the passwords (credentials.json, 0600) and one client config per principal
(`<principal>.properties`: bootstrap.servers, SASL/SCRAM, the CA), which every harness command takes as
`--client-config`. They are plain librdkafka properties, so any librdkafka client reads them too.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.kafka.errors import BrokerError

PRINCIPALS = ("admin", "scorer", "publisher")
MECHANISM = "SCRAM-SHA-512"
BROKER_CN = "harness-broker"
DEFAULT_MODEL_TOPICS = ("models",)
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass
class SecureFiles:
    folder: Path
    ca: Path  # the CA certificate clients verify the broker with
    keystore: Path  # the broker's private key and certificate (PEM)
    passwords: dict[str, str]

    def client_file(self, principal: str) -> Path:
        return self.folder / f"{principal}.properties"

    def client_properties(self, principal: str, bootstrap: str | None = None) -> dict[str, str]:
        props = {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": MECHANISM,
            "sasl.username": principal,
            "sasl.password": self.passwords[principal],
            "ssl.ca.location": str(self.ca),
        }
        if bootstrap is not None:
            props = {"bootstrap.servers": bootstrap, **props}
        return props


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def prepare(folder: Path) -> SecureFiles:
    """The CA, the broker's certificate and the principals' passwords: made on the first start, kept after."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca, keystore, creds = folder / "ca.pem", folder / "broker.pem", folder / "credentials.json"
    if not (ca.is_file() and keystore.is_file()):
        ca_pem, store_pem = _certificates()
        ca.write_bytes(ca_pem)
        _private(keystore, store_pem)
    if not creds.is_file():
        _private(creds, json.dumps({p: secrets.token_hex(24) for p in PRINCIPALS}, indent=1).encode())
    return SecureFiles(folder, ca, keystore, json.loads(creds.read_text()))


def _certificates() -> tuple[bytes, bytes]:
    """A CA made for this broker, and the broker's certificate (127.0.0.1 and localhost; server and client auth,
    the latter for its own controller and internal listeners), both EC P-256, valid for a year."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harness-broker-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER_CN)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca_cert.public_bytes(pem), key_pem + cert.public_bytes(pem) + ca_cert.public_bytes(pem)


def listener_properties(port: int, controller_port: int, internal_port: int, files: SecureFiles) -> dict[str, str]:
    """What the secure broker changes in the embedded broker's properties (harness/kafka/properties.py): its three
    listeners and their protocols, TLS, SCRAM, and the authorizer that denies what no ACL allows."""
    return {
        "listeners": (
            f"CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port},CONTROLLER://127.0.0.1:{controller_port}"
        ),
        "advertised.listeners": f"CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
        "sasl.enabled.mechanisms": MECHANISM,
        "listener.name.client.sasl.enabled.mechanisms": MECHANISM,
        f"listener.name.client.{MECHANISM.lower()}.sasl.jaas.config": SCRAM_LOGIN,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(files.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca),
        "listener.name.internal.ssl.client.auth": "required",
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:admin;User:CN={BROKER_CN}",
        "auto.create.topics.enable": "false",
    }


def scram_arguments(files: SecureFiles) -> list[str]:
    """kafka-storage format's --add-scram for every principal: the credentials exist before the broker serves."""
    args: list[str] = []
    for principal, password in files.passwords.items():
        args += ["--add-scram", f"{MECHANISM}=[name={principal},password={password}]"]
    return args


def write_client_configs(files: SecureFiles, bootstrap: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for principal in PRINCIPALS:
        props = files.client_properties(principal, bootstrap)
        text = f"# `harness ... --client-config {files.client_file(principal)}`: the {principal} principal\n"
        text += "".join(f"{k}={v}\n" for k, v in props.items())
        _private(files.client_file(principal), text.encode())
        out[principal] = files.client_file(principal)
    return out


def acl_bindings(model_topics: tuple[str, ...]) -> list[Any]:
    """The ACLs of the scorer and publisher principals (see the module's docstring)."""
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    allow, deny = AclPermissionType.ALLOW, AclPermissionType.DENY
    lit, pre = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    T, G, X, C = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID, ResourceType.BROKER
    op = AclOperation

    def acl(kind: Any, name: str, pattern: Any, who: str, what: Any, perm: Any = allow) -> Any:
        return AclBinding(kind, name, pattern, f"User:{who}", "*", what, perm)

    out: list[Any] = []
    for who in ("scorer", "publisher"):
        for what in (op.READ, op.DESCRIBE, op.DESCRIBE_CONFIGS, op.WRITE, op.CREATE):
            out.append(acl(T, "*", lit, who, what))
        out += [acl(G, "*", lit, who, op.READ), acl(G, "*", lit, who, op.DESCRIBE)]
        out += [acl(X, "*", lit, who, op.WRITE), acl(X, "*", lit, who, op.DESCRIBE)]
        out += [acl(C, "kafka-cluster", lit, who, op.IDEMPOTENT_WRITE)]
    for prefix in model_topics:
        for what in (op.WRITE, op.CREATE, op.ALTER, op.ALTER_CONFIGS, op.DELETE):
            out.append(acl(T, prefix, pre, "scorer", what, deny))
    return out


def apply_acls(bootstrap: str, files: SecureFiles, model_topics: tuple[str, ...], timeout_s: float = 30.0) -> int:
    from confluent_kafka.admin import AdminClient

    conf: dict[str, Any] = {**files.client_properties("admin", bootstrap)}
    admin = AdminClient(conf)
    bindings = acl_bindings(model_topics)
    for binding, fut in admin.create_acls(bindings, request_timeout=timeout_s).items():
        try:
            fut.result(timeout=timeout_s)
        except Exception as e:  # KafkaException: say which ACL and why
            raise BrokerError(f"creating ACL {binding} failed: {e}") from None
    return len(bindings)

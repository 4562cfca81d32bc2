"""Ed25519 signatures on model versions: who published a version, not only whether it is intact.

    harness keys create publisher --dir keys/      keys/publisher.key (private, PKCS#8 PEM, mode 0600)
                                                   keys/publisher.pub (public, SubjectPublicKeyInfo PEM)
    harness publish ... --signing-key keys/publisher.key
    harness score ... --trusted-key keys/publisher.pub [--trusted-key keys/next.pub]

What is signed is `ModelVersion.identity_bytes()` (harness/scoring/models.py): the canonical JSON of the name,
the mode, the model id, the manifest's sha256, every file's sha256, size and chunks (or the bundle folder) and the
publication time. The manifest names every format file's sha256 (and marks the formats that run code), so the
signature covers every byte a scorer will load. The `signature` field holds `ed25519:<key id>:<base64 signature>`;
the key id is the first 16 hex digits of the sha256 of the raw public key (`harness keys id FILE` prints it).

A trusted key is a public key file, or the key inline as `ed25519:<base64 of the 32 raw bytes>` (what
`harness keys id` prints too), so a scorer configured by environment needs no file. The library is `cryptography`
(pyca; OpenSSL's Ed25519).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from harness.scoring.errors import ScoringSetupError

SCHEME = "ed25519"
INLINE_PREFIX = f"{SCHEME}:"


class KeyFileError(ScoringSetupError):
    """A key file that cannot be read or is not an Ed25519 key (one line)."""


class SignatureRefused(Exception):
    """A version whose signature does not admit it: `kind` is unsigned, untrusted-key or bad-signature."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def inline(key: Ed25519PublicKey) -> str:
    """The public key as one string a scorer can be given instead of a file."""
    return INLINE_PREFIX + base64.b64encode(raw_public(key)).decode()


def create_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A new key pair as FOLDER/NAME.key (private, 0600) and FOLDER/NAME.pub; refuses to overwrite a key."""
    if not name or "/" in name or name.startswith("."):
        raise KeyFileError(f"a key name is a plain file name, got {name!r}")
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    for p in (private_path, public_path):
        if p.exists():
            raise KeyFileError(f"{p} exists: a key is never overwritten (choose another name, or remove it yourself)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KeyFileError(f"signing key {path} cannot be read: {e.strerror or e}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"signing key {path} is not an unencrypted PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"signing key {path} is a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public(spec: str | Path) -> Ed25519PublicKey:
    """A trusted key: a PEM public key file (a .key file gives its public half), or `ed25519:<base64>` inline."""
    text = str(spec)
    if text.startswith(INLINE_PREFIX):
        try:
            raw = base64.b64decode(text[len(INLINE_PREFIX) :], validate=True)
            return Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError) as e:
            raise KeyFileError(f"trusted key {text[:40]}…: not 32 bytes of base64 after 'ed25519:' ({e})") from None
    try:
        data = Path(text).read_bytes()
    except OSError as e:
        raise KeyFileError(f"trusted key {text} cannot be read: {e.strerror or e}") from None
    try:
        if b"PRIVATE KEY" in data:
            raise KeyFileError(f"trusted key {text} is a private key: give a scorer the .pub file only")
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise KeyFileError(f"trusted key {text} is not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"trusted key {text} is a {type(key).__name__}, not an Ed25519 key")
    return key


def sign(identity: bytes, key: Ed25519PrivateKey) -> str:
    """The `signature` field's value for a version whose identity_bytes() are `identity`."""
    sig = base64.b64encode(key.sign(identity)).decode()
    return f"{SCHEME}:{key_id(key.public_key())}:{sig}"


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys a scorer trusts, by key id (two at once while a key is rotated)."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def load(cls, specs: Iterable[str | Path]) -> TrustedKeys:
        keys: dict[str, Ed25519PublicKey] = {}
        for spec in specs:
            key = load_public(spec)
            keys[key_id(key)] = key
        return cls(keys)

    def ids(self) -> list[str]:
        return sorted(self.keys)

    def verify(self, identity: bytes, signature: str | None) -> str:
        """The id of the trusted key that signed `identity`; raises SignatureRefused otherwise."""
        if not signature:
            raise SignatureRefused("unsigned", "unsigned: this scorer takes only versions signed by a trusted key")
        parts = signature.split(":")
        if len(parts) != 3 or parts[0] != SCHEME:
            raise SignatureRefused("bad-signature", f"signature is not '{SCHEME}:<key id>:<base64>'")
        kid, b64 = parts[1], parts[2]
        key = self.keys.get(kid)
        if key is None:
            trusted = ", ".join(self.ids()) or "none"
            raise SignatureRefused("untrusted-key", f"signed by key {kid[:16]!r}, which this scorer does not trust "
                                   f"(trusted: {trusted})")  # fmt: skip
        try:
            key.verify(base64.b64decode(b64, validate=True), identity)
        except (InvalidSignature, binascii.Error, ValueError):
            raise SignatureRefused(
                "bad-signature",
                f"the signature of key {kid} does not match the version's contents (changed after signing)",
            ) from None
        return kid

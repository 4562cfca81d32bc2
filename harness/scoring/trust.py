"""What a scorer checks before it loads a model version from the model topic, beyond the hashes: who signed it,
that it is not an older version sent again, and that its format is one the scorer takes.

    the record ─► its key names the version's own name and mode ─► signed by a trusted key (signing.py) ─►
    published after the version accepted last for that key (no replay) ─► [files assembled, hashes checked] ─►
    the format the adapter loads is allowed (--model-formats) ─► load, parity

Each refusal is a `Refused` with a `kind` (the label of harness_score_model_refused_total and the alert's text):

    invalid         not a model version (malformed record)
    mismatch        the record's key is not the version's own name and mode (a version moved to another key)
    unsigned        no signature, and the scorer trusts keys
    untrusted-key   signed by a key the scorer does not trust
    bad-signature   the signature does not match the version's contents (changed after signing)
    replayed        published no later than the version accepted last for that key (an old version sent again)
    incomplete      a chunk missing or corrupted on the topic, a file that does not reassemble to its sha256
    tampered        a file does not match the manifest, the manifest not the published one
    format          the format the adapter would load is not among --model-formats (e.g. it runs code)
    load            the adapter cannot load it, or it does not score its own reference rows within tolerance

Replay: the publication time is signed, so it cannot be moved forward without the key. A scorer keeps, per record
key, the latest publication time it accepted; a version published no later than that is refused (a rollback is a
new publication of the old bundle, with a new time). With a persistent --model-cache-dir the marks survive a
restart (`accepted.json` there); at start the scorer takes the newest properly signed version on the topic, not the
last record, so an old version sent again after a newer one is refused even by a scorer that starts after it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.runs_code import code_reason, format_label
from harness.scoring.bundle_transfer import SHADOW_SUFFIX, version_key
from harness.scoring.signing import SignatureRefused, TrustedKeys

if TYPE_CHECKING:
    from adapters.bundle import Bundle
    from harness.scoring.models import ModelVersion

KINDS = (
    "invalid",
    "mismatch",
    "unsigned",
    "untrusted-key",
    "bad-signature",
    "replayed",
    "incomplete",
    "tampered",
    "format",
    "load",
)
MARKS_FILE = "accepted.json"


class Refused(Exception):
    """A version that must not score: why, in one line, and the kind of refusal (KINDS)."""

    def __init__(self, message: str, kind: str = "load") -> None:
        super().__init__(message)
        self.kind = kind


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) + f" ({t:.3f})"


@dataclass
class ModelTrust:
    """A scorer's rules for versions: the keys it trusts (None: unsigned versions too, said explicitly), the formats
    it loads (None: any), and the publication time it accepted last per record key (kept in `marks_file`)."""

    keys: TrustedKeys | None
    formats: frozenset[str] | None = None
    adapter_format: str | None = None  # the format the scorer's adapter loads (None: no model file)
    marks_file: Path | None = None
    marks: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.marks_file is not None and self.marks_file.is_file():
            try:
                loaded = json.loads(self.marks_file.read_text())
                self.marks.update({str(k): float(v) for k, v in loaded.items()})
            except (ValueError, AttributeError, TypeError):
                pass  # unreadable: start without marks (the topic's newest signed version sets them again)

    @classmethod
    def build(
        cls,
        trusted_keys: Iterable[str | Path],
        allow_unsigned: bool,
        formats: Iterable[str] | None = None,
        adapter_format: str | None = None,
        marks_dir: Path | None = None,
    ) -> ModelTrust:
        keys = TrustedKeys.load(trusted_keys)
        return cls(
            keys=keys if keys.keys or not allow_unsigned else None,
            formats=frozenset(formats) if formats else None,
            adapter_format=adapter_format,
            marks_file=(marks_dir / MARKS_FILE) if marks_dir is not None else None,
        )

    # ---- before anything is written or loaded -------------------------------------------------------------
    def signer(self, version: ModelVersion) -> str | None:
        """The trusted key id that signed the version (None when unsigned versions are allowed)."""
        if self.keys is None:
            return None
        try:
            return self.keys.verify(version.identity_bytes(), version.signature)
        except SignatureRefused as e:
            raise Refused(str(e), e.kind) from None

    def admit(self, version: ModelVersion, record_key: bytes | None) -> str | None:
        """Record key, signature and replay checks; returns the signer's key id (None when unsigned is allowed)."""
        expected = version_key(version.name, version.mode)
        if record_key is not None and record_key != expected:
            shown = record_key.decode("utf-8", "replace")
            raise Refused(
                f"the record's key {shown!r} is not the version's own name and mode ({expected.decode()!r})",
                "mismatch",
            )
        kid = self.signer(version)
        self.check_replay(version)
        return kid

    def check_replay(self, version: ModelVersion) -> None:
        key = version_key(version.name, version.mode).decode()
        last = self.marks.get(key)
        if last is not None and version.published_at <= last:
            raise Refused(
                f"replayed: version {version.model_id} was published {_when(version.published_at)}, not after the "
                f"version accepted last for {key!r} (published {_when(last)})",
                "replayed",
            )

    # ---- after the files are assembled and hashed, before the adapter loads ------------------------------------
    def check_format(self, bundle: Bundle) -> None:
        """Refuse a bundle whose format (the one the adapter loads) is not allowed; the reason says whether it runs
        code. The scorer's own table decides (adapters/runs_code.py), not the marks in the manifest; a manifest
        that calls a code-running format data is refused as tampered."""
        fmt = self.adapter_format
        if fmt is None:
            return  # the adapter loads no model file (identity, rest: the server holds the model)
        info: Mapping[str, Any] = bundle.manifest.get("formats", {}).get(fmt, {})
        why = code_reason(fmt, info)
        if why is not None and info.get("runs_code") is False:
            raise Refused(f"the manifest marks format {fmt} as running no code, but it does: {why}", "tampered")
        if self.formats is None:
            return
        label = format_label(fmt, info)
        if label in self.formats:
            return
        allowed = ", ".join(sorted(self.formats))
        what = f"it runs code: {why}" if why else "it is not listed"
        raise Refused(f"format {label} is not among this scorer's --model-formats ({allowed}): {what}", "format")

    # ---- once a version is taken --------------------------------------------------------------------------
    def accepted(self, version: ModelVersion) -> None:
        """Remember the version's publication time for its record key (and persist it)."""
        key = version_key(version.name, version.mode).decode()
        if version.published_at <= self.marks.get(key, float("-inf")):
            return
        self.marks[key] = version.published_at
        if self.marks_file is None:
            return
        tmp = self.marks_file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.marks, sort_keys=True))
            os.replace(tmp, self.marks_file)
        except OSError:
            pass  # a read-only cache: the marks hold for this process's life

    def is_last_accepted(self, version: ModelVersion) -> bool:
        """The version accepted last for its record key (the same publication), as opposed to an older one."""
        return self.marks.get(version_key(version.name, version.mode).decode()) == version.published_at

    def describe(self) -> str:
        keys = "any version (unsigned allowed)" if self.keys is None else f"keys {', '.join(self.keys.ids())}"
        formats = ", ".join(sorted(self.formats)) if self.formats else "any format"
        return f"trusts {keys}; loads {formats}"


def follows(key: bytes | None, name: str) -> bool:
    k = (key or b"").decode("utf-8", "replace")
    return k == name or k == name + SHADOW_SUFFIX

"""The errors of the JVM plumbing: one line a user can act on (install Java or Maven, fix a mirror).

They are their own root, as this package sits beside `adapters` and `harness`; the CLI prints them as one
`error:` line like HarnessError and AdapterError, and callers that must speak their own root wrap them."""

from __future__ import annotations


class JvmError(Exception):
    """Java or Maven is missing, or a class path could not be resolved."""

    exit_code = 1


class MavenError(JvmError):
    """Maven could not resolve or build a project."""

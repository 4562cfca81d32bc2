"""A broker cut off from the other brokers while clients still reach it, on one machine's loopback.

Every node listens on 127.0.0.1, so addresses cannot tell a node's traffic from a client's. Processes can:
each node of the suite's cluster is started inside a cgroup (v2) of its own, and iptables' cgroup match
(`-m cgroup --path`, kernel xt_cgroup) drops, in a chain of the suite's own:

    packets from the isolated node's cgroup to any other node's ports     (it cannot fetch, vote, heartbeat)
    packets from another node's cgroup to the isolated node's ports       (they cannot fetch from it)

Clients (scorers, sender, ledger) are in no such cgroup: they reach every node. DROP, not REJECT: a cut
link times out as a real partition does. Traffic never leaves the machine. Needs root, a writable cgroup2
hierarchy and the iptables command (Debian: apt-get install iptables); `unavailable()` says what is
missing. The rules live in a chain named for the suite run, removed by `close()` (and at exit).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.faults.processes import FaultError
from harness.kafka.properties import NodeAddress


def cgroup2_root() -> Path | None:
    """Where the cgroup2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts)."""
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return Path(parts[1])
    except OSError:
        pass
    return None


def unavailable() -> str | None:
    """Why isolation cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "isolating a broker needs root (iptables rules and cgroups)"
    if shutil.which("iptables") is None:
        return "isolating a broker needs the iptables command (apt-get install iptables)"
    root = cgroup2_root()
    if root is None or not os.access(root, os.W_OK):
        return "isolating a broker needs a writable cgroup2 hierarchy (none is mounted here)"
    return None


class Isolation:
    """Places each node in a cgroup of its own at launch (`launch_hook`) and cuts one node off on demand."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or uuid.uuid4().hex[:8]
        self.root = cgroup2_root()
        self.chain = f"HARNESS-{self.tag}"[:28]
        self._chain_ready = False
        self.isolated: int | None = None
        atexit.register(self.close)

    def cgroup(self, node_id: int) -> str:
        """The node's cgroup path, relative to the cgroup2 root (as iptables' --path takes it)."""
        return f"harness-{self.tag}-node-{node_id}"

    def launch_hook(self, node_id: int) -> Callable[[], None] | None:
        """For Cluster(launch_hook=...): a function the node's child process runs before exec, moving itself
        into the node's cgroup, so that every socket the JVM opens belongs to it."""
        if self.root is None:
            return None
        path = self.root / self.cgroup(node_id)
        path.mkdir(exist_ok=True)
        procs = str(path / "cgroup.procs")

        def enter() -> None:  # runs in the child between fork and exec: no locks, no allocation-heavy work
            with open(procs, "w") as f:
                f.write("0")

        return enter

    def isolate(self, node_id: int, nodes: Sequence[NodeAddress]) -> None:
        """Cut `node_id` off from every other node (both directions); clients still reach it."""
        self._ensure_chain()
        mine = next(n for n in nodes if n.node_id == node_id)
        others = [n for n in nodes if n.node_id != node_id]
        other_ports = ",".join(str(p) for n in others for p in (n.port, n.controller_port))
        my_ports = f"{mine.port},{mine.controller_port}"
        rules = [[self.cgroup(node_id), other_ports]] + [[self.cgroup(n.node_id), my_ports] for n in others]
        for cgroup, ports in rules:
            _iptables("-A", self.chain, "-p", "tcp", "-m", "cgroup", "--path", cgroup,
                      "-m", "multiport", "--dports", ports, "-j", "DROP")  # fmt: skip
        self.isolated = node_id

    def heal(self) -> None:
        """Remove every rule: the node reaches the others again."""
        if self._chain_ready:
            _iptables("-F", self.chain)
        self.isolated = None

    def close(self) -> None:
        """Remove the chain and the cgroups (those still holding a process stay; they hold no rule)."""
        if self._chain_ready:
            with contextlib.suppress(FaultError):
                _iptables("-D", "OUTPUT", "-j", self.chain)
                _iptables("-F", self.chain)
                _iptables("-X", self.chain)
            self._chain_ready = False
        if self.root is not None:
            for d in self.root.glob(f"harness-{self.tag}-node-*"):
                with contextlib.suppress(OSError):
                    d.rmdir()

    def _ensure_chain(self) -> None:
        if self._chain_ready:
            return
        _iptables("-N", self.chain)
        _iptables("-I", "OUTPUT", "-j", self.chain)
        self._chain_ready = True


def _iptables(*args: str) -> None:
    r = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise FaultError(f"iptables {' '.join(args)} failed: {r.stderr.strip() or r.stdout.strip()}")

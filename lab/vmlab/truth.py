"""The host side of the truth protocol: a framed, line-based protocol to
vmw-truth, the ground-truth agent in the guest, over the guest's second
serial port (QEMU exposes it as a unix socket). See lab/README.md, "The
truth protocol", for the commands and the framing.

A serial line has no connection state: an answer the host stopped reading
(a timeout, a killed client) is still in the pipe for the next client, and
commands sent before the agent opened its port are lost. Every request
therefore starts by getting in step with the agent (_sync), and a lock file
serialises clients, because two of them would read each other's answers."""

from __future__ import annotations

import json
import re
import secrets
import signal
import socket
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Union

from .errors import TruthError
from .paths import _flock
from .snapshot import Snapshot, parse_snapshot
from .wire import LineReader

__all__ = ["TruthClient"]


def _quote_arg(a: str) -> str:
    """%XX-encode what the agent's space-separated protocol cannot carry."""
    out = []
    for ch in str(a):
        o = ord(ch)
        if ch in " %\t\r\n" or o < 0x20 or o == 0x7f:
            out.append("%%%02X" % o)
        else:
            out.append(ch)
    return "".join(out)


class TruthClient:
    """Requests to one guest's truth agent, over the unix socket `sock_path`
    (serialised by `lock_path`); `name` names the guest in errors."""

    def __init__(self, sock_path: Union[str, Path], lock_path: Union[str, Path], name: str) -> None:
        self.sock_path = Path(sock_path)
        self.lock_path = Path(lock_path)
        self.name = name

    @contextmanager
    def _conn(self, timeout: float) -> Iterator[tuple]:
        with _flock(self.lock_path):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(min(timeout, 10.0))
                s.connect(str(self.sock_path))
                rd = LineReader(s)
                self._sync(s, rd, time.monotonic() + timeout)
                yield s, rd
            finally:
                s.close()

    def _sync(self, s: socket.socket, rd: LineReader, deadline: float) -> None:
        """Get in step with the agent: send 'ping NONCE' and read until every
        ping it has answered is accounted for. Anything before is discarded
        (e.g. the tail of an earlier, interrupted answer). Pings sent before
        the agent opened its port are lost, so they are re-sent (with a new
        nonce, after a growing wait, or at once when the agent says READY);
        once one is answered, all later ones will be too (in order)."""
        sent: list = []
        wait = 0.5

        def ping() -> None:
            nonce = secrets.token_hex(6)
            sent.append(f"PONG {nonce}".encode())
            s.sendall(f"\nping {nonce}\n".encode())

        ping()
        until = min(deadline, time.monotonic() + wait)
        answered = False
        while True:
            try:
                line = rd.readline(until)
            except socket.timeout:
                if time.monotonic() >= deadline:
                    raise TruthError(f"guest {self.name}: the truth agent does not answer") from None
                if not answered:
                    wait = min(wait * 2, 8.0)
                    ping()
                until = min(deadline, time.monotonic() + wait)
                continue
            if line in sent:
                del sent[: sent.index(line) + 1]
                if not sent:
                    return
                answered = True
                until = deadline
            elif line.startswith(b"READY"):
                sent.clear()   # the agent (re)started: earlier pings may be lost
                answered = False
                ping()
                until = min(deadline, time.monotonic() + wait)

    def request_line(self, cmd: str, timeout: float) -> str:
        """Send cmd, return its one-line answer (the agent's PONG and READY
        lines are not answers)."""
        with self._conn(timeout) as (s, rd):
            s.sendall(cmd.encode("utf-8", "surrogateescape") + b"\n")
            deadline = time.monotonic() + timeout
            while True:
                line = rd.readline(deadline).decode("utf-8", "replace")
                if line.startswith(("PONG", "READY")) or not line.strip():
                    continue
                return line

    def request_framed(self, cmd: str, timeout: float) -> bytes:
        """Send cmd, return the body of its BEGIN/END (or BEGINZ, zlib
        compressed) framed answer."""
        with self._conn(min(timeout, 60.0)) as (s, rd):
            s.sendall(cmd.encode("utf-8", "surrogateescape") + b"\n")
            deadline = time.monotonic() + timeout
            while True:
                line = rd.readline(deadline)
                m = re.fullmatch(rb"BEGIN(Z?) (\d+)(?: (\d+))?", line)
                if m and (m.group(1) == b"") == (m.group(3) is None):
                    break
                if line.startswith(b"ERR"):
                    raise TruthError(f"{cmd!r}: {line.decode(errors='replace')}")
            seq = m.group(2)
            if m.group(1):
                zdata = rd.read_exact(int(m.group(3)), deadline)
                end = rd.readline(deadline)
                try:
                    body = zlib.decompress(zdata)
                except zlib.error as e:
                    raise TruthError(f"{cmd!r}: corrupt compressed answer: {e}") from None
            else:
                body, end = rd.read_until_line(b"END " + seq + b" ", deadline)
            parts = end.split()
            if len(parts) != 3 or parts[:2] != [b"END", seq] or int(parts[2]) != len(body):
                raise TruthError(f"{cmd!r}: framing error: got {end[:80]!r} after {len(body)} bytes")
            return body

    def ping(self, timeout: float = 10.0) -> float:
        """Round trip to the truth agent; returns seconds."""
        t0 = time.monotonic()
        with self._conn(timeout):
            pass
        return time.monotonic() - t0

    def snapshot(self, tasks: bool = False, timeout: float = 180.0) -> Snapshot:
        """A ground-truth snapshot of the guest's /proc (see Snapshot).
        tasks=True adds per-thread rows (Proc.tasks)."""
        return parse_snapshot(self.snapshot_raw(tasks=tasks, timeout=timeout))

    def snapshot_raw(self, tasks: bool = False, timeout: float = 180.0, compress: bool = True) -> bytes:
        """The snapshot's JSON text as the agent made it (sent zlib
        compressed over the serial line unless compress=False)."""
        cmd = "snap" + (" tasks" if tasks else "") + (" z" if compress else "")
        return self.request_framed(cmd, timeout)

    def run(self, prog: str, *args: Any, timeout: float = 30.0) -> int:
        """Start a workload in the guest, detached (setsid, stdio on
        /dev/null, reparented to init); returns its pid. prog is looked up
        in the guest's PATH (/bin has hog, burn, threads, swarm, churn, idle
        and busybox applets)."""
        line = " ".join(_quote_arg(a) for a in (prog, *args) if str(a) != "")
        ans = self.request_line("run " + line, timeout)
        if not ans.startswith("OK "):
            raise TruthError(f"run {prog} {' '.join(map(str, args))}: {ans}")
        return int(ans.split()[1])

    def kill(self, pid: int, sig: int = signal.SIGKILL, group: bool = False, timeout: float = 30.0) -> None:
        """Send a signal in the guest (group=True: to the process group,
        which for run() workloads is the workload and all its children)."""
        target = -abs(pid) if group else pid
        ans = self.request_line(f"kill {target} {int(sig)}", timeout)
        if ans != "OK":
            raise TruthError(f"kill {target} {sig}: {ans}")

    def sh(self, command: str, timeout: float = 90.0, check: bool = False) -> tuple:
        """Run `sh -c command` in the guest (60 s limit there); returns
        (rc, output)."""
        try:
            body = self.request_framed("shz " + _quote_arg(command), timeout)
        except TruthError as e:
            if "unknown command" not in str(e):
                raise
            body = self.request_framed("sh " + _quote_arg(command), timeout)   # older agent
        d = json.loads(body.decode("utf-8", "surrogateescape"))
        if check and d["rc"] != 0:
            raise TruthError(f"guest command {command!r} failed rc={d['rc']}: {d['out']}")
        return d["rc"], d["out"]


"""A minimal QMP client: one connection per command, so that several
processes (pytest, the CLI, a human) can drive the same QEMU without
sharing a session; a lock file serialises them because QEMU serves one QMP
client per socket at a time."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any, Optional, Union

from .errors import QMPError
from .paths import _flock
from .wire import LineReader

__all__ = ["QmpClient", "qmp_result"]

HANDSHAKE_TIMEOUT = 10.0   # greeting and qmp_capabilities, whatever the command's timeout


def qmp_result(cmd: str, obj: dict) -> Any:
    """The "return" value of a QMP answer, QMPError for an "error" one.
    Shared with lab/libvirt.py, which gets the same JSON through virsh."""
    if "error" in obj:
        e = obj["error"]
        raise QMPError(f"QMP {cmd}: {e.get('class')}: {e.get('desc')}")
    return obj.get("return")


class QmpClient:
    """QMP over the unix socket `sock_path`, serialised by `lock_path`."""

    def __init__(self, sock_path: Union[str, Path], lock_path: Union[str, Path]) -> None:
        self.sock_path = Path(sock_path)
        self.lock_path = Path(lock_path)
        self._id = 0

    def execute(self, cmd: str, args: Optional[dict] = None, timeout: Optional[float] = 60.0) -> Any:
        """Run one command and return its "return" value (QMPError on an
        "error" answer). timeout=None waits forever for the answer (the
        handshake still gives up after HANDSHAKE_TIMEOUT)."""
        with _flock(self.lock_path):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(10.0)
                s.connect(str(self.sock_path))
                rd = LineReader(s)
                deadline = None if timeout is None else time.monotonic() + timeout
                hs_deadline = time.monotonic() + HANDSHAKE_TIMEOUT
                if deadline is not None:
                    hs_deadline = min(deadline, hs_deadline)
                greeting = json.loads(rd.readline(hs_deadline))
                if "QMP" not in greeting:
                    raise QMPError(f"unexpected QMP greeting {greeting!r}")
                self._send(s, "qmp_capabilities", {})
                self._recv(rd, hs_deadline, "qmp_capabilities")
                self._send(s, cmd, args or {})
                return self._recv(rd, deadline, cmd)
            finally:
                s.close()

    def _send(self, s: socket.socket, cmd: str, args: dict) -> None:
        self._id += 1
        msg: dict = {"execute": cmd, "id": self._id}
        if args:
            msg["arguments"] = args
        s.settimeout(10.0)
        s.sendall(json.dumps(msg).encode() + b"\n")

    def _recv(self, rd: LineReader, deadline: Optional[float], cmd: str) -> Any:
        """Skip blank lines and asynchronous events up to the answer."""
        while True:
            line = rd.readline(deadline)
            if not line.strip():
                continue
            obj = json.loads(line)
            if "event" in obj:
                continue
            if "error" in obj or "return" in obj:
                return qmp_result(cmd, obj)

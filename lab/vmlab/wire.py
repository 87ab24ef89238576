"""Line-oriented reading from a unix socket with one deadline per request:
what both of QEMU's sockets the lab talks to (QMP, the truth agent's
serial line) need, and what socket.makefile() cannot do (a deadline
across many reads, exact byte counts, scanning for a marker line)."""

from __future__ import annotations

import socket
import time
from typing import Optional

__all__ = ["LineReader"]


class LineReader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self, deadline: Optional[float]) -> None:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.sock.settimeout(left)
        else:
            self.sock.settimeout(None)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed")
        self.buf += data

    def readline(self, deadline: Optional[float]) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 1]
                return line.rstrip(b"\r")
            self._fill(deadline)

    def read_exact(self, n: int, deadline: Optional[float]) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until_line(self, prefix: bytes, deadline: Optional[float]) -> tuple:
        """Read everything up to a line starting with `prefix`; returns
        (body_bytes, that_line)."""
        pat = b"\n" + prefix
        search_from = 0
        while True:
            if self.buf.startswith(prefix):
                i = 0
            else:
                k = self.buf.find(pat, search_from)
                i = k + 1 if k >= 0 else -1
            if i >= 0:
                j = self.buf.find(b"\n", i)
                if j >= 0:
                    body = bytes(self.buf[:i])
                    line = bytes(self.buf[i:j]).rstrip(b"\r")
                    del self.buf[: j + 1]
                    return body, line
                search_from = max(0, i - 1)
            else:
                search_from = max(0, len(self.buf) - len(pat))
            self._fill(deadline)


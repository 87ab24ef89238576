"""Host processes: is a pid still the process we started, the registry of
what this process owns (and must stop at its exit), and the signal and
parent-death plumbing that makes that cleanup happen even when the process
is terminated."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import Any, Optional

__all__ = ["OwnedRegistry", "install_signal_handlers"]


def _proc_state(pid: int) -> Optional[str]:
    """State letter of a live process, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read().decode("ascii", "replace")
        return s[s.rindex(")") + 2]
    except (OSError, ValueError, IndexError):
        return None


def _proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _pid_alive(pid: Optional[int], must_contain: Optional[str] = None) -> bool:
    """pid is a live process (not a zombie) and, if must_contain is given,
    its command line holds that string: a pid read from a file may have
    been reused by an unrelated process since."""
    if not pid or pid <= 0:
        return False
    st = _proc_state(pid)
    if st is None or st in "ZXx":
        return False
    if must_contain and must_contain not in _proc_cmdline(pid):
        return False   # pid reused by something else
    return True


class OwnedRegistry:
    """name -> object (a Guest, a libvirt Domain) started and owned by this
    process. Everything still registered is shut down at exit (atexit), so
    a test run or a script never leaves guests behind; detach() takes an
    object out when it must outlive us (the CLI's `boot`). One instance per
    kind of object, each with its own atexit hook: registered later, run
    earlier (libvirt domains before plain guests)."""

    def __init__(self, label: str) -> None:
        self._items: dict = {}
        self._lock = threading.RLock()
        self._label = label          # e.g. "vmlab: cleanup of", for the message at exit
        atexit.register(self.cleanup)

    def add(self, name: str, obj: Any) -> None:
        with self._lock:
            self._items[name] = obj

    def discard(self, name: str, obj: Any) -> None:
        """Forget `name` if it is still `obj` (not a later object of the same name)."""
        with self._lock:
            if self._items.get(name) is obj:
                del self._items[name]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def values(self) -> list:
        with self._lock:
            return list(self._items.values())

    def cleanup(self) -> None:
        """shutdown() everything still owned; best effort (runs at exit)."""
        for obj in self.values():
            try:
                obj.shutdown()
            except Exception as e:  # noqa: BLE001 - best effort at exit
                print(f"{self._label} {obj.name} failed: {e}", file=sys.stderr)


def install_signal_handlers(exc: type = SystemExit) -> None:
    """Make SIGTERM/SIGHUP raise `exc` (SystemExit for scripts,
    KeyboardInterrupt under pytest) so that atexit/finalizers shut the
    guests down."""
    def handler(signum: int, frame: Any) -> None:
        raise exc(128 + signum) if exc is SystemExit else exc()
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


_prctl = None


def _load_prctl() -> Any:
    """libc's prctl, loaded in the parent (the child must not import)."""
    global _prctl
    if _prctl is None:
        try:
            import ctypes
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except Exception:  # noqa: BLE001
            _prctl = False
    return _prctl


def _pdeathsig_preexec(parent: int, prctl: Any) -> Any:
    def preexec() -> None:
        # In the child between fork and exec: have the kernel SIGTERM QEMU
        # when the process that booted it dies (even by SIGKILL).
        if prctl:
            prctl(1, int(signal.SIGTERM), 0, 0, 0)   # PR_SET_PDEATHSIG
            if os.getppid() != parent:                # parent already gone
                os._exit(1)
    return preexec



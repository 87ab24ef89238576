"""Where the lab keeps things (cache, per-guest state, RAM files), which host
binaries it uses, and small file helpers shared by every other module."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

from .errors import LabError

LAB_SRC = Path(__file__).resolve().parent.parent   # <repo>/lab (this package is lab/vmlab/)
REPO = LAB_SRC.parent
GUEST_SRC = LAB_SRC / "guest"
SHM_PREFIX = "/dev/shm/vmwatch-lab-"


def cache_dir() -> Path:
    """${XDG_CACHE_HOME:-~/.cache}/vmwatch"""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vmwatch"


def kernels_dir() -> Path:
    return cache_dir() / "kernels"


def lab_root() -> Path:
    """Where guests' state dirs live: $VMWATCH_LAB_DIR, else
    $XDG_RUNTIME_DIR/vmwatch-lab, else /run/vmwatch-lab."""
    if os.environ.get("VMWATCH_LAB_DIR"):
        return Path(os.environ["VMWATCH_LAB_DIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "vmwatch-lab"
    return Path("/run/vmwatch-lab")


def host_tool(env: str, name: str, missing: str) -> str:
    """The host program `name`, or the one $env names (to test another
    build); LabError(missing) if there is none."""
    path = os.environ.get(env) or shutil.which(name)
    if not path:
        raise LabError(missing)
    return path


def qemu_binary() -> str:
    return host_tool("VMWATCH_QEMU", "qemu-system-x86_64",
                     "qemu-system-x86_64 not found: apt-get install qemu-system-x86")


_thread_locks: dict = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def _flock(path: Union[str, Path]) -> Iterator[None]:
    """Exclusive lock across processes (flock) and threads."""
    path = str(path)
    with _thread_locks_guard:
        tl = _thread_locks.setdefault(path, threading.RLock())
    with tl:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix="." + path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _tail(path: Union[str, Path], nbytes: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def parse_mem(mem: Union[str, int]) -> int:
    """'512M', '5G', '5GiB', 1024 (MiB) -> MiB."""
    if isinstance(mem, int):
        return mem
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(mem))
    if not m:
        raise ValueError(f"bad memory size {mem!r}")
    n, unit = int(m.group(1)), (m.group(2) or "M").upper()
    mib = {"K": n / 1024, "M": n, "G": n * 1024, "T": n * 1024 * 1024}[unit]
    if mib != int(mib) or mib <= 0:
        raise ValueError(f"memory size {mem!r} is not a positive whole number of MiB")
    return int(mib)

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"bad guest name {name!r}: use [A-Za-z0-9_.-], at most 48 chars")
    return name


"""All the lab's guests at once: list them, stop them, and collect what dead
ones left behind (state dirs, RAM files in /dev/shm): a guest whose owner
was SIGKILLed cannot clean up after itself, so every boot runs gc_stale()."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from .guest import Guest
from .paths import lab_root
from .procs import _proc_cmdline

__all__ = ["list_guests", "gc_stale", "stop_all"]


def list_guests() -> list:
    """Guest objects for every state dir under lab_root()."""
    root = lab_root()
    out = []
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if d.is_dir():
                g = Guest.attach(d.name, missing_ok=True)
                if g is not None:
                    out.append(g)
    return out


def _shm_in_use(path: str) -> bool:
    for d in os.listdir("/proc"):
        if d.isdigit() and path in _proc_cmdline(int(d)):
            return True
    return False


def gc_stale(min_age: float = 30.0) -> list:
    """Remove state dirs whose QEMU is gone and /dev/shm/vmwatch-lab-* files
    that no process uses (older than min_age seconds). Returns what was
    removed."""
    removed = []
    now = time.time()
    root = lab_root()
    names = set()
    if root.is_dir():
        for d in root.iterdir():
            if not d.is_dir():
                continue
            names.add(d.name)
            try:
                age = now - d.stat().st_mtime
            except OSError:
                continue
            if age < min_age:
                continue
            g = Guest.attach(d.name, missing_ok=True)
            if g is None:
                if not any(d.iterdir()) or not (d / "config.json").exists():
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(str(d))
                continue
            if not g.alive():
                g.shutdown()
                removed.append(str(d))
    for f in Path("/dev/shm").glob("vmwatch-lab-*"):
        try:
            age = now - f.stat().st_mtime
        except OSError:
            continue
        name = f.name[len("vmwatch-lab-"):]
        if age < min_age or (name in names and (root / name).exists()):
            continue
        if not _shm_in_use(str(f)):
            try:
                f.unlink()
                removed.append(str(f))
            except OSError:
                pass
    return removed


def stop_all() -> list:
    """Stop every lab guest under lab_root() and remove their RAM files (and
    any leftover /dev/shm/vmwatch-lab-* not used by a process)."""
    stopped = []
    for g in list_guests():
        g.shutdown()
        stopped.append(g.name)
    root = lab_root()
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and not (d / "config.json").exists():
                shutil.rmtree(d, ignore_errors=True)
    gc_stale(min_age=0)
    return stopped

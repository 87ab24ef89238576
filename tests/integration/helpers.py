"""Shared helpers for vmwatch's integration tests (see conftest.py)."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any, Callable, Optional


def wait_until(pred: Callable[[], Any], timeout: float = 30.0, interval: float = 0.25,
               what: str = "condition") -> Any:
    """Call pred() until it returns a truthy value (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)


def cpu_share(snap_a, snap_b, pid: int) -> float:
    """Fraction of one CPU that pid used between two snapshots (utime+stime
    ticks over the guest's elapsed time)."""
    a, b = snap_a.procs[pid], snap_b.procs[pid]
    ticks = (b.utime + b.stime) - (a.utime + a.stime)
    secs = (snap_b.t_start_ns - snap_a.t_start_ns) / 1e9
    return ticks / snap_a.clk_tck / secs if secs > 0 else 0.0


def procs_by_comm(snap, comm: str) -> list:
    return [p for p in snap.procs.values() if p.comm == comm]


def run_vmwatch(binary, *args: str, timeout: float = 120.0, check: bool = True,
                json_out: bool = False) -> Any:
    """Run the vmwatch binary; returns CompletedProcess (or parsed JSON stdout)."""
    r = subprocess.run([str(binary), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"vmwatch {' '.join(map(str, args))} failed rc={r.returncode}:\n{r.stderr}")
    return json.loads(r.stdout) if json_out else r


def kib(mib: float) -> int:
    return int(mib * 1024)


def first(items: list, what: Optional[str] = None):
    assert items, f"no {what or 'item'} found"
    return items[0]

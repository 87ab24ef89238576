"""Ground-truth snapshots: the JSON the in-guest agent (vmw-truth) makes of
the guest's /proc, parsed into objects the tests compare vmwatch against.
See lab/README.md for the format."""

from __future__ import annotations

import json
import os
from typing import Optional, Union

__all__ = ["Snapshot", "Proc", "Task", "parse_snapshot"]


class Task:
    """One thread (/proc/PID/task/TID) of a snapshot taken with tasks=True."""

    def __init__(self, d: dict) -> None:
        self.raw = d
        self.__dict__.update(d)

    tid: int
    comm: str
    state: str
    utime: int
    stime: int

    def __repr__(self) -> str:
        return f"Task(tid={self.raw.get('tid')}, comm={self.raw.get('comm')!r}, state={self.raw.get('state')})"


class Proc:
    """One process of a snapshot. Attributes: every key of the agent's JSON
    object (pid, ppid, pgrp, session, tty_nr, tpgid, flags, kthread, state, comm,
    utime, stime, cutime, cstime, priority, nice, num_threads, starttime,
    vsize (bytes), rss (pages), processor, policy, rt_priority, minflt,
    majflt, the "<n> kB" lines of /proc/PID/status (VmRSS, RssAnon, RssFile,
    RssShmem, VmSwap, VmSize, VmHWM, ...; 0 when absent, e.g. kernel
    threads), voluntary_ctxt_switches, nonvoluntary_ctxt_switches, cmdline
    (list of str)), plus uid/euid/suid/fsuid, gid/egid/sgid/fsgid (ints),
    uids/gids (the 4-element lists) and tasks (list of Task or None)."""

    _KB_DEFAULTS = ("VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon", "RssFile",
                    "RssShmem", "VmData", "VmStk", "VmExe", "VmLib", "VmPTE", "VmSwap")

    def __init__(self, d: dict) -> None:
        self.raw = d
        for k in self._KB_DEFAULTS:
            setattr(self, k, 0)
        self.tasks = None
        self.io = None            # /proc/PID/io as a dict, when the agent could read it
        self.cgroup = None        # /proc/PID/cgroup's text
        self.__dict__.update(d)
        uids = d.get("uid", [0, 0, 0, 0])
        gids = d.get("gid", [0, 0, 0, 0])
        self.uids, self.gids = list(uids), list(gids)
        self.uid, self.euid, self.suid, self.fsuid = uids
        self.gid, self.egid, self.sgid, self.fsgid = gids
        if d.get("tasks") is not None:
            self.tasks = [Task(t) for t in d["tasks"]]

    pid: int
    ppid: int
    comm: str
    state: str
    cmdline: list
    num_threads: int
    utime: int
    stime: int
    starttime: int
    vsize: int

    @property
    def cpu_ticks(self) -> int:
        return self.utime + self.stime

    def __repr__(self) -> str:
        return (f"Proc(pid={self.pid}, ppid={self.ppid}, comm={self.comm!r}, state={self.state}, "
                f"threads={self.num_threads}, VmRSS={self.VmRSS})")


def _parse_kv_kb(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            parts = v.split()
            if parts:
                try:
                    out[k.strip()] = int(parts[0])
                except ValueError:
                    pass
    return out


class Snapshot:
    """A parsed ground-truth snapshot of the guest's /proc.

    procs    dict pid -> Proc
    meminfo  dict name -> int (kB, or a count for HugePages_*)
    loadavg, stat, uptime, vmstat   the raw text of those /proc files
    clk_tck, page_size, agent_pid, release (uname -r), seq,
    t_start_ns, t_end_ns (CLOCK_BOOTTIME around the /proc walk), raw (the JSON)
    """

    def __init__(self, d: dict) -> None:
        self.raw = d
        self.seq = d.get("seq")
        self.clk_tck = d["clk_tck"]
        self.page_size = d.get("page_size", 4096)
        self.agent_pid = d.get("agent_pid")
        self.release = d.get("release")
        self.kversion = d.get("kversion")
        self.t_start_ns = d.get("t_start_ns")
        self.t_end_ns = d.get("t_end_ns")
        self.has_tasks = bool(d.get("tasks"))
        self.uptime = d.get("uptime") or ""
        self.loadavg = d.get("loadavg") or ""
        self.stat = d.get("stat") or ""
        self.vmstat = d.get("vmstat") or ""
        self.meminfo_text = d.get("meminfo") or ""
        self.meminfo = _parse_kv_kb(self.meminfo_text)
        self.procs = {p["pid"]: Proc(p) for p in d["procs"]}

    @property
    def uptime_seconds(self) -> float:
        return float(self.uptime.split()[0])

    def stat_values(self) -> dict:
        """/proc/stat as dict: 'cpu' -> [ticks...], 'processes' -> int, ..."""
        out: dict = {}
        for line in self.stat.splitlines():
            parts = line.split()
            if not parts:
                continue
            vals = [int(x) for x in parts[1:] if x.lstrip("-").isdigit()]
            out[parts[0]] = vals[0] if len(vals) == 1 else vals
        return out

    def vmstat_values(self) -> dict:
        out = {}
        for line in self.vmstat.splitlines():
            parts = line.split()
            if len(parts) == 2:
                out[parts[0]] = int(parts[1])
        return out

    def find(self, comm: Optional[str] = None, argv0: Optional[str] = None) -> list:
        """Processes whose comm (and/or basename of cmdline[0]) match."""
        out = []
        for p in self.procs.values():
            if comm is not None and p.comm != comm:
                continue
            if argv0 is not None and (not p.cmdline or os.path.basename(p.cmdline[0]) != argv0):
                continue
            out.append(p)
        return sorted(out, key=lambda p: p.pid)

    def children(self, pid: int) -> list:
        return sorted((p for p in self.procs.values() if p.ppid == pid), key=lambda p: p.pid)

    def descendants(self, pid: int) -> list:
        kids: dict = {}
        for p in self.procs.values():
            kids.setdefault(p.ppid, []).append(p)
        out, todo = [], [pid]
        while todo:
            for c in kids.get(todo.pop(), []):
                out.append(c)
                todo.append(c.pid)
        return sorted(out, key=lambda p: p.pid)

    def user_procs(self) -> list:
        return sorted((p for p in self.procs.values() if not p.kthread), key=lambda p: p.pid)

    def __len__(self) -> int:
        return len(self.procs)

    def __repr__(self) -> str:
        return f"Snapshot(seq={self.seq}, procs={len(self.procs)}, release={self.release!r})"


def parse_snapshot(body: Union[bytes, str]) -> Snapshot:
    """Parse the JSON text between BEGIN and END (bytes are decoded as UTF-8
    with surrogateescape: raw non-UTF-8 bytes of comm/cmdline survive)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "surrogateescape")
    return Snapshot(json.loads(body))


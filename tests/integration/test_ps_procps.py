"""vmwatch ps with procps' options and formulas, against the guest (issue 14).

`vmwatch ps -o pid,user,pcpu,pmem,etime,args --sort=-pcpu` is compared field
by field with the guest itself: USER and COMMAND with the guest's own
`busybox ps -o pid,user,args` (busybox has no %CPU, %MEM or ELAPSED), and
%CPU, %MEM, ELAPSED with procps' formulas applied to the guest's /proc as the
truth agent reads it (procps 4, ps/output.c: pr_pcpu, pr_pmem, pr_etime):
  %CPU    = (utime + stime ticks) * 1000 / HZ / int(uptime - starttime / HZ), in tenths
  %MEM    = VmRSS * 1000 / MemTotal, in tenths
  ELAPSED = int(uptime - starttime / HZ) as [[DD-]hh:]mm:ss
The guest is paused while vmwatch reads it, between two truth snapshots; a
value must lie between what the two snapshots give.
"""
import json
import re
import subprocess
import time

import pytest

from test_ps import worker_base

G61 = dict(kernel="6.1", mem="512M", machine="pc", backing="shm")   # shared with test_ps.py
HZ = 100
COLS = "pid,user,pcpu,pmem,etime,args"


@pytest.fixture(scope="module")
def g(guest):
    """The shared 6.1 guest running a CPU burner, a memory hog and a process of uid 1000."""
    g = guest(**G61)
    pids = [g.run("burn", "40"), g.run("hog", "32"), g.run("runas", "1000:1000", "idle", "pkgidle")]
    g.wait_for(lambda s: s.find(argv0="burn") and s.find(argv0="hog") and s.find(comm="pkgidle"),
               timeout=120, interval=1)
    # Let the burner run a while so that its lifetime %CPU is well above 0.
    g.wait_for(lambda s: any(p.utime + p.stime >= 300 for p in s.find(argv0="burn")), timeout=120,
               interval=1)
    yield g
    for pid in pids:
        g.kill(pid, group=True)


def vmwatch_ps(vmwatch, g, *args, check=True):
    r = subprocess.run([str(vmwatch), "ps", *args, f"file:{g.ram_path}"], capture_output=True,
                       text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def procps_elapsed(snap, p):
    up_cs = round(snap.uptime_seconds * 100)
    return max(up_cs - p.starttime, 0) // 100


def procps_pcpu(snap, p):
    secs = procps_elapsed(snap, p)
    return (p.utime + p.stime) * 1000 // HZ // secs if secs else 0


def pcpu_bounds(before, b, after, a):
    sb, sa = procps_elapsed(before, b), procps_elapsed(after, a)
    tb, ta = max(b.utime + b.stime - 1, 0), a.utime + a.stime + 1
    lo = tb * 1000 // HZ // sa if sa else 0
    hi = ta * 1000 // HZ // sb if sb else (ta * 1000 // HZ // sa if sa else 0)
    return min(lo, 999), hi


def procps_pmem(snap, p):
    return min(p.VmRSS * 1000 // snap.meminfo["MemTotal"], 999)


def tenths(text):
    """'12.3' -> 123; procps prints no decimal above 99.9: '123' -> 1230."""
    if "." in text:
        a, b = text.split(".")
        return int(a) * 10 + int(b)
    return int(text) * 10


def etime_seconds(text):
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d\d):)?(\d\d):(\d\d)", text)
    assert m, f"ELAPSED {text!r} is not [[DD-]hh:]mm:ss"
    d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    assert (d == 0 or m.group(2)) and mi < 60 and s < 60 and h < 24, text
    return ((d * 24 + h) * 60 + mi) * 60 + s


def busybox_ps(g):
    rc, out = g.sh("busybox ps -o pid,user,args", check=True)
    rows = {}
    for line in out.splitlines()[1:]:
        f = line.split(None, 2)
        if len(f) >= 2 and f[0].isdigit():
            rows[int(f[0])] = (f[1], f[2] if len(f) > 2 else "")
    return rows


def busybox_agrees(bb_args, want, p):
    """busybox ps prints the same COMMAND but for its own habits: comm cut
    to 15 bytes, and "{comm} " before a command line whose argv[0] differs."""
    short = p.comm[:15]
    if not p.cmdline and p.comm.startswith("kworker/"):   # its work item changes
        return bb_args.startswith("[") and worker_base(bb_args[1:-1]) == worker_base(short)
    if not p.cmdline:
        return bb_args == f"[{short}]"
    return bb_args in (want, f"{{{short}}} {want}")


def test_ps_o_sort_pcpu_matches_the_guest_field_by_field(g, vmwatch):
    bb = busybox_ps(g)
    before = g.truth()
    with g.paused():
        r = vmwatch_ps(vmwatch, g, "-o", COLS, "--sort=-pcpu")
    after = g.truth()

    lines = r.stdout.splitlines()
    assert lines[0].split() == ["PID", "USER", "%CPU", "%MEM", "ELAPSED", "COMMAND"]
    rows = [line.split(None, 5) for line in lines[1:]]
    pcpus = [tenths(f[2]) for f in rows]
    assert pcpus == sorted(pcpus, reverse=True), "not sorted by --sort=-pcpu"

    mismatches, judged = [], 0
    for f in rows:
        pid, user, pcpu, pmem, etime, args = int(f[0]), f[1], tenths(f[2]), tenths(f[3]), f[4], f[5] if len(f) > 5 else ""
        b, a = before.procs.get(pid), after.procs.get(pid)
        if b is None or a is None or b.starttime != a.starttime or pid == before.agent_pid:
            continue
        judged += 1
        # %CPU is not monotonic in time (whole seconds in the divisor): bound
        # it by the CPU ticks and seconds of the two snapshots (ticks +-1).
        lo, hi = pcpu_bounds(before, b, after, a)
        if not lo <= pcpu <= hi:
            mismatches.append(f"{pid} {b.comm} %CPU: guest {lo / 10}..{hi / 10}, vmwatch {f[2]}")
        if b.VmRSS == a.VmRSS and pmem != procps_pmem(before, b):
            mismatches.append(f"{pid} {b.comm} %MEM: guest {procps_pmem(before, b) / 10}, vmwatch {f[3]}")
        if not procps_elapsed(before, b) <= etime_seconds(etime) <= procps_elapsed(after, a):
            mismatches.append(f"{pid} {b.comm} ELAPSED: guest {procps_elapsed(before, b)}.."
                              f"{procps_elapsed(after, a)} s, vmwatch {etime}")
        # USER: the uid today; the guest's user name once names are resolved.
        if pid in bb and user not in (str(b.euid), bb[pid][0]):
            mismatches.append(f"{pid} {b.comm} USER: guest {bb[pid][0]} (uid {b.euid}), vmwatch {user}")
        # COMMAND as procps prints it: the command line, or [comm] without one.
        want = " ".join(b.cmdline) if b.cmdline else f"[{b.comm}]"
        same = args == want or (not b.cmdline and worker_base(args[1:-1]) == worker_base(b.comm))
        if b.cmdline == a.cmdline and b.comm == a.comm and not same:
            mismatches.append(f"{pid} {b.comm} COMMAND: guest {want!r}, vmwatch {args!r}")
        if pid in bb and not busybox_agrees(bb[pid][1], want, b):
            mismatches.append(f"{pid} {b.comm} COMMAND: busybox {bb[pid][1]!r}, procps {want!r}")
    assert not mismatches, "\n".join(mismatches[:40])
    assert judged >= 0.9 * len(before.procs), (judged, len(before.procs))
    burner = before.find(argv0="burn")[0]
    top = [int(f[0]) for f in rows[:3]]
    assert burner.pid in top, (burner.pid, rows[:5])
    assert tenths(next(f for f in rows if int(f[0]) == burner.pid)[2]) >= 10   # >= 1.0 %


def test_ps_selection_options(g, vmwatch):
    snap = g.truth()
    burner = snap.find(argv0="burn")[0]
    idle = snap.find(comm="pkgidle")[0]

    r = vmwatch_ps(vmwatch, g, "-C", "burn,pkgidle", "-o", "pid,comm")
    assert sorted(int(line.split()[0]) for line in r.stdout.splitlines()[1:]) == sorted(
        p.pid for p in snap.procs.values() if p.comm in ("burn", "pkgidle"))

    r = vmwatch_ps(vmwatch, g, "-u", "1000", "-o", "pid,uid,ruid,user")
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert idle.pid in {int(f[0]) for f in rows}
    assert {int(f[0]) for f in rows} == {p.pid for p in snap.procs.values() if p.euid == 1000}
    assert all(f[1] == "1000" and f[2] == "1000" for f in rows), rows

    r = vmwatch_ps(vmwatch, g, "-p", f"1,{burner.pid}", "--no-headers", "-o", "pid=,ppid=,comm=")
    rows = [line.split() for line in r.stdout.splitlines()]
    assert [int(f[0]) for f in rows] == [1, burner.pid], r.stdout
    assert rows[1][1:] == [str(burner.ppid), "burn"]

    # Selections add up, as in procps.
    r = vmwatch_ps(vmwatch, g, "-p", "1", "-C", "burn", "-o", "pid", "--no-headers")
    assert sorted(map(int, r.stdout.split())) == sorted([1] + [p.pid for p in snap.find(comm="burn")])

    # -o pid=ID renames; several -o add up.
    r = vmwatch_ps(vmwatch, g, "-p", "1", "-o", "pid=ID", "-o", "stat,nlwp,rss,vsz,time,start,stime,etimes,comm")
    assert r.stdout.splitlines()[0].split() == ["ID", "STAT", "NLWP", "RSS", "VSZ", "TIME", "STARTED",
                                                "STIME", "ELAPSED", "COMMAND"]
    f = r.stdout.splitlines()[1].split()
    p1 = snap.procs[1]
    assert f[0] == "1" and f[1][0] == p1.state and f[2] == str(p1.num_threads) and f[9] == p1.comm
    # TIME; STARTED hh:mm:ss (within 24 h) and STIME hh:mm (today) of btime + starttime.
    assert re.fullmatch(r"\d\d:\d\d:\d\d", f[5])
    started = time.localtime(snap.stat_values()["btime"] + p1.starttime // HZ)
    assert f[6] == time.strftime("%H:%M:%S", started) and f[7] == time.strftime("%H:%M", started), f
    assert int(f[8]) == procps_elapsed(snap, p1) or abs(int(f[8]) - procps_elapsed(snap, p1)) <= 2


def test_ps_forest_draws_the_guest_tree(g, vmwatch):
    snap = g.truth()
    r = vmwatch_ps(vmwatch, g, "--forest", "-o", "pid,ppid,args")
    lines = r.stdout.splitlines()[1:]
    seen, depth_of = set(), {}
    for line in lines:
        # PID and PPID are 7 wide: the command column starts at 16.
        pid, ppid, rest = int(line[:7]), int(line[8:15]), line[16:]
        m = re.match(r"((?:    )*) \\_ ", rest)
        depth = len(m.group(1)) // 4 + 1 if m else 0
        if ppid in depth_of:
            assert ppid in seen and depth == depth_of[ppid] + 1, line
        else:
            assert depth == 0, line
        depth_of[pid] = depth
        seen.add(pid)
    burner = snap.find(argv0="burn")[0]
    assert burner.pid in seen and depth_of[burner.pid] >= 1
    h = vmwatch_ps(vmwatch, g, "-H", "-o", "pid,comm", "-p", f"1,{burner.pid}")
    assert h.returncode == 0


def test_ps_bad_options_name_the_problem(g, vmwatch):
    r = vmwatch_ps(vmwatch, g, "-o", "pid,bogus", check=False)
    assert r.returncode == 2 and "unknown column 'bogus'" in r.stderr and not r.stdout
    r = vmwatch_ps(vmwatch, g, "--sort", "-nope", check=False)
    assert r.returncode == 2 and "unknown sort key 'nope'" in r.stderr
    r = vmwatch_ps(vmwatch, g, "-p", "12x", check=False)
    assert r.returncode == 2 and "bad process ID '12x'" in r.stderr


# ---- job control: SID, PGID, TPGID, TT and STAT's s and + (issue 14)

def procps_stat(p):
    """STAT as procps' pr_stat builds it from /proc/PID/stat (L aside:
    vmwatch does not read VmLck)."""
    return (p.state + ("<" if p.nice < 0 else "N" if p.nice > 0 else "")
            + ("s" if p.session == p.pid else "") + ("l" if p.num_threads > 1 else "")
            + ("+" if p.pgrp == p.tpgid else ""))


def tty_major_minor(tty_nr):
    return (tty_nr >> 8) & 0xfff, (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)


def test_ps_job_control_matches_the_guest(g, vmwatch):
    """Every process's SID, PGID, TPGID and STAT equal /proc/PID/stat fields
    5-8 as procps reads them, and busybox ps' own PGID, SID and TT
    (major,minor); a shell made the controlling process of tty2 (setsid -c)
    and its children are in its foreground group: Ss+ and S+."""
    g.sh("(setsid -c sh -c 'sleep 3003 & sleep 3004; :' </dev/tty2 >/dev/null 2>&1 &)", check=True)
    try:
        g.wait_for(lambda s: any(p.cmdline == ["sleep", "3004"] and p.tty_nr for p in s.procs.values()),
                   timeout=60, interval=0.5)
        rc, out = g.sh("busybox ps -o pid,pgid,sid,tty", check=True)
        bb = {int(f[0]): f[1:] for f in (line.split() for line in out.splitlines()[1:]) if f[0].isdigit()}
        before = g.truth()
        with g.paused():
            r = vmwatch_ps(vmwatch, g, "-o", "pid,sid,pgid,tpgid,tty,stat", "--no-headers")
        after = g.truth()
    finally:
        left = [str(p.pid) for p in g.truth().procs.values() if p.cmdline and p.cmdline[-1:] in
                (["3003"], ["3004"], ["sleep 3003 & sleep 3004; :"])]
        if left:
            g.sh(f"kill -9 {' '.join(left)} 2>/dev/null; true")
    rows = {int(f[0]): f[1:] for f in (line.split() for line in r.stdout.splitlines())}

    mismatches, judged, seen = [], 0, {}
    for pid, b in before.procs.items():
        a = after.procs.get(pid)
        if a is None or pid not in rows or a.starttime != b.starttime or pid == before.agent_pid:
            continue
        if any(getattr(b, k) != getattr(a, k) for k in ("pgrp", "session", "tty_nr", "tpgid", "state",
                                                        "nice", "num_threads")):
            continue   # changed across the bracket: not judged
        judged += 1
        sid, pgid, tpgid, tty, stat = rows[pid]
        seen[pid] = (b, tty, stat)
        want = procps_stat(b)
        # The state letter is judged by test_ps.py (it is the state at the
        # pause, which the snapshots around it need not have seen).
        if [int(sid), int(pgid), int(tpgid), stat[1:]] != [b.session, b.pgrp, b.tpgid, want[1:]]:
            mismatches.append(f"{pid} {b.comm}: guest {b.session} {b.pgrp} {b.tpgid} {want}, "
                              f"vmwatch {' '.join(rows[pid])}")
        if pid in bb:
            ma, mi = tty_major_minor(b.tty_nr)
            want_bb = [str(b.pgrp), str(b.session), f"{ma},{mi}" if b.tty_nr else "?"]
            # (busybox ran before the first snapshot: judged where it agrees with it)
            if bb[pid] == want_bb and [pgid, sid] != bb[pid][:2]:
                mismatches.append(f"{pid} {b.comm}: busybox ps {' '.join(bb[pid])}, vmwatch {' '.join(rows[pid])}")
        if (tty == "?") != (b.tty_nr == 0) or (tty_major_minor(b.tty_nr) == (4, 2) and tty != "tty2"):
            mismatches.append(f"{pid} {b.comm} TT: guest {tty_major_minor(b.tty_nr)}, vmwatch {tty}")
    assert not mismatches, "\n".join(mismatches[:40])
    assert judged >= 0.9 * len(before.procs), (judged, len(before.procs))
    on_tty = {b.cmdline[-1] if b.cmdline else b.comm: (tty, st[1:]) for b, tty, st in seen.values()
              if b.tty_nr}
    assert on_tty.get("sleep 3003 & sleep 3004; :") == ("tty2", "s+"), on_tty
    assert on_tty.get("3004") == ("tty2", "+") and on_tty.get("3003") == ("tty2", "+"), on_tty


PIDTYPE_PGID, PIDTYPE_SID = 2, 3   # enum pid_type (include/linux/pid.h)
JOB_KEYS = ("pgrp", "session", "tty_nr", "tpgid")


@pytest.mark.parametrize("attack", ["garbage", "user", "beyond-ram", "self"])
def test_ps_job_control_behind_hostile_pointers(g, vmwatch, attack):
    """A process whose signal->pids[PGID], pids[SID] and tty point at garbage,
    user space, beyond RAM, or at the signal_struct itself (a "tty" whose
    driver pointer is whatever lies there): vmwatch neither crashes nor
    reports a sanitizer error, shows its job control as unknown (null, "-")
    or as numbers a kernel can have, and every other process as before."""
    from test_hostile import attach, find_task, vmw
    burner = g.truth().find(argv0="burn")[0].pid
    m = attach(vmwatch, g)
    b = m.btf()
    off_tasks, off_pid = b.offset("task_struct", "tasks"), b.offset("task_struct", "pid")
    off = {"task_struct:tasks": off_tasks, "task_struct:pid": off_pid}
    pids, tty = b.offset("signal_struct", "pids"), b.offset("signal_struct", "tty")
    target = f"file:{g.ram_path}"
    try:
        with g.paused():
            _, clean, _ = vmw(vmwatch, "ps", "--json", "--no-cache", target, timeout=60)
            with m.patch():
                task = find_task(m, off, burner)
                sig = m.vu64(task + b.offset("task_struct", "signal"))
                bad = {"garbage": 0x4141414141414141, "user": 0x7FFF00001000,
                       "beyond-ram": m.page_offset_base + (64 << 30), "self": sig}[attack]
                m.vput_u64(sig + pids + 8 * PIDTYPE_PGID, bad)
                m.vput_u64(sig + pids + 8 * PIDTYPE_SID, bad)
                m.vput_u64(sig + tty, bad)
                rc, out, err = vmw(vmwatch, "ps", "--json", "--no-cache", target, timeout=60)
                assert rc == 0, err
                rc, text, err = vmw(vmwatch, "ps", "-o", "pid,sid,pgid,tpgid,tty,stat", "--no-cache", target,
                                    timeout=60)
                assert rc == 0, err
    finally:
        m.close()
    before = {p["pid"]: p for p in json.loads(clean)["processes"]}
    after = {p["pid"]: p for p in json.loads(out)["processes"]}
    p = after[burner]
    for k in ("pgrp", "session"):
        assert p[k] is None or 0 <= p[k] <= 4 << 20, (k, p[k])
    assert p["tty_nr"] is None or p["tpgid"] is None or p["tpgid"] >= -1, p
    if attack != "self":     # no struct pid, no tty there: unknown
        assert p["pgrp"] is None and p["session"] is None and p["tty_nr"] is None, p
        row = next(line.split() for line in text.splitlines()[1:] if line.split()[0] == str(burner))
        assert row[1:5] == ["-", "-", "-", "-"] and "s" not in row[5] and "+" not in row[5], row
    for pid, q in before.items():
        if pid != burner and pid in after:
            assert [after[pid][k] for k in JOB_KEYS] == [q[k] for k in JOB_KEYS], (pid, q["comm"])


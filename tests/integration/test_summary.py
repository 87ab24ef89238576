"""vmwatch summary against the guest's own /proc/uptime, /proc/loadavg,
/proc/meminfo and /proc/stat.

Method (as test_ps.py): a ground-truth snapshot, pause the guest, run vmwatch,
resume, a second snapshot. The guest's virtual clock stands still while it is
paused (TCG), so vmwatch sees one instant between the two snapshots:

  - a value equal in both snapshots must match exactly (memory, loadavg,
    nr_threads, last pid, btime, forks);
  - a counter (/proc/stat CPU ticks, ctxt, uptime) must lie inside the
    bracket [before, after]: counters only grow, and vmwatch's instant lies
    between the two reads;
  - idle and uptime additionally may trail the guest's real clock by the time
    the guest had been idle before the pause (see linux.h: the last tick or
    idle transition is the latest time stamp in memory). Whatever vmwatch
    misses there, the 'after' snapshot also counts, so it is bounded by the
    guest time between vmwatch's "now" and the after-read: per CPU, idle
    trails 'after' by at most that many ticks (+1 for rounding).

Guests have 2 vCPUs so that per-CPU lines and the idle bookkeeping of a
sleeping CPU next to a busy one are exercised.
"""
import os
import subprocess
import tempfile

import pytest

from helpers import run_vmwatch
from schemas import validate

CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest",
              "guest_nice")
MEMINFO = ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "SwapTotal",
           "SwapFree", "Shmem")
# Values that never change in these guests: judged in every round.
ALWAYS_STABLE = ("MemTotal", "SwapTotal", "SwapFree", "Buffers", "SwapCached")
ROUNDS = 4
# Values that move with the guest's activity (MemFree: per-CPU vmstat diffs
# are folded into the global counters about once a second, and the truth
# agent's own allocations move pages between the buddy and per-CPU lists):
# more rounds, up to MAX_ROUNDS, until each was stable across one pause.
MOVING = ("MemFree", "MemAvailable", "Cached", "Shmem", "loadavg", "nr_threads", "last_pid")
MAX_ROUNDS = 12
# Guest seconds between the last time stamp before the pause and the 'after'
# read: QMP stop/cont round trips and the truth agent's wake-up. Measured
# 0.00-0.06 s on an idle 2-core host; generous for a loaded one.
MAX_CLOCK_LAG_S = 1.0

G61 = dict(kernel="6.1", mem="512M", machine="pc", backing="shm", smp=2)
G612 = dict(kernel="6.12", mem="512M", machine="pc", backing="shm", smp=2)
# The 5-level-paging guest of test_ps.py (1 vCPU, memfd RAM), shared with it.
G612_LA57 = dict(kernel="6.12", mem="512M", machine="pc", backing="memfd", cpu="qemu64,+la57")


def cpu_lines(snap):
    """/proc/stat 'cpu', 'cpu0', ... -> list of the 10 tick counts."""
    out = {}
    for line in snap.stat.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("cpu"):
            out[parts[0]] = [int(x) for x in parts[1:11]]
    return out


MEMORY = dict(MemTotal="total_bytes", MemFree="free_bytes", MemAvailable="available_bytes",
              Buffers="buffers_bytes", Cached="cached_bytes", SwapCached="swap_cached_bytes",
              SwapTotal="swap_total_bytes", SwapFree="swap_free_bytes", Shmem="shmem_bytes")


def ns(seconds):
    """Seconds as printed (a double: exact to the nanosecond for these values) to ns."""
    return round(seconds * 1e9)


def ticks(cpu_seconds):
    """A cpu.seconds object to /proc/stat's 10 tick counts (nsec_to_clock_t, USER_HZ 100)."""
    return [ns(cpu_seconds[f]) // 10_000_000 for f in CPU_FIELDS]


def proc_view(out):
    """`vmwatch summary --json` (checked against docs/schemas/summary.json) in
    the guest's own terms: /proc/uptime's text, /proc/loadavg's fields,
    /proc/meminfo in kB and /proc/stat's tick counts."""
    validate("summary", out)
    s = out["summary"]
    up, idle = ns(s["uptime_seconds"]), ns(s["idle_seconds"])
    cpu = s["cpu"]
    return {
        "vm": out["vm"], "kernel": out["kernel"], "clock": s["clock"], "quality": s["quality"],
        "uptime": {"text": "%d.%02d %d.%02d" % (up // 10**9, up % 10**9 // 10**7, idle // 10**9,
                                                 idle % 10**9 // 10**7),
                   "uptime_ns": up, "idle_ns": idle},
        "loadavg": {"text": s["loadavg"], "avenrun": [round(x * 2048) for x in s["load"]],
                    "line": f'{s["loadavg"]} {s["nr_running"]}/{s["nr_threads"]} {s["last_pid"]}',
                    "nr_running": s["nr_running"], "nr_threads": s["nr_threads"], "last_pid": s["last_pid"]},
        "meminfo": {k: s["memory"][v] // 1024 for k, v in MEMORY.items()},
        "stat": {"cpu": ticks(cpu["seconds"]), "cpus": {f'cpu{c["cpu"]}': ticks(c["seconds"]) for c in cpu["per_cpu"]},
                 "btime": s["boot_time"], "ctxt": s["context_switches"], "processes": s["forks"],
                 "procs_running": s["procs_running"], "procs_blocked": s["procs_blocked"],
                 "ncpus": cpu["online"], "ncpus_possible": cpu["possible"]},
    }


def summary_json(vmwatch, *args):
    return proc_view(run_vmwatch(vmwatch, "summary", "--json", *args, json_out=True))


def summary_paused(g, vmwatch, target, *extra):
    before = g.truth()
    with g.paused():
        out = summary_json(vmwatch, *extra, target)
    after = g.truth()
    return before, out, after


class Judge:
    """Collects mismatches and what was judged over several rounds."""

    def __init__(self):
        self.mismatches = []
        self.judged = {}
        self.idle_lag_ticks = []
        self.uptime_lag_s = []

    def count(self, key):
        self.judged[key] = self.judged.get(key, 0) + 1

    def equal_if_stable(self, key, b, v, a):
        if b != a:
            return
        self.count(key)
        if v != b:
            self.mismatches.append(f"{key}: guest {b!r}, vmwatch {v!r}")

    def bracket(self, key, b, v, a, slack=0):
        self.count(key)
        if not (b - slack <= v <= a + slack):
            self.mismatches.append(f"{key}: guest {b}..{a}, vmwatch {v}")

    def round(self, before, out, after):
        # /proc/uptime: both fields are clocks read at vmwatch's "now".
        bu, au = [float(x) for x in before.uptime.split()], [float(x) for x in after.uptime.split()]
        vu = [float(x) for x in out["uptime"]["text"].split()]
        self.bracket("uptime", bu[0], vu[0], au[0])
        self.bracket("uptime.idle", bu[1], vu[1], au[1])
        lag = au[0] - vu[0]
        self.uptime_lag_s.append(lag)
        if lag > MAX_CLOCK_LAG_S:
            self.mismatches.append(f"uptime trails the guest by {lag:.2f} s")
        assert out["uptime"]["uptime_ns"] // 10_000_000 == round(vu[0] * 100)
        assert abs(out["clock"]["tick_ns"] - 4_000_000) < 40_000, "Debian kernels: HZ=250"
        assert out["clock"]["now_mono_ns"] >= out["clock"]["tk_mono_ns"]

        # /proc/loadavg
        bl, al = before.loadavg.split(), after.loadavg.split()
        vl = out["loadavg"]
        self.equal_if_stable("loadavg", " ".join(bl[:3]), vl["text"], " ".join(al[:3]))
        self.equal_if_stable("nr_threads", int(bl[3].split("/")[1]), vl["nr_threads"],
                             int(al[3].split("/")[1]))
        self.equal_if_stable("last_pid", int(bl[4]), vl["last_pid"], int(al[4]))
        assert vl["line"].startswith(vl["text"] + " ")
        # nr_running: the truth agent is itself running when it reads the file;
        # while paused it sleeps. Only consistency can be checked.
        assert 0 <= vl["nr_running"] <= vl["nr_threads"]
        assert vl["nr_running"] == out["stat"]["procs_running"]

        # /proc/meminfo
        for k in MEMINFO:
            self.equal_if_stable(k, before.meminfo[k], out["meminfo"][k], after.meminfo[k])

        # /proc/stat CPU lines: every field is a counter read at one instant.
        cb, ca = cpu_lines(before), cpu_lines(after)
        got = {"cpu": out["stat"]["cpu"], **out["stat"]["cpus"]}
        assert set(got) == set(cb) == set(ca), (sorted(got), sorted(cb))
        for cpu in cb:
            for i, f in enumerate(CPU_FIELDS):
                self.bracket(f"{cpu}.{f}", cb[cpu][i], got[cpu][i], ca[cpu][i])
            # What vmwatch's clock misses of a sleeping CPU's idle time, the
            # after-read counts too; it is at most the guest time in between.
            ncpu = len(cb) - 1 if cpu == "cpu" else 1
            lag_ticks = ca[cpu][3] - got[cpu][3]
            self.idle_lag_ticks.append(lag_ticks)
            if lag_ticks > ncpu * (lag * 100 + 1) + 1:
                self.mismatches.append(f"{cpu}.idle trails by {lag_ticks} ticks, uptime by {lag:.2f} s")
        # The total line is the sum over CPUs in ns, converted once: it may
        # exceed the sum of the per-CPU tick counts by up to ncpus - 1.
        for i, f in enumerate(CPU_FIELDS):
            per = sum(v[i] for k, v in got.items() if k != "cpu")
            assert per <= got["cpu"][i] <= per + len(got) - 1, (f, per, got["cpu"][i])

        # Other /proc/stat lines.
        sb, sa = before.stat_values(), after.stat_values()
        self.equal_if_stable("btime", sb["btime"], out["stat"]["btime"], sa["btime"])
        self.bracket("processes", sb["processes"], out["stat"]["processes"], sa["processes"])
        self.bracket("ctxt", sb["ctxt"], out["stat"]["ctxt"], sa["ctxt"])
        self.bracket("procs_blocked", min(sb["procs_blocked"], sa["procs_blocked"]),
                     out["stat"]["procs_blocked"], max(sb["procs_blocked"], sa["procs_blocked"]))

        q = out["quality"]
        assert q["nohz"] is True
        assert q["vtime_cpus"] == 0
        assert q["buffers_partial"] is False
        assert q["missing"] == 0

    def unjudged(self):
        return [k for k in MOVING if not self.judged.get(k)]

    def check(self, rounds):
        assert not self.mismatches, f"{len(self.mismatches)} mismatches:\n" + "\n".join(self.mismatches[:40])
        for k in ALWAYS_STABLE + ("btime", "uptime", "cpu.user", "cpu0.idle", "cpu1.system", "ctxt"):
            assert self.judged.get(k, 0) == rounds, (k, self.judged.get(k))
        assert not self.unjudged(), f"changed in all {rounds} rounds, never judged: {self.unjudged()}"


def compare_rounds(g, vmwatch, target):
    j = Judge()
    rounds = 0
    while rounds < ROUNDS or (j.unjudged() and rounds < MAX_ROUNDS):
        j.round(*summary_paused(g, vmwatch, target))
        rounds += 1
    j.check(rounds)
    return j


@pytest.mark.parametrize("cfg", [G61, G612], ids=["6.1", "6.12"])
def test_summary_matches_proc_idle_guest(guest, vmwatch, cfg):
    g = guest(**cfg)
    j = compare_rounds(g, vmwatch, f"file:{g.ram_path}")
    print(f"uptime lag {min(j.uptime_lag_s):.2f}..{max(j.uptime_lag_s):.2f} s, "
          f"idle lag {min(j.idle_lag_ticks)}..{max(j.idle_lag_ticks)} ticks")


@pytest.mark.parametrize("cfg", [G61, G612], ids=["6.1", "6.12"])
def test_summary_matches_proc_busy_guest(guest, vmwatch, cfg):
    """One CPU half busy, one process holding 64 MiB, one CPU-bound loop:
    user/system move, MemFree/MemAvailable drop, loadavg rises."""
    g = guest(**cfg)
    with g.workload("hog", 64), g.workload("burn", 50), g.workload("burn", 100):
        # /proc/loadavg rounds (0.2969 shows as 0.30): wait past the bound asserted below.
        g.wait_for(lambda s: float(s.loadavg.split()[0]) >= 0.4, timeout=120)
        j = compare_rounds(g, vmwatch, f"qemu:{g.pid}")
        before, out, _ = summary_paused(g, vmwatch, f"qemu:{g.pid}")
    assert out["meminfo"]["MemFree"] < out["meminfo"]["MemTotal"] - 64 * 1024
    assert out["loadavg"]["avenrun"][0] >= int(0.3 * 2048)
    assert out["stat"]["cpu"][0] > 0   # user ticks from burn
    print(f"uptime lag {min(j.uptime_lag_s):.2f}..{max(j.uptime_lag_s):.2f} s, "
          f"idle lag {min(j.idle_lag_ticks)}..{max(j.idle_lag_ticks)} ticks")


def test_summary_process_read_and_5level_paging_6_12(guest, vmwatch):
    """1 vCPU, memfd RAM read with process_vm_readv, 5-level paging."""
    g = guest(**G612_LA57)
    j = Judge()
    for _ in range(2):
        before, out, after = summary_paused(g, vmwatch, f"qemu:{g.pid}", "--process-read")
        assert out["kernel"]["paging_levels"] == 5
        assert out["stat"]["ncpus"] == 1 and list(out["stat"]["cpus"]) == ["cpu0"]
        j.round(before, out, after)
    assert not j.mismatches, "\n".join(j.mismatches)
    assert j.judged["MemTotal"] == 2


def test_summary_same_instant_live_and_elf_dump(guest, vmwatch):
    """A paused guest's memory is one instant: vmwatch reading the QEMU
    process and an ELF core dumped from it must agree to the nanosecond."""
    g = guest(**G61)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        core = os.path.join(d, "guest.elf")
        with g.paused():
            live = summary_json(vmwatch, f"qemu:{g.pid}")
            g.dump_guest_memory(core)
        dumped = summary_json(vmwatch, f"file:{core}")
    assert "ELF" in dumped["vm"]["source"]
    for k in ("uptime", "clock", "loadavg", "meminfo", "stat"):
        assert live[k] == dumped[k], k


def test_summary_live_guest_is_consistent(guest, vmwatch):
    """Without pausing: two summaries a moment apart never go backwards, and
    each lies between truth snapshots taken around it."""
    g = guest(**G61)
    with g.workload("burn", 100):
        before = g.truth()
        a = summary_json(vmwatch, f"qemu:{g.pid}")
        b = summary_json(vmwatch, f"qemu:{g.pid}")
        after = g.truth()
    assert a["uptime"]["uptime_ns"] <= b["uptime"]["uptime_ns"]
    assert before.uptime_seconds <= a["uptime"]["uptime_ns"] / 1e9 <= after.uptime_seconds
    cb, ca = cpu_lines(before), cpu_lines(after)
    for i, f in enumerate(CPU_FIELDS):
        assert a["stat"]["cpu"][i] <= b["stat"]["cpu"][i], f
        assert cb["cpu"][i] <= a["stat"]["cpu"][i] <= ca["cpu"][i] + 1, f
    assert a["stat"]["ctxt"] <= b["stat"]["ctxt"]


def test_summary_text_output(guest, vmwatch):
    g = guest(**G61)
    r = run_vmwatch(vmwatch, "summary", f"file:{g.ram_path}")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("uptime:  ")
    assert lines[1].startswith("loadavg: ")
    assert any(l.startswith("MemTotal:") and l.endswith(" kB") for l in lines)
    assert any(l.startswith("cpu  ") for l in lines)
    assert "cpu0" in r.stdout and "cpu1" in r.stdout
    for k in ("ctxt", "btime", "processes", "procs_running", "procs_blocked"):
        assert any(l.split()[0] == k for l in lines), k


def test_summary_never_pauses_the_guest(guest, vmwatch):
    g = guest(**G61)
    p = subprocess.Popen([str(vmwatch), "summary", "--json", f"qemu:{g.pid}"], stdout=subprocess.DEVNULL)
    states = []
    while p.poll() is None:
        states.append(g.qmp("query-status")["status"])
    assert p.wait() == 0
    states.append(g.qmp("query-status")["status"])
    assert set(states) == {"running"}


def test_summary_errors(vmwatch, tmp_path):
    zeros = tmp_path / "zeros.raw"
    with open(zeros, "wb") as f:
        f.truncate(64 << 20)
    r = subprocess.run([str(vmwatch), "summary", f"file:{zeros}"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "no Linux kernel found" in r.stderr
    r = subprocess.run([str(vmwatch), "summary"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([str(vmwatch), "summary", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "Usage: vmwatch summary" in r.stdout

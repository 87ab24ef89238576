"""Per-process I/O, fault and context-switch rates (issue 13): in `top --json`,
the agent's process table and its /metrics, against the guest's own counters.

The workload is a shell loop in the guest that writes a line to /dev/null with
the shell's builtin echo and reads one with its builtin read (the shell's own
wchar and rchar grow), and forks a child each round (faults, voluntary context
switches). Every rate vmwatch reports must be the change of the counter it
reports beside it over the frame's interval, and those counters must lie
within the guest's own /proc values read before and after.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from helpers import wait_until
from schemas import validate
from test_agent import Agent
from test_top import term, top_cmd  # noqa: F401  (term: fixture)

G61 = dict(kernel="6.1", mem="512M", machine="pc", backing="shm", smp=2)   # test_top's guest
LINE = "x" * 200
LOOP = (f"exec 3>/dev/null; while :; do echo {LINE} >&3; read -r a < /proc/version; "
        "usleep 20000; done")
IO = ("rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes")
OTHER = {"min_flt": "min_flt_rate", "maj_flt": "maj_flt_rate",
         "voluntary_ctxt_switches": "voluntary_ctxt_switches_rate",
         "nonvoluntary_ctxt_switches": "nonvoluntary_ctxt_switches_rate"}
TRUTH = {"min_flt": "minflt", "maj_flt": "majflt", "voluntary_ctxt_switches": "voluntary_ctxt_switches",
         "nonvoluntary_ctxt_switches": "nonvoluntary_ctxt_switches"}


@pytest.fixture(scope="module")
def g(guest):
    return guest(**G61)


@pytest.fixture(scope="module")
def loop(g):
    with g.workload("sh", "-c", LOOP) as pid:
        wait_until(lambda: (lambda p: p is not None and p.io and p.io["wchar"] > 20 * len(LINE))(
            g.truth().procs.get(pid)), timeout=30, what="the loop writing")
        yield pid


def pairs(a, b):
    """(counter name, value in a, value in b, rate in b) of one process in two frames."""
    out = []
    if a["io"] is not None:
        assert b["io_rate"] is not None, b
        out += [(f"io.{k}", a["io"][k], b["io"][k], b["io_rate"][k]) for k in IO]
    else:
        assert b["io_rate"] is None
    out += [(k, a[k], b[k], b[r]) for k, r in OTHER.items()]
    return out


def check_rates(a, b, interval):
    """b's rates are its counters' change since a over interval (saturating)."""
    for k, x, y, rate in pairs(a, b):
        want = max(y - x, 0) / interval
        assert rate >= 0 and abs(rate - want) <= 1e-6 * max(want, 1.0), (k, x, y, rate, want, interval)


def within_truth(before, after, pid, p):
    """p's counters lie within the guest's values before and after."""
    b, a = before.procs[pid], after.procs[pid]
    for k in IO:
        assert b.io[k] <= p["io"][k] <= a.io[k], (k, b.io[k], p["io"][k], a.io[k])
    for k, t in TRUTH.items():
        assert getattr(b, t) <= p[k] <= getattr(a, t), (k, getattr(b, t), p[k], getattr(a, t))


def test_top_json_rates(g, loop, vmwatch):
    before = g.truth()
    r = subprocess.run([str(vmwatch), "top", "--json", "-n", "4", "-d", "0.5", "-p", str(loop), f"qemu:{g.pid}"],
                       capture_output=True, text=True, timeout=120)
    after = g.truth()
    assert r.returncode == 0, r.stderr
    frames = [validate("top-frame", json.loads(line)) for line in r.stdout.splitlines()]
    assert len(frames) == 4
    rows = [{p["pid"]: p for p in f["processes"]}[loop] for f in frames]
    for f, a, b in zip(frames[1:], rows, rows[1:]):
        check_rates(a, b, f["interval_seconds"])
        # ~50 rounds a second of 201 bytes written and a /proc/version line read.
        assert b["io_rate"]["wchar"] > 1000 and b["io_rate"]["rchar"] > 1000, b["io_rate"]
        assert b["io_rate"]["syscw"] > 5 and b["voluntary_ctxt_switches_rate"] > 5, b
        assert b["min_flt_rate"] > 5, b
    for p in rows:
        within_truth(before, after, loop, p)
    # The whole run's rate against the guest's: our frames lie within its window.
    span = sum(f["interval_seconds"] for f in frames[1:])
    ours = sum(b["io_rate"]["wchar"] * f["interval_seconds"] for f, b in zip(frames[1:], rows[1:]))
    truth = after.procs[loop].io["wchar"] - before.procs[loop].io["wchar"]
    assert 0 < ours <= truth, (ours, truth)
    assert ours / span <= truth / ((after.t_start_ns - before.t_start_ns) / 1e9) * 3


def test_top_batch_rate_columns(g, loop, vmwatch):
    r = subprocess.run([str(vmwatch), "top", "-b", "-n", "2", "-d", "0.5", "--io", "--faults",
                        "-o", "wchar_rate", f"qemu:{g.pid}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    last = r.stdout.split("vmwatch top - ")[-1]
    head = next(line for line in last.splitlines() if line.lstrip().startswith("PID"))
    assert re.search(r"TIME\+ +RCHAR/s +WCHAR/s +DREAD/s +DWRIT/s +MINFL/s +MAJFL/s +CSW/s COMMAND", head), head
    rows = [line for line in last.splitlines() if re.match(r"^\s*\d+ ", line)]
    # Sorted by WCHAR/s: the loop writes the most.
    assert int(rows[0].split()[0]) == loop, rows[:3]
    # Without --io the columns are not there.
    r = subprocess.run([str(vmwatch), "top", "-b", "-n", "1", f"qemu:{g.pid}"], capture_output=True, text=True,
                       timeout=120)
    assert "RCHAR/s" not in r.stdout and "CSW/s" not in r.stdout


def metric(text, name, pid, extra=""):
    m = re.search(rf'^{name}{{[^}}]*,pid="{pid}",name="[^"]*"{extra}}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def test_agent_rates_and_metrics(g, loop, vmwatch):
    a = Agent(vmwatch, "--connect", "none", "--target", f"qemu:{g.pid}", "--interval", 0.5, "--top-n", 2)
    vm = g.name
    try:
        wait_until(lambda: a.vm(vm)["monitoring"]["frames"] >= 3, timeout=120, what="frames")
        before = g.truth()
        # Two consecutive frames of the table, sorted by I/O rate: the loop near
        # the top (the guest's truth agent reads /proc for us at times).
        docs = []

        def consecutive():
            d = a.json(f"/v1/vms/{vm}/processes?sort=io&limit=3")
            docs.append(d)
            return len(docs) > 1 and docs[-1]["seq"] == docs[-2]["seq"] + 1
        wait_until(consecutive, timeout=60, interval=0.1, what="two consecutive frames")
        d0, d1 = docs[-2], docs[-1]
        io = [p["io_rate"]["rchar"] + p["io_rate"]["wchar"] for p in d1["processes"]]
        assert io == sorted(io, reverse=True) and loop in [p["pid"] for p in d1["processes"]], d1
        p0 = next(p for p in d0["processes"] if p["pid"] == loop)
        p1 = next(p for p in d1["processes"] if p["pid"] == loop)
        check_rates(p0, p1, d1["interval_seconds"])
        assert p1["io_rate"]["wchar"] > 1000
        # /metrics of one frame: the table fetched before and after it has the same seq.
        for _ in range(40):
            x = a.json(f"/v1/vms/{vm}/processes?match={loop}")
            text = a.request("/metrics")[2].decode()
            y = a.json(f"/v1/vms/{vm}/processes?match={loop}")
            if x["seq"] == y["seq"]:
                break
        else:
            pytest.fail("no /metrics scrape between two reads of the same frame")
        after = g.truth()
        p = next(p for p in y["processes"] if p["pid"] == loop)
        within_truth(before, after, loop, p)
        assert metric(text, "vmwatch_process_syscall_write_bytes_total", loop) == p["io"]["wchar"]
        assert metric(text, "vmwatch_process_syscall_read_bytes_total", loop) == p["io"]["rchar"]
        assert metric(text, "vmwatch_process_page_faults_total", loop, ',type="minor"') == p["min_flt"]
        assert metric(text, "vmwatch_process_context_switches_total", loop, ',type="voluntary"') == \
            p["voluntary_ctxt_switches"]
        got = metric(text, "vmwatch_process_syscall_write_bytes_per_second", loop)
        assert got is not None and abs(got - p["io_rate"]["wchar"]) <= 1e-9 * got, (got, p["io_rate"])
        assert re.search(r"^# TYPE vmwatch_process_syscall_write_bytes_total counter$", text, re.M)
        assert re.search(r"^# TYPE vmwatch_process_read_bytes_per_second gauge$", text, re.M)
        assert metric(text, "vmwatch_process_cpu_ratio", loop) is not None   # in the top-N union
        bad = a.request(f"/v1/vms/{vm}/processes?sort=nope")
        assert bad[0] == 400 and b"io or faults" in bad[2]
    finally:
        rc = a.stop()
    assert rc == 0, "\n".join(a.log[-30:])


def test_top_screen_rate_column_keys(g, loop, vmwatch, term):
    """i and f show and hide the rate columns; sorting by one shows its values;
    the help screen names the keys."""
    t = term(top_cmd(vmwatch, f"qemu:{g.pid}", "-d", "0.5"), width=200)
    t.wait(lambda s: "COMMAND" in s and "%CPU" in s, what="the table")
    assert "RCHAR/s" not in t.screen() and "CSW/s" not in t.screen()
    t.keys("i")
    t.wait(lambda s: re.search(r"TIME\+ +RCHAR/s +WCHAR/s +DREAD/s +DWRIT/s +COMMAND", s), what="I/O columns")
    t.keys("f")
    t.wait(lambda s: "DWRIT/s MINFL/s MAJFL/s   CSW/s COMMAND" in s, what="fault columns")
    # > from TIME+ moves the sort to RCHAR/s: the loop reads the most, near the top.
    t.keys("T", ">")
    t.wait(lambda s: any(line.split()[:1] == [str(loop)] for line in s.splitlines()[:20]), what="the loop on top")
    t.keys("i")
    t.wait(lambda s: "RCHAR/s" not in s and "CSW/s" in s, what="I/O columns hidden")
    t.keys("?")
    t.wait(lambda s: "I/O rate columns" in s and "fault and context-switch rate columns" in s, what="help")
    t.keys("q")

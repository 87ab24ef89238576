"""vmwatch ps against the guest's own /proc, field by field.

Method: take a ground-truth snapshot inside the guest, pause the guest, run
vmwatch, resume, take a second snapshot. A field whose value is the same in
both snapshots was stable across the pause, so vmwatch must report exactly
that value (CPU times: within one clock tick). Processes that exist in only
one snapshot, and fields that changed between them, are not judged; the test
requires that nearly every process was judged so it cannot pass vacuously.
"""
import json
import os
import subprocess
import tempfile

import pytest

from schemas import validate

TICK_NS = 10_000_000  # USER_HZ = 100


def vmwatch_json(vmwatch, *args, timeout=120):
    r = subprocess.run([vmwatch, *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"vmwatch {' '.join(args)} failed ({r.returncode}): {r.stderr}"
    out = json.loads(r.stdout)
    if args[:1] == ("ps",):
        validate("ps-threads" if "--threads" in args else "ps", out)
    return out


def ps_paused(g, vmwatch, target, *extra):
    """truth before, vmwatch ps while paused, truth after."""
    before = g.truth()
    with g.paused():
        out = vmwatch_json(vmwatch, "ps", "--json", *extra, target)
    after = g.truth()
    return before, out, after


def expected_fields(p):
    """The vmwatch JSON fields implied by one truth process, converted to vmwatch units."""
    return {
        "ppid": p.ppid,
        "comm": p.comm,
        "state": p.state,
        "uid": p.uid,
        "euid": p.euid,
        "gid": p.gid,
        "threads": p.num_threads,
        "nice": p.nice,
        "priority": p.priority,
        "start_ticks": p.starttime,
        "vsz_bytes": p.vsize,
        "rss_kb": p.VmRSS,
        "rss_anon_kb": p.RssAnon,
        "rss_file_kb": p.RssFile,
        "rss_shmem_kb": p.RssShmem,
        "swap_kb": p.VmSwap,
        "cmdline": list(p.cmdline),
        "kthread": bool(p.kthread),
    }


def worker_base(comm):
    """A kworker's name without its '+desc'/'-desc' suffix: the suffix names the
    work item it ran last, which changes whenever the worker runs."""
    if comm.startswith("kworker/"):
        for sep in "+-":
            i = comm.find(sep, len("kworker/R"))
            if i > 0 and not comm.startswith("kworker/R-"):
                return comm[:i]
    return comm


def observed_fields(v):
    return {
        "ppid": v["ppid"],
        "comm": v["comm"],
        "state": v["state"],
        "uid": v["uid"],
        "euid": v["euid"],
        "gid": v["gid"],
        "threads": v["threads"],
        "nice": v["nice"],
        "priority": v["priority"],
        "start_ticks": v["start_time_ns"] // TICK_NS,
        "vsz_bytes": v["vsz_bytes"],
        "rss_kb": v["rss_bytes"] // 1024,
        "rss_anon_kb": v["rss_anon_bytes"] // 1024,
        "rss_file_kb": v["rss_file_bytes"] // 1024,
        "rss_shmem_kb": v["rss_shmem_bytes"] // 1024,
        "swap_kb": v["swap_bytes"] // 1024,
        "cmdline": v["cmdline"],
        "kthread": v["kthread"],
    }


def compare(before, out, after, min_judged=0.9):
    """Assert every stable field equals; return the number of processes judged."""
    got = {p["pid"]: p for p in out["processes"]}
    assert out["complete"], "vmwatch reported an incomplete walk"
    mismatches, judged, fields_judged = [], 0, 0
    common = [pid for pid in before.procs if pid in after.procs]
    for pid in common:
        b, a = before.procs[pid], after.procs[pid]
        if pid not in got:
            mismatches.append(f"pid {pid} ({b.comm}) in the guest but missing from vmwatch")
            continue
        v = got[pid]
        exp_b, exp_a, obs = expected_fields(b), expected_fields(a), observed_fields(v)
        judged += 1
        for k in exp_b:
            if exp_b[k] != exp_a[k]:
                continue  # changed across the pause: not judged
            if pid == before.agent_pid and k == "state":
                continue  # the truth agent is running while it reads itself
            if k == "state" and b.raw.get("voluntary_ctxt_switches") != a.raw.get("voluntary_ctxt_switches"):
                continue  # it slept and woke in between (burn's duty cycle): R or S at the pause
            fields_judged += 1
            if k == "comm" and worker_base(obs[k]) == worker_base(exp_b[k]) != obs[k]:
                continue  # same worker, another work item since
            if obs[k] != exp_b[k]:
                mismatches.append(f"pid {pid} ({b.comm}) {k}: guest {exp_b[k]!r} vmwatch {obs[k]!r}")
        # CPU times: /proc's ticks are floor(ns / 10 ms) of the adjusted times.
        for key, tkey in (("utime_ns", "utime"), ("stime_ns", "stime")):
            lo, hi = getattr(b, tkey), getattr(a, tkey)
            t = v[key] // TICK_NS
            if not (lo - 1 <= t <= hi + 1):
                mismatches.append(f"pid {pid} ({b.comm}) {tkey}: guest {lo}..{hi} ticks, vmwatch {t}")
    # Nothing vmwatch lists may be a process the guest never had.
    for pid, v in got.items():
        if pid not in before.procs and pid not in after.procs:
            mismatches.append(f"pid {pid} ({v['comm']}) reported by vmwatch, unknown to the guest")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])
    assert judged >= min_judged * len(before.procs), (judged, len(before.procs))
    assert fields_judged >= judged * 10
    return judged


# Guest configurations: (kernel, mem, machine, backing, cpu)
G61 = dict(kernel="6.1", mem="512M", machine="pc", backing="shm")
G612_LA57 = dict(kernel="6.12", mem="512M", machine="pc", backing="memfd", cpu="qemu64,+la57")
G612_5G_PRIVATE = dict(kernel="6.12", mem="5G", machine="q35", backing="private")
G61_5G_SHM = dict(kernel="6.1", mem="5G", machine="pc", backing="shm")


@pytest.fixture
def g61(guest):
    """The shared 6.1 guest with 1,000 sleeping processes, threads and a memory hog
    (booted again if the lab's guest pool evicted it meanwhile)."""
    g = guest(**G61)
    if not g.truth().find(argv0="swarm"):
        g.run("swarm", "1000")
        g.run("threads", "8")
        g.run("hog", "24")
    g.wait_for(lambda s: len(s.find(argv0="swarm")) >= 1001
               and s.find(argv0="threads") and s.find(argv0="hog"), timeout=600, interval=2)
    return g


def test_ps_shared_file_6_1_with_1000_processes(g61, vmwatch):
    before, out, after = ps_paused(g61, vmwatch, f"file:{g61.ram_path}")
    assert out["kernel"]["release"] == "6.1.0-47-amd64"
    n = compare(before, out, after)
    assert n >= 1000


def test_ps_qemu_shared_mapping_6_1(g61, vmwatch):
    before, out, after = ps_paused(g61, vmwatch, f"qemu:{g61.pid}")
    assert "shared file" in out["vm"]["source"]
    compare(before, out, after)


def test_ps_qemu_process_read_6_1(g61, vmwatch):
    """The same guest read through process_vm_readv instead of the mapping."""
    before = g61.truth()
    with g61.paused():
        env = dict(os.environ)
        r = subprocess.run([vmwatch, "ps", "--json", "--process-read", f"qemu:{g61.pid}"],
                           capture_output=True, text=True, timeout=120, env=env)
    after = g61.truth()
    if r.returncode == 2 and "process-read" in r.stderr:
        pytest.skip("ps has no --process-read")
    assert r.returncode == 0, r.stderr
    compare(before, validate("ps", json.loads(r.stdout)), after)


def test_ps_kallsyms_fallback_6_1(g61, vmwatch):
    before, out, after = ps_paused(g61, vmwatch, f"qemu:{g61.pid}",
                                   "--ignore-vmcoreinfo-kallsyms", "--no-cache")
    compare(before, out, after)


def test_ps_elf_dump_6_1(g61, vmwatch):
    before = g61.truth()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        core = os.path.join(d, "guest.elf")
        with g61.paused():
            g61.dump_guest_memory(core)
        after = g61.truth()
        out = vmwatch_json(vmwatch, "ps", "--json", f"file:{core}")
    assert "ELF" in out["vm"]["source"]
    compare(before, out, after)


def test_ps_threads_listed(g61, vmwatch):
    """--threads lists each thread of the 8-thread workload with its own tid."""
    before, out, after = ps_paused(g61, vmwatch, f"qemu:{g61.pid}", "--threads")
    t = [p for p in out["processes"] if p["cmdline"] and p["cmdline"][0].endswith("threads")]
    assert len(t) == 1, [p["cmdline"] for p in out["processes"] if p["cmdline"]]
    p = t[0]
    assert p["threads"] == 9
    tids = sorted(th["tid"] for th in p["tasks"])
    truth = before.procs[p["pid"]]
    assert len(tids) == 9 == truth.num_threads
    if truth.tasks is not None:
        assert tids == sorted(t.tid for t in truth.tasks)
    assert tids[0] == p["pid"]


def test_ps_text_output(g61, vmwatch):
    r = subprocess.run([vmwatch, "ps", f"qemu:{g61.pid}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["PID", "PPID", "USER", "STAT", "NLWP", "RSS", "VSZ", "TIME", "CMD"]
    assert lines[1].split()[0] == "1"
    assert any("[kthreadd]" in l for l in lines)
    assert len(lines) > 1000


def test_ps_never_pauses_the_guest(g61, vmwatch):
    """While vmwatch ps runs, QMP must keep reporting the guest as running."""
    p = subprocess.Popen([vmwatch, "ps", "--json", f"qemu:{g61.pid}"], stdout=subprocess.DEVNULL)
    states = []
    while p.poll() is None:
        states.append(g61.qmp("query-status")["status"])
    assert p.wait() == 0
    states.append(g61.qmp("query-status")["status"])
    assert set(states) == {"running"}


def test_ps_errors(vmwatch, tmp_path):
    zeros = tmp_path / "zeros.raw"
    with open(zeros, "wb") as f:
        f.truncate(64 << 20)
    r = subprocess.run([vmwatch, "ps", f"file:{zeros}"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "no Linux kernel found" in r.stderr
    r = subprocess.run([vmwatch, "ps", "qemu:999999999"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("vmwatch: ")


def test_ps_5level_paging_6_12(guest, vmwatch):
    g = guest(**G612_LA57)
    g.run("swarm", "50")
    before, out, after = ps_paused(g, vmwatch, f"qemu:{g.pid}")
    assert out["kernel"]["paging_levels"] == 5
    assert out["kernel"]["release"] == "6.12.117+deb12-amd64"
    compare(before, out, after)


def test_ps_5g_private_ram_q35_6_12(guest, vmwatch):
    g = guest(**G612_5G_PRIVATE)
    if not g.truth().find(argv0="hog"):
        g.run("hog", "64")
    g.wait_for(lambda s: any(p.VmRSS >= 64 << 10 for p in s.find(argv0="hog")), timeout=300, interval=2)
    before, out, after = ps_paused(g, vmwatch, f"qemu:{g.pid}")
    assert "process memory" in out["vm"]["source"] or "private" in out["vm"]["source"]
    compare(before, out, after)
    hog = [p for p in out["processes"] if p["cmdline"] and p["cmdline"][0].endswith("hog")]
    assert hog and hog[0]["rss_anon_bytes"] >= 64 << 20


def test_ps_5g_shared_file_pc_6_1(guest, vmwatch):
    g = guest(**G61_5G_SHM)
    g.run("swarm", "20")
    before, out, after = ps_paused(g, vmwatch, f"file:{g.ram_path}")
    compare(before, out, after)

"""Per process cgroup v1 lines (vmwatch ps --json `cgroups_v1`) against the
guest's own /proc/PID/cgroup (issue 13).

The busybox guest mounts cgroup v1 hierarchies at test time (two named ones,
and net_cls when its kernel has the controller unbound from v2), moves a
workload into a child cgroup of each, and every process's v1 lines from
vmwatch (read while the guest is paused) must equal the guest's
/proc/PID/cgroup lines other than the 0:: one, in its order. Everything is
unmounted again afterwards: the guest is shared with other test files.
"""
import json
import subprocess

import pytest

from schemas import validate

G61 = dict(kernel="6.1", mem="512M", machine="pc", backing="shm")
G612 = dict(kernel="6.12", mem="512M", machine="pc", backing="memfd", cpu="qemu64,+la57")

DUMP = r'for p in /proc/[0-9]*; do c=$(cat $p/cgroup 2>/dev/null) || continue; echo "== ${p#/proc/}"; echo "$c"; done'


def guest_v1_lines(g):
    """pid -> the v1 lines of its /proc/PID/cgroup as (hierarchy, controllers, path)."""
    rc, out = g.sh(DUMP, check=True, timeout=120)
    procs, cur = {}, None
    for line in out.splitlines():
        if line.startswith("== "):
            cur = procs.setdefault(int(line[3:]), [])
        elif line and cur is not None and not line.startswith("0::"):
            hid, ctl, path = line.split(":", 2)
            cur.append({"hierarchy": int(hid), "controllers": ctl, "path": path})
    return procs


def ps_v1(g, vmwatch):
    before = guest_v1_lines(g)
    with g.paused():
        target = f"file:{g.ram_path}" if g.ram_path else f"qemu:{g.pid}"
        r = subprocess.run([vmwatch, "ps", "--json", target], capture_output=True, text=True, timeout=120)
    after = guest_v1_lines(g)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    validate("ps", out)
    return before, out, after


def compare(before, out, after):
    judged, bad = 0, []
    for p in out["processes"]:
        pid = p["pid"]
        if pid not in before or before.get(pid) != after.get(pid):
            continue
        judged += 1
        if p["cgroups_v1"] != before[pid]:
            bad.append(f"pid {pid} ({p['comm']}): vmwatch {p['cgroups_v1']}, guest {before[pid]}")
    assert not bad, "\n".join(bad[:20])
    assert judged >= 0.9 * len(before), f"only {judged} of {len(before)} processes judged"
    return judged


@pytest.mark.parametrize("cfg", [G61, G612], ids=["6.1", "6.12"])
def test_cgroups_v1_equal_proc_pid_cgroup(guest, vmwatch, cfg):
    g = guest(**cfg)
    # Nothing mounted: every process has no v1 line.
    before, out, after = ps_v1(g, vmwatch)
    assert all(v == [] for v in before.values())
    compare(before, out, after)

    rc, cgroups = g.sh("cat /proc/cgroups", check=True)
    # A controller bound to no hierarchy yet (v2 has none enabled in this guest's root).
    net_cls = any(l.split()[0] == "net_cls" for l in cgroups.splitlines()[1:] if l.strip())
    mounts = ["vmwt1:none,name=vmwtest", "vmwt2:none,name=vmwtest2"]
    if net_cls:
        mounts.append("vmwt3:net_cls,name=vmwnc")
    mounted = []
    pid = g.run("sleep", "3600")
    try:
        for m in mounts:
            d, opts = m.split(":")
            g.sh(f"mkdir -p /tmp/{d} && mount -t cgroup -o {opts} none /tmp/{d} && mkdir -p /tmp/{d}/grp/sub",
                 check=True)
            mounted.append(d)
        g.sh(f"echo {pid} > /tmp/vmwt1/grp/cgroup.procs && echo {pid} > /tmp/vmwt2/grp/sub/cgroup.procs",
             check=True)
        before, out, after = ps_v1(g, vmwatch)
        lines = before[pid]
        assert len(lines) == len(mounts), lines
        assert {l["path"] for l in lines} >= {"/grp", "/grp/sub"}
        assert any(l["controllers"] == "name=vmwtest" for l in lines)
        if net_cls:
            assert any(l["controllers"] == "net_cls,name=vmwnc" for l in lines)
        compare(before, out, after)
        mine = next(p for p in out["processes"] if p["pid"] == pid)
        assert mine["cgroups_v1"] == lines and not mine["incomplete"]
    finally:
        if g.alive():
            try:
                g.kill(pid)
            except Exception:  # noqa: BLE001
                pass
            for d in reversed(mounted):
                g.sh(f"sleep 0.2; rmdir /tmp/{d}/grp/sub /tmp/{d}/grp; umount /tmp/{d}; rmdir /tmp/{d}")

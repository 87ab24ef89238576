"""Per-cgroup figures on the real Debian guest (the shared guests of
test_debian.py, 6.1 and 6.12): `vmwatch cgroups --json` against the guest's
own /sys/fs/cgroup files, with the bracket rules of the accuracy tests (the
guest's files read before and after, vmwatch while it is paused):

  - cpu.stat usage_usec, user_usec, system_usec: counters, so
    before <= vmwatch <= after;
  - memory.current, memory.stat anon and file, the processes in cgroup.procs:
    equal whenever the guest's value did not change across the pause;
  - the set of cgroups: every cgroup there before and after is listed, and
    nothing listed was absent from both."""
import contextlib
import json
import re
import secrets
import subprocess
import time

import pytest

from schemas import validate
from test_agent import Agent, wait_until
from test_debian import cgroup_path, deb  # noqa: F401  (the shared Debian guests)
from test_ps import ps_paused

# One line per cgroup directory and file: "@path", then its cpu.stat lines,
# "memory.current N", memory.stat's anon and file lines, "procs N".
TRUTH = r"""cd /sys/fs/cgroup && find . -type d | while read -r d; do
p=${d#.}; [ -z "$p" ] && p=/
printf '@%s\n' "$p"
cat "$d/cpu.stat" 2>/dev/null
v=$(cat "$d/memory.current" 2>/dev/null) && printf 'memory.current %s\n' "$v"
grep -E '^(anon|file) ' "$d/memory.stat" 2>/dev/null
n=$(wc -l < "$d/cgroup.procs" 2>/dev/null) && printf 'procs %s\n' "$n"
done; true"""


def cgroup_files(g):
    """{path: {"usage_usec": N, ..., "memory.current": N, "anon": N, "file": N, "procs": N}}"""
    rc, out = g.sh(TRUTH, check=True, timeout=120)
    res, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = res.setdefault(line[1:], {})
        elif cur is not None and " " in line:
            k, v = line.rsplit(" ", 1)
            if v.isdigit():
                cur[k] = int(v)
    return res


SPIN = "timeout 60 sh -c 'while :; do :; done'"


@contextlib.contextmanager
def scope(g, unit, command=SPIN):
    """A transient scope (systemd-run --scope) running command, there once
    its cgroup is; yields the cgroup's path and stops it after."""
    path = f"/system.slice/{unit}.scope"
    g.sh(f"systemd-run --quiet --scope --unit={unit} {command} </dev/null >/dev/null 2>&1 &", check=True)
    try:
        for _ in range(60):
            if g.sh(f"test -d /sys/fs/cgroup{path}")[0] == 0:
                break
            time.sleep(0.5)
        yield path
    finally:
        g.sh(f"systemctl stop {unit}.scope")


@contextlib.contextmanager
def top_in_tmux(tmux, command, **kw):
    t = tmux(command, **kw)
    try:
        yield t
    finally:
        t.close()


def cgroups_json(vmwatch, g, *extra):
    r = subprocess.run([vmwatch, "cgroups", "--json", *extra, f"qemu:{g.pid}"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    validate("cgroups", out)
    return out


TRUTH_SERVICE = "/system.slice/vmw-truth.service"
TRUTH_PATHS = ("/", "/system.slice", TRUTH_SERVICE)
CPU = ("usage_usec", "user_usec", "system_usec")
EQUAL = (("memory.current", lambda c: c["memory_current"]),
         ("anon", lambda c: c["memory_stat"] and c["memory_stat"]["anon"]),
         ("file", lambda c: c["memory_stat"] and c["memory_stat"]["file"]),
         ("procs", lambda c: c["procs"]))


def compare(before, out, after):
    """Returns (problems, counts of judged values by kind)."""
    got = {c["path"]: c for c in out["cgroups"]}
    bad, judged = [], {k: 0 for k in CPU + tuple(k for k, _ in EQUAL)}
    for path in set(before) & set(after):
        if path not in got:
            bad.append(f"{path}: in the guest before and after, not listed")
    for path in got:
        if path not in before and path not in after:
            bad.append(f"{path}: listed, not in the guest before nor after")
    for path, c in got.items():
        b, a = before.get(path), after.get(path)
        if b is None or a is None or c["incomplete"]:
            continue
        for k in CPU:
            if k in b and k in a and path != "/":
                assert c["cpu"] is not None, (path, c)
                judged[k] += 1
                if not b[k] <= c["cpu"][k] <= a[k]:
                    bad.append(f"{path} {k}: guest {b[k]}..{a[k]}, vmwatch {c['cpu'][k]}")
        for k, val in EQUAL:
            # The shell reading the files runs in the truth agent's service:
            # its processes and memory are there (and above) while it reads,
            # gone while vmwatch reads.
            if path in TRUTH_PATHS:
                continue
            if k in b and b.get(k) == a.get(k):
                judged[k] += 1
                if val(c) != b[k]:
                    bad.append(f"{path} {k}: guest {b[k]}, vmwatch {val(c)}")
    return bad, judged


def paused_compare(g, vmwatch):
    before = cgroup_files(g)
    with g.paused():
        out = cgroups_json(vmwatch, g, "-d", "0")
    after = cgroup_files(g)
    return before, out, after


def test_cgroups_equal_guest_files(deb, vmwatch):  # noqa: F811
    """Every cgroup's cpu.stat, memory.current, memory.stat anon/file and
    process count within the guest's own values; a scope with a CPU burner
    and one with fresh anonymous memory make the numbers move."""
    with scope(deb, "vmw-cgburn", "sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 600'") as burn_path:
        # The burner's loop done first: its exec of sleep swaps its memory,
        # and a before and an after that agree need not mean it held still in
        # between (a CI run: anon 27 pages before and after, 25 in vmwatch's
        # paused read, most likely mid-exec).
        wait_until(lambda: deb.sh(f"for p in $(cat /sys/fs/cgroup{burn_path}/cgroup.procs); do cat /proc/$p/comm; done")[1]
                   .split() == ["sleep"], timeout=120, what="the burner's loop done")
        before, out, after = paused_compare(deb, vmwatch)
        bad, judged = compare(before, out, after)
        assert not bad, "\n".join(bad[:40])
        n = len(out["cgroups"])
        assert n >= 20 and not out["truncated"]
        for k in CPU:   # every non-root cgroup judged on CPU (counters)
            assert judged[k] >= n - 1 - sum(c["incomplete"] for c in out["cgroups"]), judged
        for k, _ in EQUAL:
            assert judged[k] >= n // 2, judged
        got = {c["path"]: c for c in out["cgroups"]}
        burn = got["/system.slice/vmw-cgburn.scope"]
        assert burn["unit"] == "vmw-cgburn.scope" and burn["slice"] == "system.slice"
        assert burn["cpu"]["usage_usec"] > 100000 and burn["tasks"] == 1
        hog = got["/lab.slice/alice-hog.service"]
        assert hog["memory_stat"]["anon"] >= 16 << 20
        assert got["/"]["tasks"] > got["/system.slice"]["tasks"] + got["/lab.slice"]["tasks"]


def stat_lines(text):
    return {k: int(v) for k, v in (l.split() for l in text.splitlines() if len(l.split()) == 2)}


def test_cgroups_pending_deltas(deb, vmwatch):  # noqa: F811
    """What the guest's files would show at the moment of the pause, not what
    its last flush stored: CPU a busy scope used since the last flush (per-CPU
    deltas the kernel has not folded in yet) and memory charged just before
    the pause (memory.stat past the kernel's flush threshold). Read again
    right after the resume, the guest's files differ from vmwatch only by what
    happened in between."""
    with scope(deb, "vmw-cgspin") as spin:
        burn = "/sys/fs/cgroup" + spin
        # Memory: 16 MiB of tmpfs pages charged to the truth service, then the pause.
        deb.sh("dd if=/dev/zero of=/run/vmw-cg.bin bs=1M count=16 2>/dev/null", check=True)
        with deb.paused():
            out = cgroups_json(vmwatch, deb, "-d", "0")
        rc, text = deb.sh(f"grep -E '^(anon|file) ' /sys/fs/cgroup{TRUTH_SERVICE}/memory.stat", check=True)
        got = {c["path"]: c for c in out["cgroups"]}
        assert abs(stat_lines(text)["file"] - got[TRUTH_SERVICE]["memory_stat"]["file"]) < 4 << 20, \
            (text, got[TRUTH_SERVICE])
        # CPU: the guest's own read flushes; 1.5 s of spinning later, the pause.
        deb.sh(f"cat {burn}/cpu.stat", check=True)
        time.sleep(1.5)
        with deb.paused():
            out = cgroups_json(vmwatch, deb, "-d", "0")
            t0 = time.monotonic()
        rc, text = deb.sh(f"cat {burn}/cpu.stat", check=True)
        # one spinning thread: at most the wall time since the resume
        ran_us = (time.monotonic() - t0) * 1e6
        v = {c["path"]: c for c in out["cgroups"]}[spin]["cpu"]["usage_usec"]
        after = stat_lines(text)["usage_usec"]
        deb.sh("rm -f /run/vmw-cg.bin")
        assert 0 <= after - v <= ran_us + 20000, (after, v, ran_us)


@contextlib.contextmanager
def agent_on(vmwatch, g, frames, *extra):
    """An agent on g (a frame a second) once it took `frames` frames: yields
    (the agent, the VM's id); stopped after."""
    a = Agent(vmwatch, "--connect", "none", "--target", f"qemu:{g.pid}", "--interval", "1", *extra)
    try:
        vm = a.json("/v1/vms")["vms"][0]["id"]
        wait_until(lambda: a.vm(vm)["monitoring"]["frames"] >= frames, timeout=120, what=f"{frames} frames")
        yield a, vm
    finally:
        assert a.stop() == 0


def api_cgroups(a, vm):
    doc = a.json(f"/v1/vms/{vm}/cgroups")
    validate("api-cgroups", doc)
    return doc


def test_agent_cgroups_and_metrics(deb, vmwatch):  # noqa: F811
    """GET /v1/vms/{id}/cgroups: the latest frame's tree (the guest runs, so
    memory is judged on the steady hog service and CPU counters on growing);
    /metrics: per unit the top N by CPU and by memory, N = --top-n."""
    with agent_on(vmwatch, deb, 2, "--top-n", 2) as (a, vm):
        first = api_cgroups(a, vm)
        files = cgroup_files(deb)
        a.wait_frames(vm, 1)
        doc = api_cgroups(a, vm)
        assert doc["seq"] > first["seq"] and not doc["truncated"]
        got = {c["path"]: c for c in doc["cgroups"]}
        assert set(files) - {p for p in files if "vmw-" in p} <= set(got)
        hog = got["/lab.slice/alice-hog.service"]
        assert hog["memory_current"] == files["/lab.slice/alice-hog.service"]["memory.current"]
        assert hog["unit"] == "alice-hog.service" and hog["tasks"] == 1
        assert got["/"]["cpu_percent"] is None and doc["interval_seconds"] > 0
        # cumulative CPU never decreases from frame to frame; %CPU a number
        before = {c["path"]: c for c in first["cgroups"]}
        for path, c in got.items():
            if c["cpu"] and path in before and before[path]["cpu"]:
                assert c["cpu"]["usage_usec"] >= before[path]["cpu"]["usage_usec"], path
                assert c["cpu_percent"] is not None and c["cpu_percent"] >= 0, path
        st, _, body = a.request("/metrics")
        assert st == 200
        series = [l for l in body.decode().splitlines() if l.startswith("vmwatch_cgroup_memory_bytes{")]
        # the union of the top 2 by CPU and the top 2 by memory: 2 to 4 units
        assert 2 <= len(series) <= 4, series
        hog_line = [l for l in series if 'cgroup="/lab.slice/alice-hog.service"' in l]
        assert hog_line and 'unit="alice-hog.service"' in hog_line[0]   # the biggest unit by memory
        assert a.json(f"/v1/vms/{vm}/cgroups?sort=cpu", status=400)["error"]


def test_cgroups_table_like_cgtop(deb, vmwatch):  # noqa: F811
    """The table: sorted by %CPU over -d, a spinning scope near the top with
    most of a vCPU; JSON cpu_percent agrees; -o path sorts by path."""
    with scope(deb, "vmw-cgtop") as spin:
        r = subprocess.run([vmwatch, "cgroups", "-d", "1", f"qemu:{deb.pid}"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0 and not r.stderr, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["CONTROL", "GROUP", "UNIT", "TASKS", "%CPU", "MEMORY", "ANON", "FILE",
                                    "CPU-TIME"]
        rows = {l.split()[0]: l.split() for l in lines[1:]}
        pcts = [float(l.split()[3]) if l.split()[3] != "-" else -1 for l in lines[1:]]
        assert pcts == sorted(pcts, reverse=True)
        assert rows[spin][1] == "vmw-cgtop.scope" and rows[spin][2] == "2"   # timeout and sh
        assert float(rows[spin][3]) > 40, rows[spin]
        assert [l.split()[0] for l in lines[1:3]] in (["/system.slice", spin], [spin, "/system.slice"])
        out = cgroups_json(vmwatch, deb, "-d", "1")
        got = {c["path"]: c for c in out["cgroups"]}
        assert got[spin]["cpu_percent"] > 40 and 0.9 < out["interval_seconds"] < 30
        r = subprocess.run([vmwatch, "cgroups", "-d", "0", "-o", "path", f"qemu:{deb.pid}"], capture_output=True,
                           text=True, timeout=120)
        paths = [l.split()[0] for l in r.stdout.splitlines()[1:]]
        assert paths == sorted(paths) and paths[0] == "/"


def test_top_units_view(deb, vmwatch):  # noqa: F811
    """top: g shows the units view (cgroups like systemd-cgtop, by %CPU over
    the interval, a spinning scope on top after its slice), g again the
    processes; driven in a real terminal (tmux)."""
    from test_top import Tmux, top_cmd
    with scope(deb, "vmw-cgunits") as spin, top_in_tmux(Tmux, top_cmd(vmwatch, f"qemu:{deb.pid}", "-d", "1"),
                                                      width=170, height=50) as t:
        t.wait(lambda s: "COMMAND" in s, what="process table")
        t.keys("g")

        def spin_row(s):
            rows = [l.split() for l in s.splitlines() if l.startswith("/")]
            top = [r[0] for r in rows[:2]]
            row = next((r for r in rows if r[0] == spin), None)
            return row if spin in top and row[3] != "-" and float(row[3]) > 30 else None
        s = t.wait(spin_row, timeout=30, what="the spinning scope on top of the units view")
        assert "CONTROL GROUP" in s and "COMMAND" not in s
        row = spin_row(s)
        assert row[1] == "vmw-cgunits.scope" and row[2] == "2"
        assert "gUnits" in s.splitlines()[-1]
        t.keys("g")
        t.wait(lambda s: "COMMAND" in s and "CONTROL GROUP" not in s, what="the process table again")


def test_top_grouped_by_unit(deb, vmwatch):  # noqa: F811
    """top: G groups the process table by unit (its name before the command,
    groups in name order, each process in its own), G again ungroups."""
    from test_top import Tmux, top_cmd
    with top_in_tmux(Tmux, top_cmd(vmwatch, f"qemu:{deb.pid}", "-d", "1"), width=200, height=120) as t:
        t.wait(lambda s: "COMMAND" in s, what="process table")
        t.keys("G")

        def grouped(s):
            rows = [l.split() for l in s.splitlines() if re.match(r"^\s*\d+ ", l)]
            units = [r[11] for r in rows if len(r) > 12]
            return rows if len(rows) > 20 and units == sorted(units) and "alice-hog.service" in units else None
        rows = grouped(t.wait(grouped, what="processes grouped by unit"))
        by_cmd = {" ".join(r[12:]): r[11] for r in rows}
        assert any(u == "alice-hog.service" and c.startswith("/usr/local/bin/hog") for c, u in by_cmd.items()), by_cmd
        assert any(u == "ssh.service" and c.startswith("sshd") for c, u in by_cmd.items()), by_cmd
        assert {u for c, u in by_cmd.items() if c.startswith("[")} == {"/"}   # kernel threads: the root
        t.keys("G")
        t.wait(lambda s: "alice-hog.service" not in s and "COMMAND" in s, what="ungrouped")


@pytest.mark.parametrize("kind", ["null", "garbage", "back", "self"])
def test_cgroup_walk_hostile_children_list(deb, vmwatch, kind):  # noqa: F811
    """A tenant rewrites the root cgroup's children list in its RAM (the 4th
    link: NULL, a user-space address, back to an earlier child, to itself):
    `vmwatch cgroups` ends at once, lists what it could reach, says the walk
    stopped ("truncated", a warning) and marks the root incomplete; nothing
    crashes (sanitizer build). The bytes are restored after."""
    from guestmem import GuestMem, vmwatch_info
    target = f"file:{deb.ram_path}"
    m = GuestMem(deb.ram_path, vmwatch_info(vmwatch, target, "__start_BTF", "__stop_BTF", "cgrp_dfl_root"))
    try:
        b = m.btf()
        head = (m.symbols["cgrp_dfl_root"] + b.offset("cgroup_root", "cgrp") + b.offset("cgroup", "self")
                + b.offset("cgroup_subsys_state", "children"))
        with deb.paused(), m.patch():
            good = cgroups_json(vmwatch, deb, "-d", "0", "--no-cache")
            nodes, n = [], m.vu64(head)
            while n != head and len(nodes) < 64:
                nodes.append(n)
                n = m.vu64(n)
            assert len(nodes) >= 5
            m.vput_u64(nodes[3], {"null": 0, "garbage": 0x4141414141414141, "back": nodes[1],
                                  "self": nodes[3]}[kind])
            t0 = time.monotonic()
            r = subprocess.run([vmwatch, "cgroups", "--json", "-d", "0", "--no-cache", target],
                               capture_output=True, text=True, timeout=60)
            secs = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert "the cgroup walk stopped early" in r.stderr
        out = json.loads(r.stdout)
        validate("cgroups", out)
        assert out["truncated"] and out["truncated_why"]
        got = {c["path"]: c for c in out["cgroups"]}
        assert got["/"]["incomplete"]
        assert 4 <= sum(c["depth"] == 1 for c in out["cgroups"]) < sum(c["depth"] == 1 for c in good["cgroups"])
        assert set(got) < {c["path"] for c in good["cgroups"]}
        assert secs < 20
    finally:
        m.close()


def test_cgroup_names_with_control_bytes(deb, vmwatch):  # noqa: F811
    """A cgroup a guest's root names with an escape sequence (cgroupfs
    refuses newlines): the table shows its bytes as '?', the JSON carries
    them escaped."""
    name = "vmw\x1b[2Jevil"
    deb.sh("mkdir /sys/fs/cgroup/\"$(printf 'vmw\\033[2Jevil')\"", check=True)
    try:
        r = subprocess.run([vmwatch, "cgroups", "-d", "0", "-o", "path", f"qemu:{deb.pid}"], capture_output=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert b"\x1b" not in r.stdout and b"/vmw?[2Jevil " in r.stdout
        out = cgroups_json(vmwatch, deb, "-d", "0")
        assert "/" + name in {c["path"] for c in out["cgroups"]}
    finally:
        deb.sh("rmdir /sys/fs/cgroup/\"$(printf 'vmw\\033[2Jevil')\"")


# ---- a real container runtime: runc in the Debian guest ----------------------
#
# runc (Debian's package, in the guest's image) runs OCI bundles made in the
# guest with no network: a busybox rootfs under /run, `runc spec`, and the
# cgroupsPath each engine gives runc's systemd driver ("slice:prefix:name" ->
# /<slice path>/<prefix>-<name>.scope). --no-pivot: the guest's root is the
# initramfs, which pivot_root refuses. Each container runs a shell that
# spins a little, keeps 3 MB of text in a variable and waits for a sleep.

CTR_START = r"""set -e
r=/run/vmw-ctr ID=$1 CG=$2
if [ ! -e $r/rootfs/bin/sh ]; then
  mkdir -p $r/rootfs/bin $r/rootfs/proc $r/rootfs/dev $r/rootfs/sys $r/rootfs/tmp
  cp /bin/busybox $r/rootfs/bin/
  chroot $r/rootfs /bin/busybox --install -s /bin
fi
b=$r/$ID; mkdir -p $b; cd $b; rm -f config.json
runc spec
sed -i -e 's/"terminal": true/"terminal": false/' -e "s|\"path\": \"rootfs\"|\"path\": \"$r/rootfs\"|" \
  -e 's|"sh"$|"/bin/sh", "-c", "sleep 600 \& i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; x=$(yes aaaaaaa \| head -c 3000000); wait"|' \
  -e "s|\"linux\": {|\"linux\": {\"cgroupsPath\": \"$CG\",|" config.json
runc --systemd-cgroup run --no-pivot -d $ID </dev/null >$b/out 2>&1 || { cat $b/out; exit 1; }
"""

POD_UID = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"


def engines(ids):
    """(runtime, id, cgroupsPath as the engine gives runc, the cgroup systemd
    makes of it, the pod's uid)."""
    pod = f"kubepods-besteffort-pod{POD_UID.replace('-', '_')}.slice"
    return [
        ("docker", ids[0], f"system.slice:docker:{ids[0]}", f"/system.slice/docker-{ids[0]}.scope", None),
        ("podman", ids[1], f"machine.slice:libpod:{ids[1]}", f"/machine.slice/libpod-{ids[1]}.scope", None),
        ("containerd", ids[2], f"{pod}:cri-containerd:{ids[2]}",
         f"/kubepods.slice/kubepods-besteffort.slice/{pod}/cri-containerd-{ids[2]}.scope", POD_UID),
    ]


@contextlib.contextmanager
def runc_containers(g):
    """Three containers as docker, podman and containerd (CRI, in a pod)
    would make them, each settled (its two processes, its 3 MB); yields
    engines(); deletes them after."""
    ctrs = engines([secrets.token_hex(32) for _ in range(3)])
    try:
        for _, cid, cg, _, _ in ctrs:
            rc, out = g.sh(f"set -- {cid} {cg}\n{CTR_START}", timeout=120)
            assert rc == 0, f"runc could not start a container in the guest: {out}"

        def settled():
            for *_, path, _ in ctrs:
                d = f"/sys/fs/cgroup{path}"
                rc, out = g.sh(f"wc -l < {d}/cgroup.procs; cat {d}/memory.current")
                n = out.split()
                if rc or len(n) != 2 or int(n[0]) != 2 or int(n[1]) < 3000000:
                    return False
            return True
        wait_until(settled, timeout=120, what="the containers' shells waiting")
        yield ctrs
    finally:
        g.sh("; ".join(f"runc delete --force {cid}" for _, cid, *_ in ctrs) + "; rm -rf /run/vmw-ctr/[0-9a-f]*",
             timeout=120)


def test_runc_containers(deb, vmwatch):  # noqa: F811
    """Containers of a real runtime (runc, systemd cgroup driver) named the
    way docker, podman and containerd's CRI name them: every process's
    cgroup, unit, slice and container (runtime, id, pod uid) from vmwatch ps
    equal to what the guest's /proc/PID/cgroup says; `vmwatch cgroups` and the
    agent's /cgroups show each container's cgroup with CPU and memory within
    the guest's own files."""
    with runc_containers(deb) as ctrs:
        before, out, after = ps_paused(deb, vmwatch, f"qemu:{deb.pid}")
        got = {p["pid"]: p for p in out["processes"]}
        for runtime, cid, _, path, pod_uid in ctrs:
            pids = [pid for pid, b in before.procs.items() if cgroup_path(b.cgroup) == path]
            assert len(pids) == 2, (path, pids)
            for pid in pids:
                assert cgroup_path(after.procs[pid].cgroup) == path
                p = got[pid]
                assert p["cgroup"] == path, (pid, p["cgroup"])
                assert p["unit"] == path.rsplit("/", 1)[1], p["unit"]
                assert p["slice"] == [c for c in path.split("/") if c.endswith(".slice")][-1], p["slice"]
                assert p["container"] == {"runtime": runtime, "id": cid, "pod_uid": pod_uid}, p["container"]
            assert {got[pid]["comm"] for pid in pids} == {"sh", "sleep"}
        # Per cgroup: the whole tree within the guest's files, the containers' judged.
        before, cg, after = paused_compare(deb, vmwatch)
        bad, _ = compare(before, cg, after)
        assert not bad, "\n".join(bad[:40])
        rows = {c["path"]: c for c in cg["cgroups"]}
        for runtime, cid, _, path, pod_uid in ctrs:
            c, b, a = rows[path], before[path], after[path]
            assert not c["incomplete"] and c["tasks"] == 2 and c["procs"] == 2
            assert b["memory.current"] == a["memory.current"] == c["memory_current"] >= 3000000
            assert b["usage_usec"] <= c["cpu"]["usage_usec"] <= a["usage_usec"] and c["cpu"]["usage_usec"] > 0
            assert c["container"] == {"runtime": runtime, "id": cid, "pod_uid": pod_uid}, c
        # The agent: the latest frame's tree; memory is steady (the shells wait).
        with agent_on(vmwatch, deb, 1) as (agent, vm):
            doc = api_cgroups(agent, vm)
            files = cgroup_files(deb)
            rows = {c["path"]: c for c in doc["cgroups"]}
            for runtime, cid, _, path, pod_uid in ctrs:
                c = rows[path]
                assert c["memory_current"] == files[path]["memory.current"], (path, c)
                assert 0 < c["cpu"]["usage_usec"] <= files[path]["usage_usec"], (path, c)
                assert c["container"] == {"runtime": runtime, "id": cid, "pod_uid": pod_uid}, c
                assert c["tasks"] == 2


# ---- top -u NAME: the guest's user names -------------------------------------

def test_top_user_names(guest, vmwatch):
    """`top -u NAME` and the u key resolve names through the guest's own
    /etc/passwd (alice and bob run services on the Debian guest): the rows
    are the user's processes as the guest's procps sees them (real uid, like
    top's filter); an unknown name is a usage error for -u and a message on
    the status line for u (the filter before it stays)."""
    from test_debian import debian
    from test_top import Tmux, parse_rows, top_cmd
    g = debian(guest, "6.12")
    target = f"qemu:{g.pid}"

    def batch(*args):
        return subprocess.run([vmwatch, "top", "-b", "-n", "1", *args, target], capture_output=True, text=True,
                              timeout=120)
    before = g.truth()
    r = batch("-u", "alice")
    rc, out = g.sh("ps -U alice -o pid=", check=True)
    after = g.truth()
    assert r.returncode == 0, r.stderr
    stable = {pid for pid, p in before.procs.items() if pid in after.procs
              and after.procs[pid].starttime == p.starttime}
    rows = parse_rows(r.stdout)
    assert {x["user"] for x in rows} == {"alice"}
    assert {x["pid"] for x in rows} & stable == {int(p) for p in out.split()} & stable
    assert any(x["cmd"].startswith("/usr/local/bin/hog") for x in rows), rows
    r = batch("-u", "nosuchuser")
    assert r.returncode == 2 and not r.stdout, (r.returncode, r.stdout)
    assert "user 'nosuchuser' is not in the guest's /etc/passwd" in r.stderr, r.stderr
    # The u key: a name, then an unknown one (a message; bob's filter stays), then all.
    with top_in_tmux(Tmux, top_cmd(vmwatch, target, "-d", "1"), width=160, height=60) as t:
        t.wait(lambda s: len(parse_rows(s)) > 20, timeout=60, what="process table")
        t.keys("u")
        t.literal("bob")
        t.keys("Enter")

        def bobs(s):
            rows = parse_rows(s)
            return "User: 1002 (bob)" in s and rows and {x["user"] for x in rows} == {"bob"}
        s = t.wait(bobs, timeout=30, what="bob's processes")
        assert any(x["cmd"].startswith("bob (worker)") or "idle" in x["cmd"] for x in parse_rows(s)), s
        t.keys("u")
        t.literal("nosuchuser")
        t.keys("Enter")
        s = t.wait(lambda s: "Unknown user 'nosuchuser'" in s, what="the unknown user's message")
        assert bobs(s), s
        t.keys("u", "Enter")
        t.wait(lambda s: "User:" not in s and len(parse_rows(s)) > 20 and "root" in {x["user"] for x in parse_rows(s)},
               timeout=30, what="every user's processes")


def test_cgroup_path_follows_a_recreated_cgroup(deb, vmwatch, tmp_path):  # noqa: F811
    """A walk reuses the last walk's cgroup path only while the css_set, its
    cgroup and the cgroup's kernfs node (by its id) are the same. Moving a
    sleeping process through cgroups removed and created one after another
    makes the kernel hand out a freed cgroup's address again; each new path
    must show within a few frames of `top --json`, never the removed
    cgroup's name for good."""
    tag = secrets.token_hex(3)
    rc, out = deb.sh("setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!", check=True)
    pid = int(out.split()[-1])
    frames = tmp_path / "top.jsonl"
    with open(frames, "w") as f:
        top = subprocess.Popen([str(vmwatch), "top", "--json", "-d", "1", "-p", str(pid), f"qemu:{deb.pid}"],
                               stdout=f, stderr=subprocess.DEVNULL)
    try:
        def shown():
            seen = None
            for line in frames.read_text().splitlines()[-3:]:
                with contextlib.suppress(ValueError):
                    seen = [p["cgroup"] for p in json.loads(line)["processes"] if p["pid"] == pid] or seen
            return seen[0] if seen else None

        prev = None
        for i in range(6):
            name = f"/vmw-{tag}-{i}"
            # Out of the last one and remove it first: the new cgroup then
            # takes the freed one's memory (seen within a second on 6.1).
            cmd = f"echo {pid} > /sys/fs/cgroup/cgroup.procs && rmdir /sys/fs/cgroup{prev} && sleep 0.3 && " if prev else ""
            deb.sh(cmd + f"mkdir /sys/fs/cgroup{name} && echo {pid} > /sys/fs/cgroup{name}/cgroup.procs", check=True)
            assert deb.sh(f"cat /proc/{pid}/cgroup", check=True)[1].strip() == f"0::{name}"
            wait_until(lambda: shown() == name, timeout=30, what=f"{name} shown by top")
            prev = name
    finally:
        top.terminate()
        top.wait(timeout=15)
        deb.sh(f"kill {pid}; sleep 0.5; rmdir /sys/fs/cgroup/vmw-{tag}-* 2>/dev/null; true")

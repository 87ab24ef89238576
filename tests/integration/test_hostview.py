"""vmwatch top without a TARGET: every VM of the host, one row each (like
virt-top), against three real guests found as QEMU processes in /proc (two
shared lab guests and a private one whose RAM is only readable through
process_vm_readv), plus a libvirt domain with Nova metadata.

  - JSON Lines frames list all three with values from their own guest
    (a burn workload is the busiest process, vCPUs, RAM size, QEMU pid, the
    QEMU process's host CPU), validated against top-host-frame.json;
  - batch frames sorted by the column asked for;
  - a VM that stops leaves within an interval, an unreadable target stays
    listed with its reason, several TARGETs are one host view;
  - the screen in tmux: rows for all three, sorting keys, Enter drills into
    the VM's process view, Backspace and Esc come back, q exits 0;
  - top's keys in the process view: u, K, 1, k, unknown keys;
  - vms --json: the use of each libvirt domain, the Nova instance name as
    the host view's name.

Other sessions' guests run on the same host: every command here passes
--filter with this test session's pid (the lab names shared guests
LABEL-PID-HEX), so only our guests are read.
"""
import json
import os
import re
import subprocess
import time

import pytest

from helpers import wait_until
from schemas import validate
from test_top import G61, Tmux, parse_rows, term  # noqa: F401  (term: the fixture)

MINE = f"-{os.getpid()}-"
# The third guest: private RAM (process_vm_readv), 6.12, booted for this module.
PRIVATE = dict(kernel="6.12", mem="512M", machine="pc", backing="private", smp=1,
               name=f"host{MINE}priv")
HOSTROW = re.compile(r"^(\S+)\s+(starting|ok|waiting|gone|partial)\s+(\d+|-)\s+([\d.]+|-)\s+([\d.]+|-)\s+"
                     r"([\d.]+|-)\s+([\d.]+|-)\s+([\d.]+|-)\s+([\d.]+|-)\s+(\S+)/(\S+)\s+([\d.]+|-)\s+"
                     r"(\d+|-)\s+([\d.]+|-)\s+(\S+)\s?(.*)$")


def num(s):
    return None if s == "-" else float(s)


def host_rows(text):
    rows = []
    for line in text.splitlines():
        m = HOSTROW.match(line)
        if m:
            rows.append(dict(name=m[1], status=m[2], vcpus=num(m[3]), cpu=num(m[4]), us=num(m[5]),
                             sy=num(m[6]), wa=num(m[7]), st=num(m[8]), host=num(m[9]),
                             mem=m[10], total=m[11], mempct=num(m[12]), procs=num(m[13]),
                             load=num(m[14]), os=m[15], top=m[16]))
    return rows


@pytest.fixture(scope="module")
def vms(guest, lab):
    import vmlab
    busy = guest(**G61)
    idle = guest()
    priv = vmlab.Guest.boot(vmlab.GuestConfig(**PRIVATE))
    try:
        with busy.workload("burn", 80) as burn, priv.workload("hog", 64) as hog:
            wait_until(lambda: priv.truth().procs[hog].VmRSS >= 64 * 1024, timeout=30, what="hog")
            yield {"busy": busy, "idle": idle, "priv": priv, "burn": burn}
    finally:
        priv.shutdown()


def ours(vms) -> str:
    """--filter for exactly this module's three guests (the session's other
    shared guests may still run)."""
    return ",".join(vms[k].name for k in ("busy", "idle", "priv"))


def run_top(vmwatch, *args, timeout=90, match=MINE):
    return subprocess.run([str(vmwatch), "top", "--filter", match, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def frames(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_host_json_lists_every_vm(vms, vmwatch):
    r = run_top(vmwatch, "--json", "-n", "3", "-d", "0.5", match=ours(vms))
    assert r.returncode == 0, r.stderr
    fs = frames(r.stdout)
    assert len(fs) == 3
    names = {g.name for g in (vms["busy"], vms["idle"], vms["priv"])}
    for f in fs:
        validate("top-host-frame", f)
        assert {v["name"] for v in f["vms"]} == names, f["vms"]
    assert [f["seq"] for f in fs] == sorted(f["seq"] for f in fs)
    last = {v["name"]: v for v in fs[-1]["vms"]}
    for g in (vms["busy"], vms["idle"], vms["priv"]):
        v = last[g.name]
        assert v["status"] == "ok", v
        assert v["qemu_pid"] == g.pid and v["target"] == f"qemu:{g.pid}"
        assert v["vcpus"] == g.config.smp
        # MemTotal is RAM less what the kernel reserved: within 15 % of -m.
        assert 0.85 * g.config.mem_mib * 2**20 < v["memory"]["total_bytes"] <= g.config.mem_mib * 2**20
        truth = g.truth()
        assert abs(v["processes"] - len(truth.procs)) <= 3
    busy = last[vms["busy"].name]
    # burn 80 on one of two vCPUs: the guest is ~40 % busy, burn is its top process.
    assert busy["top_process"]["comm"] == "burn" and busy["top_process"]["pid"] == vms["burn"]
    assert 50 < busy["top_process"]["cpu_percent"] < 100
    assert 20 < busy["cpu"]["busy"] < 70
    # TCG: the QEMU process burns host CPU for the guest's busy vCPU.
    assert busy["host_cpu_percent"] > 20
    assert last[vms["idle"].name]["cpu"]["busy"] < 20
    priv = last[vms["priv"].name]
    assert priv["memory"]["used_bytes"] > 64 * 2**20


def test_host_batch_sorted(vms, vmwatch):
    for key, col, reverse in (("name", "name", False), ("cpu", "cpu", True), ("procs", "procs", True)):
        r = run_top(vmwatch, "-b", "-n", "1", "-d", "0.5", "-o", key, match=ours(vms))
        assert r.returncode == 0, r.stderr
        rows = host_rows(r.stdout)
        assert len(rows) == 3, r.stdout
        vals = [x[col] for x in rows]
        known = [v for v in vals if v is not None]
        # Unknown values ("-") sort last in either order.
        assert vals == sorted(known, reverse=reverse) + [None] * (len(vals) - len(known)), (key, r.stdout)
        if col != "name":
            assert known, r.stdout
    r = run_top(vmwatch, "-b", "-n", "1", "-o", "bogus")
    assert r.returncode == 2 and "unknown sort field 'bogus'" in r.stderr


def host_ready(screen, n=3):
    """n readable VMs with a CPU split (the first frame of a VM has none)."""
    return "TOP PROCESS" in screen and len([r for r in host_rows(screen)
                                            if r["status"] == "ok" and r["cpu"] is not None]) == n


def test_host_screen_sort_drill_back(vms, vmwatch, term):
    t = term(f"{vmwatch} top -d 0.5 --filter {ours(vms)}")
    s = t.wait(host_ready, timeout=60, what="three VMs")
    rows = host_rows(s)
    assert rows[0]["name"] == vms["busy"].name          # default: sorted by guest %CPU
    assert rows[0]["top"].split()[1] == "burn"
    t.keys("N")
    s = t.wait(lambda s: (lambda r: len(r) == 3 and [x["name"] for x in r] ==
                          sorted(x["name"] for x in r))(host_rows(s)), what="sorted by name")
    t.keys("M")
    t.wait(lambda s: (lambda r: len(r) == 3 and [x["mempct"] for x in r] ==
                      sorted((x["mempct"] for x in r), reverse=True))(host_rows(s)), what="by memory")
    t.keys("I")
    t.wait(lambda s: (lambda r: len(r) == 3 and [x["mempct"] for x in r] ==
                      sorted(x["mempct"] for x in r))(host_rows(s)), what="reversed")
    # Select the busy guest (P: first row) and drill into it.
    t.keys("P")
    t.wait(lambda s: host_rows(s) and host_rows(s)[0]["name"] == vms["busy"].name, what="busy first")
    t.keys("Enter")
    s = t.wait(lambda s: "COMMAND" in s and any(r["pid"] == vms["burn"] for r in parse_rows(s)),
               timeout=30, what="the busy VM's processes")
    assert f"vmwatch top {vms['busy'].name}" in s
    t.keys("BSpace")
    t.wait(lambda s: host_ready(s), timeout=30, what="back to the host view")
    # The filter narrows the rows; Esc clears it.
    t.keys("/")
    t.literal("priv")
    s = t.wait(lambda s: [r["name"] for r in host_rows(s)] == [vms["priv"].name], what="filtered")
    t.keys("Enter", "Enter")
    t.wait(lambda s: "COMMAND" in s and f"vmwatch top {vms['priv'].name}" in s, timeout=30,
           what="the private VM's processes")
    t.keys("M")
    t.wait(lambda s: (lambda r: r and r[0]["cmd"].startswith("hog"))(parse_rows(s)), what="hog by memory")
    t.keys("Escape")
    t.wait(lambda s: "TOP PROCESS" in s and len(host_rows(s)) == 1, timeout=30, what="back again")
    t.keys("Escape")
    t.wait(lambda s: host_ready(s), what="filter cleared")
    t.keys("z")
    t.wait(lambda s: "Unknown command" in s, what="unknown key")
    t.keys("q")
    s = t.wait(lambda s: "EXIT=" in s, what="exit")
    assert "EXIT=0" in s and not t.alternate_on()


def test_top_keys_user_kthreads_cpus_readonly(vms, vmwatch, term):
    g = vms["busy"]
    t = term(f"{vmwatch} top -d 0.5 qemu:{g.pid}")
    s = t.wait(lambda s: len(parse_rows(s)) > 5, timeout=30, what="process table")
    assert "  0[" in s and "  1[" in s   # one bar per vCPU
    t.keys("1")
    s = t.wait(lambda s: re.search(r"^CPU\[", s, re.M), what="one CPU meter")
    assert "  0[" not in s and "  1[" not in s
    t.keys("K")
    s = t.wait(lambda s: "no kthreads" in s, what="kernel threads hidden")
    rows = parse_rows(s)
    assert rows and not any(r["cmd"].startswith("[") for r in rows), s
    t.keys("K")
    t.wait(lambda s: any(r["cmd"].startswith("[") for r in parse_rows(s)), what="kernel threads back")
    t.keys("u")
    t.literal("4242")
    t.keys("Enter")
    s = t.wait(lambda s: "User: 4242" in s, what="user filter")
    assert parse_rows(s) == []
    t.keys("u")
    t.literal("root")
    t.keys("Enter")
    t.wait(lambda s: "User: 0" in s and len(parse_rows(s)) > 5, what="root's processes")
    t.keys("u", "Enter")
    t.wait(lambda s: "User:" not in s, what="user filter off")
    t.keys("k")
    t.wait(lambda s: "vmwatch is read-only" in s, what="k answered")
    t.keys("x")
    t.wait(lambda s: "Unknown command" in s, what="unknown key answered")
    t.keys("q")
    assert "EXIT=0" in t.wait(lambda s: "EXIT=" in s, what="exit")
    # -u in batch mode
    r = subprocess.run([str(vmwatch), "top", "-b", "-n", "1", "-u", "4242", f"qemu:{g.pid}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and parse_rows(r.stdout) == []
    # a name of the guest's /etc/passwd (nobody: 65534, no processes); one it lacks
    r = subprocess.run([str(vmwatch), "top", "-b", "-n", "1", "-u", "nobody", f"qemu:{g.pid}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and parse_rows(r.stdout) == [], r.stderr
    r = subprocess.run([str(vmwatch), "top", "-b", "-n", "1", "-u", "nosuchuser", f"qemu:{g.pid}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "uid" in r.stderr


def test_host_vm_leaves_unreadable_stays_targets(vms, vmwatch, tmp_path):
    """Last of the module's tests on the private guest: it is shut down here."""
    zeros = tmp_path / "zeros.raw"
    zeros.write_bytes(b"\0" * (4 << 20))
    gone = vms["priv"]
    p = subprocess.Popen([str(vmwatch), "top", "--json", "-d", "0.5", "--filter", MINE,
                          "--target", f"file:{zeros}"], stdout=subprocess.PIPE, text=True)
    try:
        seen = []

        def frame():
            f = json.loads(p.stdout.readline())
            seen.append(f)
            return f
        f = wait_until(lambda: (lambda f: any(v["name"] == gone.name and v["status"] == "ok"
                                              for v in f["vms"]) and f)(frame()),
                       timeout=60, what="the private guest listed")
        z = [v for v in f["vms"] if v["target"] == f"file:{zeros}"]
        assert len(z) == 1 and z[0]["status"] in ("waiting", "gone")
        assert z[0]["reason_code"] == "not_linux" and "VMCOREINFO" in z[0]["reason"]
        gone.shutdown()
        t0 = time.monotonic()
        wait_until(lambda: not any(v["name"] == gone.name for v in frame()["vms"]), timeout=10,
                   what="the stopped guest leaving")
        # Within an interval (0.5 s) of QEMU's exit, plus a frame's own time.
        assert time.monotonic() - t0 < 3
        validate("top-host-frame", seen[-1])
        assert any(v["target"] == f"file:{zeros}" for v in seen[-1]["vms"])
    finally:
        p.kill()
        p.wait()
    # Several TARGETs: a host view of just those (no discovery).
    a, b = vms["busy"], vms["idle"]
    r = subprocess.run([str(vmwatch), "top", "-b", "-n", "1", "-o", "name", f"qemu:{a.pid}",
                        f"qemu:{b.pid}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(x["name"] for x in host_rows(r.stdout)) == sorted([f"qemu:{a.pid}", f"qemu:{b.pid}"])


def test_vms_use_and_nova_name(libvirt_domain, vmwatch):
    from test_virt import BOOT_TIMEOUT, NOVA, SHARED
    d = libvirt_domain(SHARED, shared=True, nova=NOVA, wait=False, boot_timeout=BOOT_TIMEOUT)
    d.wait_ready(BOOT_TIMEOUT)
    r = subprocess.run([str(vmwatch), "vms", "--json", "-d", "0.5"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = validate("vms", json.loads(r.stdout))
    dom = next(x for x in out["domains"] if x["name"] == SHARED)
    use = dom["use"]
    assert use["status"] == "ok", use
    assert use["qemu_pid"] == d.pid and use["processes"] > 10 and use["memory"]["total_bytes"] > 0
    assert use["cpu"] is not None and use["host_cpu_percent"] is not None
    text = subprocess.run([str(vmwatch), "vms", "-d", "0.5"], capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0].split()[:4] == ["NAME", "UUID", "STATE", "VCPUS"]
    assert "%CPU" in text.stdout.splitlines()[0]
    row = next(line for line in text.stdout.splitlines() if line.startswith(SHARED + " "))
    assert " ok " in row and "web-frontend-1" in row
    # The host view names a Nova instance by its display name.
    r = subprocess.run([str(vmwatch), "top", "--json", "-n", "1", "--filter", "web-frontend"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    f = validate("top-host-frame", json.loads(r.stdout))
    [v] = f["vms"]
    assert v["name"] == "web-frontend-1" and v["domain"]["name"] == SHARED
    assert v["nova"]["project_name"] == "shop-prod" and v["status"] == "ok"

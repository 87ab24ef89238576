"""The agent's privilege separation and crash isolation (issue 9; design in
docs/ARCHITECTURE.md "The agent's processes", threat model in
docs/SECURITY.md).

One agent, run as root like an operator would, watches two real guests: one
whose RAM is a shared file (read through a mapping the monitor opens) and one
with private RAM (read with pread on /proc/PID/mem opened by the monitor),
plus the shared one again as a file: target. The tests check, from the
outside, what each process may do, that a sampler crash or hang costs one
VM only (marked "crashed", restarted with back-off) while the others go on,
and that the frames that cross the process boundary still equal the guest's
own /proc.

Crashes are caused with signals (SIGABRT, SIGSTOP): every way a hostile
guest was found to crash a sampler is fixed (test_hostile.py), so a signal is
the fault that cannot be produced for real.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import wait_until  # noqa: E402
from test_agent import Agent, assert_processes_equal_guest_proc  # noqa: E402
from test_ps import G612_5G_PRIVATE  # noqa: E402

TOKEN = "privsep-test-token-0123456789"
NOBODY = 65534
SANITIZER_WORDS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def status(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")


@pytest.fixture(scope="module")
def shm(guest):
    return guest(kernel="6.1", mem="512M")


@pytest.fixture(scope="module")
def private(guest):
    return guest(**G612_5G_PRIVATE)


@pytest.fixture(scope="module")
def agent(vmwatch, shm, private):
    a = Agent(vmwatch, "--connect", "none", "--interval", 1, "--sampler-timeout", 3, "--token", TOKEN,
              "--target", f"shm=qemu:{shm.pid}", "--target", f"priv=qemu:{private.pid}",
              "--target", f"file=file:{shm.ram_path}", token=TOKEN)
    try:
        for vm in ("shm", "priv", "file"):
            wait_until(lambda: a.vm(vm)["monitoring"]["status"] == "ok", timeout=120, what=f"{vm} monitored")
        yield a
    finally:
        rc = a.stop()
        log = "\n".join(a.log)
        assert rc == 0, f"agent exit code {rc}:\n{log[-4000:]}"
        assert not any(w in log for w in SANITIZER_WORDS), log[-6000:]


def processes(agent) -> tuple[int, int, dict[str, int]]:
    """(monitor, front, {target: sampler pid})."""
    monitor = agent.proc.pid
    kids = children(monitor)
    fronts = [p for p in kids if comm(p) == "vmwatch-front"]
    assert len(fronts) == 1, [(p, comm(p)) for p in kids]
    samplers = {}
    for p in kids:
        if comm(p) == "vmwatch-sampler":
            samplers[cmdline(p)[1]] = p
    return monitor, fronts[0], samplers


def sampler_of(agent, target: str) -> int:
    return processes(agent)[2][target]


def test_process_model(agent, shm, private):
    """The monitor alone is privileged; the front and the samplers run as
    nobody, with no capabilities, no_new_privs and not dumpable (their /proc
    files belong to root); samplers are under seccomp; no token reaches a
    sampler's environment or anybody's command line."""
    monitor, front, samplers = processes(agent)
    assert set(samplers) == {f"qemu:{shm.pid}", f"qemu:{private.pid}", f"file:{shm.ram_path}"}
    m = status(monitor)
    assert m["Uid"].split()[0] == "0" and int(m["CapEff"], 16) != 0
    for pid in [front, *samplers.values()]:
        st = status(pid)
        assert st["Uid"].split() == [str(NOBODY)] * 4, (pid, st["Uid"])
        assert int(st["CapEff"], 16) == int(st["CapPrm"], 16) == int(st["CapAmb"], 16) == 0, (pid, st)
        assert st["NoNewPrivs"] == "1"
        # Files of a non-dumpable process belong to root (the /proc/PID directory does not).
        assert os.stat(f"/proc/{pid}/environ").st_uid == 0, f"{pid} ({comm(pid)}) is dumpable"
        assert TOKEN not in " ".join(cmdline(pid))
    for pid in samplers.values():
        assert status(pid)["Seccomp"] == "2", pid
        # Their own executable, without the HTTP and TLS libraries (less memory each).
        assert os.readlink(f"/proc/{pid}/exe").endswith("/vmwatch-sampler"), os.readlink(f"/proc/{pid}/exe")
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libgnutls" not in maps and "libmicrohttpd" not in maps, pid
        assert TOKEN.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    assert status(front)["Seccomp"] == "0"
    assert TOKEN not in " ".join(cmdline(monitor)), "the monitor's own command line still shows the token"


def test_front_user_cannot_read_guest_memory(agent, shm, private):
    """What the front is (nobody, no capabilities) cannot open either guest's
    memory: not the shared RAM file, not /proc/QEMU/mem, not the maps."""
    paths = [shm.ram_path, f"/proc/{private.pid}/mem", f"/proc/{shm.pid}/mem", f"/proc/{private.pid}/maps"]
    script = ("import os, sys\n"
              "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
              "bad = []\n"
              "for p in sys.argv[1:]:\n"
              "    try:\n"
              "        open(p, 'rb').close(); bad.append(p)\n"
              "    except PermissionError:\n"
              "        pass\n"
              "print(' '.join(bad))\n")
    out = subprocess.run(["/usr/bin/python3", "-c", script, *map(str, paths)], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"user nobody can open {out}"


def test_private_ram_through_the_monitor(agent, private):
    """The private-RAM guest is read with pread on /proc/PID/mem that the
    monitor opened; the process table that crosses two process boundaries
    equals the guest's own /proc."""
    assert_processes_equal_guest_proc(agent, private, "priv")


def frames(agent, vm) -> int:
    return agent.vm(vm)["monitoring"]["frames"]


def metric(agent, name, vm) -> float:
    text = agent.request("/metrics")[2].decode()
    m = re.search(rf'^{name}{{vm="{vm}"[^}}]*}} (\S+)$', text, re.M)
    assert m, f"no {name} for {vm}"
    return float(m.group(1))


def test_a_crashing_sampler_costs_one_vm(agent, shm, private):
    """kill -ABRT one VM's sampler (what glibc does on heap corruption; ASan
    would turn a SIGSEGV into its own report and exit code): that VM is
    "crashed" with the signal in
    its reason, counted, restarted after 1 s (2 s after a second crash),
    then ok again with a new sampler; the other VMs never stop and /healthz
    answers throughout."""
    target = f"qemu:{private.pid}"
    seen: list[dict] = []

    for n, delay in ((1, "1s"), (2, "2s")):
        old = sampler_of(agent, target)
        others = {vm: frames(agent, vm) for vm in ("shm", "file")}
        os.kill(old, signal.SIGABRT)

        def crashed():
            mon = agent.vm("priv")["monitoring"]
            seen.append(mon)
            return mon if mon["sampler_crashes"] >= n else None
        mon = wait_until(crashed, timeout=10, what="the crash noticed")
        assert agent.request("/healthz", token=None)[0] == 200
        reasons = [m["reason"] for m in seen if m["status"] == "crashed"]
        assert any(f"({old}) killed by signal 6 (ABRT); a new sampler starts in {delay}" in r for r in reasons), \
            reasons
        assert all(m["reason_code"] == "crashed" for m in seen if m["status"] == "crashed")
        wait_until(lambda: agent.vm("priv")["monitoring"]["status"] == "ok" and
                   sampler_of(agent, target) != old, timeout=20, what="a new sampler")
        before = frames(agent, "priv")
        wait_until(lambda: frames(agent, "priv") > before + 1, timeout=20, what="frames again")
        for vm, f in others.items():
            assert frames(agent, vm) > f, f"{vm} stopped while another VM's sampler crashed"
        assert not Path(f"/proc/{old}").exists() or comm(old) != "vmwatch-sampler", "the old sampler lives on"
    assert metric(agent, "vmwatch_sampler_crashes_total", "priv") == 2
    assert metric(agent, "vmwatch_sampler_crashes_total", "shm") == 0
    assert any("sampler" in line and "ended: killed by signal 6 (ABRT)" in line for line in agent.log)


def test_a_hung_sampler_is_killed(agent, shm):
    """A sampler that stops answering (SIGSTOP) is killed after
    sampler_timeout (3 s here) and replaced; the VM comes back."""
    target = f"qemu:{shm.pid}"
    old = sampler_of(agent, target)
    crashes = agent.vm("shm")["monitoring"]["sampler_crashes"]
    t0 = time.monotonic()
    os.kill(old, signal.SIGSTOP)
    try:
        mon = wait_until(lambda: (m := agent.vm("shm")["monitoring"])["sampler_crashes"] > crashes and m,
                         timeout=20, what="the hang noticed")
        took = time.monotonic() - t0
        assert 2.5 <= took <= 10, took
        wait_until(lambda: not Path(f"/proc/{old}").exists(), timeout=10, what="the hung sampler killed")
        wait_until(lambda: agent.vm("shm")["monitoring"]["status"] == "ok", timeout=20, what="ok again")
        assert sampler_of(agent, target) != old
        assert any(f"({old}) did not answer within 3s: killed" in line for line in agent.log), agent.log[-10:]
        assert mon["sampler_crashes"] == crashes + 1
    finally:
        if Path(f"/proc/{old}").exists():
            os.kill(old, signal.SIGCONT)


def test_reload_reads_files_through_the_monitor(vmwatch, shm, tmp_path):
    """The front cannot read a root-only configuration file itself: at start
    and on SIGHUP (sent to the main process, as systemd does) the monitor
    opens it, and a new token from it works."""
    conf = tmp_path / "agent.conf"
    conf.write_text(f"token = first-token-abcdef\ntarget = s=qemu:{shm.pid}\ninterval = 1s\n")
    conf.chmod(0o600)
    tmp_path.chmod(0o700)
    a = Agent(vmwatch, "--connect", "none", "--config", conf, token="first-token-abcdef")
    try:
        wait_until(lambda: a.vm("s")["monitoring"]["status"] == "ok", timeout=60, what="monitored")
        conf.write_text(f"token = second-token-abcdef\ntarget = s=qemu:{shm.pid}\ninterval = 1s\n")
        a.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: a.request("/v1/vms", token="second-token-abcdef")[0] == 200, timeout=10,
                   what="the new token accepted")
        assert a.request("/v1/vms", token="first-token-abcdef")[0] == 401
    finally:
        rc = a.stop()
    log = "\n".join(a.log)
    assert rc == 0 and not any(w in log for w in SANITIZER_WORDS), log[-4000:]
    assert "reload failed" not in log, log[-2000:]


def test_a_cold_sampler_gives_back_libbpf(vmwatch, shm, tmp_path):
    """Without the discovery cache every attach is cold: the sampler parses
    the guest's BTF with libbpf. After its first frame it frees the parsed
    BTF, and with it unloads libbpf, libelf and zlib: it is then as small as
    a sampler that attached warm, and still answers frame after frame."""
    conf = tmp_path / "agent.conf"
    conf.write_text(f"target = s=qemu:{shm.pid}\ninterval = 1s\nkernel_cache = no\n")
    a = Agent(vmwatch, "--connect", "none", "--config", conf)
    try:
        wait_until(lambda: a.vm("s")["monitoring"]["frames"] >= 3, timeout=120, what="three frames")
        pid = sampler_of(a, f"qemu:{shm.pid}")
        maps = Path(f"/proc/{pid}/maps").read_text()
        loaded = [lib for lib in ("libbpf.so", "libelf", "libz.so") if lib in maps]
        assert not loaded, f"sampler {pid} still maps {loaded}"
        assert a.vm("s")["monitoring"]["status"] == "ok"
        assert_processes_equal_guest_proc(a, shm, "s")
    finally:
        rc = a.stop()
    log = "\n".join(a.log)
    assert rc == 0 and not any(w in log for w in SANITIZER_WORDS), log[-4000:]

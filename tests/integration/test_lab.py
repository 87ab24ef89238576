"""Tests of the lab itself: guests boot, ground truth parses and is sane,
workloads show up as they should, QMP works, and everything is cleaned up."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time

import pytest

import vmlab
from helpers import cpu_share, procs_by_comm

KERNELS = ["6.1", "6.12"]
VALID_STATES = set("RSDTtZXIPWK")


def _sane_snapshot(snap: vmlab.Snapshot, version: str) -> None:
    assert snap.clk_tck == 100
    assert snap.page_size == 4096
    assert snap.release.startswith(version + ".")
    init = snap.procs[1]
    assert init.comm == "init" and init.ppid == 0 and not init.kthread
    assert init.cmdline[-1] == "/init"
    agent = snap.procs[snap.agent_pid]
    assert agent.comm == "vmw-truth" and agent.ppid == 1
    assert agent.cmdline == ["vmw-truth", "/dev/ttyS1"]
    assert snap.procs[2].comm == "kthreadd" and snap.procs[2].kthread
    assert 400_000 < snap.meminfo["MemTotal"] <= 512 * 1024
    assert 0 < snap.meminfo["MemFree"] < snap.meminfo["MemTotal"]
    assert len(snap.loadavg.split()) == 5
    assert snap.uptime_seconds > 0
    assert snap.stat.startswith("cpu ")
    assert snap.stat_values()["processes"] >= len(snap.procs)
    assert snap.t_start_ns <= snap.t_end_ns
    for p in snap.procs.values():
        assert p.state in VALID_STATES, p
        assert p.num_threads >= 1
        assert p.starttime >= 0 and p.utime >= 0 and p.stime >= 0
        if p.kthread:
            assert p.VmRSS == 0 and p.cmdline == [] and p.vsize == 0
        elif p.state != "Z":
            assert p.VmRSS > 0 and p.vsize > 0 and p.cmdline, p
            assert p.VmRSS == p.RssAnon + p.RssFile + p.RssShmem
        assert p.uid == 0 and p.euid == 0 and p.gid == 0


@pytest.mark.parametrize("version", KERNELS)
def test_boot_and_snapshot(guest, version):
    g = guest(kernel=version)
    print(f"\n{g.name}: booted in {g.boot_seconds:.1f} s")
    assert g.alive() and g.ram_path and os.path.getsize(g.ram_path) == 512 << 20
    snap = g.truth()
    _sane_snapshot(snap, version)
    # per-thread rows
    snap = g.truth(tasks=True)
    for p in snap.procs.values():
        assert p.tasks is not None
        assert len(p.tasks) == p.num_threads
        assert p.tasks[0].tid == p.pid
    assert "vmwatch-lab: starting vmw-truth" in g.console()


@pytest.mark.parametrize("version", KERNELS)
def test_workloads(guest, version):
    g = guest(kernel=version)

    with g.workload("swarm", 200) as pid:
        snap = g.wait_for(lambda s: len(s.children(pid)) >= 200, timeout=90)
        kids = snap.children(pid)
        assert len(kids) == 200
        assert all(k.comm == "swarm" and k.pgrp == pid for k in kids)
        assert snap.procs[pid].ppid == 1 and snap.procs[pid].session == pid
        assert snap.procs[pid].cmdline == ["swarm", "200"]
    snap = g.wait_for(lambda s: not procs_by_comm(s, "swarm"), timeout=30)   # group kill worked

    # Linux 6.1 caches up to 64 pages of RSS per task before folding them
    # into the mm's counters (SPLIT_RSS_COUNTING), so allow 256 kB of slack.
    slack = 256
    with g.workload("hog", 32) as pid:
        snap = g.wait_for(lambda s: s.procs[pid].RssAnon >= 32 * 1024 - slack, timeout=60)
        hog = snap.procs[pid]
        assert hog.VmRSS >= 32 * 1024 and hog.VmRSS < 40 * 1024
        assert hog.vsize >= 32 << 20

    with g.workload("hog", 16, "shm") as pid:
        snap = g.wait_for(lambda s: s.procs[pid].RssShmem >= 16 * 1024 - slack, timeout=60)

    with g.workload("threads", 8) as pid:
        snap = g.wait_for(lambda s: s.procs[pid].num_threads == 9, timeout=60, tasks=True)
        p = snap.procs[pid]
        assert len(p.tasks) == 9 and sorted(t.tid for t in p.tasks)[0] == pid
        assert all(t.state == "S" for t in p.tasks)

    with g.workload("burn", 50) as pid:
        time.sleep(1)
        a = g.truth()
        time.sleep(4)
        b = g.truth()
        share = cpu_share(a, b, pid)
        print(f"\nburn 50: {share:.2f} of a CPU")
        assert 0.25 <= share <= 0.8

    with g.workload("churn", 20) as pid:
        time.sleep(1)
        a = g.truth()
        time.sleep(3)
        b = g.truth()
        forks = b.stat_values()["processes"] - a.stat_values()["processes"]
        secs = (b.t_start_ns - a.t_start_ns) / 1e9
        print(f"\nchurn 20: {forks / secs:.1f} forks/s")
        assert forks / secs >= 10
        assert b.procs[pid].comm == "churn"

    # odd comm (spaces, parentheses) and a non-root user
    with g.workload("idle", "a (b) c)") as pid:
        snap = g.truth()
        assert snap.procs[pid].comm == "a (b) c)"
    with g.workload("runas", "1000:1001", "idle") as pid:
        snap = g.wait_for(lambda s: s.procs[pid].comm == "idle", timeout=30)
        assert snap.procs[pid].uid == 1000 and snap.procs[pid].euid == 1000 and snap.procs[pid].egid == 1001

    rc, out = g.sh("echo hello; exit 3")
    assert (rc, out) == (3, "hello\n")
    with pytest.raises(vmlab.TruthError):
        g.run("no-such-program")


def test_qmp_pause_and_memory(guest, tmp_path):
    g = guest(kernel="6.1")
    assert g.status() == "running"
    with g.paused():
        assert g.status() == "paused"
        path = g.pmemsave(0x100000, 4096, tmp_path / "page.bin")
        assert path.stat().st_size == 4096
    assert g.status() == "running"
    core = g.dump_guest_memory(tmp_path / "core.elf")
    with open(core, "rb") as f:
        hdr = f.read(64)
    assert hdr[:4] == b"\x7fELF" and hdr[16] == 4   # ET_CORE
    assert core.stat().st_size > 512 << 20
    core.unlink()
    g.truth()   # still answers


def test_cli_against_shared_guest(guest):
    g = guest(kernel="6.1")
    cli = [os.path.join(os.path.dirname(os.path.dirname(vmlab.__file__)), "vmlab.sh")]
    # the command, and the package run as a directory (what the command does)
    for entry in (cli, [sys.executable, os.path.dirname(vmlab.__file__)]):
        out = subprocess.run(entry + ["list", "--json"], stdout=subprocess.PIPE, check=True,
                             text=True).stdout
        assert any(r["name"] == g.name and r["alive"] for r in json.loads(out))
    out = subprocess.run(cli + ["truth", g.name], stdout=subprocess.PIPE, check=True, text=True).stdout
    assert json.loads(out)["procs"][0]["pid"] == 1
    pid = int(subprocess.run(cli + ["run", g.name, "idle", "clitest"], stdout=subprocess.PIPE,
                             check=True, text=True).stdout)
    assert g.truth().procs[pid].comm == "clitest"
    subprocess.run(cli + ["kill", g.name, str(pid)], check=True)


@pytest.mark.slow
def test_big_q35_private(fresh_guest):
    g = fresh_guest(mem="5G", machine="q35", backing="private")
    print(f"\n5G q35 private: booted in {g.boot_seconds:.1f} s")
    assert g.ram_path is None
    assert "mem-path" not in " ".join(g.argv) and "-machine" in g.argv
    snap = g.truth()
    assert snap.meminfo["MemTotal"] > 4.7 * 1024 * 1024
    with g.workload("hog", 64) as pid:
        g.wait_for(lambda s: s.procs[pid].RssAnon >= 64 * 1024 - 256, timeout=60)


@pytest.mark.slow
def test_la57_memfd(fresh_guest, tmp_path):
    g = fresh_guest(kernel="6.12", cpu="qemu64,+la57", backing="memfd")
    print(f"\n6.12 la57 memfd: booted in {g.boot_seconds:.1f} s")
    assert g.ram_path is None
    with open(f"/proc/{g.pid}/maps") as f:
        assert "memfd:" in f.read()
    rc, out = g.sh("grep -c la57 /proc/cpuinfo; cat /sys/kernel/vmcoreinfo")
    count, vmci = out.split("\n")[:2]
    assert int(count) >= 1
    addr, size = (int(x, 16) for x in vmci.split())
    note = g.pmemsave(addr, size, tmp_path / "vmcoreinfo").read_bytes()
    assert b"NUMBER(pgtable_l5_enabled)=1" in note
    assert re.search(rb"OSRELEASE=6\.12\.", note)


def test_shutdown_cleans_up(lab):
    g = vmlab.Guest.boot(kernel="6.1", name=f"cleanup-{os.getpid()}")
    pid, ram, state = g.pid, g.ram_path, g.state_dir
    assert os.path.exists(ram) and state.is_dir() and (state / "qmp.sock").exists()
    assert stat.S_IMODE(os.stat(ram).st_mode) == 0o600   # guest RAM: owner only
    assert vmlab.Guest.attach(g.name).alive()
    g.shutdown()
    assert not os.path.exists(f"/proc/{pid}")
    assert not os.path.exists(ram)
    assert not state.exists()
    g.shutdown()   # idempotent


def test_boot_panic_is_retried_then_reported(lab, capfd):
    """A guest kernel that panics while booting is booted again (TCG's race
    with text_poke_bp, see Guest.boot), then reported as a panic; nothing is
    left behind."""
    name = f"panics-{os.getpid()}"
    with pytest.raises(vmlab.BootError) as e:
        vmlab.Guest.boot(kernel="6.1", name=name, mem="128M", boot_timeout=60,
                         extra_cmdline="rdinit=/nonexistent root=/dev/nonexistent")
    assert e.value.guest_panicked
    assert "Kernel panic - not syncing" in str(e.value)
    again = [ln for ln in capfd.readouterr().err.splitlines() if "booting it again" in ln]
    assert len(again) == vmlab.guest.BOOT_PANIC_RETRIES, again
    assert not (vmlab.lab_root() / name).exists()
    assert not any(name in p for p in os.listdir("/dev/shm"))

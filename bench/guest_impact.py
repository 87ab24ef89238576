#!/usr/bin/python3
"""What sampling costs the guest: the throughput of a CPU-bound program in a
lab guest, measured inside the guest, with and without vmwatch sampling it.

    bench/guest_impact.py [--vmwatch build/vmwatch] [--rounds 7] [--hz 10]
                          [--backing shm|private] [--kernel 6.1] [--procs 1000]
                          [--sampler top|bench] [--cmdline] [--pin]

Boots a lab guest (1 vCPU, 512 MiB, `swarm PROCS` sleeping processes so each
frame walks as many tasks as a busy server), then alternates ROUNDS times:
  off: the guest runs a fixed amount of work (an awk loop) and reports how
       long it took by its own clock (/proc/uptime, 10 ms ticks);
  on:  the same while vmwatch samples the guest at HZ: `--sampler top` runs
       `vmwatch top --json -d 1/HZ` (frames formatted as JSON Lines),
       `--sampler bench` runs `vmwatch bench -i 1/HZ` (frames taken as an
       agent's sampler takes them, nothing printed); `--cmdline` adds
       command lines. Rounds go off-on, on-off, ... so a drift of the host's
       speed cancels out; `--pin` puts the guest's QEMU on the last host CPU
       and the sampler on the first (no competition for a core: what is left
       is the memory system).
Prints each round, the medians, the slowdown (on/off - 1) and the host CPU
the sampler used. The guest is never paused by vmwatch; what remains is
contention on the host (caches, memory bandwidth, and a core if the host
has too few for the vCPU threads and the sampler).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab"))

import vmlab  # noqa: E402

WORK = ("read a _ < /proc/uptime; awk 'BEGIN { for (i = 0; i < %d; i++) s += i * 2 }' < /dev/null; "
        "read b _ < /proc/uptime; echo $a $b")


def work_seconds(g, n: int) -> float:
    rc, out = g.sh(WORK % n, timeout=600)
    a, b = (float(x) for x in out.split()[-2:])
    return b - a


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vmwatch", default=str(ROOT / "build" / "vmwatch"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--hz", type=float, default=10)
    ap.add_argument("--backing", default="shm", choices=("shm", "private"))
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--procs", type=int, default=1000)
    ap.add_argument("--target-seconds", type=float, default=8, help="length of one round of work")
    ap.add_argument("--sampler", default="top", choices=("top", "bench"))
    ap.add_argument("--cmdline", action="store_true", help="the sampler reads command lines too")
    ap.add_argument("--pin", action="store_true", help="QEMU on the last CPU, the sampler on the first")
    a = ap.parse_args()

    cfg = vmlab.GuestConfig(kernel=a.kernel, mem="512M", backing=a.backing, smp=1,
                            run=[["swarm", str(a.procs)]] if a.procs else [])
    with vmlab.Guest.boot(cfg) as g:
        g.wait_for(lambda s: len(s.procs) >= a.procs, timeout=300)
        target = f"qemu:{g.pid}"
        ncpu = os.cpu_count() or 1
        if a.pin:
            for tid in os.listdir(f"/proc/{g.pid}/task"):
                os.sched_setaffinity(int(tid), {ncpu - 1})
        period = f"{1 / a.hz:g}"
        if a.sampler == "top":
            cmd = [a.vmwatch, "top", "--json", "-d", period] + (["--cmdline"] if a.cmdline else []) + [target]
        else:
            cmd = [a.vmwatch, "bench", "-n", "10000000", "-i", period] + (["--cmdline"] if a.cmdline else []) + [target]
        # Calibrate: N such that one round takes about target_seconds.
        n = 200000
        while (t := work_seconds(g, n)) < 1:
            n *= 4
        n = int(n * a.target_seconds / t)
        print(f"guest {g.name}: {a.kernel}, {a.backing} RAM, {a.procs} extra processes; "
              f"work = {n} awk iterations (~{a.target_seconds:.0f} s); sampling at {a.hz:g} Hz: "
              f"{' '.join(cmd[1:])}{' (pinned)' if a.pin else ''}", flush=True)
        off, on, cpu = [], [], []
        def sampled() -> tuple[float, float]:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if a.pin else None)
            time.sleep(1.5)   # attached and sampling before the work starts
            c0, t0 = cpu_seconds(p.pid), time.monotonic()
            secs = work_seconds(g, n)
            c1, t1 = cpu_seconds(p.pid), time.monotonic()
            p.terminate()
            err = p.communicate(timeout=30)[1]
            if p.returncode not in (0, -15, 143):
                print(err.decode(errors="replace")[-2000:], file=sys.stderr)
                raise SystemExit(1)
            return secs, (c1 - c0) / (t1 - t0)

        for r in range(a.rounds):
            if r % 2 == 0:
                off.append(work_seconds(g, n))
                secs, c = sampled()
            else:
                secs, c = sampled()
                off.append(work_seconds(g, n))
            on.append(secs)
            cpu.append(c)
            print(f"round {r + 1}: off {off[-1]:.2f} s, on {on[-1]:.2f} s, sampler {100 * cpu[-1]:.1f} % of a core",
                  flush=True)
        mo, mn = statistics.median(off), statistics.median(on)
        ratios = sorted(b / x for x, b in zip(off, on))
        print(f"median off {mo:.3f} s, on {mn:.3f} s: slowdown {100 * (mn / mo - 1):+.2f} % "
              f"(per-round on/off: min {100 * (ratios[0] - 1):+.2f} %, median "
              f"{100 * (statistics.median(ratios) - 1):+.2f} %, max {100 * (ratios[-1] - 1):+.2f} %); "
              f"sampler median {100 * statistics.median(cpu):.1f} % of a host core")
    return 0


if __name__ == "__main__":
    sys.exit(main())

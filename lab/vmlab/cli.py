"""The `lab/vmlab.sh` command line (also `python3 lab/vmlab`,
`python3 -m vmlab`): a thin layer over the library, so that a human or a
shell script can boot a guest, leave it running and drive it from other
processes."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional, Sequence

from .errors import LabError
from .guest import Guest, GuestConfig
from .debian import build_debian_initramfs
from .initramfs import build_initramfs
from .kernels import KERNELS, fetch_kernel
from .pool import gc_stale, list_guests, stop_all
from .procs import install_signal_handlers

__all__ = ["main"]


def _cli_parser() -> Any:
    import argparse
    p = argparse.ArgumentParser(prog="vmlab", description="vmwatch lab: QEMU/TCG guests with ground truth")
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("fetch", help="download/extract guest kernels into the cache")
    f.add_argument("versions", nargs="*", default=["6.1", "6.12"],
                   help=f"kernels (default: 6.1 6.12; known: {' '.join(sorted(KERNELS))})")

    i = sub.add_parser("initramfs", help="build the guest initramfs (prints its path)")
    i.add_argument("--force", action="store_true")
    i.add_argument("--image", default="busybox", choices=["busybox", "debian"])

    b = sub.add_parser("boot", help="boot a guest in the background and return")
    b.add_argument("--kernel", default="6.1")
    b.add_argument("--image", default="busybox", choices=["busybox", "debian"],
                   help="userland: busybox initramfs, or Debian 12 with systemd (mmdebstrap)")
    b.add_argument("--mem", default="512M")
    b.add_argument("--machine", default="pc", choices=["pc", "q35"])
    b.add_argument("--cpu", default="qemu64")
    b.add_argument("--la57", action="store_true", help="add +la57 to the CPU (5-level paging)")
    b.add_argument("--smp", type=int, default=1)
    b.add_argument("--backing", default="shm", choices=["shm", "memfd", "private"])
    b.add_argument("--accel", default="tcg", choices=["tcg", "kvm"])
    b.add_argument("--name")
    b.add_argument("--no-kaslr", action="store_true")
    b.add_argument("--append", default="", help="extra kernel command line")
    b.add_argument("--run", action="append", default=[], metavar="'PROG ARGS'",
                   help="workload started by /init (repeatable), e.g. --run 'swarm 1000'")
    b.add_argument("--qemu-arg", action="append", default=[], help="extra QEMU argument (repeatable)")
    b.add_argument("--timeout", type=float)
    b.add_argument("--json", action="store_true")

    ls = sub.add_parser("list", help="list lab guests")
    ls.add_argument("--json", action="store_true")

    t = sub.add_parser("truth", help="print a ground-truth snapshot as JSON")
    t.add_argument("name")
    t.add_argument("--tasks", action="store_true", help="include per-thread rows")
    t.add_argument("--raw", action="store_true", help="print the agent's JSON as received")

    r = sub.add_parser("run", help="start a workload in the guest; prints its pid")
    r.add_argument("name")
    r.add_argument("prog")
    r.add_argument("args", nargs=argparse.REMAINDER)

    k = sub.add_parser("kill", help="signal a process (or with --group its group) in the guest")
    k.add_argument("name")
    k.add_argument("pid", type=int)
    k.add_argument("sig", type=int, nargs="?", default=9)
    k.add_argument("--group", action="store_true")

    sh = sub.add_parser("sh", help="run a shell command in the guest")
    sh.add_argument("name")
    sh.add_argument("command", nargs=argparse.REMAINDER)

    pg = sub.add_parser("ping", help="round trip to the truth agent")
    pg.add_argument("name")

    c = sub.add_parser("console", help="print the guest console log")
    c.add_argument("name")

    q = sub.add_parser("qmp", help="run a QMP command; prints the result as JSON")
    q.add_argument("name")
    q.add_argument("command")
    q.add_argument("arguments", nargs="?", default="{}", help="JSON object")

    for nm in ("pause", "resume"):
        x = sub.add_parser(nm)
        x.add_argument("name")

    pm = sub.add_parser("pmemsave", help="save a guest-physical range to a file")
    pm.add_argument("name")
    pm.add_argument("addr", type=lambda s: int(s, 0))
    pm.add_argument("size", type=lambda s: int(s, 0))
    pm.add_argument("path")

    d = sub.add_parser("dump", help="dump guest memory as an ELF core (paging off)")
    d.add_argument("name")
    d.add_argument("path")

    s = sub.add_parser("stop", help="stop guests")
    s.add_argument("names", nargs="*")
    s.add_argument("--all", action="store_true")

    sub.add_parser("gc", help="remove state of dead guests and unused RAM files")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    install_signal_handlers(SystemExit)
    args = _cli_parser().parse_args(argv)
    try:
        return _cli(args)
    except LabError as e:
        print(f"vmlab: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


def _cli(a: Any) -> int:
    cmd = a.cmd
    if cmd == "fetch":
        for v in a.versions:
            print(v, fetch_kernel(v))
        return 0
    if cmd == "initramfs":
        print(build_debian_initramfs(force=a.force) if a.image == "debian"
              else build_initramfs(force=a.force))
        return 0
    if cmd == "boot":
        cfg = GuestConfig(kernel=a.kernel, mem=a.mem, machine=a.machine, cpu=a.cpu, la57=a.la57,
                          smp=a.smp, backing=a.backing, accel=a.accel, name=a.name,
                          kaslr=not a.no_kaslr, extra_cmdline=a.append, run=a.run,
                          qemu_args=a.qemu_arg, boot_timeout=a.timeout, image=a.image)
        g = Guest.boot(cfg, die_with_parent=False, own=True)   # owned until booted: SIGTERM/errors clean up
        g.detach()
        info = {"pid": g.pid, "name": g.name, "state_dir": str(g.state_dir), "ram_path": g.ram_path,
                "boot_seconds": round(g.boot_seconds or 0, 2)}
        if a.json:
            print(json.dumps(info))
        else:
            for k, v in info.items():
                print(f"{k} {v if v is not None else '-'}")
        return 0
    if cmd == "list":
        rows = []
        for g in list_guests():
            c = g.config
            rows.append({"name": g.name, "pid": g.pid, "alive": g.alive(), "kernel": c.kernel,
                         "mem": c.mem, "machine": c.machine, "cpu": c.cpu_model, "smp": c.smp,
                         "backing": c.backing, "ram_path": g.ram_path, "state_dir": str(g.state_dir)})
        if a.json:
            print(json.dumps(rows, indent=2))
        else:
            fmt = "{:<28} {:>8} {:<5} {:<7} {:>6} {:<4} {:<7} {}"
            print(fmt.format("NAME", "PID", "ALIVE", "KERNEL", "MEM", "MACH", "BACKING", "RAM"))
            for r in rows:
                print(fmt.format(r["name"], r["pid"] or "-", "yes" if r["alive"] else "no", r["kernel"],
                                 str(r["mem"]), r["machine"], r["backing"], r["ram_path"] or "-"))
        return 0
    if cmd == "stop":
        if a.all:
            for n in stop_all():
                print("stopped", n)
            return 0
        if not a.names:
            print("vmlab stop: give guest names or --all", file=sys.stderr)
            return 2
        rc = 0
        for n in a.names:
            g = Guest.attach(n, missing_ok=True)
            if g is None:
                print(f"vmlab: no guest {n}", file=sys.stderr)
                rc = 1
                continue
            g.shutdown()
            print("stopped", n)
        return rc
    if cmd == "gc":
        for x in gc_stale(min_age=0):
            print("removed", x)
        return 0

    g = Guest.attach(a.name)
    assert g is not None
    if cmd == "truth":
        if a.raw:
            sys.stdout.write(g.truth_raw(tasks=a.tasks).decode("utf-8", "surrogateescape"))
        else:
            snap = g.truth(tasks=a.tasks)
            sys.stdout.write(json.dumps(snap.raw, indent=1, ensure_ascii=True) + "\n")
        return 0
    if cmd == "run":
        print(g.run(a.prog, *a.args))
        return 0
    if cmd == "kill":
        g.kill(a.pid, a.sig, group=a.group)
        return 0
    if cmd == "sh":
        rc, out = g.sh(" ".join(a.command))
        sys.stdout.write(out)
        return rc
    if cmd == "ping":
        print(f"{g.ping() * 1000:.1f} ms")
        return 0
    if cmd == "console":
        sys.stdout.write(g.console())
        return 0
    if cmd == "qmp":
        print(json.dumps(g.qmp(a.command, _args=json.loads(a.arguments)), indent=2))
        return 0
    if cmd == "pause":
        g.pause()
        return 0
    if cmd == "resume":
        g.resume()
        return 0
    if cmd == "pmemsave":
        print(g.pmemsave(a.addr, a.size, a.path))
        return 0
    if cmd == "dump":
        print(g.dump_guest_memory(a.path))
        return 0
    raise LabError(f"unknown command {cmd}")

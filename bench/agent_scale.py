#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""agent_scale.py - what the real agent costs with N monitored VMs.

    bench/agent_scale.py --ram FILE [--ram FILE ...] [--qemu PID ...] --vms N
                         [--interval S] [--seconds S] [--agent BINARY]
                         [--vmwatch BINARY] [--json] [--no-bare]
                         [--bare-frames N] [--bare-interval S]
                         [--bare-at-interval N] [--save-smaps DIR]

Runs `vmwatch-agent --connect none` with N `file:` targets. Targets cycle
over the RAM files given (lab guests' shared RAM files under /dev/shm, or
ELF cores of `lab/vmlab.sh dump`), each through its own symlink, so every
target is its own VM to the agent (its own sampler process, session, kernel
model, history) while the host holds each guest's RAM once. All targets of
one RAM file run the same kernel build; targets after the first of a file
are "additional VMs of an already-known build". --qemu PID adds `qemu:PID`
targets of a running QEMU (a lab guest booted with `--backing private`:
private RAM, libvirt's default, which the privilege-separated samplers read
through /proc/PID/mem); targets cycle over the --ram files, then the QEMUs.

Once every VM has two frames, the script reads the CPU time (run time of
every thread, /proc/PID/task/TID/schedstat, in ns) of all the agent's processes (monitor, front, every
sampler), scrapes /metrics once per interval for --seconds (as a Prometheus
server would), and reads the CPU time again; memory is RssAnon summed over
the agent's processes (/proc/PID/status), and per sampler; "by_role" splits
the CPU, minor faults and context switches per VM-frame by thread name
(samplers, the front's VM threads, its HTTP workers). It also times the
bare walk of each RAM file (`vmwatch bench --json -n 200`, in-process CPU
per frame) to give the agent's cost per VM per frame against it, both
back to back (warm caches) and with --bare-interval between frames (cold,
as a sampler's frames are; `vmwatch bench -i`) (--no-bare: not);
--bare-at-interval N also times N bare frames taken --interval apart, as
the agent's samplers take theirs (N × the interval: 24 frames at 5 s is two
minutes), the like-for-like reference of the agent's cost. --save-smaps DIR keeps /proc/PID/smaps and status of the
monitor, the front and one sampler at the end, to see where their memory is.

Not a test. The machine is usually shared: quote the load average with it.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(root):
    kids, out, todo = children_map(), [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def thread_stats(pid):
    """Each thread of pid: {tid: (comm, run ns, minor faults, voluntary and
    involuntary context switches)}; run time from its schedstat (ns, what
    utime + stime of /proc/PID/stat count in 10 ms ticks, too coarse for a
    hundred processes that run ~1 ms each per frame). {} when unreadable."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        d = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{d}/schedstat") as f:
                run = int(f.read().split()[0])
            with open(f"{d}/stat") as f:
                st = f.read()
            with open(f"{d}/comm") as f:
                name = f.read().strip()
            sw = status(f"{pid}/task/{tid}")
        except (OSError, ValueError):
            continue
        minflt = int(st[st.rindex(")") + 2:].split()[7])
        out[tid] = (name, run, minflt, int(sw.get("voluntary_ctxt_switches", 0)),
                    int(sw.get("nonvoluntary_ctxt_switches", 0)))
    return out


def cpu_s(pid, threads=None):
    """CPU time of all threads of pid (thread_stats), else /proc/PID/stat."""
    threads = thread_stats(pid) if threads is None else threads
    if threads:
        return sum(t[1] for t in threads.values()) / 1e9
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return 0.0
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def by_role(t0, t1, frames):
    """The threads of the window by name (vmwatch-front: the VM threads and
    the main loop; MHD-worker: the HTTP workers; vmwatch-sampler): CPU, minor
    faults and context switches per VM-frame. Threads that came or went in
    the window count from zero or not at all."""
    roles = {}
    for key, (name, run, flt, vol, inv) in t1.items():
        _, run0, flt0, vol0, inv0 = t0.get(key, (name, 0, 0, 0, 0))
        r = roles.setdefault(name, [0, 0, 0, 0, 0])
        r[0] += 1
        r[1] += run - run0
        r[2] += flt - flt0
        r[3] += vol - vol0
        r[4] += inv - inv0
    per = 1.0 / frames if frames else 0.0
    return {name: {"threads": n, "cpu_ms_per_vm_frame": run / 1e6 * per, "minor_faults": flt,
                   "voluntary_switches_per_vm_frame": vol * per,
                   "involuntary_switches_per_vm_frame": inv * per}
            for name, (n, run, flt, vol, inv) in sorted(roles.items())}


def status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def kib(s):
    return int(s.split()[0]) if s else 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def bare_walk(vmwatch, target, frames, interval=None):
    """vmwatch bench of target (file:PATH or qemu:PID). A QEMU's private RAM
    is read as the agent's samplers read it (/proc/PID/mem), not with the
    CLI's process_vm_readv."""
    cmd = [vmwatch, "bench", "--json", "--cmdline", "-n", str(frames)]
    if interval:
        cmd += ["-i", f"{interval:g}"]   # cold frames, as a sampler takes them
    if target.startswith("qemu:"):
        probe = subprocess.run([vmwatch, "bench", "--json", "-n", "1", target], check=True,
                               capture_output=True, text=True).stdout
        if "private memory" in json.loads(probe).get("source", ""):
            cmd += ["--process-read", "--proc-mem"]
    out = subprocess.run(cmd + [target], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ram", action="append", default=[], help="guest RAM file or ELF core")
    ap.add_argument("--qemu", action="append", type=int, default=[],
                    help="PID of a running QEMU (qemu:PID targets; private RAM is read through /proc/PID/mem)")
    ap.add_argument("--vms", type=int, default=10)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--agent", default=os.path.join(os.path.dirname(__file__), "..", "build", "vmwatch-agent"))
    ap.add_argument("--vmwatch", default=None, help="vmwatch for the bare walk (default: next to the agent)")
    ap.add_argument("--bare-frames", type=int, default=200)
    ap.add_argument("--bare-interval", type=float, default=0.02,
                    help="pause before each frame of the cold bare walk (0: only the warm one)")
    ap.add_argument("--bare-at-interval", type=int, default=0, metavar="N",
                    help="also time N bare frames taken --interval apart, as the samplers take theirs")
    ap.add_argument("--ready-timeout", type=float, default=600.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare walk (no cost ratio)")
    ap.add_argument("--save-smaps", metavar="DIR",
                    help="save /proc/PID/smaps and status of the agent's non-sampler processes and of one sampler into DIR")
    a = ap.parse_args()
    if not a.ram and not a.qemu:
        ap.error("give at least one --ram FILE or --qemu PID")
    sources = [f"file:{os.path.abspath(r)}" for r in a.ram] + [f"qemu:{p}" for p in a.qemu]
    # A build tree where only vmwatch-agent was built: its samplers would run
    # the whole agent binary instead (privsep_monitor.c; ~2x their memory).
    if not os.path.exists(os.path.join(os.path.dirname(os.path.abspath(a.agent)), "vmwatch-sampler")):
        print(f"agent_scale: warning: no vmwatch-sampler next to {a.agent}: the samplers run the "
              "installed one or, without it, the whole agent binary", file=sys.stderr)
    vmwatch = a.vmwatch or os.path.join(os.path.dirname(os.path.abspath(a.agent)), "vmwatch")

    tmp = tempfile.mkdtemp(prefix="vmw-agent-scale-")
    os.chmod(tmp, 0o755)
    targets = []
    for i in range(a.vms):
        src = sources[i % len(sources)]
        if src.startswith("file:"):
            link = os.path.join(tmp, f"vm{i:03d}")
            os.symlink(src[5:], link)
            src = f"file:{link}"
        targets += ["--target", f"vm{i:03d}={src}"]
    port = free_port()
    argv = [a.agent, "--connect", "none", "--listen", f"127.0.0.1:{port}", "--interval", f"{a.interval}s",
            "--log-level", "warning"] + targets
    agent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "agent.log"), "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        # ready: every VM has two frames
        t0 = time.monotonic()
        while True:
            if agent.poll() is not None:
                sys.exit(f"agent_scale: the agent exited ({agent.returncode}); see {tmp}/agent.log")
            try:
                vms = json.loads(get(base + "/v1/vms"))["vms"]
            except OSError:
                vms = []
            ready = sum(1 for v in vms if (v.get("monitoring") or {}).get("frames", 0) >= 2)
            if len(vms) == a.vms and ready == a.vms:
                break
            if time.monotonic() - t0 > a.ready_timeout:
                sys.exit(f"agent_scale: only {ready} of {a.vms} VMs have two frames after {a.ready_timeout}s")
            time.sleep(1)
        ready_s = time.monotonic() - t0
        frames0 = {v["name"]: v["monitoring"]["frames"] for v in vms}
        pids = tree(agent.pid)
        t0 = {p: thread_stats(p) for p in pids}
        c0 = {p: cpu_s(p, t0[p]) for p in pids}
        w0 = time.monotonic()
        scrapes = 0
        while time.monotonic() - w0 < a.seconds:
            get(base + "/metrics")
            scrapes += 1
            time.sleep(max(0.0, a.interval - ((time.monotonic() - w0) % a.interval)))
        wall = time.monotonic() - w0
        pids1 = tree(agent.pid)
        t1 = {p: thread_stats(p) for p in pids1}
        c1 = {p: cpu_s(p, t1[p]) for p in pids1}
        vms = json.loads(get(base + "/v1/vms"))["vms"]
        frames = sum(v["monitoring"]["frames"] - frames0.get(v["name"], 0) for v in vms)
        durations = [v["monitoring"]["last_frame"]["duration_seconds"] for v in vms
                     if v["monitoring"].get("last_frame")]
        procs = {}
        for p in pids1:
            s = status(p)
            procs[p] = {"comm": comm(p), "rss_anon_kib": kib(s.get("RssAnon")),
                        "rss_file_kib": kib(s.get("RssFile")), "rss_shmem_kib": kib(s.get("RssShmem")),
                        "cpu_s": c1[p] - c0.get(p, 0.0)}
        samplers = [v for v in procs.values() if v["comm"].startswith("vmwatch-sample")]
        others = [v for v in procs.values() if not v["comm"].startswith("vmwatch-sample")]
        cpu = sum(v["cpu_s"] for v in procs.values())
        load = os.getloadavg()
        if a.save_smaps:
            os.makedirs(a.save_smaps, exist_ok=True)
            one_sampler = False
            for p, v in sorted(procs.items()):
                if v["comm"].startswith("vmwatch-sample"):
                    if one_sampler:
                        continue
                    one_sampler = True
                for what in ("smaps", "status"):
                    try:
                        with open(f"/proc/{p}/{what}") as src, \
                             open(os.path.join(a.save_smaps, f"{v['comm']}.{p}.{what}"), "w") as dst:
                            dst.write(src.read())
                    except OSError:
                        pass
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        for f in os.listdir(tmp):
            if f.startswith("vm"):
                os.unlink(os.path.join(tmp, f))
    bare, cold, same = {}, {}, {}
    for src in sorted(set(sources)) if not a.no_bare else ():
        bare[src] = bare_walk(vmwatch, src, a.bare_frames)
        if a.bare_interval:
            cold[src] = bare_walk(vmwatch, src, a.bare_frames, a.bare_interval)
        if a.bare_at_interval:
            same[src] = bare_walk(vmwatch, src, a.bare_at_interval, a.interval)
    out = {
        "vms": a.vms, "interval_s": a.interval, "window_s": wall, "ready_s": ready_s, "scrapes": scrapes,
        "frames": frames, "load_average": load,
        "agent_cpu_s": cpu, "agent_cpu_percent_of_one_core": 100.0 * cpu / wall,
        "agent_cpu_ms_per_vm_frame": 1e3 * cpu / frames if frames else None,
        "by_role": by_role({(p, tid): v for p, ts in t0.items() for tid, v in ts.items()},
                           {(p, tid): v for p, ts in t1.items() for tid, v in ts.items()}, frames),
        "frame_duration_ms_median": 1e3 * statistics.median(durations) if durations else None,
        "agent_cpu_s_samplers": sum(v["cpu_s"] for v in samplers),
        "agent_cpu_s_by_process": {f'{v["comm"]}[{p}]': round(v["cpu_s"], 3) for p, v in procs.items()
                                   if not v["comm"].startswith("vmwatch-sample")},
        "rss_anon_kib_by_process": {f'{v["comm"]}[{p}]': v["rss_anon_kib"] for p, v in procs.items()
                                    if not v["comm"].startswith("vmwatch-sample")},
        "rss_anon_total_mib": sum(v["rss_anon_kib"] for v in procs.values()) / 1024,
        "rss_anon_samplers_mib": sum(v["rss_anon_kib"] for v in samplers) / 1024,
        "rss_anon_per_sampler_kib_median": statistics.median(v["rss_anon_kib"] for v in samplers) if samplers else None,
        # the spread: samplers that attached cold used to keep more
        "rss_anon_per_sampler_kib_quartiles_max": (
            [*statistics.quantiles((v["rss_anon_kib"] for v in samplers), n=4),
             max(v["rss_anon_kib"] for v in samplers)] if len(samplers) >= 2 else None),
        "rss_anon_others_mib": sum(v["rss_anon_kib"] for v in others) / 1024,
        "processes": len(procs),
        "bare_walk": {r: {k: b.get(k) for k in ("frame_median_us", "cpu_us_per_frame", "processes_per_frame")}
                      for r, b in bare.items()},
        "bare_walk_cold": {r: {k: b.get(k) for k in ("frame_median_us", "cpu_us_per_frame", "interval_s")}
                           for r, b in cold.items()},
        "bare_walk_at_interval": {r: {k: b.get(k) for k in ("frame_median_us", "cpu_us_per_frame", "interval_s",
                                                               "frames")}
                                  for r, b in same.items()},
        "bare_walk_source": {r: b.get("source") for r, b in bare.items()},
        "log": os.path.join(tmp, "agent.log"),
    }
    walk_us = statistics.mean(b["cpu_us_per_frame"] for b in bare.values()) if bare else None
    if out["agent_cpu_ms_per_vm_frame"] and walk_us:
        out["agent_cost_over_bare_walk"] = out["agent_cpu_ms_per_vm_frame"] * 1e3 / walk_us
    cold_us = statistics.mean(b["cpu_us_per_frame"] for b in cold.values()) if cold else None
    if out["agent_cpu_ms_per_vm_frame"] and cold_us:
        out["agent_cost_over_cold_walk"] = out["agent_cpu_ms_per_vm_frame"] * 1e3 / cold_us
    same_us = statistics.mean(b["cpu_us_per_frame"] for b in same.values()) if same else None
    if out["agent_cpu_ms_per_vm_frame"] and same_us:
        out["agent_cost_over_walk_at_interval"] = out["agent_cpu_ms_per_vm_frame"] * 1e3 / same_us
    if a.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

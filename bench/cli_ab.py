#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""cli_ab.py - whole-process timing of vmwatch commands, two builds alternated.

    bench/cli_ab.py [--runs N] [--warmup N] [--pty] OLD_BINARY NEW_BINARY -- ARGS...

Runs `BINARY ARGS...` (stdout to /dev/null; with --pty to a pseudo-terminal
whose other side this script reads, as a terminal would) alternately for the two
binaries, N times each after the warm-up runs, and prints per binary the
median and the range of wall time, CPU time (user + system of the child)
and peak RSS (ru_maxrss), then the new/old ratio of the medians. Both
binaries must use their own discovery cache (set XDG_CACHE_HOME per binary
with --env-old/--env-new, or give each its own HOME) when the cache format
differs. Not a test: it measures, on a machine that is usually shared, so
only medians of alternated runs are worth quoting.
"""
import argparse
import json
import os
import pty
import statistics
import subprocess
import sys
import time


def run_once(binary, args, env, use_pty=False):
    t0 = time.perf_counter()
    if use_pty:
        master, slave = pty.openpty()
        p = subprocess.Popen([binary] + args, stdout=slave, stderr=subprocess.PIPE, env=env)
        os.close(slave)
        while True:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:   # EIO: the last writer closed the terminal
                break
        os.close(master)
    else:
        p = subprocess.Popen([binary] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"cli_ab: {binary} {' '.join(args)} failed ({status}): {err}")
    return wall * 1e3, (ru.ru_utime + ru.ru_stime) * 1e3, ru.ru_maxrss / 1024.0


def env_with(assignments):
    env = dict(os.environ)
    for a in assignments or []:
        k, _, v = a.partition("=")
        env[k] = v
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--env-old", action="append", help="VAR=VALUE for the old binary")
    ap.add_argument("--env-new", action="append", help="VAR=VALUE for the new binary")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--pty", action="store_true", help="stdout to a pseudo-terminal (line-buffered stdio)")
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = a.args[1:] if a.args and a.args[0] == "--" else a.args
    envs = {"old": env_with(a.env_old), "new": env_with(a.env_new)}
    bins = {"old": a.old, "new": a.new}
    res = {"old": [], "new": []}
    for _ in range(a.warmup):
        for k in ("old", "new"):
            run_once(bins[k], args, envs[k], a.pty)
    for i in range(a.runs):
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        for k in order:
            res[k].append(run_once(bins[k], args, envs[k], a.pty))
    out = {"args": args, "runs": a.runs, "loadavg": os.getloadavg()}
    for k in ("old", "new"):
        cols = list(zip(*res[k]))
        out[k] = {name: {"median": statistics.median(c), "min": min(c), "max": max(c)}
                  for name, c in zip(("wall_ms", "cpu_ms", "maxrss_mib"), cols)}
    out["ratio"] = {n: out["new"][n]["median"] / out["old"][n]["median"] for n in out["old"]}
    if a.json:
        print(json.dumps(out))
        return
    print(f"{' '.join(args)}  ({a.runs} alternated runs each, load average "
          f"{out['loadavg'][0]:.1f} {out['loadavg'][1]:.1f} {out['loadavg'][2]:.1f})")
    for k in ("old", "new"):
        s = out[k]
        print(f"  {k}: wall {s['wall_ms']['median']:.1f} ms ({s['wall_ms']['min']:.1f}-{s['wall_ms']['max']:.1f}),"
              f" cpu {s['cpu_ms']['median']:.1f} ms ({s['cpu_ms']['min']:.1f}-{s['cpu_ms']['max']:.1f}),"
              f" peak RSS {s['maxrss_mib']['median']:.1f} MiB")
    print("  new/old: " + ", ".join(f"{n} {v:.2f}" for n, v in out["ratio"].items()))


if __name__ == "__main__":
    main()

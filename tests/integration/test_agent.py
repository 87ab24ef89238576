"""`vmwatch agent`: the host daemon, over real HTTP, against real guests.

  - lab guests given as explicit targets (--connect none --target qemu:PID):
    the VM list and guest summary, process tables equal to the guest's own
    /proc (the comparison of test_ps.py, taken while the guest is paused),
    CPU% against the guest's own accounting, query parameters and their
    400/404 errors, process history, new/exit events with ?since=, Server-Sent
    Events, /metrics through `promtool check metrics` with the exact content
    type and bounded per-process series, the VM Process Monitor compatibility
    API (old field names, New/Ended per client), bearer tokens, TLS with a
    self-signed certificate, a target that cannot be introspected next to one
    that can, the configuration file with SIGHUP reload, clean SIGTERM;
  - the web page in headless Chromium (WebDriver): the process table shows
    the guest's processes and sorts when a header is clicked;
  - libvirt (lab/libvirt.py: a real libvirtd, TCG domains): domains with
    their Nova metadata in /v1/vms and vmwatch_vm_info, a domain started
    while the agent runs is listed within one interval and monitored once
    its kernel is up, one destroyed is dropped within one interval.

`python3 tests/integration/test_agent.py --measure [N]` boots N (default 10)
512 MiB TCG guests and prints the agent's CPU per interval and RSS (see
docs/PERFORMANCE.md); it is not a test.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import wait_until  # noqa: E402
from schemas import validate  # noqa: E402
from test_ps import compare  # noqa: E402

INTERVAL = 1.0
TOKEN = "s3cret-token-for-tests"


# ---------------------------------------------------------------- the agent

def schema_of(path, status):
    """The docs/schemas/ file an answer to GET path follows (None: not checked,
    e.g. a process table cut down with ?fields)."""
    route, _, query = path.partition("?")
    seg = [s for s in route.split("/") if s]
    if status >= 400:
        return "api-error"
    if seg == ["healthz"]:
        return "api-healthz"
    if seg[:2] == ["v1", "instances"]:
        return "compat-instances" if len(seg) == 2 else "compat-processes"
    if seg[:2] != ["v1", "vms"]:
        return None
    if len(seg) == 2:
        return "api-vms"
    if len(seg) == 3:
        return "api-vm"
    if seg[3] == "events":
        return "api-events"
    if seg[3] == "processes":
        return "api-process" if len(seg) == 5 else None if "fields=" in query else "api-processes"
    return None


class Agent:
    """A running `vmwatch agent` on 127.0.0.1 with a free port."""

    def __init__(self, vmwatch, *args, env=None, https_ca=None, token=None):
        self.args = [str(vmwatch), "agent", "--listen", "127.0.0.1:0", *map(str, args)]
        self.log: list = []
        self.token = token
        self.ctx = None
        if https_ca:
            self.ctx = ssl.create_default_context(cafile=https_ca)
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=e, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        m = wait_until(lambda: self._listening() or self._died(), timeout=30, what="agent listening")
        if m == "died":
            raise AssertionError("agent exited at start:\n" + "\n".join(self.log))
        self.scheme, self.port = m
        self.base = f"{self.scheme}://127.0.0.1:{self.port}"

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def _listening(self):
        for line in self.log:
            m = re.search(r"listening on (https?)://[0-9.]+:(\d+)/", line)
            if m:
                return m.group(1), int(m.group(2))
        return None

    def _died(self):
        return "died" if self.proc.poll() is not None else None

    def request(self, path, method="GET", token=..., headers=None, data=None, timeout=30):
        """(status, headers, body bytes)."""
        h = dict(headers or {})
        tok = self.token if token is ... else token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        req = urllib.request.Request(self.base + path, method=method, headers=h, data=data)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ctx) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, path, status=200, **kw):
        st, hd, body = self.request(path, **kw)
        assert st == status, f"GET {path}: {st} {body[:500]!r}"
        assert hd["Content-Type"].startswith("application/json"), hd["Content-Type"]
        doc = json.loads(body)
        name = schema_of(path, st)
        if name:
            validate(name, doc)
        return doc

    def vm(self, name):
        return self.json(f"/v1/vms/{name}")

    def wait_frames(self, name, n=1, timeout=60):
        """Wait until n more frames of VM name have been published; returns the last seq."""
        start = self.vm(name)["monitoring"]["frames"]
        wait_until(lambda: self.vm(name)["monitoring"]["frames"] >= start + n, timeout=timeout,
                   what=f"{n} frames of {name}")
        return self.vm(name)["monitoring"]["last_frame"]["seq"]

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("agent did not stop on SIGTERM:\n" + "\n".join(self.log[-20:]))
        self._reader.join(5)
        return self.proc.returncode


@pytest.fixture(scope="module")
def g(guest):
    return guest(kernel="6.1", mem="512M")


@pytest.fixture(scope="module")
def burn(g):
    with g.workload("burn", 50) as pid:
        yield pid


@pytest.fixture(scope="module")
def agent(vmwatch, g, burn):
    a = Agent(vmwatch, "--connect", "none", "--target", f"qemu:{g.pid}", "--interval", INTERVAL,
              "--top-n", 3)
    wait_until(lambda: a.vm(g.name)["monitoring"]["frames"] >= 2, timeout=120, what="first frames")
    yield a
    rc = a.stop()
    assert rc == 0, "agent exit code %d:\n%s" % (rc, "\n".join(a.log[-30:]))


# ---------------------------------------------------------------- JSON API

def test_vm_list_metadata_and_status(agent, g):
    d = agent.json("/v1/vms")
    assert d["libvirt"] is None            # --connect none
    assert d["interval_seconds"] == INTERVAL
    vms = {v["name"]: v for v in d["vms"]}
    assert g.name in vms, vms.keys()       # the name comes from QEMU's -name guest=
    v = vms[g.name]
    assert v["qemu_pid"] == g.pid and v["target"] == f"qemu:{g.pid}" and v["origin"] == "target"
    assert v["state"] == "running" and v["vcpus"] == 1
    assert v["nova"] is None
    m = v["monitoring"]
    assert m["status"] == "ok" and m["reason"] is None and m["frames"] >= 2
    assert m["kernel"]["release"] == "6.1.0-47-amd64"
    assert m["last_frame"]["processes"] > 10 and m["last_frame"]["complete"]
    # The QEMU process's CPU on the host (the guest runs burn: TCG works hard), next to the guest's own view.
    host = v["use"]["host_cpu_percent"]
    assert host is not None and 5 < host < 400, v["use"]
    # The same VM by id and by name.
    assert agent.vm(v["id"])["name"] == g.name
    assert agent.json("/healthz")["status"] == "ok"


def test_vm_summary_matches_the_guest(agent, g):
    t = g.truth()
    s = agent.vm(g.name)["summary"]
    assert s["kernel"] == t.release
    assert s["memory"]["total_bytes"] == t.meminfo["MemTotal"] * 1024
    assert abs(s["memory"]["available_bytes"] - t.meminfo["MemAvailable"] * 1024) < 64 << 20
    assert abs(s["uptime_seconds"] - t.uptime_seconds) < 30
    st = t.stat_values()
    assert s["boot_time"] == st["btime"]
    assert abs(s["tasks"]["total"] - len(t.procs)) <= 5
    assert s["tasks"]["total"] == sum(v for k, v in s["tasks"].items()
                                      if k not in ("total", "threads", "kernel_threads"))
    assert set(s["cpu"]["seconds"]) >= {"user", "system", "idle", "iowait", "steal"}
    assert len(s["load"]) == 3 and s["loadavg"].count(" ") == 2
    h = agent.vm(g.name)["history"]
    assert len(h["time"]) == len(h["cpu_percent"]) >= 2 and h["time"] == sorted(h["time"])


def assert_processes_equal_guest_proc(agent, g, vm):
    """A frame of VM `vm` taken while guest g is paused equals the guest's /proc.

    The truth agent itself is left out (it sees itself running, the paused
    guest has it sleeping), and a comparison is tried up to 3 times: a
    kworker's name changes with its current work item, and can be the same
    in both truth snapshots yet different at the moment of the pause."""
    errors = []
    for attempt in range(3):
        before = g.truth()
        with g.paused():
            agent.wait_frames(vm, 2)       # the second frame began after the pause
            out = agent.json(f"/v1/vms/{vm}/processes?sort=pid")
        after = g.truth()
        assert [p["pid"] for p in out["processes"]] == sorted(p["pid"] for p in out["processes"])
        assert out["total"] == len(out["processes"])
        for snap in (before, after):
            snap.procs.pop(before.agent_pid, None)
            snap.procs.pop(after.agent_pid, None)
        out["processes"] = [p for p in out["processes"] if p["pid"] not in (before.agent_pid, after.agent_pid)]
        try:
            compare(before, out, after)
            return
        except AssertionError as e:
            errors.append(str(e))
    raise AssertionError("\n---\n".join(errors))


def test_process_table_equals_guest_proc(agent, g):
    assert_processes_equal_guest_proc(agent, g, g.name)


def test_cpu_percent_follows_the_guest(agent, g, burn):
    """burn 50 uses half a CPU in the guest's own accounting; the agent agrees."""
    t0 = g.truth()
    time.sleep(6)
    t1 = g.truth()
    truth = 100.0 * ((t1.procs[burn].utime + t1.procs[burn].stime) - (t0.procs[burn].utime + t0.procs[burn].stime)) \
        / t0.clk_tck / ((t1.t_start_ns - t0.t_start_ns) / 1e9)
    d = agent.json(f"/v1/vms/{g.name}/processes/{burn}")
    assert d["process"]["pid"] == burn and d["process"]["comm"] == "burn"
    cpu = d["history"]["cpu_percent"][-5:]
    avg = sum(cpu) / len(cpu)
    assert abs(avg - truth) < 15, (avg, truth, cpu)
    # Sorted by CPU: burn among the first (the truth agent just ran too).
    top = agent.json(f"/v1/vms/{g.name}/processes?sort=cpu&limit=3&fields=pid,cpu_percent")["processes"]
    assert burn in [p["pid"] for p in top]
    assert [p["cpu_percent"] for p in top] == sorted((p["cpu_percent"] for p in top), reverse=True)
    assert all(list(p) == ["pid", "cpu_percent"] for p in top)


def test_process_history_is_bounded_and_grows(vmwatch, g, burn):
    a = Agent(vmwatch, "--connect", "none", "--target", f"qemu:{g.pid}", "--interval", "0.5",
              "--history", "3s")
    try:
        wait_until(lambda: a.vm(g.name)["monitoring"]["frames"] >= 12, timeout=120, what="frames")
        h = a.json(f"/v1/vms/{g.name}/processes/{burn}")["history"]
        assert len(h["time"]) == len(h["cpu_percent"]) == len(h["rss_bytes"]) == 7   # 3 s / 0.5 s + 1
        assert all(r > 0 for r in h["rss_bytes"])
        assert len(a.vm(g.name)["history"]["time"]) == 7
    finally:
        assert a.stop() == 0


def test_query_parameters_and_errors(agent, g):
    d = agent.json(f"/v1/vms/{g.name}/processes?sort=mem&limit=5")
    rss = [p["rss_bytes"] for p in d["processes"]]
    assert len(rss) == 5 and rss == sorted(rss, reverse=True)
    d = agent.json(f"/v1/vms/{g.name}/processes?sort=pid&fields=pid,comm,cmdline")
    assert all(set(p) == {"pid", "comm", "cmdline"} for p in d["processes"])
    # The web page's filter box on the server (?match=): a number is a pid or uid, text any case.
    d = agent.json(f"/v1/vms/{g.name}/processes?match=1&sort=pid&fields=pid,uid,euid")
    assert d["processes"][0]["pid"] == 1 and d["matched"] == len(d["processes"])
    assert all(1 in (p["pid"], p["uid"], p["euid"]) for p in d["processes"])
    d = agent.json(f"/v1/vms/{g.name}/processes?match=BuRn&limit=1&fields=pid,comm,cmdline")
    assert d["matched"] >= 1 and len(d["processes"]) == 1 and d["total"] > d["matched"]
    assert "burn" in (d["processes"][0]["comm"] + " ".join(d["processes"][0]["cmdline"] or [])).lower()
    # Every column the web page sorts by, on the whole table (not a page of it).
    for sort, key, desc in (("name", lambda p: p["comm"], False), ("vsz", lambda p: p["vsz_bytes"], True),
                            ("time", lambda p: p["utime_ns"] + p["stime_ns"], True),
                            ("threads", lambda p: p["threads"], True), ("nice", lambda p: p["nice"], False),
                            ("start", lambda p: p["start_time_ns"], False), ("state", lambda p: p["state"], False)):
        got = [key(p) for p in agent.json(f"/v1/vms/{g.name}/processes?sort={sort}")["processes"]]
        assert got == sorted(got, reverse=desc), (sort, got[:20])
    for q, param in (("sort=size", "sort"), ("limit=0", "limit"), ("limit=abc", "limit"),
                     ("fields=pid,bogus", "fields")):
        e = agent.json(f"/v1/vms/{g.name}/processes?{q}", status=400)
        assert e["code"] == 400 and f"'{param}'" in e["error"], e
    e = agent.json(f"/v1/vms/{g.name}/events?since=x", status=400)
    assert "'since'" in e["error"]
    e = agent.json(f"/v1/vms/{g.name}/processes/notapid", status=400)
    assert "'pid'" in e["error"]
    for path in ("/v1/vms/no-such-vm", "/v1/vms/no-such-vm/processes", "/v1/vms/no-such-vm/stream",
                 "/v1/instances/no-such-vm/processes", f"/v1/vms/{g.name}/processes/999999", "/nope"):
        e = agent.json(path, status=404)
        assert e["code"] == 404 and e["error"], path
    st, hd, body = agent.request("/v1/vms", method="DELETE")
    assert st == 405 and "GET" in hd["Allow"]


def test_events_new_and_exit(agent, g):
    since = agent.json(f"/v1/vms/{g.name}/events")["next_since"]
    pid = g.run("idle")
    new = wait_until(lambda: [e for e in agent.json(f"/v1/vms/{g.name}/events?since={since}")["events"]
                              if e["pid"] == pid and e["type"] == "new"], timeout=30, what="new event")
    assert new[0]["comm"] == "idle" and new[0]["seq"] > since
    g.kill(pid)
    ex = wait_until(lambda: [e for e in agent.json(f"/v1/vms/{g.name}/events?since={new[0]['seq']}")["events"]
                             if e["pid"] == pid and e["type"] == "exit"], timeout=30, what="exit event")
    assert ex[0]["start_time_ns"] == new[0]["start_time_ns"]
    d = agent.json(f"/v1/vms/{g.name}/events?since={ex[0]['seq']}")
    assert all(e["seq"] > ex[0]["seq"] for e in d["events"]) and not d["lost"]


def test_server_sent_events(agent, g):
    req = urllib.request.Request(agent.base + f"/v1/vms/{g.name}/stream?limit=5&fields=pid,cpu_percent")
    frames, t = [], []
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        ev = {}
        while len(frames) < 3:
            line = r.readline().decode()
            assert line, "stream ended"
            line = line.rstrip("\n")
            if not line:
                if ev.get("event") == "frame":
                    frames.append((int(ev["id"]), json.loads(ev["data"])))
                    t.append(time.monotonic())
                ev = {}
                continue
            k, _, v = line.partition(":")
            ev[k] = v.strip()
    seqs = [s for s, _ in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    for s, f in frames:
        assert f["seq"] == s and len(f["processes"]) == 5 and f["summary"]["tasks"]["total"] > 10
        assert "events" in f
        assert all(list(p) == ["pid", "cpu_percent"] for p in f["processes"])
        validate("api-frame", {**f, "processes": []})   # all but the ?fields-cut processes
    # A frame with whole processes.
    with urllib.request.urlopen(agent.base + f"/v1/vms/{g.name}/stream", timeout=30) as r:
        data = next(l for l in iter(r.readline, b"") if l.startswith(b"data: "))
    validate("api-frame", json.loads(data[len(b"data: "):]))
    # The first frame is sent at once, then one per interval.
    assert 0.3 * INTERVAL < (t[2] - t[1]) < 4 * INTERVAL + 2


# ---------------------------------------------------------------- /metrics

def test_metrics_pass_promtool(agent, g, tmp_path):
    promtool = shutil.which("promtool")
    st, hd, body = agent.request("/metrics")
    assert st == 200
    assert hd["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
        assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    # Every per-VM series: vm, domain (libvirt-exporter's name) and uuid when known.
    vm = f'vm="{g.name}",domain="{g.name}"(?:,uuid="[0-9a-f-]+")?'
    for name in ("vmwatch_guest_uptime_seconds", "vmwatch_guest_load1", "vmwatch_guest_memory_total_bytes",
                 "vmwatch_guest_processes", "vmwatch_vm_up", "vmwatch_vm_frame_duration_seconds",
                 "vmwatch_scrape_duration_seconds"):
        assert re.search(rf"^{name}{{{vm}}} [0-9.e+-]+$", text, re.M), name
    assert re.search(rf'^vmwatch_vm_info{{{vm},name="{g.name}",origin="target",kernel="6\.1\.0-47-amd64"}} 1$',
                     text, re.M)
    assert re.search(rf'^vmwatch_guest_cpu_seconds_total{{{vm},mode="idle"}} ', text, re.M)
    assert re.search(rf'^vmwatch_group_cpu_seconds_total{{{vm},groupname="burn",mode="user"}} ', text, re.M)
    assert re.search(rf'^vmwatch_group_memory_bytes{{{vm},groupname="\[kernel\]",memtype="resident"}} ', text, re.M)
    assert re.search(r"^process_resident_memory_bytes \d+$", text, re.M)
    assert re.search(r"^process_open_fds \d+$", text, re.M)
    # Per-process series are bounded: top 3 by CPU plus top 3 by memory plus top 3 by I/O rate.
    pids = set(re.findall(rf"^vmwatch_process_resident_memory_bytes{{{vm},pid=\"(\d+)\"", text, re.M))
    assert 3 <= len(pids) <= 9, pids
    nprocs = int(re.search(rf"^vmwatch_guest_processes{{{vm}}} (\d+)", text, re.M).group(1))
    assert nprocs > 6
    if not promtool:
        pytest.skip("promtool not installed (apt-get install prometheus): format not checked")


def read_http(sock, limit=None):
    """Bytes from sock until it closes, or until limit bytes."""
    data = b""
    while limit is None or len(data) < limit:
        chunk = sock.recv(65536 if limit is None else min(65536, limit - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def dechunk(raw):
    """The body of an HTTP/1.1 response in chunked transfer coding (raw: all after the headers)."""
    body, pos = b"", 0
    while True:
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol].split(b";")[0], 16)
        if size == 0:
            return body
        body += raw[eol + 2:eol + 2 + size]
        assert raw[eol + 2 + size:eol + 4 + size] == b"\r\n"
        pos = eol + 4 + size


def test_metrics_read_slowly_is_whole_and_blocks_nobody(agent, g, tmp_path):
    """/metrics is sent while it is written, from the snapshots the request
    found: a scraper that stops reading for several frames holds them, and
    gets the whole page, in order, when it reads on; meanwhile frames go on
    and other clients are answered."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect(("127.0.0.1", agent.port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = read_http(s, 2048)
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert re.search(rb"(?i)^transfer-encoding: chunked\r$", head, re.M), head[:600]
    frames0 = agent.vm(g.name)["monitoring"]["frames"]
    agent.wait_frames(g.name, 3)
    st, _, body = agent.request("/metrics", timeout=10)
    assert st == 200 and body.endswith(b"\n")
    assert agent.request("/healthz", timeout=5)[0] == 200
    raw = head + read_http(s)
    s.close()
    slow = dechunk(raw[raw.index(b"\r\n\r\n") + 4:])
    # Whole: the same families in the same order as a page read at once.
    def families(b):
        return re.findall(rb"^# TYPE (\S+)", b, re.M)
    assert families(slow) == families(body)
    # Every piece, from the first (VMs) to the last (the agent's own).
    for fam in (b"vmwatch_vm_info", b"vmwatch_guest_uptime_seconds", b"vmwatch_process_cpu_seconds_total",
                b"vmwatch_process_resident_memory_bytes", b"vmwatch_process_read_bytes_per_second",
                b"vmwatch_group_procs", b"process_threads"):
        assert fam in families(slow), fam
    assert slow.endswith(b"\n") and re.search(rb"^process_threads \d+$", slow, re.M)
    # From the frame the request found, not the later ones.
    fr = re.search(rb'^vmwatch_frames_total{vm="%s"[^}]*} (\d+)' % g.name.encode(), slow, re.M)
    assert fr and int(fr.group(1)) <= frames0 + 1, (fr, frames0)
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=slow, capture_output=True, timeout=60)
        assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    # An HTTP/1.0 client gets the page up to the connection's close.
    with socket.create_connection(("127.0.0.1", agent.port), timeout=30) as s10:
        s10.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        raw10 = read_http(s10)
    assert raw10.startswith(b"HTTP/1.") and b" 200 " in raw10.split(b"\r\n")[0]
    assert families(raw10[raw10.index(b"\r\n\r\n") + 4:]) == families(body)


def test_group_cpu_counters_never_decrease(agent, g):
    def groups():
        text = agent.request("/metrics")[2].decode()
        return {m[0] + "/" + m[1]: float(m[2]) for m in re.findall(
            rf'^vmwatch_group_cpu_seconds_total{{vm="{re.escape(g.name)}",domain="[^"]*"(?:,uuid="[^"]*")?,'
            rf'groupname="(.*?)",mode="(\w+)"}} (\S+)$',
            text, re.M)}
    a = groups()
    with g.workload("churn", 20):
        agent.wait_frames(g.name, 3)
    b = groups()
    assert a and all(b.get(k, 0) >= v for k, v in a.items()), [(k, v, b.get(k)) for k, v in a.items()
                                                               if b.get(k, 0) < v]


# ---------------------------------------------------------------- compatibility API

def test_compat_instances_and_processes(agent, g, burn):
    inst = agent.json("/v1/instances/")
    assert {"instance_name": g.name} in inst
    assert agent.json("/v1/instances") == inst
    t = g.truth()
    rows = agent.json(f"/v1/instances/{g.name}/processes", headers={"X-Client-Id": "compat-a"})
    keys = {"type", "state", "pid", "name", "priority", "cpu_usage", "physical_memory_usage",
            "virtual_memory_usage", "memory_percent"}
    assert rows and all(set(r) == keys for r in rows)
    by = {r["pid"]: r for r in rows}
    b = by[burn]
    assert b["name"] == "burn" and b["state"] in ("running", "sleeping") and 10 < b["cpu_usage"] < 100
    p = t.procs[burn]
    assert b["physical_memory_usage"] == p.VmRSS and b["virtual_memory_usage"] == p.vsize // 1024
    assert b["priority"] == p.priority and 0 <= b["memory_percent"] < 1
    assert by[1]["name"] == "init"
    # POST is accepted too (the original client posts), with a body that is ignored.
    st, _, body = agent.request(f"/v1/instances/{g.name}/processes", method="POST", data=b"{}",
                                headers={"Content-Type": "application/json", "X-Client-Id": "compat-b"})
    assert st == 200 and json.loads(body)


def test_compat_new_and_ended_per_client(agent, g):
    """New/Ended are relative to what this client was served last time."""
    url = f"/v1/instances/{g.name}/processes"

    def ask(client):
        rows = agent.json(url, headers={"X-Client-Id": client})
        cur = {r["pid"] for r in rows if r["type"] != "Ended Process"}
        return rows, cur

    def check(prev_cur, rows, cur):
        """Exactly the set differences against the previous answer."""
        types = {}
        for r in rows:
            types.setdefault(r["type"], set()).add(r["pid"])
        assert types.get("New Process", set()) == cur - prev_cur, types
        assert types.get("Ended Process", set()) == prev_cur - cur, types
        assert types.get("Existed Process", set()) == cur & prev_cur, types

    _, base = ask("c1")
    pid = g.run("idle")
    agent.wait_frames(g.name, 2)
    rows, cur = ask("c1")
    check(base, rows, cur)
    assert [r["type"] for r in rows if r["pid"] == pid] == ["New Process"]
    rows2, cur2 = ask("c1")                     # asked again: relative to the answer just given
    check(cur, rows2, cur2)
    g.kill(pid)
    agent.wait_frames(g.name, 2)
    rows3, cur3 = ask("c1")
    check(cur2, rows3, cur3)
    ended = [r for r in rows3 if r["pid"] == pid]
    assert len(ended) == 1 and ended[0]["type"] == "Ended Process" and ended[0]["name"] == "idle"
    assert ended[0]["physical_memory_usage"] > 0          # its last values
    # A client that never asked before is compared with the previous interval:
    # the idle process ended more than one interval ago, so it is not listed.
    rows4, _ = ask("c2")
    assert not [r for r in rows4 if r["pid"] == pid]
    # Clients are told apart by X-Client-Id, ?client= or their address.
    agent.json(url + "?client=c3")
    assert {r["type"] for r in agent.json(url + "?client=c3")} <= {"Existed Process", "New Process",
                                                                   "Ended Process"}


# ---------------------------------------------------------------- security

def test_bearer_tokens(vmwatch, g):
    a = Agent(vmwatch, "--connect", "none", "--target", f"qemu:{g.pid}", "--interval", INTERVAL,
              "--token", TOKEN, "--token", "second-token-xyz", token=TOKEN)
    try:
        for path in ("/v1/vms", "/metrics", f"/v1/vms/{g.name}/processes", "/v1/instances/"):
            st, hd, body = a.request(path, token=None)
            assert st == 401, path
            assert hd["WWW-Authenticate"].startswith("Bearer")
            assert json.loads(body)["code"] == 401
            assert a.request(path, token="wrong-token-123")[0] == 401
        assert a.request("/v1/vms", token=TOKEN)[0] == 200
        assert a.request("/v1/vms", token="second-token-xyz")[0] == 200
        assert a.request("/healthz", token=None)[0] == 200     # exempt
        assert a.request("/", token=None)[0] == 200            # the static page holds no data
    finally:
        assert a.stop() == 0


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    os.chmod(d / "key.pem", 0o600)
    return d / "cert.pem", d / "key.pem"


def test_tls(vmwatch, g, cert):
    c, k = cert
    a = Agent(vmwatch, "--connect", "none", "--target", f"qemu:{g.pid}", "--interval", INTERVAL,
              "--tls-cert", c, "--tls-key", k, "--token", TOKEN, https_ca=str(c), token=TOKEN)
    try:
        assert a.scheme == "https"
        d = a.json("/v1/vms")
        assert d["vms"][0]["name"] == g.name
        assert a.request("/v1/vms", token=None)[0] == 401
        # Plain HTTP to the TLS port gets no HTTP answer.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{a.port}/healthz", timeout=10).read()
        # A client that does not trust the certificate refuses it.
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"https://127.0.0.1:{a.port}/healthz", timeout=10,
                                   context=ssl.create_default_context()).read()
    finally:
        assert a.stop() == 0


def test_warns_when_listening_beyond_localhost(vmwatch):
    a = Agent(vmwatch, "--connect", "none", "--listen", "0.0.0.0:0")
    try:
        w = wait_until(lambda: [x for x in a.log if "WARNING" in x], timeout=30, what="warning")[0]
        assert w.startswith("<4>") and "token" in w
        assert a.request("/healthz")[0] == 200
    finally:
        assert a.stop() == 0


# ---------------------------------------------------------------- failures, config, signals

def test_unintrospectable_target_next_to_a_good_one(vmwatch, g, tmp_path):
    zeros = tmp_path / "zeros.img"
    with open(zeros, "wb") as f:
        f.truncate(64 << 20)
    a = Agent(vmwatch, "--connect", "none", "--interval", INTERVAL, "--target", f"blank=file:{zeros}",
              "--target", f"qemu:{g.pid}", "--target", "gone=qemu:2147483646")
    try:
        wait_until(lambda: a.vm("blank")["monitoring"]["status"] == "error", timeout=60, what="error status")
        m = a.vm("blank")["monitoring"]
        assert m["reason_code"] == "not_linux" and "Linux" in m["reason"], m
        wait_until(lambda: a.vm("gone")["monitoring"]["status"] == "gone", timeout=60, what="gone status")
        assert a.vm(g.name)["monitoring"]["status"] == "ok"
        wait_until(lambda: a.vm(g.name)["monitoring"]["frames"] >= 3, timeout=60, what="frames")
        e = a.json("/v1/vms/blank/processes", status=503)
        assert "not_linux" in e["error"] or "Linux" in e["error"]
        assert a.json("/v1/instances/blank/processes", status=503)["code"] == 503
        text = a.request("/metrics")[2].decode()
        assert re.search(r'^vmwatch_vm_up\{vm="blank",domain="blank"[^}]*\} 0$', text, re.M), text
        assert re.search(rf'^vmwatch_vm_up\{{vm="{g.name}",domain="{g.name}"[^}}]*\}} 1$', text, re.M), text
        assert any(line.startswith("<4>") and "blank" in line for line in a.log)
    finally:
        assert a.stop() == 0


def test_config_file_check_config_and_sighup(vmwatch, g, tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text(f"# test\nconnect = none\ninterval = {INTERVAL}s\ntop_n = 2\n"
                    f"target = cfgvm=qemu:{g.pid}\n")
    out = subprocess.run([str(vmwatch), "agent", "--config", str(conf), "--check-config", "--top-n", "4"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "top_n = 4" in out.stdout and f"target = cfgvm=qemu:{g.pid}" in out.stdout
    bad = subprocess.run([str(vmwatch), "agent", "--config", str(conf), "--interval", "fast"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "interval" in bad.stderr
    (tmp_path / "bad.conf").write_text("listen 1.2.3.4\n")
    bad = subprocess.run([str(vmwatch), "agent", "--config", str(tmp_path / "bad.conf")],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "bad.conf:1" in bad.stderr

    a = Agent(vmwatch, "--config", conf)
    try:
        assert a.vm("cfgvm")["target"] == f"qemu:{g.pid}"
        wait_until(lambda: a.vm("cfgvm")["monitoring"]["frames"] >= 1, timeout=60, what="frames")
        assert a.request("/v1/vms", token=None)[0] == 200
        conf.chmod(0o600)                  # a file holding a token must be private
        conf.write_text(conf.read_text() + f"token = {TOKEN}\n")
        a.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any("reloaded" in x for x in a.log), timeout=20, what="reload")
        assert a.request("/v1/vms", token=None)[0] == 401
        assert a.request("/v1/vms", token=TOKEN)[0] == 200
        assert all(re.match(r"^<[0-7]>", x) for x in a.log if x), a.log
    finally:
        assert a.stop() == 0


def test_sigterm_with_a_stream_open(vmwatch, g):
    a = Agent(vmwatch, "--connect", "none", "--target", f"qemu:{g.pid}", "--interval", INTERVAL)
    r = urllib.request.urlopen(a.base + f"/v1/vms/{g.name}/stream", timeout=30)
    r.readline()
    t0 = time.monotonic()
    assert a.stop() == 0
    assert time.monotonic() - t0 < 10
    r.close()


# ---------------------------------------------------------------- the web page

def test_web_page_in_a_browser(agent, g, burn, tmp_path):
    from web import webdriver
    why = webdriver.available()
    if why:
        pytest.skip(why)
    st, hd, body = agent.request("/")
    assert st == 200 and hd["Content-Type"].startswith("text/html")
    assert b"http://" not in body and b"https://" not in body       # no external assets
    with webdriver.Browser() as b:
        b.get(agent.base + f"/#vm={g.name}")
        rows = b.wait(lambda: b.js("return document.querySelectorAll('#procs tbody tr').length"), timeout=60)
        total = agent.vm(g.name)["monitoring"]["last_frame"]["processes"]
        # A page of 100 rows (index.html's PAGE): this 6.1 guest is the one test_ps
        # gives 1,000 more processes when it runs first.
        assert abs(rows - min(total, 100)) <= 5, (rows, total)
        vms = b.js("return [...document.querySelectorAll('#vms tbody tr td:first-child')].map(e => e.textContent)")
        assert g.name in vms
        # Sorted by CPU by default: burn on top.
        first = b.js("return document.querySelector('#procs tbody tr td:nth-child(3)').textContent")
        assert first == "burn"
        # Click the PID header: ascending pids.
        b.js("document.querySelector('#procs th[data-key=pid]').click()")
        pids = b.wait(lambda: (lambda v: v if v and v[0] == 1 else None)(
            b.js("return [...document.querySelectorAll('#procs tbody tr td:first-child')].map(e => +e.textContent)")))
        assert pids == sorted(pids)
        png = b.screenshot()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        out = Path(os.environ.get("VMWATCH_SCREENSHOT_DIR", tmp_path)) / "agent-page.png"
        out.write_bytes(png)


# ---------------------------------------------------------------- libvirt

def _lab_libvirt():
    """lab/libvirt.py (not the libvirt Python bindings), with libvirtd running."""
    import importlib.util
    if not shutil.which("libvirtd") or not shutil.which("virsh"):
        pytest.skip("libvirt is not installed (apt-get install libvirt-daemon-system)")
    spec = importlib.util.spec_from_file_location(
        "vmwatch_lab_libvirt", Path(__file__).resolve().parents[2] / "lab" / "libvirt.py")
    lablv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lablv)
    lablv.start_libvirtd()
    return lablv


@pytest.fixture(scope="module")
def lablv(lab):
    return _lab_libvirt()


def test_libvirt_domains_and_lifecycle(vmwatch, lablv):
    tag = f"{os.getpid() % 100000}"
    d1 = lablv.define_domain(f"agt{tag}-nova", shared=True, boot_timeout=600,
                             nova={"name": f"web-{tag}", "project": "demo-proj", "user": "alice"})
    d2 = None
    a = Agent(vmwatch, "--connect", lablv.URI, "--interval", INTERVAL)
    try:
        v = wait_until(lambda: [x for x in a.json("/v1/vms")["vms"] if x["name"] == d1.name], timeout=30,
                       what="domain listed")[0]
        assert v["origin"] == "libvirt" and v["uuid"] == d1.uuid and v["qemu_pid"] == d1.pid
        assert v["nova"]["instance_name"] == f"web-{tag}" and v["nova"]["project_name"] == "demo-proj"
        assert v["nova"]["user_name"] == "alice" and v["ram_backing"] == "memfd" and v["ram_shared"]
        assert v["memory_bytes"] == 512 << 20 and v["vcpus"] == 1
        assert a.json("/v1/vms")["libvirt"]["connected"] is True
        assert {"instance_name": d1.name} in a.json("/v1/instances/")
        wait_until(lambda: a.vm(d1.name)["monitoring"]["status"] == "ok", timeout=120, what="monitoring")
        assert a.vm(v["uuid"])["name"] == d1.name
        text = a.request("/metrics")[2].decode()
        assert re.search(rf'^vmwatch_vm_info{{vm="{d1.name}",domain="{d1.name}",uuid="{d1.uuid}",'
                         rf'nova_project="demo-proj",nova_project_id="[^"]+",name="{d1.name}",origin="libvirt",'
                         rf'.*nova_instance="web-{tag}"', text, re.M), text[:2000]
        # Nova's project on every per-VM series; the VM found by its Nova name too.
        assert re.search(rf'^vmwatch_vm_up{{vm="{d1.name}",domain="{d1.name}",uuid="{d1.uuid}",'
                         rf'nova_project="demo-proj",nova_project_id="[^"]+"}} 1$', text, re.M), text[:2000]
        # (a unique Nova name: other VMs of this host's libvirtd may be named web-1)
        assert a.vm(f"web-{tag}")["uuid"] == d1.uuid
        # So does the compatibility API: the same instance's processes by either name.
        by_nova = a.json(f"/v1/instances/web-{tag}/processes", headers={"X-Client-Id": "compat-nova"})
        by_name = a.json(f"/v1/instances/{d1.name}/processes", headers={"X-Client-Id": "compat-nova"})
        assert 1 in {r["pid"] for r in by_nova} and {r["pid"] for r in by_nova} & {r["pid"] for r in by_name}
        assert a.json(f"/v1/instances/web-{tag}-none/processes", status=404)["code"] == 404

        # A domain started while the agent runs is listed at once (libvirt's
        # event), and sampled from its first interval on: error while it boots
        # (no kernel in RAM yet), ok once its kernel is up.
        d2 = lablv.define_domain(f"agt{tag}-new", wait=False, boot_timeout=600)
        t0 = time.monotonic()
        wait_until(lambda: any(x["name"] == d2.name for x in a.json("/v1/vms")["vms"]), timeout=30,
                   interval=0.1, what="started domain listed")
        listed = time.monotonic() - t0
        assert listed < INTERVAL + 1.0, listed
        wait_until(lambda: a.vm(d2.name)["monitoring"]["frames"] + a.vm(d2.name)["monitoring"]["attaches"] > 0
                   or a.vm(d2.name)["monitoring"]["status"] != "starting", timeout=INTERVAL + 5, interval=0.1,
                   what="first attach attempt")
        d2.wait_ready()
        wait_until(lambda: a.vm(d2.name)["monitoring"]["status"] == "ok", timeout=60, what="d2 monitored")

        # A stream open on it ends with `event: gone`.
        gone = {}

        def read_gone():
            with urllib.request.urlopen(a.base + f"/v1/vms/{d2.name}/stream", timeout=30) as r:
                ev = None
                for line in iter(r.readline, b""):
                    if line.startswith(b"event: "):
                        ev = line[len(b"event: "):].strip()
                    elif line.startswith(b"data: ") and ev == b"gone":
                        gone["data"] = json.loads(line[len(b"data: "):])
                        return
        reader = threading.Thread(target=read_gone, daemon=True)
        reader.start()
        wait_until(lambda: a.vm(d2.name)["monitoring"]["frames"] >= 2, timeout=30, what="d2 frames")

        # Destroyed: dropped within one interval; its URLs answer 404.
        t_destroy = time.monotonic()
        d2.destroy()                   # returns once virsh destroy has killed QEMU
        t0 = time.monotonic()
        wait_until(lambda: not any(x["name"] == d2.name for x in a.json("/v1/vms")["vms"]), timeout=30,
                   interval=0.1, what="destroyed domain dropped")
        dropped = time.monotonic() - t0
        assert dropped < INTERVAL, (dropped, t0 - t_destroy)
        assert a.json(f"/v1/vms/{d2.name}", status=404)["code"] == 404
        assert a.json(f"/v1/instances/{d2.name}/processes", status=404)["code"] == 404
        assert a.vm(d1.name)["monitoring"]["status"] == "ok"
        reader.join(30)
        assert validate("api-gone", gone["data"])["id"].lower() == d2.uuid.lower(), gone
        print(f"libvirt: listed {listed:.2f}s after start, dropped {dropped:.2f}s after destroy")

        # A guest reset (libvirt's reboot event): the old kernel stays in RAM for
        # a while, frozen; nothing of it may be served as ok. The status turns
        # to starting/rebooting at once, and the next ok frame is the new kernel's.
        before = a.vm(d1.name)["summary"]
        boot_before = before["boot_time"]
        seen = []

        def not_ok():
            m = a.vm(d1.name)["monitoring"]
            seen.append((m["status"], m["reason_code"]))
            return m if m["status"] != "ok" else None
        lablv.virsh("reset", d1.name)  # QEMU's system_reset now (a guest's own reboot can lag under load)
        t_reset = time.monotonic()
        # At once: "starting" with reason rebooting (libvirt's event), or an error
        # if the reset already tore the old kernel's structures.
        m = wait_until(not_ok, timeout=10, interval=0.1, what="reset noticed")
        assert m["reason_code"] in ("rebooting", "not_linux", "inconsistent", "io"), m
        deadline = time.monotonic() + 300
        while True:
            v = a.vm(d1.name)
            if v["monitoring"]["status"] == "ok":
                # The new kernel: up for no longer than since the reset, booted
                # later. (The old one's clock froze at its uptime and btime then.)
                # Its wall clock may still be unset (btime 0, as the guest's own
                # /proc/stat says) when the RTC read at boot timed out under TCG:
                # rtc_hctosys or the guest's NTP sets it later.
                s = v["summary"]
                since = time.monotonic() - t_reset
                why = ("old kernel served as ok after the reset", since, before, s, seen, v["monitoring"])
                assert s["uptime_seconds"] <= since + 1, why
                assert s["boot_time"] == 0 or s["boot_time"] > boot_before, why
                assert s["boot_time"] != boot_before or s["uptime_seconds"] < before["uptime_seconds"], why
                break
            assert time.monotonic() < deadline, v["monitoring"]
            time.sleep(0.2)
        print(f"libvirt: states after the reset: {sorted(set(seen))}")
    finally:
        rc = a.stop()
        for d in (d1, d2):
            if d is not None:
                d.shutdown()
        assert rc == 0


# ---------------------------------------------------------------- measurement (not a test)

def measure(n: int = 10, seconds: float = 60.0, interval: float = 5.0) -> None:
    """Boot n 512 MiB TCG guests, run the agent over them, report its CPU per
    interval and RSS (from /proc/PID/stat and status)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))
    import vmlab
    vmwatch = os.environ.get("VMWATCH") or str(Path(__file__).resolve().parents[2] / "build" / "vmwatch")
    guests, errors, a = [], [], None

    def boot(i):
        try:
            # Not die_with_parent: PDEATHSIG follows the booting *thread*, which ends.
            gg = vmlab.Guest.boot(vmlab.GuestConfig(kernel="6.1", mem="512M", name=f"perf{i}",
                                                    run=[["swarm", "100"]], boot_timeout=900),
                                  die_with_parent=False)
            guests.append(gg)
            print(f"booted {gg.name} (pid {gg.pid}) in {gg.boot_seconds:.0f}s", flush=True)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    try:
        threads = [threading.Thread(target=boot, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
            time.sleep(5)
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        args = []
        for gg in guests:
            args += ["--target", f"qemu:{gg.pid}"]
        a = Agent(vmwatch, "--connect", "none", "--interval", interval, *args)
        hz = os.sysconf("SC_CLK_TCK")

        def cpu():
            f = open(f"/proc/{a.proc.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / hz
        def ready():
            vms = {v["name"]: v for v in a.json("/v1/vms")["vms"]}
            missing = [gg.name for gg in guests if gg.name not in vms]
            assert not missing, (missing, list(vms), a.log)
            return all(vms[gg.name]["monitoring"]["frames"] >= 2 for gg in guests)
        wait_until(ready, timeout=300)
        c0, t0 = cpu(), time.monotonic()
        while time.monotonic() - t0 < seconds:
            a.request("/metrics")
            time.sleep(interval)
        c1, t1 = cpu(), time.monotonic()
        status = open(f"/proc/{a.proc.pid}/status").read()
        rss = {k: int(re.search(rf"{k}:\s+(\d+)", status).group(1)) for k in ("VmRSS", "RssAnon", "RssFile",
                                                                              "RssShmem", "VmHWM")}
        vms = a.json("/v1/vms")["vms"]
        frames = [v["monitoring"]["last_frame"] for v in vms]
        per_interval = (c1 - c0) / ((t1 - t0) / interval)
        print(json.dumps({
            "guests": n, "interval_s": interval, "window_s": round(t1 - t0, 1),
            "agent_cpu_s_per_interval": round(per_interval, 4),
            "agent_cpu_percent_of_one_core": round(100 * (c1 - c0) / (t1 - t0), 2),
            "agent_rss_kib": rss,
            "agent_threads": int(re.search(r"Threads:\s+(\d+)", status).group(1)),
            "processes_per_guest": [f["processes"] for f in frames],
            "frame_ms": [round(f["duration_seconds"] * 1000, 2) for f in frames],
            "history_bytes_total": sum(int(m) for m in re.findall(
                r"^vmwatch_history_bytes\{[^}]*\} (\d+)", a.request("/metrics")[2].decode(), re.M)),
        }, indent=2))
    finally:
        if a is not None:
            a.stop()
        for gg in guests:
            gg.shutdown()


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--measure":
        measure(int(sys.argv[2]) if len(sys.argv) > 2 else 10)
    else:
        sys.exit("usage: test_agent.py --measure [N]   (the tests run under pytest)")

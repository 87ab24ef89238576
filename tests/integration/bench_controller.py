"""Benchmark of vmwatch-controller over many agents (not a test; prints one
JSON object). Method in docs/PERFORMANCE.md ("vmwatch-controller: 100 agents").

    /usr/bin/python3 tests/integration/bench_controller.py [--agents 100] [--requests 300]

Parts: a real Keystone; one compute host (a private libvirtd, lab/vmlab/hosts.py)
with one lab guest and its agent (127.0.0.40); N-1 further agents
(127.0.1.1, 127.0.1.2, ...) each over libvirt's test driver with one domain
carrying Nova metadata (listed in /v1/vms like a real instance, never
introspected); every agent behind mutual TLS; the controller (127.0.0.40:35340).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import ssl
import statistics
import sys
import time
import uuid as uuidlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "lab"))

import libvirt as lablv  # noqa: E402  (lab/libvirt.py)
from helpers import wait_until  # noqa: E402
from test_controller import (AGENT_TOKEN, answers, make_ca, make_cert, start_daemon,  # noqa: E402
                             stop_daemon, write_secret)
from vmlab.hosts import Host  # noqa: E402
from vmlab.keystone import Keystone  # noqa: E402

KS = ("127.0.0.40", 35341)
CTL = ("127.0.0.40", 35340)
REAL_AGENT = ("127.0.0.40", 35342)
PORT = 35350


def agent_conf(d: Path, name: str, addr: str, port: int, connect: str, interval: str = "5s") -> Path:
    p = d / f"{name}.conf"
    p.write_text(f"listen = {addr}:{port}\nconnect = {connect}\ninterval = {interval}\n"
                 f"tls_cert = {d}/agent.pem\ntls_key = {d}/agent.key\ntls_client_ca = {d}/ca.pem\n"
                 f"tls_client_name = vmwatch-controller\ntoken_file = {d}/agent.token\n")
    return p


def test_driver_xml(d: Path, i: int, project: str) -> str:
    u = str(uuidlib.uuid4())
    nova = lablv.nova_xml({"name": f"sim-{i}", "project_id": project})
    (d / f"sim-{i}.xml").write_text(
        f"<node><domain type='test'><name>sim-{i}</name><uuid>{u}</uuid><metadata>{nova}</metadata>"
        f"<memory>262144</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain></node>")
    return f"test://{d}/sim-{i}.xml"


def timed_gets(conn_factory, path: str, headers: dict, n: int) -> list:
    conn = conn_factory()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        out.append(time.perf_counter() - t0)
        assert r.status == 200, (r.status, body[:300])
    conn.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--bindir", default=str(REPO / "build"))
    a = ap.parse_args()
    d = Path(f"/tmp/vmwatch-ctl-bench-{os.getpid()}")
    d.mkdir()
    bindir = Path(a.bindir)
    procs, host, ks = [], None, None
    try:
        make_ca(d, "ca")
        make_cert(d, "agent", "agent", "IP:127.0.0.40," + ",".join(f"IP:127.0.1.{i}" for i in range(1, a.agents)), "ca")
        make_cert(d, "ctl", "vmwatch-controller", "DNS:vmwatch-controller", "ca")
        write_secret(d / "agent.token", AGENT_TOKEN + "\n")
        write_secret(d / "svc.pw", "pw-svc")
        ks = Keystone(d / "keystone", host=KS[0], port=KS[1]).start()
        proj = ks.project("bench")
        ks.user("svc", "pw-svc", ks.project("service"), "service")
        ks.user("alice", "pw-alice", proj, "member")
        host = Host("bench-h0", Path(f"/run/vmwatch-ctl-bench-{os.getpid()}")).start()
        dom = host.define("ctl-bench-vm", nova={"name": "real", "project_id": proj})
        dom.run("swarm", 100)
        env = {**os.environ, "VMWATCH_LIBVIRT_RUNDIR": str(host.qemu_run_dir)}
        agents = [("h0", REAL_AGENT[0], REAL_AGENT[1])]
        procs.append(start_daemon([str(bindir / "vmwatch-agent"), "--config",
                                   str(agent_conf(d, "h0", *REAL_AGENT, host.uri, "1s"))], d / "h0.log", env))
        for i in range(1, a.agents):
            addr = f"127.0.1.{i}"
            agents.append((f"sim{i}", addr, PORT))
            procs.append(start_daemon([str(bindir / "vmwatch-agent"), "--config",
                                       str(agent_conf(d, f"sim{i}", addr, PORT, test_driver_xml(d, i, proj)))],
                                      d / f"sim{i}.log"))
        conf = d / "controller.conf"
        conf.write_text("\n".join([
            f"listen = {CTL[0]}:{CTL[1]}", f"agent_ca = {d}/ca.pem", f"client_cert = {d}/ctl.pem",
            f"client_key = {d}/ctl.key", f"agent_token_file = {d}/agent.token",
            f"keystone_url = http://{KS[0]}:{KS[1]}/v3", "service_user = svc", f"service_password_file = {d}/svc.pw",
            "index_interval = 2s", "log_level = warning"] + [f"agent = {n}=https://{ad}:{p}" for n, ad, p in agents]) + "\n")
        wait_until(lambda: all(answers_tls(ad, p, d) for _, ad, p in agents), timeout=120)
        ctl = start_daemon([str(bindir / "vmwatch-controller"), "--config", str(conf)], d / "controller.log")
        procs.append(ctl)
        wait_until(lambda: answers(f"http://{CTL[0]}:{CTL[1]}/healthz"), timeout=60)
        tok = ks.login("alice", "pw-alice", project="bench")
        admin = ks.admin_token()
        hdr = {"X-Auth-Token": tok}
        try:
            listing = wait_until(lambda: (s := get_json(CTL, "/v1/servers", hdr))["servers"] and
                                 len(s["servers"]) == a.agents and s, timeout=60)
        except TimeoutError:
            s = get_json(CTL, "/v1/servers?all_projects=1", {"X-Auth-Token": admin})
            print(json.dumps({"servers": len(s["servers"]), "hosts": [h for h in s["hosts"] if h["state"] != "up"][:5]}),
                  file=sys.stderr)
            raise
        assert not listing["incomplete"], listing
        wait_until(lambda: get_json(CTL, f"/v1/servers/{dom.uuid}/processes?limit=1", hdr)["total"] > 100, timeout=60)
        path = f"/v1/vms/{dom.uuid}/processes"
        ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
        ctx.load_cert_chain(str(d / "ctl.pem"), str(d / "ctl.key"))
        direct = timed_gets(lambda: http.client.HTTPSConnection(*REAL_AGENT, context=ctx), path,
                            {"Authorization": f"Bearer {AGENT_TOKEN}"}, a.requests)
        via = timed_gets(lambda: http.client.HTTPConnection(*CTL), f"/v1/servers/{dom.uuid}/processes", hdr,
                         a.requests)
        lst = timed_gets(lambda: http.client.HTTPConnection(*CTL), "/v1/servers", hdr, a.requests)
        refreshes = []
        for _ in range(15):
            time.sleep(2.1)
            m = get_text(CTL, "/metrics", {"X-Auth-Token": admin})
            refreshes.append(float(next(l.split()[1] for l in m.splitlines()
                                        if l.startswith("vmwatch_controller_index_last_refresh_seconds "))))
        ms = lambda xs: round(statistics.median(xs) * 1000, 2)  # noqa: E731
        p90 = lambda xs: round(sorted(xs)[int(len(xs) * 0.9)] * 1000, 2)  # noqa: E731
        print(json.dumps({
            "agents": a.agents, "requests": a.requests, "processes": len(get_json(
                CTL, f"/v1/servers/{dom.uuid}/processes", hdr)["processes"]),
            "agent_direct_ms": {"median": ms(direct), "p90": p90(direct)},
            "via_controller_ms": {"median": ms(via), "p90": p90(via)},
            "controller_overhead_ms_median": round(ms(via) - ms(direct), 2),
            "list_servers_ms": {"median": ms(lst), "p90": p90(lst)},
            "index_refresh_s": {"median": round(statistics.median(refreshes), 3), "max": round(max(refreshes), 3)},
            "load_avg": os.getloadavg(),
        }, indent=1))
        return 0
    finally:
        for p in procs:
            stop_daemon(p)
        if host:
            host.stop()
            shutil.rmtree(host.root.parent, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)
        if ks:
            ks.stop()


def answers_tls(addr, port, d) -> bool:
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    ctx.load_cert_chain(str(d / "ctl.pem"), str(d / "ctl.key"))
    try:
        c = http.client.HTTPSConnection(addr, port, context=ctx, timeout=5)
        c.request("GET", "/healthz")
        return c.getresponse().status == 200
    except OSError:
        return False


def get_text(where, path, headers) -> str:
    c = http.client.HTTPConnection(*where, timeout=30)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read().decode()
    assert r.status == 200, (r.status, body[:300])
    return body


def get_json(where, path, headers) -> dict:
    return json.loads(get_text(where, path, headers))


if __name__ == "__main__":
    sys.exit(main())

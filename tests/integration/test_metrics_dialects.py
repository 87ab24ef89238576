"""/metrics in Prometheus' dialects, the shipped rules, and API query hygiene (issue 14).

- Every per-VM series carries domain (and uuid when known); process names in
  labels are stable (no kworker workqueue suffix); the frame time is
  vmwatch_vm_frame_duration_seconds (the old name is still served, marked
  deprecated); ?dialect=process-exporter names the process groups as
  process-exporter does. promtool checks both.
- dist/prometheus/*.yml pass `promtool check rules` and `promtool test rules`
  against a scrape recorded from the running agent: the recording rules give
  what the scrape implies, every alert stays silent on the healthy guest and
  fires on the scrape altered the way its condition describes.
- Unknown query parameters are a 400 naming the parameter; ?user, ?name and
  ?state filter process lists and streams.
"""
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from test_agent import INTERVAL, Agent
from helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
RULES = [ROOT / "dist/prometheus/vmwatch-rules.yml", ROOT / "dist/prometheus/vmwatch-alerts.yml"]
SAMPLE = re.compile(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# Families about the agent itself, not about one VM.
AGENT_FAMILIES = ("vmwatch_agent_", "vmwatch_vms", "vmwatch_libvirt_", "vmwatch_http_")


@pytest.fixture(scope="module")
def g(guest):
    g = guest(kernel="6.1", mem="512M")        # shared with test_agent.py
    with g.workload("burn", 50):
        yield g


@pytest.fixture(scope="module")
def agent(vmwatch, g):
    a = Agent(vmwatch, "--connect", "none", "--target", f"qemu:{g.pid}", "--interval", INTERVAL,
              "--top-n", 50)
    wait_until(lambda: a.vm(g.name)["monitoring"]["frames"] >= 2, timeout=120, what="first frames")
    yield a
    rc = a.stop()
    assert rc == 0, "agent exit code %d:\n%s" % (rc, "\n".join(a.log[-30:]))   # 99: a sanitizer report


def samples(text):
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, line
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def scrape(agent, query=""):
    st, _, body = agent.request("/metrics" + query)
    assert st == 200, body
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
        assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    return body.decode()


def test_every_per_vm_series_names_domain_and_stable_names(agent, g):
    text = scrape(agent)
    per_vm = [s for s in samples(text) if not s[0].startswith(AGENT_FAMILIES) and s[0].startswith("vmwatch_")]
    assert len(per_vm) > 100
    for name, labels, _ in per_vm:
        assert labels.get("domain") == g.name and labels.get("vm") == g.name, (name, labels)
    # The same uuid on every series of the VM (the one /v1/vms reports).
    uuid = agent.vm(g.name).get("uuid")
    assert {lab.get("uuid") for _, lab, _ in per_vm} == {uuid or None}
    names = {lab["name"] for n, lab, _ in per_vm if n.startswith("vmwatch_process_")}
    assert "burn" in names
    assert not [n for n in names if n.startswith("kworker/")], names
    snap = g.truth()
    if any(p.comm.startswith("kworker/") for p in snap.procs.values() if p.pid in
           {int(lab["pid"]) for n, lab, _ in per_vm if n.startswith("vmwatch_process_")}):
        assert "kworker" in names
    # The frame time under its new name; the old one served once more, deprecated.
    assert re.search(r"^vmwatch_vm_frame_duration_seconds\{.*\} [0-9.e-]+$", text, re.M)
    assert re.search(r"^# HELP vmwatch_scrape_duration_seconds Deprecated: use "
                     r"vmwatch_vm_frame_duration_seconds", text, re.M)
    assert re.search(rf'^vmwatch_vm_info\{{.*,origin="target",', text, re.M)
    assert 'source="' not in text
    # A crash-looping group is one whose oldest start keeps moving.
    oldest = {lab["groupname"]: v for n, lab, v in per_vm if n == "vmwatch_group_oldest_start_time_seconds"}
    burner = snap.find(argv0="burn")[0]
    btime = snap.stat_values()["btime"]
    assert abs(oldest["burn"] - (btime + burner.starttime / snap.clk_tck)) < 0.02


def test_process_exporter_dialect(agent, g):
    text = scrape(agent, "?dialect=process-exporter")
    assert "vmwatch_group_" not in text
    s = samples(text)
    procs = {lab["groupname"]: v for n, lab, v in s if n == "namedprocess_namegroup_num_procs"}
    snap = g.truth()
    assert procs["burn"] == len(snap.find(comm="burn"))
    for fam in ("namedprocess_namegroup_num_threads", "namedprocess_namegroup_cpu_seconds_total",
                "namedprocess_namegroup_memory_bytes", "namedprocess_namegroup_oldest_start_time_seconds"):
        assert any(n == fam and lab.get("groupname") == "burn" and lab.get("domain") == g.name
                   for n, lab, _ in s), fam
    modes = {lab["mode"] for n, lab, _ in s if n == "namedprocess_namegroup_cpu_seconds_total"}
    assert modes == {"user", "system"}
    memtypes = {lab["memtype"] for n, lab, _ in s if n == "namedprocess_namegroup_memory_bytes"}
    assert memtypes == {"resident", "virtual", "swapped"}
    st, _, body = agent.request("/metrics?dialect=statsd")
    assert st == 400 and b"dialect" in body


# ---------------------------------------------------------------- rules

def series(name, labels):
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def render(template, labels):
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)


def alert(rule, labels):
    lab = {**labels, **rule.get("labels", {}), "alertname": rule["alert"]}
    return {"exp_labels": lab, "exp_annotations": {k: render(v, labels) for k, v in rule["annotations"].items()}}


def test_promtool_check_and_test_rules(agent, g, tmp_path):
    yaml = pytest.importorskip("yaml")
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    r = subprocess.run([promtool, "check", "rules", *map(str, RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr

    # The recorded scrape: two, an interval apart, as Prometheus would see them.
    t0, first = time.monotonic(), samples(scrape(agent))
    agent.wait_frames(g.name, 2)
    dt, second = time.monotonic() - t0, {series(n, l): v for n, l, v in samples(scrape(agent))}
    job = {"instance": "host1:9910", "job": "vmwatch"}
    recorded = [(n, {**l, **job}, v, second.get(series(n, l), v)) for n, l, v in first]

    def input_series(changes=None):
        out = []
        for n, l, v0, v1 in recorded:
            v = (changes or {}).get(n, v0)
            if isinstance(v, str):
                values = v
            elif n.endswith("_total"):
                inc = (v1 - v0) / dt * 60                          # the recorded rate, per minute
                values = f"{v0}{'+' if inc >= 0 else '-'}{abs(inc)}x40"   # (idle time may lag: < 0)
            else:
                values = f"{v}x40"
            out.append({"series": series(n, l), "values": values})
        return out

    vm = {k: v for n, l, v0, v1 in recorded if n == "vmwatch_vm_up" for k, v in l.items()}
    one = {n: (l, v0) for n, l, v0, v1 in recorded if l.get("domain") == g.name and "groupname" not in l
           and "mode" not in l and "state" not in l and "type" not in l}
    total, avail = one["vmwatch_guest_memory_total_bytes"][1], one["vmwatch_guest_memory_available_bytes"][1]
    alerts = {r["alert"]: r for grp in yaml.safe_load(RULES[1].read_text())["groups"] for r in grp["rules"]}
    burn_group = next(l for n, l, *_ in recorded if n == "vmwatch_group_oldest_start_time_seconds"
                      and l["groupname"] == "burn")
    quiet = [{"eval_time": "20m", "alertname": a, "exp_alerts": []} for a in alerts]
    tests = [
        {   # The healthy guest as recorded: the recording rules, no alert.
            "interval": "1m",
            "input_series": input_series(),
            "promql_expr_test": [
                {"expr": "vmwatch:guest_memory_used:ratio", "eval_time": "10m",
                 "exp_samples": [{"labels": series("vmwatch:guest_memory_used:ratio", vm), "value": 1 - avail / total}]},
                {"expr": "vmwatch:vms_up:sum", "eval_time": "10m",
                 "exp_samples": [{"labels": series("vmwatch:vms_up:sum", {"instance": job["instance"]}), "value": 1}]},
                {"expr": "vmwatch:guest_cpu_busy:rate5m > bool 0.2", "eval_time": "10m",
                 "exp_samples": [{"labels": series("", {k: vm[k] for k in ("instance", "domain", "uuid", "nova_project")
                                                    if k in vm}),
                                  "value": 1}]},
            ],
            "alert_rule_test": quiet,
        },
        {   # Not monitorable for 5 minutes.
            "interval": "1m",
            "input_series": input_series({"vmwatch_vm_up": "0x40"}),
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "VmwatchVMNotMonitorable", "exp_alerts": []},
                {"eval_time": "6m", "alertname": "VmwatchVMNotMonitorable",
                 "exp_alerts": [alert(alerts["VmwatchVMNotMonitorable"], vm)]},
            ],
        },
        {   # Incomplete for 15 minutes.
            "interval": "1m",
            "input_series": input_series({"vmwatch_vm_complete": "0x40"}),
            "alert_rule_test": [
                {"eval_time": "16m", "alertname": "VmwatchResultIncomplete",
                 "exp_alerts": [alert(alerts["VmwatchResultIncomplete"], vm)]},
            ],
        },
        {   # Guest memory under 10 % available for 10 minutes.
            "interval": "1m",
            "input_series": input_series({"vmwatch_guest_memory_available_bytes": f"{total * 0.05}x40"}),
            "alert_rule_test": [
                {"eval_time": "11m", "alertname": "VmwatchGuestMemoryPressure",
                 "exp_alerts": [alert(alerts["VmwatchGuestMemoryPressure"], vm)]},
            ],
        },
        {   # burn restarted every minute: its group's oldest start moves.
            "interval": "1m",
            "input_series": [s for s in input_series() if s["series"] != series(
                "vmwatch_group_oldest_start_time_seconds", burn_group)] + [
                {"series": series("vmwatch_group_oldest_start_time_seconds", burn_group),
                 "values": "1700000000+60x40"}],
            "alert_rule_test": [
                {"eval_time": "16m", "alertname": "VmwatchProcessCrashLooping",
                 "exp_alerts": [alert(alerts["VmwatchProcessCrashLooping"], burn_group)]},
            ],
        },
    ]
    test_file = tmp_path / "vmwatch-rules-test.yml"
    test_file.write_text(json.dumps({"rule_files": list(map(str, RULES)), "evaluation_interval": "1m",
                                     "tests": tests}))
    r = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert "SUCCESS" in r.stdout


# ---------------------------------------------------------------- API query hygiene

def test_unknown_query_parameters_are_named(agent, g):
    for path, name in (("/v1/vms?user=0", "user"), (f"/v1/vms/{g.name}?x=1", "x"),
                       (f"/v1/vms/{g.name}/processes?sort=pid&limt=3", "limt"),
                       (f"/v1/vms/{g.name}/events?fields=pid", "fields"), ("/metrics?format=json", "format"),
                       ("/healthz?verbose=1", "verbose"), ("/v1/instances?all=1", "all"),
                       (f"/v1/vms/{g.name}/stream?since=4", "since")):
        st, _, body = agent.request(path)
        assert st == 400, (path, st, body[:200])
        doc = json.loads(body)
        assert f"unknown query parameter '{name}'" in doc["error"], doc


def test_process_filters(agent, g):
    snap = g.truth()
    burners = {p.pid for p in snap.find(comm="burn")}
    doc = agent.json(f"/v1/vms/{g.name}/processes?name=burn")
    assert {p["pid"] for p in doc["processes"]} == burners
    doc = agent.json(f"/v1/vms/{g.name}/processes?user=0&state=I&sort=pid&fields=pid,uid,state,kthread")
    assert doc["processes"] and all(p["uid"] == 0 and p["state"] == "I" for p in doc["processes"])
    assert {p["pid"] for p in doc["processes"]} <= {p.pid for p in snap.procs.values() if p.state == "I"} | {
        p["pid"] for p in doc["processes"] if p["kthread"]}
    # Filters first, then sort and limit: the busiest of the two names is burn.
    doc = agent.json(f"/v1/vms/{g.name}/processes?name=burn,init&limit=1&sort=cpu")
    assert [p["comm"] for p in doc["processes"]] == ["burn"]
    assert agent.json(f"/v1/vms/{g.name}/processes?user=4242")["processes"] == []
    for q, msg in (("user=root", "numeric uid"), ("state=Q", "state letter"), ("name=", "non-empty")):
        st, _, body = agent.request(f"/v1/vms/{g.name}/processes?{q}")
        assert st == 400 and msg in json.loads(body)["error"], (q, body)
    # The stream takes the same filters.
    import urllib.request
    with urllib.request.urlopen(agent.base + f"/v1/vms/{g.name}/stream?name=burn&fields=pid,comm",
                                timeout=30) as r:
        data = next(line for line in iter(r.readline, b"") if line.startswith(b"data: "))
    frame = json.loads(data[len(b"data: "):])
    assert {p["pid"] for p in frame["processes"]} == burners and frame["events"] is not None

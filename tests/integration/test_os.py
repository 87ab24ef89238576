"""The guest OS everywhere (issue 13): /etc/os-release's PRETTY_NAME, ID and
VERSION_ID, read from the guest's page cache by the sampler, in the host view
(`vmwatch top` without a TARGET: text column and JSON, the rows `vmwatch vms`
shows too), the agent's /v1/vms objects and the vmwatch_vm_info labels; re-read
when the file's inode changes. Judged against the real Debian 12 guest's own
file, and against a busybox guest that has none ("unknown", honestly)."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from helpers import wait_until
from schemas import validate
from test_agent import Agent
from test_debian import debian, guest_file

NEW_OS = ("mv /etc/os-release /etc/os-release.vmw && printf '%s\\n' 'PRETTY_NAME=\"Test \\\"OS\\\" 1\"' "
          "'ID=testos' 'VERSION_ID=\"1.5\"' > /etc/os-release && cat /etc/os-release > /dev/null")
G61 = dict(kernel="6.1", mem="512M", machine="pc", backing="shm", smp=2)   # test_top's guest


@pytest.fixture(scope="module")
def deb(guest):
    return debian(guest, "6.1")


@pytest.fixture(scope="module")
def bb(guest):
    return guest(**G61)


def os_release(g):
    rel = dict(line.split("=", 1) for line in guest_file(g, "/etc/os-release").decode().splitlines() if "=" in line)
    return {"pretty_name": rel["PRETTY_NAME"].strip('"'), "id": rel["ID"].strip('"'),
            "version_id": rel["VERSION_ID"].strip('"')}


def host_view(vmwatch, *guests, n=2):
    """The host view of these guests only (found among the host's QEMU processes)."""
    args = [str(vmwatch), "top", "--all", "-n", str(n), "-d", "0.5", "--filter", ",".join(g.name for g in guests)]
    j = subprocess.run(args + ["--json"], capture_output=True, text=True, timeout=180)
    assert j.returncode == 0, j.stderr
    b = subprocess.run(args + ["-b"], capture_output=True, text=True, timeout=180)
    assert b.returncode == 0, b.stderr
    return [validate("top-host-frame", json.loads(line)) for line in j.stdout.splitlines()], b.stdout


def test_host_view_os(deb, bb, vmwatch):
    want = os_release(deb)
    assert want["id"] == "debian" and want["version_id"] == "12"
    rc, _ = bb.sh("test -e /etc/os-release || test -e /usr/lib/os-release")
    assert rc != 0, "the busybox guest has an os-release now: this test expects none"
    frames, text = host_view(vmwatch, deb, bb)
    vms = {v["name"]: v for v in frames[-1]["vms"]}
    assert vms[deb.name]["os"] == want
    assert vms[bb.name]["os"] is None
    # The text view: OS as ID:VERSION_ID, "-" when unknown.
    last = text.split("vmwatch top - ")[-1] if "vmwatch top - " in text else text
    head = next(line for line in last.splitlines() if line.startswith("NAME"))
    assert re.search(r"LOAD1 +OS +TOP PROCESS", head), head
    rows = [line for line in last.splitlines() if re.search(r" (ok|partial) ", line)]
    assert len(rows) == 2, last
    assert any(re.search(r"[\d.-]+ +debian:12 ", r) for r in rows), rows
    assert any(re.search(r"[\d.-]+ +- ", r) for r in rows), rows


def test_agent_os_and_vm_info(deb, bb, vmwatch):
    want = os_release(deb)
    a = Agent(vmwatch, "--connect", "none", "--target", f"qemu:{deb.pid}", "--target", f"qemu:{bb.pid}",
              "--interval", 0.5)
    try:
        wait_until(lambda: a.vm(deb.name)["monitoring"]["frames"] >= 1 and a.vm(bb.name)["monitoring"]["frames"] >= 1,
                   timeout=180, what="first frames")
        assert a.vm(deb.name)["os"] == want
        assert a.vm(bb.name)["os"] is None
        vms = {v["name"]: v for v in a.json("/v1/vms")["vms"]}
        assert vms[deb.name]["os"] == want and vms[bb.name]["os"] is None
        text = a.request("/metrics")[2].decode()
        info = [line for line in text.splitlines() if line.startswith("vmwatch_vm_info{")]
        d = [line for line in info if f'vm="{deb.name}"' in line]
        assert d and f',os_id="debian",os_version="12",os_name="{want["pretty_name"]}"}} 1' in d[0], d
        b = [line for line in info if f'vm="{bb.name}"' in line]
        assert b and "os_id=" not in b[0], b

        # A new /etc/os-release (another inode): the agent reads it again.
        deb.sh(NEW_OS, check=True)
        try:
            wait_until(lambda: a.vm(deb.name)["os"] == {"pretty_name": 'Test "OS" 1', "id": "testos",
                                                        "version_id": "1.5"},
                       timeout=60, what="the new os-release")
            text = a.request("/metrics")[2].decode()
            assert re.search(rf'^vmwatch_vm_info{{vm="{re.escape(deb.name)}".*,os_id="testos",os_version="1\.5",'
                             r'os_name="Test \\"OS\\" 1"} 1$', text, re.M), text
        finally:
            deb.sh("mv -f /etc/os-release.vmw /etc/os-release", check=True)
        wait_until(lambda: a.vm(deb.name)["os"] == want, timeout=60, what="the old os-release again")

        # The symlink stays (Debian's /etc/os-release -> ../usr/lib/os-release)
        # and the file it points to is replaced: a remembered lookup follows
        # the link again to the new file (src/linux/pagecache.c, known_lookup).
        deb.sh("cp -p /usr/lib/os-release /usr/lib/os-release.vmw-old && "
               "sed 's/^PRETTY_NAME=.*/PRETTY_NAME=\"Linked OS 2\"/' /usr/lib/os-release > /usr/lib/os-release.vmw-new && "
               "mv -f /usr/lib/os-release.vmw-new /usr/lib/os-release && cat /etc/os-release > /dev/null", check=True)
        try:
            wait_until(lambda: a.vm(deb.name)["os"] == dict(want, pretty_name="Linked OS 2"),
                       timeout=60, what="the os-release the symlink points to now")
        finally:
            deb.sh("mv -f /usr/lib/os-release.vmw-old /usr/lib/os-release && cat /etc/os-release > /dev/null",
                   check=True)
        wait_until(lambda: a.vm(deb.name)["os"] == want, timeout=60, what="the old os-release once more")
    finally:
        rc = a.stop()
    assert rc == 0, "\n".join(a.log[-30:])

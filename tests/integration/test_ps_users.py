"""`vmwatch ps -u NAME` / `-U NAME` / `--user NAME` (issue 13): user names
resolved through the guest's own /etc/passwd (as its page cache holds it),
procps semantics (-u: effective user, -U: real user), numeric uids as before,
an unknown name a usage error naming it. Judged on the real Debian guest
(alice and bob run services there) against the guest's own procps ps."""
from __future__ import annotations

import subprocess

import pytest

from test_debian import debian

NAMES = ("alice", "bob", "root", "messagebus")


@pytest.fixture(scope="module")
def deb(guest):
    return debian(guest, "6.1")


def vm_ps(vmwatch, g, *args):
    return subprocess.run([str(vmwatch), "ps", *args, f"qemu:{g.pid}"], capture_output=True, text=True,
                          timeout=120)


def pids_of(r):
    assert r.returncode == 0, r.stderr
    return {int(line.split()[0]) for line in r.stdout.splitlines()[1:] if line.strip()}


def guest_ps(g, flag, name):
    rc, out = g.sh(f"ps {flag} {name} -o pid=")
    return {int(x) for x in out.split()} if rc == 0 else set()


def stable(before, after):
    """Pids alive in both snapshots as the same process."""
    return {pid for pid, p in before.procs.items()
            if pid in after.procs and after.procs[pid].starttime == p.starttime}


@pytest.mark.parametrize("flag", ["-u", "-U", "--user"])
def test_ps_user_names_like_guest_ps(deb, vmwatch, flag):
    gflag = "-U" if flag == "-U" else "-u"
    before = deb.truth()
    got = {n: pids_of(vm_ps(vmwatch, deb, flag, n, "-o", "pid")) for n in NAMES}
    want = {n: guest_ps(deb, gflag, n) for n in NAMES}
    after = deb.truth()
    keep = stable(before, after)
    for n in NAMES:
        assert got[n] & keep == want[n] & keep, (n, sorted(got[n]), sorted(want[n]))
    assert got["alice"] & keep and got["bob"] & keep and got["messagebus"] & keep
    # A list of names is any of them; a name and its uid select the same.
    both = pids_of(vm_ps(vmwatch, deb, flag, "alice,bob", "-o", "pid"))
    assert both & keep == (got["alice"] | got["bob"]) & keep
    uid = {p.uid if flag == "-U" else p.euid for pid, p in before.procs.items() if pid in got["alice"] & keep}
    assert len(uid) == 1
    by_uid = pids_of(vm_ps(vmwatch, deb, flag, str(uid.pop()), "-o", "pid"))
    assert by_uid & keep == got["alice"] & keep


def test_ps_unknown_user_is_a_usage_error(deb, vmwatch):
    r = vm_ps(vmwatch, deb, "-u", "alice,nosuchuser")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "user 'nosuchuser' is not in the guest's /etc/passwd" in r.stderr
    assert r.stdout == ""
    # Escapes in the name given are not echoed raw.
    r = vm_ps(vmwatch, deb, "-U", "x\x1b]0;pwned\x07")
    assert r.returncode == 2 and "\x1b" not in r.stderr and "x?]0;pwned?" in r.stderr, r.stderr

"""vmwatch on a real distribution: the lab's Debian 12 guest (systemd as
PID 1, udev, dbus, journald, cron, sshd, services running as alice and bob;
lab/README.md "The Debian guest"), on the 6.1 and 6.12 kernels.

Every field of `ps --json`, the command line included, is judged against
the guest's own /proc with the bracket rules of test_ps.py (snapshot,
pause, vmwatch, resume, snapshot; stable fields must be equal)."""
import os

import pytest

from test_ps import compare, ps_paused

KERNELS = ("6.1", "6.12")


def debian(guest, kernel):
    """The shared Debian guest for a kernel (booted on first use)."""
    tag = kernel.replace(".", "")
    return guest(kernel=kernel, mem="1G", image="debian", name=f"deb-{tag}-{os.getpid()}")


@pytest.fixture(params=KERNELS, ids=lambda k: f"debian-{k}")
def deb(request, guest):
    return debian(guest, request.param)


def test_debian_ps_every_field(deb, vmwatch):
    before, out, after = ps_paused(deb, vmwatch, f"qemu:{deb.pid}")
    compare(before, out, after)
    procs = {p["pid"]: p for p in out["processes"]}
    # What makes this a real distribution: systemd as PID 1 (its argv is
    # /init, the initramfs link), services as users, argv rewritten by
    # programs themselves (sshd, "(sd-pam)").
    assert procs[1]["comm"] == "systemd"
    by_argv0 = {p["cmdline"][0]: p for p in out["processes"] if p["cmdline"]}
    assert by_argv0["/usr/local/bin/hog"]["uid"] == 1001
    assert by_argv0["/usr/local/bin/idle"]["uid"] == 1002
    assert by_argv0["/usr/local/bin/idle"]["comm"] == "bob (worker)"
    assert by_argv0["/bin/sh"]["cmdline"] == ["/bin/sh", "-c", "while sleep 3600; do echo tick; done",
                                              "loop-arg"]
    assert "(sd-pam)" in by_argv0
    assert any(a.startswith("sshd: ") for a in by_argv0)
    comms = {p["comm"] for p in out["processes"]}
    assert {"systemd-journal", "systemd-udevd", "dbus-daemon", "cron", "systemd-logind"} <= comms

"""pytest plumbing for vmwatch's integration tests: real QEMU/TCG guests
from the lab (the lab/vmlab/ package).

Fixtures
  lab          session: kernels (6.1, 6.12) and the initramfs exist; gives a
               LabInfo (lab.vmlab is the module, lab.kernel(v), lab.initramfs)
  guest        session: factory guest(kernel='6.1', mem='512M', machine='pc',
               backing='shm', cpu='qemu64', ...) -> vmlab.Guest, booted on the
               first request and shared by every later test asking for the
               same configuration; all are shut down at session end. At most
               $VMWATCH_LAB_MAX_GUESTS (default 3) shared guests run at once:
               the least recently requested one is shut down to make room.
  fresh_guest  function: factory like guest() that boots a private guest,
               shut down at the end of the test.
  vmwatch      session: path of the vmwatch binary ($VMWATCH or
               <repo>/build/vmwatch); skips the test if it is not built.

Tests that start workloads in a shared guest should stop them again, e.g.
`with g.workload("swarm", 200) as pid: ...` (kills the process group).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import vmlab  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: boots big guests or runs long workloads")
    # SIGTERM/SIGHUP -> KeyboardInterrupt: pytest then runs the session
    # finalizers, which shut every guest down (atexit in vmlab is the backstop).
    vmlab.install_signal_handlers(KeyboardInterrupt)


class LabInfo:
    def __init__(self, kernels: dict, initramfs: Path) -> None:
        self.vmlab = vmlab
        self.kernels = kernels
        self.initramfs = initramfs

    def kernel(self, version: str) -> Path:
        if version not in self.kernels:
            self.kernels[version] = vmlab.fetch_kernel(version)
        return self.kernels[version]


@pytest.fixture(scope="session")
def lab():
    if not shutil.which("qemu-system-x86_64") and not os.environ.get("VMWATCH_QEMU"):
        pytest.skip("qemu-system-x86_64 is not installed")
    kernels = vmlab.fetch_kernels(("6.1", "6.12"))
    initramfs = vmlab.build_initramfs()
    vmlab.gc_stale()
    return LabInfo(kernels, initramfs)


class GuestFactory:
    """Shared guests, one per configuration (see the module doc)."""

    def __init__(self, max_live: int) -> None:
        self.max_live = max(1, max_live)
        self.guests: "OrderedDict[tuple, vmlab.Guest]" = OrderedDict()

    def __call__(self, **kw) -> "vmlab.Guest":
        cfg = vmlab.GuestConfig(**kw)
        key = cfg.key()
        g = self.guests.get(key)
        if g is not None and g.alive():
            self.guests.move_to_end(key)
            return g
        if g is not None:          # died: replace it
            g.shutdown()
            del self.guests[key]
        while len(self.guests) >= self.max_live:
            _, old = self.guests.popitem(last=False)
            old.shutdown()
        g = vmlab.Guest.boot(cfg)
        self.guests[key] = g
        return g

    def close(self) -> None:
        while self.guests:
            _, g = self.guests.popitem()
            try:
                g.shutdown()
            except Exception as e:  # noqa: BLE001
                print(f"shutting down {g.name} failed: {e}", file=sys.stderr)


@pytest.fixture(scope="session")
def guest(lab):
    factory = GuestFactory(int(os.environ.get("VMWATCH_LAB_MAX_GUESTS", "3")))
    yield factory
    factory.close()


@pytest.fixture
def fresh_guest(lab):
    booted = []

    def boot(**kw):
        g = vmlab.Guest.boot(vmlab.GuestConfig(**kw))
        booted.append(g)
        return g

    yield boot
    for g in booted:
        g.shutdown()


@pytest.fixture(scope="session")
def vmwatch():
    path = Path(os.environ.get("VMWATCH") or REPO / "build" / "vmwatch")
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.skip(f"vmwatch binary not built ({path}); build it or set VMWATCH")
    return path


# ---- libvirt (lab/libvirt.py) -------------------------------------------------
# Owned by the libvirt/virt work; keep this block self-contained.
#   libvirt_host    session: virtlogd + libvirtd running (started once; stopped at
#                   session end only if this session started them); skips the
#                   test if libvirtd is not installed.
#   libvirt_domain  session: factory libvirt_domain(name, mem='512M', shared=False,
#                   nova=None|dict, kernel='6.1', **define_domain kwargs) ->
#                   lab libvirt Domain (a vmlab.Guest), booted once per name and
#                   configuration; every domain is destroyed and undefined at
#                   session end (and by atexit in lab/libvirt.py).

@pytest.fixture(scope="session")
def libvirt_host(lab):
    import libvirt as lablv   # lab/libvirt.py, not the libvirt Python bindings
    if not shutil.which("libvirtd") or not shutil.which("virsh"):
        pytest.skip("libvirtd/virsh not installed (libvirt-daemon libvirt-daemon-driver-qemu "
                    "libvirt-clients)")
    info = lablv.start_libvirtd()
    lablv.gc_domains()
    yield info
    lablv.stop_libvirtd()   # only if started here; domains are gone by now


@pytest.fixture(scope="session")
def libvirt_domain(libvirt_host):
    import json
    import libvirt as lablv
    made: dict = {}

    def make(name, mem="512M", shared=False, nova=None, kernel="6.1", **kw):
        key = json.dumps([mem, shared, nova, kernel, kw], sort_keys=True, default=str)
        d = made.get(name)
        if d is not None and d[0] == key and d[1].alive():
            return d[1]
        if d is not None:
            d[1].shutdown()
        dom = lablv.define_domain(name, kernel=kernel, mem=mem, shared=shared, nova=nova, **kw)
        made[name] = (key, dom)
        return dom

    yield make
    for _, dom in made.values():
        try:
            dom.shutdown()
        except Exception as e:  # noqa: BLE001
            print(f"destroying domain {dom.name} failed: {e}", file=sys.stderr)
# ---- end of the libvirt block -------------------------------------------------

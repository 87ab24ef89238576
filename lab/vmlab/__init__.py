"""vmlab -- the vmwatch lab: boot real QEMU/TCG Linux guests and get ground
truth from inside them.

Python stdlib only. Typical use::

    import vmlab
    g = vmlab.Guest.boot(vmlab.GuestConfig(kernel="6.12", mem="512M"))
    pid = g.run("hog", 32)
    snap = g.truth()
    assert snap.procs[pid].VmRSS >= 32 * 1024
    g.shutdown()

The package (lab/vmlab/), one module per concern:

    errors     LabError and its kinds
    paths      cache and state directories, host binaries, file helpers
    procs      host processes: liveness, the owned-object registry, signals
    kernels    Debian kernels (apt-get download, dpkg-deb)
    initramfs  the guest programs and the busybox initramfs
    debian     the Debian 12 (systemd) initramfs, made by mmdebstrap
    snapshot   Snapshot/Proc/Task, the parsed ground truth
    wire       LineReader, line framing with deadlines on a unix socket
    qmp        QmpClient, QEMU's monitor
    truth      TruthClient, the protocol of the in-guest agent
    guest      GuestConfig, Guest (lifecycle; composes QmpClient + TruthClient)
    pool       list_guests, stop_all, gc_stale
    cli        the `lab/vmlab.sh` command (`python3 lab/vmlab` runs it too)

This file re-exports the API users rely on (`vmlab.X` as before the split,
including the few private helpers lab/libvirt.py uses), so callers keep
importing just `vmlab`. See lab/README.md for the CLI, the guest programs
and the snapshot format.
"""

from __future__ import annotations

from .cli import main
from .errors import BootError, LabError, QMPError, TruthError
from .guest import FAST_BOOT_ARGS, Guest, GuestConfig, start_guest
from .debian import DEBIAN_PACKAGES, build_debian_initramfs
from .initramfs import BUILDER_VERSION, GUEST_CFLAGS, build_guest_programs, build_initramfs
from .kernels import KERNELS, fetch_kernel, fetch_kernels, kernel_package
from .paths import (GUEST_SRC, LAB_SRC, REPO, SHM_PREFIX, _atomic_write, _check_name, _flock,
                    _tail, cache_dir, kernels_dir, lab_root, parse_mem, qemu_binary)
from .pool import gc_stale, list_guests, stop_all
from .procs import OwnedRegistry, _pid_alive, _proc_cmdline, _proc_state, install_signal_handlers
from .qmp import QmpClient, qmp_result
from .snapshot import Proc, Snapshot, Task, parse_snapshot
from .truth import TruthClient, _quote_arg
from .wire import LineReader

_LineReader = LineReader   # its name before the split

__all__ = [
    "LabError", "BootError", "TruthError", "QMPError",
    "KERNELS", "kernel_package", "fetch_kernel", "fetch_kernels",
    "build_guest_programs", "build_initramfs", "build_debian_initramfs", "DEBIAN_PACKAGES",
    "GuestConfig", "Guest", "start_guest", "Snapshot", "Proc", "Task",
    "list_guests", "stop_all", "gc_stale", "lab_root", "cache_dir",
    "install_signal_handlers", "main",
    "QmpClient", "qmp_result", "TruthClient", "OwnedRegistry", "LineReader", "parse_snapshot", "parse_mem",
]

# Names that are imported for re-export only (the linters' "unused" check).
_REEXPORTED = (FAST_BOOT_ARGS, BUILDER_VERSION, GUEST_CFLAGS, GUEST_SRC, LAB_SRC, REPO, SHM_PREFIX,
               _atomic_write, _check_name, _flock, _tail, kernels_dir, qemu_binary, _pid_alive,
               _proc_cmdline, _proc_state, _quote_arg)

"""Several compute "hosts" on one machine: each a private libvirtd (and
virtlogd) in its own mount namespace, with lab guests as its domains.

    h = Host("ctl-h1", Path("/run/vmwatch-ctl-hosts/h1")).start()
    h.uri                      # qemu+unix:///system?socket=<root>/run/libvirt-sock
    h.ro_uri                   # its read-only socket (unprivileged clients)
    h.qemu_run_dir             # where its QEMU pid files are (VMWATCH_LIBVIRT_RUNDIR)
    d = h.define("ctl-vm1", nova={"project_id": ..., "name": "web-1"})
    d.truth(); d.pid; d.uuid
    h.stop()                   # destroys its domains, stops its daemons, removes <root>

The namespace (`unshare --mount --propagation private`) bind-mounts
per-host directories over /run/libvirt, /var/lib/libvirt,
/var/cache/libvirt (a copy of the host's QEMU capabilities cache: no
re-probe), /var/log/libvirt and /etc/libvirt (a copy, with the lab's
qemu.conf: no cgroups); the daemons' pid files are under <root> (-p), so
nothing in the host's own /run is touched. Everything else (the guests'
kernels, initramfs and truth sockets under <root>/dom) has the same path
inside and outside. The namespace lives as long as its libvirtd.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from .errors import BootError, LabError
from .guest import Guest, GuestConfig
from .initramfs import build_initramfs
from .kernels import fetch_kernel
from .paths import _tail
from .procs import _pid_alive

_LAB = Path(__file__).resolve().parents[1]
if str(_LAB) not in sys.path:
    sys.path.insert(0, str(_LAB))
import libvirt as _lablv  # noqa: E402  (lab/libvirt.py: domain XML, host setup)

BINDS = (("run", "/run/libvirt"), ("lib", "/var/lib/libvirt"), ("cache", "/var/cache/libvirt"),
         ("log", "/var/log/libvirt"), ("etc", "/etc/libvirt"))


class Host:
    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = Path(root)
        self.domains: dict = {}

    @property
    def sock(self) -> Path:
        return self.root / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.sock}"

    @property
    def ro_uri(self) -> str:
        """The read-only socket: what an unprivileged client (the vmwatch agent's
        front process) may connect to."""
        return f"qemu+unix:///system?socket={self.sock}-ro"

    @property
    def qemu_run_dir(self) -> Path:
        return self.root / "run" / "qemu"

    def _pid(self, daemon: str) -> Optional[int]:
        try:
            pid = int((self.root / f"{daemon}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid, daemon) else None

    def virsh(self, *args, check: bool = True, timeout: float = 120.0) -> str:
        r = subprocess.run(["virsh", "-q", "-c", self.uri, *map(str, args)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise LabError(f"{self.name}: virsh {' '.join(map(str, args))} failed: {r.stderr.strip()}")
        return r.stdout if r.returncode == 0 else ""

    def start(self, timeout: float = 90.0) -> "Host":
        _lablv._setup_host()   # users, groups, /dev/kvm as udev would
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        os.chmod(self.root, 0o755)
        for sub, target in BINDS:
            Path(target).mkdir(parents=True, exist_ok=True)
            src = Path(target)
            if sub in ("etc", "cache") and src.is_dir():
                shutil.copytree(src, self.root / sub, symlinks=True)
            else:
                (self.root / sub).mkdir()
        (self.root / "etc" / "qemu.conf").write_text(_lablv.QEMU_CONF)
        if not (self.root / "etc" / "libvirtd.conf").exists():
            (self.root / "etc" / "libvirtd.conf").write_text(_lablv.LIBVIRTD_CONF)
        (self.root / "log" / "qemu").mkdir(exist_ok=True)
        (self.root / "dom").mkdir()
        os.chmod(self.root / "dom", 0o755)
        mounts = "; ".join(f"mount --bind {self.root / sub} {target}" for sub, target in BINDS)
        script = (f"set -e; {mounts}; "
                  f"virtlogd -d -p {self.root / 'virtlogd.pid'}; "
                  f"libvirtd -d -p {self.root / 'libvirtd.pid'}")
        env = {**os.environ, "LIBVIRT_LOG_OUTPUTS": f"3:file:{self.root / 'log' / 'libvirtd.log'}"}
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=env, start_new_session=True, timeout=timeout)
        if r.returncode != 0:
            raise LabError(f"{self.name}: starting libvirtd in a mount namespace failed: {r.stdout.strip()}")
        deadline = time.monotonic() + timeout
        while True:
            if self.sock.exists() and self.virsh("uri", check=False):
                return self
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: libvirtd does not answer on {self.sock}; see "
                               f"{self.root / 'log' / 'libvirtd.log'}")
            time.sleep(0.2)

    def define(self, name: str, kernel: str = "6.1", mem: str = "256M", nova: Optional[dict] = None,
               uuid: Optional[str] = None, run: Optional[list] = None, wait: bool = True,
               boot_timeout: float = 300.0) -> "HostDomain":
        """Define and start a lab domain on this host (private RAM)."""
        cfg = GuestConfig(kernel=kernel, mem=mem, smp=1, backing="private", name=name, run=run or [],
                          boot_timeout=boot_timeout)
        state = self.root / "dom" / name
        state.mkdir()
        os.chmod(state, 0o755)
        shutil.copyfile(fetch_kernel(kernel), state / "vmlinuz")
        shutil.copyfile(build_initramfs(), state / "initrd.gz")
        (state / "domain.xml").write_text(_lablv.domain_xml(name, state, cfg, False, nova, uuid))
        d = HostDomain(self, name, state, cfg)
        self.domains[name] = d
        self.virsh("define", state / "domain.xml")
        self.virsh("start", name)
        d.uuid = self.virsh("domuuid", name).strip()
        d.pid = d.read_pid()
        if wait:
            d.wait_ready(boot_timeout)
        return d

    def stop(self) -> None:
        """Destroy the domains, stop the daemons (the namespace goes with them), remove the files."""
        for d in list(self.domains.values()):
            d.shutdown()
        for daemon in ("libvirtd", "virtlogd"):
            pid = self._pid(daemon)
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _pid_alive(pid, daemon) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(pid, daemon):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


class HostDomain(Guest):
    """A lab guest run by a Host's libvirtd (truth(), ping(), run(), kill() of vmlab.Guest work)."""

    def __init__(self, host: Host, name: str, state_dir: Path, config: GuestConfig) -> None:
        super().__init__(name, state_dir, config, None)
        self.host = host
        self.uuid: Optional[str] = None
        self.ram_path = None

    def read_pid(self) -> Optional[int]:
        try:
            pid = int((self.host.qemu_run_dir / f"{self.name}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid, f"guest={self.name}") else None

    def alive(self) -> bool:
        return self.host.virsh("domstate", self.name, check=False).strip() in ("running", "paused")

    def _vcpus_running(self) -> bool:
        return self.host.virsh("domstate", self.name, check=False).strip() == "running"

    def pause(self) -> None:
        self.host.virsh("suspend", self.name)

    def resume(self) -> None:
        self.host.virsh("resume", self.name)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Optional[BaseException] = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise BootError(f"domain {self.name} on {self.host.name} stopped during boot:\n"
                                f"{_tail(self.console_log)}")
            if self.truth_sock.exists():
                try:
                    self.ping(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                    self.pid = self.read_pid()
                    return
                except (OSError, LabError) as e:
                    last = e
            time.sleep(0.2)
        raise BootError(f"domain {self.name} on {self.host.name} did not answer within {timeout:.0f} s "
                        f"({last})")

    def shutdown(self, timeout: float = 10.0) -> None:
        self.host.virsh("destroy", self.name, check=False)
        self.host.virsh("undefine", self.name, check=False)
        self.host.domains.pop(self.name, None)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    stop = shutdown

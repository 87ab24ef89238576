"""libvirt for the vmwatch lab: run libvirtd (no systemd needed) and boot
lab guests as libvirt TCG domains that keep the lab's ground truth.

Python stdlib only; talks to libvirt through `virsh`. Typical use::

    import libvirt as lablv          # lab/libvirt.py (not the libvirt bindings)
    lablv.start_libvirtd()
    d = lablv.define_domain("vm1", mem="512M", shared=True,
                            nova={"name": "web-1", "flavor": "m1.small"})
    d.pid                             # QEMU PID (libvirt's /run/libvirt/qemu/vm1.pid)
    snap = d.truth()                  # vmlab.Guest API: truth(), run(), kill(), sh() ...
    with d.paused():                  # virsh suspend / resume (libvirt owns QMP)
        ...
    d.shutdown()                      # destroy + undefine + remove its files
    lablv.stop_libvirtd()             # only if this process started it

A domain is a vmlab.Guest: direct kernel boot of the lab's kernel and
initramfs (<kernel>, <initrd>, <cmdline>), ttyS0 logged to console.log and
ttyS1 a unix socket (<serial type='unix'> port 1) where vmw-truth answers.
Files live in $VMWATCH_LIBVIRT_DIR, else /run/vmwatch-libvirt, /NAME/ (copies
of the kernel and initramfs: libvirt chowns them to its QEMU user). Every
domain this process creates is destroyed and undefined at exit (atexit), and
stale lab domains of dead processes are removed by gc_domains().

Host setup done by start_libvirtd(): groups kvm and
libvirt-qemu, user libvirt-qemu, /var/log/libvirt, /etc/libvirt/libvirtd.conf
when there is none (read-only connections for every user, as polkit grants
them; see LIBVIRTD_CONF), and
- /dev/kvm group kvm mode 0660, as udev would make it. Without it libvirtd
  decides on every domain start that its cached QEMU capabilities are stale
  ("KVM was enabled when probing, but it is not available now") and
  re-probes QEMU: ~60 s per domain start instead of ~2 s;
- /etc/libvirt/qemu.conf with `cgroup_controllers = [ ]` if there is no such
  file: otherwise QEMU goes into libvirt's cgroup v1 "machine" group, whose
  CPU share is that of a single process: on a loaded host a domain booted
  3x slower than a vmlab guest (98 s vs 35 s).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.sax.saxutils as saxutils
from pathlib import Path
from typing import Any, Callable, Optional, Union

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import vmlab  # noqa: E402

URI = "qemu:///system"
SOCK = Path("/run/libvirt/libvirt-sock")
RUN_DIR = Path("/run/libvirt/qemu")
LAB_NS = "urn:vmwatch:lab"
NOVA_NS = "http://openstack.org/xmlns/libvirt/nova/1.1"
LOG_DIR = Path("/var/log/libvirt")
QEMU_CONF = """# Written by the vmwatch lab (lab/libvirt.py) because there was none.
# No cgroups for QEMU: in a machine cgroup all domains together would get
# the CPU share of one process, and TCG guests boot 3x slower on a busy host
# than the lab's directly started QEMUs.
cgroup_controllers = [ ]
"""

LIBVIRTD_CONF = """# Written by the vmwatch lab (lab/libvirt.py) because there was none.
# Read-only connections for every local user, as libvirt's default polkit
# policy (org.libvirt.unix.monitor: allow_any) grants them on a host with
# polkit; this machine has no D-Bus system bus for polkit to answer on. The
# vmwatch agent's unprivileged front process connects read-only as nobody.
auth_unix_ro = "none"
"""

__all__ = ["start_libvirtd", "stop_libvirtd", "restart_libvirtd", "libvirtd_running", "virsh",
           "Domain", "define_domain", "gc_domains", "destroy_all", "libvirt_dir", "URI"]


def libvirt_dir() -> Path:
    return Path(os.environ.get("VMWATCH_LIBVIRT_DIR") or "/run/vmwatch-libvirt")


# ----------------------------------------------------------------------------
# virsh
# ----------------------------------------------------------------------------

def virsh(*args: Any, check: bool = True, timeout: float = 120.0) -> str:
    """Run `virsh -c qemu:///system ARGS`; returns stdout (raises LabError
    with virsh's message when check and it fails)."""
    cmd = ["virsh", "-q", "-c", URI, *map(str, args)]
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
    except FileNotFoundError:
        raise vmlab.LabError("virsh not found: apt-get install libvirt-clients") from None
    if check and r.returncode != 0:
        raise vmlab.LabError(f"virsh {' '.join(map(str, args))} failed: {r.stderr.strip()}")
    return r.stdout if r.returncode == 0 else ""


# ----------------------------------------------------------------------------
# the daemons
# ----------------------------------------------------------------------------

_started: dict = {}          # daemon name -> pid started by this process
_lock = threading.RLock()


def _pidfile_pid(name: str) -> Optional[int]:
    try:
        pid = int(Path(f"/run/{name}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if vmlab._pid_alive(pid, name) else None


def libvirtd_running() -> bool:
    """libvirtd answers on its socket."""
    if not SOCK.exists():
        return False
    r = subprocess.run(["virsh", "-q", "-c", URI, "uri"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return r.returncode == 0


def _setup_host() -> None:
    if not shutil.which("libvirtd"):
        raise vmlab.LabError("libvirtd not found: apt-get install --no-install-recommends "
                             "libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients")
    for g in ("kvm", "libvirt-qemu"):
        try:
            grp.getgrnam(g)
        except KeyError:
            subprocess.run(["groupadd", "-r", g], check=True)
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        subprocess.run(["useradd", "-r", "-g", "libvirt-qemu", "-G", "kvm", "-d", "/var/lib/libvirt",
                        "-s", "/usr/sbin/nologin", "libvirt-qemu"], check=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / "qemu").mkdir(exist_ok=True)
    conf = Path("/etc/libvirt/qemu.conf")
    if not conf.exists():   # see the module doc; never overwrites a host's own file
        conf.write_text(QEMU_CONF)
    conf = Path("/etc/libvirt/libvirtd.conf")
    if not conf.exists():
        conf.write_text(LIBVIRTD_CONF)
    try:   # as udev would: see the module doc
        st = os.stat("/dev/kvm")
        kvm = grp.getgrnam("kvm").gr_gid
        if st.st_gid != kvm or (st.st_mode & 0o060) != 0o060:
            os.chown("/dev/kvm", -1, kvm)
            os.chmod("/dev/kvm", 0o660)
    except (OSError, KeyError):
        pass


def _start_daemon(name: str, sock: Path, env: dict, timeout: float) -> None:
    if _pidfile_pid(name) is not None and sock.exists():
        return
    # -d: the daemon forks and the parent exits once it is set up.
    r = subprocess.run([name, "-d"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise vmlab.LabError(f"{name} -d failed (rc={r.returncode}): {r.stdout.strip()}")
    deadline = time.monotonic() + timeout
    while not sock.exists() or _pidfile_pid(name) is None:
        if time.monotonic() > deadline:
            raise vmlab.LabError(f"{name} did not create {sock} within {timeout:.0f} s; "
                                 f"see {LOG_DIR / (name + '.log')}")
        time.sleep(0.05)
    pid = _pidfile_pid(name)
    with _lock:
        _started[name] = pid


def start_libvirtd(timeout: float = 60.0) -> dict:
    """Start virtlogd and libvirtd if they are not running (idempotent);
    returns {"reused": bool, "pid": libvirtd's pid, "seconds": float}."""
    t0 = time.monotonic()
    with _lock:
        _setup_host()
        if libvirtd_running():
            return {"reused": True, "pid": _pidfile_pid("libvirtd"), "seconds": time.monotonic() - t0}
        env = dict(os.environ)
        env.setdefault("LIBVIRT_LOG_OUTPUTS", f"3:file:{LOG_DIR / 'libvirtd.log'}")
        _start_daemon("virtlogd", Path("/run/libvirt/virtlogd-sock"),
                      {**os.environ, "LIBVIRT_LOG_OUTPUTS": f"3:file:{LOG_DIR / 'virtlogd.log'}"},
                      timeout)
        _start_daemon("libvirtd", SOCK, env, timeout)
        deadline = time.monotonic() + timeout
        while not libvirtd_running():
            if time.monotonic() > deadline:
                raise vmlab.LabError(f"libvirtd does not answer on {SOCK}; see "
                                     f"{LOG_DIR / 'libvirtd.log'}")
            time.sleep(0.1)
        return {"reused": False, "pid": _pidfile_pid("libvirtd"), "seconds": time.monotonic() - t0}


def _kill_pid(pid: int, name: str, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while vmlab._pid_alive(pid, name):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.2)
            break
        time.sleep(0.05)


def stop_libvirtd(force: bool = False, timeout: float = 15.0) -> list:
    """Stop libvirtd and virtlogd if this process started them (or, with
    force, whoever did). Running domains keep running (QEMU is not libvirtd's
    child); destroy them first. Returns the names of the daemons stopped."""
    stopped = []
    with _lock:
        for name in ("libvirtd", "virtlogd"):
            pid = _pidfile_pid(name)
            if pid is None or (not force and _started.get(name) != pid):
                continue
            _kill_pid(pid, name, timeout)
            _started.pop(name, None)
            stopped.append(name)
    return stopped


def restart_libvirtd(down_seconds: float = 0.0, while_down: Optional[Callable[[], Any]] = None,
                     timeout: float = 60.0) -> dict:
    """Stop libvirtd (whoever started it), call while_down(), stay down for
    down_seconds, start it again. Domains keep running and are re-adopted by
    the new libvirtd (one whose QEMU died meanwhile is marked shut off)."""
    with _lock:
        pid = _pidfile_pid("libvirtd")
        if pid is not None:
            _kill_pid(pid, "libvirtd", timeout)
        was_ours = _started.pop("libvirtd", None) is not None
        if while_down is not None:
            while_down()
        if down_seconds > 0:
            time.sleep(down_seconds)
        info = start_libvirtd(timeout)
        if not was_ours:
            _started.pop("libvirtd", None)   # stays whoever's it was: not stopped at our end
        return info


# ----------------------------------------------------------------------------
# domains
# ----------------------------------------------------------------------------

def _x(s: Any) -> str:
    return saxutils.escape(str(s), {"'": "&apos;", '"': "&quot;"})


def nova_xml(nova: dict) -> str:
    """<nova:instance> (nova/1.1) from a dict with any of: name, flavor,
    memory (MiB), vcpus, disk, swap, ephemeral, user, user_id, project,
    project_id, creation_time, package."""
    n = {"name": "instance", "flavor": "m1.small", "memory": 512, "vcpus": 1, "disk": 1, "swap": 0,
         "ephemeral": 0, "user": "admin", "user_id": "0b5cd9e2a7d94a6c8b3f1e2d4c6a8b0f",
         "project": "demo", "project_id": "7f3e2d1c0b9a48e7a6d5c4b3a2f1e0d9",
         "creation_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "package": "27.1.0"}
    n.update(nova)
    return (f'<nova:instance xmlns:nova="{NOVA_NS}">'
            f'<nova:package version="{_x(n["package"])}"/>'
            f'<nova:name>{_x(n["name"])}</nova:name>'
            f'<nova:creationTime>{_x(n["creation_time"])}</nova:creationTime>'
            f'<nova:flavor name="{_x(n["flavor"])}"><nova:memory>{int(n["memory"])}</nova:memory>'
            f'<nova:disk>{int(n["disk"])}</nova:disk><nova:swap>{int(n["swap"])}</nova:swap>'
            f'<nova:ephemeral>{int(n["ephemeral"])}</nova:ephemeral>'
            f'<nova:vcpus>{int(n["vcpus"])}</nova:vcpus></nova:flavor>'
            f'<nova:owner><nova:user uuid="{_x(n["user_id"])}">{_x(n["user"])}</nova:user>'
            f'<nova:project uuid="{_x(n["project_id"])}">{_x(n["project"])}</nova:project></nova:owner>'
            f'<nova:root type="image" uuid="5e8b1c2a-3d4f-4a6b-9c8d-7e6f5a4b3c2d"/>'
            f'</nova:instance>')


def domain_xml(name: str, state_dir: Path, cfg: vmlab.GuestConfig, shared: bool,
               nova: Optional[dict], uuid: Optional[str] = None) -> str:
    mib = cfg.mem_mib
    backing = ("<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"
               if shared else "")
    meta = f"<lab:guest xmlns:lab='{LAB_NS}' owner='{os.getpid()}' kernel='{_x(cfg.kernel)}'/>"
    if nova is not None:
        meta += nova_xml(nova)
    return f"""<domain type='qemu'>
  <name>{_x(name)}</name>
  {f'<uuid>{uuid}</uuid>' if uuid else ''}
  <metadata>{meta}</metadata>
  <memory unit='MiB'>{mib}</memory>
  {backing}
  <vcpu>{cfg.smp}</vcpu>
  <os>
    <type arch='x86_64' machine='{_x(cfg.machine)}'>hvm</type>
    <kernel>{_x(state_dir / 'vmlinuz')}</kernel>
    <initrd>{_x(state_dir / 'initrd.gz')}</initrd>
    <cmdline>{_x(cfg.kernel_cmdline())}</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='allow'>{_x(cfg.cpu_model.split(',')[0])}</model></cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='pty'><log file='{_x(state_dir / 'console.log')}' append='off'/><target port='0'/></serial>
    <serial type='unix'><source mode='bind' path='{_x(state_dir / 'truth.sock')}'/><target port='1'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


# Domains created by this process, destroyed and undefined at its exit (the
# same registry vmlab keeps for its guests; registered after vmlab's, so it
# runs first).
_owned = vmlab.OwnedRegistry("lab/libvirt: cleanup of domain")


class Domain(vmlab.Guest):
    """A lab guest run by libvirt. The vmlab.Guest API works (truth, run,
    kill, sh, workload, wait_for, console, paused); QMP goes through
    `virsh qemu-monitor-command`, pause/resume through virsh suspend/resume."""

    def __init__(self, name: str, state_dir: Path, config: vmlab.GuestConfig, shared: bool,
                 nova: Optional[dict], persistent: bool) -> None:
        super().__init__(name, state_dir, config, None)
        self.shared = shared
        self.nova = nova
        self.persistent = persistent
        self.uuid: Optional[str] = None
        self.ram_path = None

    def __repr__(self) -> str:
        return f"Domain(name={self.name!r}, pid={self.pid}, shared={self.shared}, nova={self.nova is not None})"

    # ---- state ----
    def _read_pid(self) -> Optional[int]:
        try:
            pid = int((RUN_DIR / f"{self.name}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if vmlab._pid_alive(pid, f"guest={self.name}") else None

    def domstate(self) -> str:
        """libvirt's state: 'running', 'paused', 'shut off', '' if unknown."""
        return virsh("domstate", self.name, check=False).strip()

    def alive(self) -> bool:
        return self.domstate() in ("running", "paused", "in shutdown")

    def status(self) -> str:
        return {"running": "running", "paused": "paused"}.get(self.domstate(), "shutdown")

    def pause(self) -> None:
        virsh("suspend", self.name)

    def resume(self) -> None:
        virsh("resume", self.name)

    def _vcpus_running(self) -> bool:
        return self.domstate() == "running"   # libvirt owns QMP (Guest.paused() asks this)

    def qmp(self, cmd: str, _args: Optional[dict] = None, _timeout: Optional[float] = 60.0,
            **args: Any) -> Any:
        """One QMP command through libvirt (virsh qemu-monitor-command)."""
        if _args:
            args = {**_args, **args}
        msg: dict = {"execute": cmd}
        if args:
            msg["arguments"] = args
        out = virsh("qemu-monitor-command", self.name, json.dumps(msg),
                    timeout=_timeout if _timeout is not None else 3600)
        return vmlab.qmp_result(cmd, json.loads(out))

    # ---- lifecycle ----
    def start(self, wait: bool = True, timeout: Optional[float] = None) -> "Domain":
        """Start a defined (persistent) domain; wait for the truth agent."""
        t0 = time.monotonic()
        for f in (self.truth_sock, self.console_log):
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        virsh("start", self.name)
        self.pid = self._read_pid()
        if wait:
            self.wait_ready(timeout)
        self.boot_seconds = time.monotonic() - t0
        return self

    def wait_ready(self, timeout: Optional[float] = None) -> None:
        timeout = timeout or self.config.boot_timeout or 120.0
        deadline = time.monotonic() + timeout
        last: Optional[BaseException] = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise vmlab.BootError(f"domain {self.name} stopped during boot.\n--- console ---\n"
                                      f"{vmlab._tail(self.console_log)}\n--- qemu log ---\n"
                                      f"{vmlab._tail(LOG_DIR / 'qemu' / (self.name + '.log'), 2000)}")
            if self.truth_sock.exists():
                try:
                    self.ping(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                    self.pid = self._read_pid()
                    return
                except (OSError, vmlab.TruthError) as e:
                    last = e
            time.sleep(0.2)
        raise vmlab.BootError(f"domain {self.name} did not answer within {timeout:.0f} s (last "
                              f"error: {last}).\n--- console ---\n{vmlab._tail(self.console_log)}")

    def destroy(self) -> None:
        """Stop the domain (virsh destroy); a persistent one stays defined."""
        if self.alive():
            virsh("destroy", self.name, check=False)
        self.pid = None

    def reboot_guest(self) -> None:
        """Reboot from inside (reset, same QEMU process: libvirt's REBOOT event)."""
        try:
            self.sh("reboot -f", timeout=5)
        except (OSError, vmlab.LabError):
            pass   # the agent dies with the kernel

    def shutdown(self, timeout: float = 10.0) -> None:
        """Destroy and undefine the domain, remove its files. Idempotent."""
        try:
            self.destroy()
            if self.persistent:
                virsh("undefine", self.name, check=False)
        finally:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.detach()

    stop = shutdown

    def detach(self) -> None:
        """Stop owning the domain: it keeps running after this process exits."""
        _owned.discard(self.name, self)


def define_domain(name: str, kernel: str = "6.1", mem: Union[str, int] = "512M", vcpus: int = 1,
                  shared: bool = False, nova: Optional[dict] = None, persistent: bool = True,
                  start: bool = True, wait: bool = True, run: Optional[list] = None,
                  extra_cmdline: str = "", uuid: Optional[str] = None,
                  boot_timeout: Optional[float] = None) -> Domain:
    """Create a libvirt TCG domain running the lab's kernel and initramfs.
    shared: guest RAM as <memoryBacking> memfd + access shared (else private
    anonymous memory). nova: dict for nova_xml() (None: no Nova metadata).
    persistent: `virsh define` (+ `start` if start) instead of `virsh create`.
    Returns once the truth agent answers (wait) with .pid set; owned by this
    process (destroyed and undefined at exit)."""
    vmlab._check_name(name)
    start_libvirtd()
    cfg = vmlab.GuestConfig(kernel=kernel, mem=mem, smp=vcpus, backing="memfd" if shared else "private",
                            name=name, run=run or [], extra_cmdline=extra_cmdline,
                            boot_timeout=boot_timeout)
    kpath, initrd = vmlab.fetch_kernel(kernel), vmlab.build_initramfs()
    gc_domains()
    if virsh("domstate", name, check=False):
        raise vmlab.LabError(f"a libvirt domain named {name!r} exists already")
    root = libvirt_dir()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    state = root / name
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    os.chmod(state, 0o755)
    shutil.copyfile(kpath, state / "vmlinuz")
    shutil.copyfile(initrd, state / "initrd.gz")
    d = Domain(name, state, cfg, shared, nova, persistent)
    d.kernel_path, d.initrd_path = str(kpath), str(initrd)
    xml = domain_xml(name, state, cfg, shared, nova, uuid)
    (state / "domain.xml").write_text(xml)
    _owned.add(name, d)
    try:
        if persistent:
            virsh("define", state / "domain.xml")
            if start:
                d.start(wait=wait)
        else:
            t0 = time.monotonic()
            virsh("create", state / "domain.xml")
            d.pid = d._read_pid()
            if wait:
                d.wait_ready()
            d.boot_seconds = time.monotonic() - t0
        d.uuid = virsh("domuuid", name).strip()
    except BaseException:
        d.shutdown()
        raise
    return d


def _lab_owner(name: str) -> Optional[int]:
    out = virsh("metadata", name, LAB_NS, check=False)
    m = re.search(r"owner=['\"](\d+)['\"]", out)
    return int(m.group(1)) if m else None


def _remove_domain(name: str) -> None:
    """Destroy and undefine a lab domain and remove its files."""
    virsh("destroy", name, check=False)
    virsh("undefine", name, check=False)
    shutil.rmtree(libvirt_dir() / name, ignore_errors=True)


def _lab_domains() -> list:
    """(name, creating pid) of every domain with the lab's metadata: the
    lab never touches libvirt domains it did not make."""
    out = []
    for name in virsh("list", "--all", "--name", check=False).split():
        owner = _lab_owner(name)
        if owner is not None:
            out.append((name, owner))
    return out


def gc_domains() -> list:
    """Destroy and undefine lab domains whose creating process is gone."""
    removed = []
    if not libvirtd_running():
        return removed
    for name, owner in _lab_domains():
        if owner == os.getpid() or vmlab._pid_alive(owner):
            continue
        _remove_domain(name)
        removed.append(name)
    return removed


def destroy_all() -> list:
    """Destroy and undefine every lab domain (of any process)."""
    removed = []
    if not libvirtd_running():
        return removed
    for name, _owner in _lab_domains():
        _remove_domain(name)
        removed.append(name)
    _owned.clear()
    return removed


def _main(argv: Optional[list] = None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="lab/libvirt.py", description="libvirt for the vmwatch lab")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("start", help="start virtlogd + libvirtd (idempotent)")
    s = sub.add_parser("stop", help="stop libvirtd + virtlogd (whoever started them)")
    s.add_argument("--destroy", action="store_true", help="destroy lab domains first")
    b = sub.add_parser("boot", help="define and start a lab domain, leave it running")
    b.add_argument("name")
    b.add_argument("--kernel", default="6.1")
    b.add_argument("--mem", default="512M")
    b.add_argument("--vcpus", type=int, default=1)
    b.add_argument("--shared", action="store_true")
    b.add_argument("--nova", help="JSON object for the Nova metadata")
    sub.add_parser("gc", help="remove lab domains of dead processes")
    sub.add_parser("destroy-all", help="destroy and undefine every lab domain")
    a = p.parse_args(argv)
    try:
        if a.cmd == "start":
            print(json.dumps(start_libvirtd()))
        elif a.cmd == "stop":
            if a.destroy:
                destroy_all()
            print(" ".join(stop_libvirtd(force=True)))
        elif a.cmd == "boot":
            d = define_domain(a.name, kernel=a.kernel, mem=a.mem, vcpus=a.vcpus, shared=a.shared,
                              nova=json.loads(a.nova) if a.nova else None)
            d.detach()
            print(json.dumps({"name": d.name, "uuid": d.uuid, "pid": d.pid,
                              "boot_seconds": round(d.boot_seconds or 0, 2)}))
        elif a.cmd == "gc":
            print(" ".join(gc_domains()))
        elif a.cmd == "destroy-all":
            print(" ".join(destroy_all()))
    except vmlab.LabError as e:
        print(f"lab/libvirt.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())

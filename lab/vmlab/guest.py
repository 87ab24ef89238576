"""One lab guest: its configuration (GuestConfig) and the QEMU process that
runs it (Guest). A Guest owns the lifecycle (boot, attach, shutdown) and
composes the two channels into QEMU, a QmpClient (QEMU's monitor) and a
TruthClient (the in-guest agent); its qmp()/truth()/run()/... methods only
delegate, so that lab/libvirt.py's Domain can replace a channel (QMP
through virsh) by overriding one method."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from .errors import BootError, LabError, QMPError, TruthError
from .debian import build_debian_initramfs
from .initramfs import build_initramfs
from .kernels import fetch_kernel
from .paths import SHM_PREFIX, _atomic_write, _check_name, _tail, lab_root, parse_mem, qemu_binary
from .procs import OwnedRegistry, _load_prctl, _pdeathsig_preexec, _pid_alive
from .qmp import QmpClient
from .snapshot import Snapshot
from .truth import TruthClient

__all__ = ["GuestConfig", "Guest", "start_guest", "FAST_BOOT_ARGS", "IMAGES"]

# Boots again after a guest kernel panic during boot (see Guest.boot).
BOOT_PANIC_RETRIES = 2


# Kernel arguments that only skip work TCG makes slow at boot (several
# seconds): the crypto manager's self-tests, 6.1's KDF self-test and the
# jitter-entropy RNG's start-up. Processes and memory management are as usual.
FAST_BOOT_ARGS = "cryptomgr.notests=1 initcall_blacklist=crypto_kdf108_init,jent_mod_init"

IMAGES = ("busybox", "debian")


def _build_image(image: str) -> Path:
    return build_debian_initramfs() if image == "debian" else build_initramfs()


@dataclasses.dataclass
class GuestConfig:
    kernel: str = "6.1"           # "6.1", "6.12", "6.1-cloud", "6.12-rt", ... or a vmlinuz path
    mem: Union[str, int] = "512M"  # QEMU -m size ('512M', '5G') or MiB
    machine: str = "pc"           # pc | q35
    cpu: str = "qemu64"           # QEMU -cpu model ('qemu64,+la57' for 5-level paging)
    smp: int = 1
    backing: str = "shm"          # shm | memfd | private
    accel: str = "tcg"            # tcg | kvm
    kaslr: bool = True
    name: Optional[str] = None    # default: generated, unique
    extra_cmdline: str = ""       # appended to the kernel command line
    run: list = dataclasses.field(default_factory=list)   # workloads started by /init
    la57: bool = False            # shorthand for cpu += ',+la57'
    qemu_args: list = dataclasses.field(default_factory=list)  # extra QEMU arguments
    fast_boot: bool = True        # skip boot-time crypto self-tests and jitterentropy (see FAST_BOOT_ARGS)
    boot_timeout: Optional[float] = None   # default: $VMWATCH_BOOT_TIMEOUT or 120 s (+15 s/GiB over 4)
    image: str = "busybox"        # busybox (lab/guest/init) | debian (systemd; see debian.py)

    def __post_init__(self) -> None:
        if self.image not in IMAGES:
            raise ValueError(f"image must be one of {', '.join(IMAGES)}, not {self.image!r}")
        if self.image == "debian" and self.run:
            raise ValueError("the debian image starts no workloads from the command line: use Guest.run()")
        if self.backing not in ("shm", "memfd", "private"):
            raise ValueError(f"backing must be shm, memfd or private, not {self.backing!r}")
        if self.accel not in ("tcg", "kvm"):
            raise ValueError(f"accel must be tcg or kvm, not {self.accel!r}")
        if self.name is not None:
            _check_name(self.name)
        parse_mem(self.mem)
        self.run = [list(map(str, w)) if not isinstance(w, str) else w.split() for w in self.run]
        for w in self.run:
            for tok in w:
                if not tok or re.search(r"[\s,:]", tok):
                    raise ValueError(f"workload argument {tok!r} may not be empty or hold "
                                     f"spaces, ',' or ':' (use Guest.run() for those)")

    @property
    def mem_mib(self) -> int:
        return parse_mem(self.mem)

    @property
    def cpu_model(self) -> str:
        cpu = self.cpu
        if self.la57 and "+la57" not in cpu:
            cpu += ",+la57"
        return cpu

    def key(self) -> tuple:
        """Identity of the guest's configuration (name excluded)."""
        d = dataclasses.asdict(self)
        d.pop("name")
        d.pop("boot_timeout")
        d["mem"] = self.mem_mib
        d["cpu"] = self.cpu_model
        d.pop("la57")
        return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in d.items()))

    def kernel_cmdline(self) -> str:
        parts = ["console=ttyS0", "panic=-1", "quiet"]
        if self.fast_boot:
            parts.append(FAST_BOOT_ARGS)
        if not self.kaslr:
            parts.append("nokaslr")
        if self.run:
            parts.append("vmwatch.run=" + ",".join(":".join(w) for w in self.run))
        if self.extra_cmdline:
            parts.append(self.extra_cmdline)
        return " ".join(parts)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


_owned = OwnedRegistry("vmlab: cleanup of")   # guests booted (and owned) by this process


def _create_ram_file(path: str) -> None:
    """Create the (empty) RAM file of a file-backed guest, mode 0600, before
    QEMU starts: QEMU would create it 0644 (less the umask), and guest RAM
    holds whatever the guest holds (keys, passwords). QEMU opens an
    existing file read-write and sizes it itself; we run as root, as QEMU
    does, so it can."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)   # whatever the umask
    finally:
        os.close(fd)


class Guest:
    """A running lab guest (one QEMU process)."""

    def __init__(self, name: str, state_dir: Path, config: GuestConfig, pid: Optional[int],
                 popen: Optional[subprocess.Popen] = None) -> None:
        self.name = name
        self.state_dir = Path(state_dir)
        self.config = config
        self.pid = pid
        self._popen = popen
        self.ram_path: Optional[str] = (SHM_PREFIX + name) if config.backing == "shm" else None
        self.boot_seconds: Optional[float] = None
        self.systemd_state: Optional[str] = None   # debian image: running | degraded
        self.kernel_path: Optional[str] = None
        self.initrd_path: Optional[str] = None
        self.argv: list = []
        # The two channels into QEMU, composed (not inherited) so that a
        # subclass can route one elsewhere (lab/libvirt.py: QMP via virsh).
        self._qmp_client = QmpClient(self.qmp_sock, self.state_dir / "qmp.lock")
        self._truth = TruthClient(self.truth_sock, self.state_dir / "truth.lock", name)

    # ---- paths ----
    @property
    def qmp_sock(self) -> Path:
        return self.state_dir / "qmp.sock"

    @property
    def truth_sock(self) -> Path:
        return self.state_dir / "truth.sock"

    @property
    def console_log(self) -> Path:
        return self.state_dir / "console.log"

    @property
    def qemu_log(self) -> Path:
        return self.state_dir / "qemu.log"

    def __repr__(self) -> str:
        return f"Guest(name={self.name!r}, pid={self.pid}, kernel={self.config.kernel!r}, mem={self.config.mem!r})"

    # ---- lifecycle ----
    @classmethod
    def boot(cls, cfg: Optional[GuestConfig] = None, *, die_with_parent: bool = True,
             own: bool = True, **kw: Any) -> "Guest":
        """Boot a guest and return once its ground-truth agent answers.

        cfg or keyword arguments of GuestConfig. die_with_parent: QEMU gets
        SIGTERM if this process dies (set False to leave it running, as the
        CLI does). own: shut it down at exit of this process (atexit).

        A guest kernel that panics while it boots, before anything of ours
        has read its memory, is booted again (at most BOOT_PANIC_RETRIES
        times, each said on stderr): multi-threaded TCG now and then races
        with the kernel's own code patching (an "Oops: int3" in a function
        being live-patched by text_poke_bp) and kills the boot. Any other
        boot failure, and a panic after boot, is reported as it is."""
        if cfg is None:
            cfg = GuestConfig(**kw)
        elif kw:
            cfg = dataclasses.replace(cfg, **kw)
        for attempt in range(BOOT_PANIC_RETRIES + 1):
            try:
                return cls._boot_once(cfg, die_with_parent=die_with_parent, own=own)
            except BootError as e:
                if not e.guest_panicked or attempt == BOOT_PANIC_RETRIES:
                    raise
                first = next((ln for ln in str(e).splitlines()
                              if "Oops" in ln or "Kernel panic" in ln), "a panic")
                print(f"vmlab: the guest kernel panicked while booting ({first.strip()}); "
                      f"booting it again (attempt {attempt + 2} of {BOOT_PANIC_RETRIES + 1})",
                      file=sys.stderr)
        raise AssertionError("unreachable")

    @classmethod
    def _boot_once(cls, cfg: GuestConfig, *, die_with_parent: bool, own: bool) -> "Guest":
        kernel = fetch_kernel(cfg.kernel)
        initrd = _build_image(cfg.image)
        from .pool import gc_stale   # pool uses Guest: imported here, not at the top
        gc_stale()
        root = lab_root()
        root.mkdir(parents=True, exist_ok=True)
        label = re.sub(r"[^A-Za-z0-9]+", "_", os.path.basename(cfg.kernel))[-20:].strip("_") or "g"
        name = cfg.name or f"{label}-{os.getpid()}-{secrets.token_hex(3)}"
        _check_name(name)
        cfg = dataclasses.replace(cfg, name=name)
        state = root / name
        try:
            state.mkdir()
        except FileExistsError:
            old = Guest.attach(name, missing_ok=True)
            if old is not None and old.alive():
                raise LabError(f"a guest named {name!r} is already running (pid {old.pid})") from None
            shutil.rmtree(state, ignore_errors=True)
            state.mkdir()
        g = cls(name, state, cfg, None)
        g.kernel_path, g.initrd_path = str(kernel), str(initrd)
        if g.ram_path and os.path.exists(g.ram_path):
            os.unlink(g.ram_path)
        g.argv = g._qemu_argv(kernel, initrd)
        g._write_config()
        if g.ram_path:
            _create_ram_file(g.ram_path)
        t0 = time.monotonic()
        logf = open(g.qemu_log, "wb")
        try:
            popen = subprocess.Popen(
                g.argv, cwd=str(state), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
                preexec_fn=_pdeathsig_preexec(os.getpid(), _load_prctl()) if die_with_parent else None)
        except BaseException:
            logf.close()
            g._remove_files()
            raise
        logf.close()
        g._popen, g.pid = popen, popen.pid
        _owned.add(name, g)
        g._write_config()
        try:
            # The Debian image unpacks ~160 MB and starts systemd: 45-65 s on a
            # quiet host, over 120 s on a loaded one.
            timeout = cfg.boot_timeout or float(os.environ.get("VMWATCH_BOOT_TIMEOUT") or 0) or \
                ((300.0 if cfg.image == "debian" else 120.0) + max(0, cfg.mem_mib - 4096) / 1024 * 15)
            g._wait_ready(timeout)
        except BaseException:
            g.shutdown()
            raise
        g.boot_seconds = time.monotonic() - t0
        g._write_config()
        if not own:
            g.detach()
        return g

    @classmethod
    def attach(cls, name: str, missing_ok: bool = False) -> Optional["Guest"]:
        """A Guest object for an existing state dir (e.g. booted by the CLI)."""
        state = lab_root() / name
        try:
            info = json.loads((state / "config.json").read_text())
        except (OSError, ValueError):
            if missing_ok:
                return None
            raise LabError(f"no lab guest named {name!r} (under {lab_root()})") from None
        fields = {f.name for f in dataclasses.fields(GuestConfig)}
        cfg = GuestConfig(**{k: v for k, v in info.get("config", {}).items() if k in fields})
        pid = info.get("pid")
        try:
            pid = int((state / "qemu.pid").read_text().strip())
        except (OSError, ValueError):
            pass
        g = cls(name, state, cfg, pid)
        g.ram_path = info.get("ram_path")
        g.boot_seconds = info.get("boot_seconds")
        g.kernel_path, g.initrd_path = info.get("kernel_path"), info.get("initrd_path")
        g.argv = info.get("argv", [])
        return g

    def detach(self) -> None:
        """Stop owning the guest: it keeps running after this process exits."""
        _owned.discard(self.name, self)

    def _qemu_argv(self, kernel: Path, initrd: Path) -> list:
        c, st = self.config, self.state_dir
        mib = c.mem_mib
        argv = [qemu_binary(), "-name", f"guest={self.name},debug-threads=on"]
        if c.accel == "tcg":
            argv += ["-accel", "tcg,thread=multi"]
        else:
            argv += ["-accel", "kvm"]
        argv += ["-smp", str(c.smp), "-m", f"{mib}M", "-cpu", c.cpu_model,
                 "-display", "none", "-monitor", "none", "-nic", "none", "-no-reboot",
                 "-kernel", str(kernel), "-initrd", str(initrd), "-append", c.kernel_cmdline(),
                 "-chardev", f"socket,id=truth,path={st / 'truth.sock'},server=on,wait=off",
                 "-serial", f"file:{st / 'console.log'}", "-serial", "chardev:truth",
                 "-qmp", f"unix:{st / 'qmp.sock'},server=on,wait=off",
                 "-pidfile", str(st / "qemu.pid")]
        if c.backing == "shm":
            argv += ["-object", f"memory-backend-file,id=mem,size={mib}M,mem-path={self.ram_path},share=on",
                     "-machine", f"{c.machine},memory-backend=mem"]
        elif c.backing == "memfd":
            argv += ["-object", f"memory-backend-memfd,id=mem,size={mib}M,share=on",
                     "-machine", f"{c.machine},memory-backend=mem"]
        else:
            argv += ["-machine", c.machine]
        argv += [str(a) for a in c.qemu_args]
        return argv

    def _write_config(self) -> None:
        info = {
            "name": self.name, "pid": self.pid, "state_dir": str(self.state_dir),
            "ram_path": self.ram_path, "config": self.config.to_json(),
            "kernel_path": self.kernel_path, "initrd_path": self.initrd_path,
            "cmdline": self.config.kernel_cmdline(), "argv": self.argv,
            "boot_seconds": self.boot_seconds, "owner_pid": os.getpid(), "created": time.time(),
        }
        _atomic_write(self.state_dir / "config.json", (json.dumps(info, indent=2) + "\n").encode())

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return _pid_alive(self.pid, str(self.state_dir))

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_err: Optional[BaseException] = None
        while time.monotonic() < deadline:
            if not self.alive():
                console = _tail(self.console_log)
                err = BootError(f"QEMU for guest {self.name} exited during boot "
                                f"(rc={self._popen.returncode if self._popen else '?'}).\n"
                                f"--- qemu.log ---\n{_tail(self.qemu_log)}\n"
                                f"--- console.log (tail) ---\n{console}")
                err.guest_panicked = "Kernel panic - not syncing" in console
                raise err
            if not self.truth_sock.exists():
                time.sleep(0.1)
                continue
            try:
                self.ping(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                if self.config.image == "debian":
                    self._wait_systemd(deadline)
                return
            except (OSError, TruthError) as e:
                last_err = e
                time.sleep(0.2)
        raise BootError(f"guest {self.name} did not answer within {timeout:.0f} s "
                        f"(last error: {last_err}).\n--- console.log (tail) ---\n{_tail(self.console_log)}"
                        f"\n--- qemu.log ---\n{_tail(self.qemu_log, 2000)}")

    def _wait_systemd(self, deadline: float) -> None:
        """Until systemd says the boot is over (running, or degraded when a
        unit failed: the console log names it). The agent kills a command
        after 60 s, so wait in slices."""
        state, out = "", ""
        while time.monotonic() < deadline:
            rc, out = self.sh("timeout 40 systemctl is-system-running --wait", timeout=90)
            state = out.strip().splitlines()[-1] if out.strip() else ""
            if state in ("running", "degraded"):
                self.systemd_state = state
                return
            if state not in ("initializing", "starting", ""):
                break
            time.sleep(0.5)
        raise BootError(f"guest {self.name}: systemd state {state!r} after boot:\n{out}")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Quit QEMU (QMP quit, then SIGTERM, then SIGKILL), remove the RAM
        file and the state dir. Idempotent."""
        try:
            if self.alive():
                try:
                    self.qmp("quit", _timeout=3.0)
                except (OSError, LabError, ValueError):
                    pass
                if not self._wait_exit(timeout / 2):
                    self._signal(signal.SIGTERM)
                    if not self._wait_exit(timeout / 2):
                        self._signal(signal.SIGKILL)
                        self._wait_exit(5.0)
            elif self._popen is not None:
                self._popen.poll()
        finally:
            self._remove_files()
            self.detach()

    stop = shutdown

    def _remove_files(self) -> None:
        """The RAM file (only ours, under SHM_PREFIX) and the state dir."""
        if self.ram_path and self.ram_path.startswith(SHM_PREFIX):
            try:
                os.unlink(self.ram_path)
            except FileNotFoundError:
                pass
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _signal(self, sig: int) -> None:
        if self.pid and (self._popen is not None and self._popen.poll() is None
                         or self._popen is None and _pid_alive(self.pid, str(self.state_dir))):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._popen is not None:
                try:
                    self._popen.wait(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
                    return True
                except subprocess.TimeoutExpired:
                    pass
            elif not _pid_alive(self.pid, str(self.state_dir)):
                return True
            if time.monotonic() >= deadline:
                return False
            if self._popen is None:
                time.sleep(0.05)

    def __enter__(self) -> "Guest":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    # ---- QMP (QmpClient) ----
    def qmp(self, cmd: str, _args: Optional[dict] = None, _timeout: Optional[float] = 60.0,
            **args: Any) -> Any:
        """Run one QMP command and return its "return" value (raises
        QMPError on an "error" answer). Arguments as keywords, or as a dict
        in _args for names that are not Python identifiers. _timeout=None
        waits forever. A new QMP connection is made per call (serialised
        across processes by a lock file)."""
        if _args:
            args = {**_args, **args}
        return self._qmp_client.execute(cmd, args, _timeout)

    def status(self) -> str:
        """QEMU run state: 'running', 'paused', ..."""
        return self.qmp("query-status")["status"]

    def pause(self) -> None:
        self.qmp("stop")

    def resume(self) -> None:
        self.qmp("cont")

    @contextmanager
    def paused(self) -> Iterator["Guest"]:
        """Pause the vCPUs for the block (resume after, unless the guest was
        already paused). truth() cannot answer while paused."""
        was_running = self._vcpus_running()
        if was_running:
            self.pause()
        try:
            yield self
        finally:
            if was_running and self.alive():
                self.resume()

    def _vcpus_running(self) -> bool:
        """Whether the vCPUs run (what paused() restores); libvirt's Domain
        asks libvirt instead of QMP."""
        return self.qmp("query-status")["running"]

    def pmemsave(self, addr: int, size: int, path: Union[str, Path]) -> Path:
        """Save guest-physical [addr, addr+size) to path."""
        path = Path(path).resolve()
        self.qmp("pmemsave", val=int(addr), size=int(size), filename=str(path),
                 _timeout=max(60.0, size / (50 << 20)))
        return path

    def dump_guest_memory(self, path: Union[str, Path], paging: bool = False,
                          timeout: Optional[float] = None) -> Path:
        """ELF core of guest RAM (dump-guest-memory, paging off); waits for
        completion."""
        path = Path(path).resolve()
        self.qmp("dump-guest-memory", paging=paging, protocol=f"file:{path}", detach=False,
                 _timeout=timeout)
        # detach=false returns when done; double-check with query-dump
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            st = self.qmp("query-dump")
            if st.get("status") in ("completed", "none"):
                break
            if st.get("status") == "failed":
                raise QMPError("dump-guest-memory failed")
            time.sleep(0.2)
        return path

    # ---- ground truth (TruthClient) ----
    def ping(self, timeout: float = 10.0) -> float:
        """Round trip to the truth agent; returns seconds."""
        return self._truth.ping(timeout)

    def truth(self, tasks: bool = False, timeout: float = 180.0) -> Snapshot:
        """A ground-truth snapshot of the guest's /proc (see Snapshot).
        tasks=True adds per-thread rows (Proc.tasks)."""
        return self._truth.snapshot(tasks=tasks, timeout=timeout)

    snapshot = truth

    def truth_raw(self, tasks: bool = False, timeout: float = 180.0, compress: bool = True) -> bytes:
        """The snapshot's JSON text (see TruthClient.snapshot_raw)."""
        return self._truth.snapshot_raw(tasks=tasks, timeout=timeout, compress=compress)

    def run(self, prog: str, *args: Any, timeout: float = 30.0) -> int:
        """Start a workload in the guest, detached; returns its pid (see
        TruthClient.run)."""
        return self._truth.run(prog, *args, timeout=timeout)

    def kill(self, pid: int, sig: int = signal.SIGKILL, group: bool = False, timeout: float = 30.0) -> None:
        """Signal a guest process, or with group=True a run() workload and
        all its children (see TruthClient.kill)."""
        self._truth.kill(pid, sig, group=group, timeout=timeout)

    def sh(self, command: str, timeout: float = 90.0, check: bool = False) -> tuple:
        """`sh -c command` in the guest; returns (rc, output) (see
        TruthClient.sh)."""
        return self._truth.sh(command, timeout=timeout, check=check)

    @contextmanager
    def workload(self, prog: str, *args: Any) -> Iterator[int]:
        """run() a workload for the block and kill its whole process group after."""
        pid = self.run(prog, *args)
        try:
            yield pid
        finally:
            if self.alive():
                try:
                    self.kill(pid, group=True)
                except LabError:
                    pass

    def wait_for(self, pred: Any, timeout: float = 60.0, interval: float = 0.5,
                 tasks: bool = False) -> Snapshot:
        """Take snapshots until pred(snapshot) is true; returns that snapshot
        (raises TimeoutError with the last one otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.truth(tasks=tasks)
            if pred(snap):
                return snap
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s; last snapshot {snap!r}")
            time.sleep(interval)

    def console(self) -> str:
        """The guest's console (ttyS0) output so far."""
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""


def start_guest(cfg: Optional[GuestConfig] = None, **kw: Any) -> Guest:
    """Guest.boot() under the name the first version of the lab used."""
    return Guest.boot(cfg, **kw)


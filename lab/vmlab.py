"""vmlab -- the vmwatch lab: boot real QEMU/TCG Linux guests and get ground
truth from inside them.

Python stdlib only. Typical use::

    import vmlab
    g = vmlab.Guest.boot(vmlab.GuestConfig(kernel="6.12", mem="512M"))
    pid = g.run("hog", 32)
    snap = g.truth()
    assert snap.procs[pid].VmRSS >= 32 * 1024
    g.shutdown()

See lab/README.md for the CLI, the guest programs and the snapshot format.
"""

from __future__ import annotations

import atexit
import dataclasses
import fcntl
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat as statmod
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

__all__ = [
    "LabError", "BootError", "TruthError", "QMPError",
    "KERNELS", "kernel_package", "fetch_kernel", "fetch_kernels",
    "build_guest_programs", "build_initramfs",
    "GuestConfig", "Guest", "start_guest", "Snapshot", "Proc", "Task",
    "list_guests", "stop_all", "gc_stale", "lab_root", "cache_dir",
    "install_signal_handlers", "main",
]

LAB_SRC = Path(__file__).resolve().parent          # <repo>/lab
REPO = LAB_SRC.parent
GUEST_SRC = LAB_SRC / "guest"
SHM_PREFIX = "/dev/shm/vmwatch-lab-"
BUILDER_VERSION = "1"   # bump to force rebuilding the initramfs

# Kernel arguments that only skip work TCG makes slow at boot (several
# seconds): the crypto manager's self-tests, 6.1's KDF self-test and the
# jitter-entropy RNG's start-up. Processes and memory management are as usual.
FAST_BOOT_ARGS = "cryptomgr.notests=1 initcall_blacklist=crypto_kdf108_init,jent_mod_init"

GUEST_CFLAGS = ["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-s"]

# kernel "version" name -> Debian package
_KBASE = {
    "6.1": "linux-image-6.1.0-47-{flavour}-unsigned",
    "6.12": "linux-image-6.12.117+deb12-{flavour}-unsigned",
}
KERNELS = {}
for _v, _tmpl in _KBASE.items():
    KERNELS[_v] = _tmpl.format(flavour="amd64")
    KERNELS[_v + "-cloud"] = _tmpl.format(flavour="cloud-amd64")
    KERNELS[_v + "-rt"] = _tmpl.format(flavour="rt-amd64")


class LabError(RuntimeError):
    """Anything the lab could not do."""


class BootError(LabError):
    """A guest did not come up."""


class TruthError(LabError):
    """The in-guest ground-truth agent did not answer as expected."""


class QMPError(LabError):
    """QEMU's QMP returned an error."""


# ----------------------------------------------------------------------------
# paths, locks, small utilities
# ----------------------------------------------------------------------------

def cache_dir() -> Path:
    """${XDG_CACHE_HOME:-~/.cache}/vmwatch"""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vmwatch"


def kernels_dir() -> Path:
    return cache_dir() / "kernels"


def lab_root() -> Path:
    """Where guests' state dirs live: $VMWATCH_LAB_DIR, else
    $XDG_RUNTIME_DIR/vmwatch-lab, else /run/vmwatch-lab."""
    if os.environ.get("VMWATCH_LAB_DIR"):
        return Path(os.environ["VMWATCH_LAB_DIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "vmwatch-lab"
    return Path("/run/vmwatch-lab")


def qemu_binary() -> str:
    q = os.environ.get("VMWATCH_QEMU") or shutil.which("qemu-system-x86_64")
    if not q:
        raise LabError("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
    return q


_thread_locks: dict = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def _flock(path: Union[str, Path]) -> Iterator[None]:
    """Exclusive lock across processes (flock) and threads."""
    path = str(path)
    with _thread_locks_guard:
        tl = _thread_locks.setdefault(path, threading.RLock())
    with tl:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix="." + path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _tail(path: Union[str, Path], nbytes: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def parse_mem(mem: Union[str, int]) -> int:
    """'512M', '5G', '5GiB', 1024 (MiB) -> MiB."""
    if isinstance(mem, int):
        return mem
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(mem))
    if not m:
        raise ValueError(f"bad memory size {mem!r}")
    n, unit = int(m.group(1)), (m.group(2) or "M").upper()
    mib = {"K": n / 1024, "M": n, "G": n * 1024, "T": n * 1024 * 1024}[unit]
    if mib != int(mib) or mib <= 0:
        raise ValueError(f"memory size {mem!r} is not a positive whole number of MiB")
    return int(mib)


def _proc_state(pid: int) -> Optional[str]:
    """State letter of a live process, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read().decode("ascii", "replace")
        return s[s.rindex(")") + 2]
    except (OSError, ValueError, IndexError):
        return None


def _proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _pid_alive(pid: Optional[int], must_contain: Optional[str] = None) -> bool:
    if not pid or pid <= 0:
        return False
    st = _proc_state(pid)
    if st is None or st in "ZXx":
        return False
    if must_contain and must_contain not in _proc_cmdline(pid):
        return False   # pid reused by something else
    return True


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"bad guest name {name!r}: use [A-Za-z0-9_.-], at most 48 chars")
    return name


# ----------------------------------------------------------------------------
# kernels
# ----------------------------------------------------------------------------

def kernel_package(version: str) -> str:
    """'6.1' | '6.12' | '6.1-cloud' | '6.12-rt' | a linux-image-* package name
    -> the Debian package name."""
    if version in KERNELS:
        return KERNELS[version]
    if version.startswith("linux-image-"):
        return version
    raise LabError(f"unknown kernel {version!r}; known: {', '.join(sorted(KERNELS))}")


def _find_deb(kdir: Path, pkg: str) -> Optional[Path]:
    debs = sorted(p for p in kdir.iterdir() if p.name.startswith(pkg + "_") and p.name.endswith(".deb"))
    return debs[-1] if debs else None


def _apt_download(kdir: Path, pkg: str) -> Path:
    def attempt() -> subprocess.CompletedProcess:
        return subprocess.run(["apt-get", "download", "-q", pkg], cwd=str(kdir),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def failed(msg: str) -> LabError:
        return LabError(
            f"could not download kernel package {pkg}: the Debian archive could not be "
            f"reached (or does not know the package). Run `apt-get update` (as root) and "
            f"check that the Debian archive is reachable, then retry.\napt-get said:\n{msg.strip()}")

    try:
        r = attempt()
    except FileNotFoundError:
        raise LabError(f"apt-get not found: cannot download kernel package {pkg} "
                       f"from the Debian archive") from None
    if r.returncode != 0 and re.search(r"Unable to locate|Can't select|no installation candidate|"
                                       r"not found|Couldn't find", r.stdout):
        u = subprocess.run(["apt-get", "update", "-q"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if u.returncode != 0:
            raise failed(r.stdout + "\n(apt-get update also failed:)\n" + u.stdout[-2000:])
        r = attempt()
    deb = _find_deb(kdir, pkg)
    if r.returncode != 0 or deb is None:
        raise failed(r.stdout[-3000:])
    return deb


def fetch_kernel(version: str = "6.1") -> Path:
    """Return the path of the guest kernel (a bzImage) for `version`,
    downloading the Debian package with `apt-get download` into the cache
    (~/.cache/vmwatch/kernels) and extracting ./boot/vmlinuz-* (and the
    matching ./boot/config-*) once. A path to an existing file is returned
    as is."""
    if os.sep in version and os.path.isfile(version):
        return Path(version).resolve()
    pkg = kernel_package(version)
    kdir = kernels_dir()
    kdir.mkdir(parents=True, exist_ok=True)
    kname = pkg[len("linux-image-"):]
    if kname.endswith("-unsigned"):
        kname = kname[: -len("-unsigned")]
    out = kdir / f"vmlinuz-{kname}"
    if out.is_file() and out.stat().st_size > 0:
        return out
    with _flock(kdir / ".lock"):
        if out.is_file() and out.stat().st_size > 0:
            return out
        deb = _find_deb(kdir, pkg) or _apt_download(kdir, pkg)
        _extract_boot_files(deb, kdir, out, kname)
    return out


def _extract_boot_files(deb: Path, kdir: Path, out: Path, kname: str) -> None:
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    found = False
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for m in tar:
                base = m.name[len("./"):] if m.name.startswith("./") else m.name
                if not m.isfile() or not base.startswith("boot/"):
                    continue
                fname = base[len("boot/"):]
                if fname.startswith("vmlinuz-"):
                    dest, found = out, True
                elif fname.startswith("config-"):
                    dest = kdir / f"config-{kname}"
                else:
                    continue
                f = tar.extractfile(m)
                assert f is not None
                _atomic_write(dest, f.read())
    finally:
        if proc.stdout:
            proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        rc = proc.wait()
    if not found:
        raise LabError(f"{deb} holds no ./boot/vmlinuz-* (dpkg-deb rc={rc}: {err.strip()})")


def fetch_kernels(versions: Sequence[str] = ("6.1", "6.12")) -> dict:
    return {v: fetch_kernel(v) for v in versions}


# ----------------------------------------------------------------------------
# guest programs and initramfs
# ----------------------------------------------------------------------------

def _guest_sources() -> list:
    return sorted(p for p in GUEST_SRC.iterdir() if p.suffix in (".c", ".h"))


def _gcc() -> str:
    cc = os.environ.get("VMWATCH_GUEST_CC") or shutil.which("gcc")
    if not cc:
        raise LabError("gcc not found (needed to build the lab's guest programs)")
    return cc


def _guest_hash() -> str:
    h = hashlib.sha256()
    cc = _gcc()
    h.update(subprocess.run([cc, "--version"], stdout=subprocess.PIPE, check=True).stdout)
    h.update(" ".join(GUEST_CFLAGS).encode())
    for p in _guest_sources():
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_guest_programs() -> Path:
    """Compile lab/guest/*.c (static, -Wall -Wextra -Werror) into the cache;
    returns the directory holding the binaries. Rebuilt only when the
    sources (or the compiler) change."""
    out = cache_dir() / f"guest-{_guest_hash()}"
    if (out / ".complete").exists():
        return out
    with _flock(cache_dir() / ".guest.lock"):
        if (out / ".complete").exists():
            return out
        tmp = Path(tempfile.mkdtemp(dir=str(cache_dir()), prefix=".guest-build-"))
        try:
            for src in sorted(GUEST_SRC.glob("*.c")):
                cmd = [_gcc(), *GUEST_CFLAGS, "-o", str(tmp / src.stem), str(src)]
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                if r.returncode != 0:
                    raise LabError(f"building guest program {src.name} failed:\n"
                                   f"{' '.join(cmd)}\n{r.stdout}")
            (tmp / ".complete").write_text("ok\n")
            os.chmod(tmp, 0o755)
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return out


def _busybox() -> Path:
    bb = os.environ.get("VMWATCH_BUSYBOX") or "/bin/busybox"
    if not os.path.isfile(bb):
        raise LabError("busybox not found: apt-get install busybox-static")
    if _elf_has_interp(bb):
        raise LabError(f"{bb} is dynamically linked: apt-get install busybox-static")
    return Path(bb)


def _elf_has_interp(path: str) -> bool:
    import struct
    with open(path, "rb") as f:
        hdr = f.read(64)
        if hdr[:4] != b"\x7fELF" or hdr[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", hdr, 32)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    return any(struct.unpack_from("<I", ph, i * phentsize)[0] == 3 for i in range(phnum))


class _Newc:
    """Minimal writer of the cpio 'newc' format the kernel unpacks."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple = (0, 0), nlink: int = 1) -> None:
        nb = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0]
        self.ino += 1
        self.buf += b"070701" + b"".join(b"%08x" % v for v in fields) + nb
        self.buf += b"\0" * (-len(self.buf) % 4)
        self.buf += data
        self.buf += b"\0" * (-len(self.buf) % 4)

    def dir(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, statmod.S_IFDIR | mode, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, statmod.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, statmod.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, statmod.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, nlink=1)
        self.buf += b"\0" * (-len(self.buf) % 512)
        return bytes(self.buf)


_ETC = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nlab:x:1000:1000:lab:/tmp:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\ntty:x:5:\nlab:x:1000:\nnogroup:x:65534:\n",
    "etc/hostname": "vmwatch-guest\n",
    "etc/fstab": "proc /proc proc nosuid,nodev,noexec 0 0\n"
                 "sysfs /sys sysfs nosuid,nodev,noexec 0 0\n"
                 "devtmpfs /dev devtmpfs nosuid,mode=0755 0 0\n"
                 "tmpfs /tmp tmpfs nosuid,nodev,mode=1777 0 0\n"
                 "tmpfs /run tmpfs nosuid,nodev,mode=0755 0 0\n",
}


def build_initramfs(force: bool = False) -> Path:
    """Build (once per set of inputs) the guest initramfs: busybox-static with
    its applet symlinks, lab/guest/init as /init, and the guest programs in
    /bin. Returns ~/.cache/vmwatch/initramfs-<hash>.gz."""
    progs = build_guest_programs()
    bb = _busybox()
    init = GUEST_SRC / "init"
    h = hashlib.sha256()
    h.update(BUILDER_VERSION.encode() + b"\0" + progs.name.encode() + b"\0")
    h.update(init.read_bytes() + b"\0")
    h.update(hashlib.sha256(bb.read_bytes()).digest())
    h.update(json.dumps(_ETC, sort_keys=True).encode())
    out = cache_dir() / f"initramfs-{h.hexdigest()[:16]}.gz"
    if out.exists() and not force:
        return out
    with _flock(cache_dir() / ".initramfs.lock"):
        if out.exists() and not force:
            return out
        applets = subprocess.run([str(bb), "--list-full"], stdout=subprocess.PIPE,
                                 check=True, text=True).stdout.split()
        ours = sorted(p.name for p in progs.iterdir() if p.is_file() and not p.name.startswith("."))
        cpio = _Newc()
        dirs = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run",
                "root", "etc", "var", "var/tmp", "lib"]
        for d in dirs:
            cpio.dir(d, 0o1777 if d in ("tmp", "var/tmp") else 0o755)
        cpio.chardev("dev/console", 5, 1)
        cpio.chardev("dev/null", 1, 3, 0o666)
        cpio.file("bin/busybox", bb.read_bytes(), 0o755)
        taken = {"bin/busybox"} | {f"bin/{p}" for p in ours}
        for a in applets:
            a = a.lstrip("/")
            if a in taken or a == "init" or "/" not in a:
                continue
            if a.split("/")[0] not in ("bin", "sbin", "usr"):
                continue
            taken.add(a)
            cpio.symlink(a, "/bin/busybox")
        for p in ours:
            cpio.file(f"bin/{p}", (progs / p).read_bytes(), 0o755)
        for name, text in sorted(_ETC.items()):
            cpio.file(name, text.encode())
        cpio.file("init", init.read_bytes(), 0o755)
        _atomic_write(out, gzip.compress(cpio.finish(), compresslevel=6, mtime=0))
    return out


# ----------------------------------------------------------------------------
# snapshots
# ----------------------------------------------------------------------------

class Task:
    """One thread (/proc/PID/task/TID) of a snapshot taken with tasks=True."""

    def __init__(self, d: dict) -> None:
        self.raw = d
        self.__dict__.update(d)

    tid: int
    comm: str
    state: str
    utime: int
    stime: int

    def __repr__(self) -> str:
        return f"Task(tid={self.raw.get('tid')}, comm={self.raw.get('comm')!r}, state={self.raw.get('state')})"


class Proc:
    """One process of a snapshot. Attributes: every key of the agent's JSON
    object (pid, ppid, pgrp, session, tty_nr, flags, kthread, state, comm,
    utime, stime, cutime, cstime, priority, nice, num_threads, starttime,
    vsize (bytes), rss (pages), processor, policy, rt_priority, minflt,
    majflt, the "<n> kB" lines of /proc/PID/status (VmRSS, RssAnon, RssFile,
    RssShmem, VmSwap, VmSize, VmHWM, ...; 0 when absent, e.g. kernel
    threads), voluntary_ctxt_switches, nonvoluntary_ctxt_switches, cmdline
    (list of str)), plus uid/euid/suid/fsuid, gid/egid/sgid/fsgid (ints),
    uids/gids (the 4-element lists) and tasks (list of Task or None)."""

    _KB_DEFAULTS = ("VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon", "RssFile",
                    "RssShmem", "VmData", "VmStk", "VmExe", "VmLib", "VmPTE", "VmSwap")

    def __init__(self, d: dict) -> None:
        self.raw = d
        for k in self._KB_DEFAULTS:
            setattr(self, k, 0)
        self.tasks = None
        self.__dict__.update(d)
        uids = d.get("uid", [0, 0, 0, 0])
        gids = d.get("gid", [0, 0, 0, 0])
        self.uids, self.gids = list(uids), list(gids)
        self.uid, self.euid, self.suid, self.fsuid = uids
        self.gid, self.egid, self.sgid, self.fsgid = gids
        if d.get("tasks") is not None:
            self.tasks = [Task(t) for t in d["tasks"]]

    pid: int
    ppid: int
    comm: str
    state: str
    cmdline: list
    num_threads: int
    utime: int
    stime: int
    starttime: int
    vsize: int

    @property
    def cpu_ticks(self) -> int:
        return self.utime + self.stime

    def __repr__(self) -> str:
        return (f"Proc(pid={self.pid}, ppid={self.ppid}, comm={self.comm!r}, state={self.state}, "
                f"threads={self.num_threads}, VmRSS={self.VmRSS})")


def _parse_kv_kb(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            parts = v.split()
            if parts:
                try:
                    out[k.strip()] = int(parts[0])
                except ValueError:
                    pass
    return out


class Snapshot:
    """A parsed ground-truth snapshot of the guest's /proc.

    procs    dict pid -> Proc
    meminfo  dict name -> int (kB, or a count for HugePages_*)
    loadavg, stat, uptime, vmstat   the raw text of those /proc files
    clk_tck, page_size, agent_pid, release (uname -r), seq,
    t_start_ns, t_end_ns (CLOCK_BOOTTIME around the /proc walk), raw (the JSON)
    """

    def __init__(self, d: dict) -> None:
        self.raw = d
        self.seq = d.get("seq")
        self.clk_tck = d["clk_tck"]
        self.page_size = d.get("page_size", 4096)
        self.agent_pid = d.get("agent_pid")
        self.release = d.get("release")
        self.kversion = d.get("kversion")
        self.t_start_ns = d.get("t_start_ns")
        self.t_end_ns = d.get("t_end_ns")
        self.has_tasks = bool(d.get("tasks"))
        self.uptime = d.get("uptime") or ""
        self.loadavg = d.get("loadavg") or ""
        self.stat = d.get("stat") or ""
        self.vmstat = d.get("vmstat") or ""
        self.meminfo_text = d.get("meminfo") or ""
        self.meminfo = _parse_kv_kb(self.meminfo_text)
        self.procs = {p["pid"]: Proc(p) for p in d["procs"]}

    @property
    def uptime_seconds(self) -> float:
        return float(self.uptime.split()[0])

    def stat_values(self) -> dict:
        """/proc/stat as dict: 'cpu' -> [ticks...], 'processes' -> int, ..."""
        out: dict = {}
        for line in self.stat.splitlines():
            parts = line.split()
            if not parts:
                continue
            vals = [int(x) for x in parts[1:] if x.lstrip("-").isdigit()]
            out[parts[0]] = vals[0] if len(vals) == 1 else vals
        return out

    def vmstat_values(self) -> dict:
        out = {}
        for line in self.vmstat.splitlines():
            parts = line.split()
            if len(parts) == 2:
                out[parts[0]] = int(parts[1])
        return out

    def find(self, comm: Optional[str] = None, argv0: Optional[str] = None) -> list:
        """Processes whose comm (and/or basename of cmdline[0]) match."""
        out = []
        for p in self.procs.values():
            if comm is not None and p.comm != comm:
                continue
            if argv0 is not None and (not p.cmdline or os.path.basename(p.cmdline[0]) != argv0):
                continue
            out.append(p)
        return sorted(out, key=lambda p: p.pid)

    def children(self, pid: int) -> list:
        return sorted((p for p in self.procs.values() if p.ppid == pid), key=lambda p: p.pid)

    def descendants(self, pid: int) -> list:
        kids: dict = {}
        for p in self.procs.values():
            kids.setdefault(p.ppid, []).append(p)
        out, todo = [], [pid]
        while todo:
            for c in kids.get(todo.pop(), []):
                out.append(c)
                todo.append(c.pid)
        return sorted(out, key=lambda p: p.pid)

    def user_procs(self) -> list:
        return sorted((p for p in self.procs.values() if not p.kthread), key=lambda p: p.pid)

    def __len__(self) -> int:
        return len(self.procs)

    def __repr__(self) -> str:
        return f"Snapshot(seq={self.seq}, procs={len(self.procs)}, release={self.release!r})"


def parse_snapshot(body: Union[bytes, str]) -> Snapshot:
    """Parse the JSON text between BEGIN and END (bytes are decoded as UTF-8
    with surrogateescape: raw non-UTF-8 bytes of comm/cmdline survive)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "surrogateescape")
    return Snapshot(json.loads(body))


# ----------------------------------------------------------------------------
# guest configuration
# ----------------------------------------------------------------------------

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

    def __post_init__(self) -> None:
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


# ----------------------------------------------------------------------------
# guests
# ----------------------------------------------------------------------------

_owned: dict = {}          # name -> Guest booted (and owned) by this process
_owned_lock = threading.RLock()


def _cleanup_owned() -> None:
    with _owned_lock:
        guests = list(_owned.values())
    for g in guests:
        try:
            g.shutdown()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            print(f"vmlab: cleanup of {g.name} failed: {e}", file=sys.stderr)


atexit.register(_cleanup_owned)


def install_signal_handlers(exc: type = SystemExit) -> None:
    """Make SIGTERM/SIGHUP raise `exc` (SystemExit for scripts,
    KeyboardInterrupt under pytest) so that atexit/finalizers shut the
    guests down."""
    def handler(signum: int, frame: Any) -> None:
        raise exc(128 + signum) if exc is SystemExit else exc()
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


_prctl = None


def _load_prctl() -> Any:
    """libc's prctl, loaded in the parent (the child must not import)."""
    global _prctl
    if _prctl is None:
        try:
            import ctypes
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except Exception:  # noqa: BLE001
            _prctl = False
    return _prctl


def _pdeathsig_preexec(parent: int, prctl: Any) -> Any:
    def preexec() -> None:
        # In the child between fork and exec: have the kernel SIGTERM QEMU
        # when the process that booted it dies (even by SIGKILL).
        if prctl:
            prctl(1, int(signal.SIGTERM), 0, 0, 0)   # PR_SET_PDEATHSIG
            if os.getppid() != parent:                # parent already gone
                os._exit(1)
    return preexec


class _LineReader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self, deadline: Optional[float]) -> None:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.sock.settimeout(left)
        else:
            self.sock.settimeout(None)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed")
        self.buf += data

    def readline(self, deadline: Optional[float]) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 1]
                return line.rstrip(b"\r")
            self._fill(deadline)

    def read_exact(self, n: int, deadline: Optional[float]) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until_line(self, prefix: bytes, deadline: Optional[float]) -> tuple:
        """Read everything up to a line starting with `prefix`; returns
        (body_bytes, that_line)."""
        pat = b"\n" + prefix
        search_from = 0
        while True:
            if self.buf.startswith(prefix):
                i = 0
            else:
                k = self.buf.find(pat, search_from)
                i = k + 1 if k >= 0 else -1
            if i >= 0:
                j = self.buf.find(b"\n", i)
                if j >= 0:
                    body = bytes(self.buf[:i])
                    line = bytes(self.buf[i:j]).rstrip(b"\r")
                    del self.buf[: j + 1]
                    return body, line
                search_from = max(0, i - 1)
            else:
                search_from = max(0, len(self.buf) - len(pat))
            self._fill(deadline)


def _quote_arg(a: str) -> str:
    """%XX-encode what the agent's space-separated protocol cannot carry."""
    out = []
    for ch in str(a):
        o = ord(ch)
        if ch in " %\t\r\n" or o < 0x20 or o == 0x7f:
            out.append("%%%02X" % o)
        else:
            out.append(ch)
    return "".join(out)


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
        self.kernel_path: Optional[str] = None
        self.initrd_path: Optional[str] = None
        self.argv: list = []
        self._qmp_id = 0

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
        CLI does). own: shut it down at exit of this process (atexit)."""
        if cfg is None:
            cfg = GuestConfig(**kw)
        elif kw:
            cfg = dataclasses.replace(cfg, **kw)
        kernel = fetch_kernel(cfg.kernel)
        initrd = build_initramfs()
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
        t0 = time.monotonic()
        logf = open(g.qemu_log, "wb")
        try:
            popen = subprocess.Popen(
                g.argv, cwd=str(state), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
                preexec_fn=_pdeathsig_preexec(os.getpid(), _load_prctl()) if die_with_parent else None)
        except BaseException:
            logf.close()
            shutil.rmtree(state, ignore_errors=True)
            raise
        logf.close()
        g._popen, g.pid = popen, popen.pid
        with _owned_lock:
            _owned[name] = g
        g._write_config()
        try:
            timeout = cfg.boot_timeout or float(os.environ.get("VMWATCH_BOOT_TIMEOUT") or 0) or \
                (120.0 + max(0, cfg.mem_mib - 4096) / 1024 * 15)
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
        with _owned_lock:
            if _owned.get(self.name) is self:
                del _owned[self.name]

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
                raise BootError(f"QEMU for guest {self.name} exited during boot "
                                f"(rc={self._popen.returncode if self._popen else '?'}).\n"
                                f"--- qemu.log ---\n{_tail(self.qemu_log)}\n"
                                f"--- console.log (tail) ---\n{_tail(self.console_log)}")
            if not self.truth_sock.exists():
                time.sleep(0.1)
                continue
            try:
                self.ping(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                return
            except (OSError, TruthError) as e:
                last_err = e
                time.sleep(0.2)
        raise BootError(f"guest {self.name} did not answer within {timeout:.0f} s "
                        f"(last error: {last_err}).\n--- console.log (tail) ---\n{_tail(self.console_log)}"
                        f"\n--- qemu.log ---\n{_tail(self.qemu_log, 2000)}")

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
            if self.ram_path and self.ram_path.startswith(SHM_PREFIX):
                try:
                    os.unlink(self.ram_path)
                except FileNotFoundError:
                    pass
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.detach()

    stop = shutdown

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

    # ---- QMP ----
    def qmp(self, cmd: str, _args: Optional[dict] = None, _timeout: Optional[float] = 60.0,
            **args: Any) -> Any:
        """Run one QMP command and return its "return" value (raises
        QMPError on an "error" answer). Arguments as keywords, or as a dict
        in _args for names that are not Python identifiers. _timeout=None
        waits forever. A new QMP connection is made per call (serialised
        across processes by a lock file)."""
        if _args:
            args = {**_args, **args}
        with _flock(self.state_dir / "qmp.lock"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(10.0)
                s.connect(str(self.qmp_sock))
                rd = _LineReader(s)
                deadline = None if _timeout is None else time.monotonic() + _timeout
                hs_deadline = time.monotonic() + 10.0 if deadline is None else min(deadline, time.monotonic() + 10.0)
                greeting = json.loads(rd.readline(hs_deadline))
                if "QMP" not in greeting:
                    raise QMPError(f"unexpected QMP greeting {greeting!r}")
                self._qmp_send(s, "qmp_capabilities", {})
                self._qmp_recv(rd, hs_deadline, "qmp_capabilities")
                self._qmp_send(s, cmd, args)
                return self._qmp_recv(rd, deadline, cmd)
            finally:
                s.close()

    def _qmp_send(self, s: socket.socket, cmd: str, args: dict) -> None:
        self._qmp_id += 1
        msg: dict = {"execute": cmd, "id": self._qmp_id}
        if args:
            msg["arguments"] = args
        s.settimeout(10.0)
        s.sendall(json.dumps(msg).encode() + b"\n")

    def _qmp_recv(self, rd: _LineReader, deadline: Optional[float], cmd: str) -> Any:
        while True:
            line = rd.readline(deadline)
            if not line.strip():
                continue
            obj = json.loads(line)
            if "event" in obj:
                continue
            if "error" in obj:
                e = obj["error"]
                raise QMPError(f"QMP {cmd}: {e.get('class')}: {e.get('desc')}")
            if "return" in obj:
                return obj["return"]

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
        was_running = self.qmp("query-status")["running"]
        if was_running:
            self.pause()
        try:
            yield self
        finally:
            if was_running and self.alive():
                self.resume()

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

    # ---- ground truth ----
    @contextmanager
    def _truth_conn(self, timeout: float) -> Iterator[tuple]:
        with _flock(self.state_dir / "truth.lock"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(min(timeout, 10.0))
                s.connect(str(self.truth_sock))
                rd = _LineReader(s)
                self._truth_sync(s, rd, time.monotonic() + timeout)
                yield s, rd
            finally:
                s.close()

    def _truth_sync(self, s: socket.socket, rd: _LineReader, deadline: float) -> None:
        """Get in step with the agent: send 'ping NONCE' and read until every
        ping it has answered is accounted for. Anything before is discarded
        (e.g. the tail of an earlier, interrupted answer). Pings sent before
        the agent opened its port are lost, so they are re-sent (with a new
        nonce, after a growing wait, or at once when the agent says READY);
        once one is answered, all later ones will be too (in order)."""
        sent: list = []
        wait = 0.5

        def ping() -> None:
            nonce = secrets.token_hex(6)
            sent.append(f"PONG {nonce}".encode())
            s.sendall(f"\nping {nonce}\n".encode())

        ping()
        until = min(deadline, time.monotonic() + wait)
        answered = False
        while True:
            try:
                line = rd.readline(until)
            except socket.timeout:
                if time.monotonic() >= deadline:
                    raise TruthError(f"guest {self.name}: the truth agent does not answer") from None
                if not answered:
                    wait = min(wait * 2, 8.0)
                    ping()
                until = min(deadline, time.monotonic() + wait)
                continue
            if line in sent:
                del sent[: sent.index(line) + 1]
                if not sent:
                    return
                answered = True
                until = deadline
            elif line.startswith(b"READY"):
                sent.clear()   # the agent (re)started: earlier pings may be lost
                answered = False
                ping()
                until = min(deadline, time.monotonic() + wait)

    def _truth_line(self, cmd: str, timeout: float) -> str:
        with self._truth_conn(timeout) as (s, rd):
            s.sendall(cmd.encode("utf-8", "surrogateescape") + b"\n")
            deadline = time.monotonic() + timeout
            while True:
                line = rd.readline(deadline).decode("utf-8", "replace")
                if line.startswith(("PONG", "READY")) or not line.strip():
                    continue
                return line

    def _truth_framed(self, cmd: str, timeout: float) -> bytes:
        """Send cmd, return the body of its BEGIN/END (or BEGINZ, zlib
        compressed) framed answer."""
        with self._truth_conn(min(timeout, 60.0)) as (s, rd):
            s.sendall(cmd.encode("utf-8", "surrogateescape") + b"\n")
            deadline = time.monotonic() + timeout
            while True:
                line = rd.readline(deadline)
                m = re.fullmatch(rb"BEGIN(Z?) (\d+)(?: (\d+))?", line)
                if m and (m.group(1) == b"") == (m.group(3) is None):
                    break
                if line.startswith(b"ERR"):
                    raise TruthError(f"{cmd!r}: {line.decode(errors='replace')}")
            seq = m.group(2)
            if m.group(1):
                zdata = rd.read_exact(int(m.group(3)), deadline)
                end = rd.readline(deadline)
                try:
                    body = zlib.decompress(zdata)
                except zlib.error as e:
                    raise TruthError(f"{cmd!r}: corrupt compressed answer: {e}") from None
            else:
                body, end = rd.read_until_line(b"END " + seq + b" ", deadline)
            parts = end.split()
            if len(parts) != 3 or parts[:2] != [b"END", seq] or int(parts[2]) != len(body):
                raise TruthError(f"{cmd!r}: framing error: got {end[:80]!r} after {len(body)} bytes")
            return body

    def ping(self, timeout: float = 10.0) -> float:
        """Round trip to the truth agent; returns seconds."""
        t0 = time.monotonic()
        with self._truth_conn(timeout):
            pass
        return time.monotonic() - t0

    def truth(self, tasks: bool = False, timeout: float = 180.0) -> Snapshot:
        """A ground-truth snapshot of the guest's /proc (see Snapshot).
        tasks=True adds per-thread rows (Proc.tasks)."""
        return parse_snapshot(self.truth_raw(tasks=tasks, timeout=timeout))

    snapshot = truth

    def truth_raw(self, tasks: bool = False, timeout: float = 180.0, compress: bool = True) -> bytes:
        """The snapshot's JSON text as the agent made it (sent zlib
        compressed over the serial line unless compress=False)."""
        cmd = "snap" + (" tasks" if tasks else "") + (" z" if compress else "")
        return self._truth_framed(cmd, timeout)

    def run(self, prog: str, *args: Any, timeout: float = 30.0) -> int:
        """Start a workload in the guest, detached (setsid, stdio on
        /dev/null, reparented to init); returns its pid. prog is looked up
        in the guest's PATH (/bin has hog, burn, threads, swarm, churn, idle
        and busybox applets)."""
        line = " ".join(_quote_arg(a) for a in (prog, *args) if str(a) != "")
        ans = self._truth_line("run " + line, timeout)
        if not ans.startswith("OK "):
            raise TruthError(f"run {prog} {' '.join(map(str, args))}: {ans}")
        return int(ans.split()[1])

    def kill(self, pid: int, sig: int = signal.SIGKILL, group: bool = False, timeout: float = 30.0) -> None:
        """Send a signal in the guest (group=True: to the process group,
        which for run() workloads is the workload and all its children)."""
        target = -abs(pid) if group else pid
        ans = self._truth_line(f"kill {target} {int(sig)}", timeout)
        if ans != "OK":
            raise TruthError(f"kill {target} {sig}: {ans}")

    def sh(self, command: str, timeout: float = 90.0, check: bool = False) -> tuple:
        """Run `sh -c command` in the guest (60 s limit there); returns
        (rc, output)."""
        try:
            body = self._truth_framed("shz " + _quote_arg(command), timeout)
        except TruthError as e:
            if "unknown command" not in str(e):
                raise
            body = self._truth_framed("sh " + _quote_arg(command), timeout)   # older agent
        d = json.loads(body.decode("utf-8", "surrogateescape"))
        if check and d["rc"] != 0:
            raise TruthError(f"guest command {command!r} failed rc={d['rc']}: {d['out']}")
        return d["rc"], d["out"]

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
    return Guest.boot(cfg, **kw)


# ----------------------------------------------------------------------------
# housekeeping
# ----------------------------------------------------------------------------

def list_guests() -> list:
    """Guest objects for every state dir under lab_root()."""
    root = lab_root()
    out = []
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if d.is_dir():
                g = Guest.attach(d.name, missing_ok=True)
                if g is not None:
                    out.append(g)
    return out


def _shm_in_use(path: str) -> bool:
    for d in os.listdir("/proc"):
        if d.isdigit() and path in _proc_cmdline(int(d)):
            return True
    return False


def gc_stale(min_age: float = 30.0) -> list:
    """Remove state dirs whose QEMU is gone and /dev/shm/vmwatch-lab-* files
    that no process uses (older than min_age seconds). Returns what was
    removed."""
    removed = []
    now = time.time()
    root = lab_root()
    names = set()
    if root.is_dir():
        for d in root.iterdir():
            if not d.is_dir():
                continue
            names.add(d.name)
            try:
                age = now - d.stat().st_mtime
            except OSError:
                continue
            if age < min_age:
                continue
            g = Guest.attach(d.name, missing_ok=True)
            if g is None:
                if not any(d.iterdir()) or not (d / "config.json").exists():
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(str(d))
                continue
            if not g.alive():
                g.shutdown()
                removed.append(str(d))
    for f in Path("/dev/shm").glob("vmwatch-lab-*"):
        try:
            age = now - f.stat().st_mtime
        except OSError:
            continue
        name = f.name[len("vmwatch-lab-"):]
        if age < min_age or (name in names and (root / name).exists()):
            continue
        if not _shm_in_use(str(f)):
            try:
                f.unlink()
                removed.append(str(f))
            except OSError:
                pass
    return removed


def stop_all() -> list:
    """Stop every lab guest under lab_root() and remove their RAM files (and
    any leftover /dev/shm/vmwatch-lab-* not used by a process)."""
    stopped = []
    for g in list_guests():
        g.shutdown()
        stopped.append(g.name)
    root = lab_root()
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and not (d / "config.json").exists():
                shutil.rmtree(d, ignore_errors=True)
    gc_stale(min_age=0)
    return stopped


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------

def _cli_parser() -> Any:
    import argparse
    p = argparse.ArgumentParser(prog="vmlab", description="vmwatch lab: QEMU/TCG guests with ground truth")
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("fetch", help="download/extract guest kernels into the cache")
    f.add_argument("versions", nargs="*", default=["6.1", "6.12"],
                   help=f"kernels (default: 6.1 6.12; known: {' '.join(sorted(KERNELS))})")

    i = sub.add_parser("initramfs", help="build the guest initramfs (prints its path)")
    i.add_argument("--force", action="store_true")

    b = sub.add_parser("boot", help="boot a guest in the background and return")
    b.add_argument("--kernel", default="6.1")
    b.add_argument("--mem", default="512M")
    b.add_argument("--machine", default="pc", choices=["pc", "q35"])
    b.add_argument("--cpu", default="qemu64")
    b.add_argument("--la57", action="store_true", help="add +la57 to the CPU (5-level paging)")
    b.add_argument("--smp", type=int, default=1)
    b.add_argument("--backing", default="shm", choices=["shm", "memfd", "private"])
    b.add_argument("--accel", default="tcg", choices=["tcg", "kvm"])
    b.add_argument("--name")
    b.add_argument("--no-kaslr", action="store_true")
    b.add_argument("--append", default="", help="extra kernel command line")
    b.add_argument("--run", action="append", default=[], metavar="'PROG ARGS'",
                   help="workload started by /init (repeatable), e.g. --run 'swarm 1000'")
    b.add_argument("--qemu-arg", action="append", default=[], help="extra QEMU argument (repeatable)")
    b.add_argument("--timeout", type=float)
    b.add_argument("--json", action="store_true")

    ls = sub.add_parser("list", help="list lab guests")
    ls.add_argument("--json", action="store_true")

    t = sub.add_parser("truth", help="print a ground-truth snapshot as JSON")
    t.add_argument("name")
    t.add_argument("--tasks", action="store_true", help="include per-thread rows")
    t.add_argument("--raw", action="store_true", help="print the agent's JSON as received")

    r = sub.add_parser("run", help="start a workload in the guest; prints its pid")
    r.add_argument("name")
    r.add_argument("prog")
    r.add_argument("args", nargs=argparse.REMAINDER)

    k = sub.add_parser("kill", help="signal a process (or with --group its group) in the guest")
    k.add_argument("name")
    k.add_argument("pid", type=int)
    k.add_argument("sig", type=int, nargs="?", default=9)
    k.add_argument("--group", action="store_true")

    sh = sub.add_parser("sh", help="run a shell command in the guest")
    sh.add_argument("name")
    sh.add_argument("command", nargs=argparse.REMAINDER)

    pg = sub.add_parser("ping", help="round trip to the truth agent")
    pg.add_argument("name")

    c = sub.add_parser("console", help="print the guest console log")
    c.add_argument("name")

    q = sub.add_parser("qmp", help="run a QMP command; prints the result as JSON")
    q.add_argument("name")
    q.add_argument("command")
    q.add_argument("arguments", nargs="?", default="{}", help="JSON object")

    for nm in ("pause", "resume"):
        x = sub.add_parser(nm)
        x.add_argument("name")

    pm = sub.add_parser("pmemsave", help="save a guest-physical range to a file")
    pm.add_argument("name")
    pm.add_argument("addr", type=lambda s: int(s, 0))
    pm.add_argument("size", type=lambda s: int(s, 0))
    pm.add_argument("path")

    d = sub.add_parser("dump", help="dump guest memory as an ELF core (paging off)")
    d.add_argument("name")
    d.add_argument("path")

    s = sub.add_parser("stop", help="stop guests")
    s.add_argument("names", nargs="*")
    s.add_argument("--all", action="store_true")

    sub.add_parser("gc", help="remove state of dead guests and unused RAM files")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    install_signal_handlers(SystemExit)
    args = _cli_parser().parse_args(argv)
    try:
        return _cli(args)
    except LabError as e:
        print(f"vmlab: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


def _cli(a: Any) -> int:
    cmd = a.cmd
    if cmd == "fetch":
        for v in a.versions:
            print(v, fetch_kernel(v))
        return 0
    if cmd == "initramfs":
        print(build_initramfs(force=a.force))
        return 0
    if cmd == "boot":
        cfg = GuestConfig(kernel=a.kernel, mem=a.mem, machine=a.machine, cpu=a.cpu, la57=a.la57,
                          smp=a.smp, backing=a.backing, accel=a.accel, name=a.name,
                          kaslr=not a.no_kaslr, extra_cmdline=a.append, run=a.run,
                          qemu_args=a.qemu_arg, boot_timeout=a.timeout)
        g = Guest.boot(cfg, die_with_parent=False, own=True)   # owned until booted: SIGTERM/errors clean up
        g.detach()
        info = {"pid": g.pid, "name": g.name, "state_dir": str(g.state_dir), "ram_path": g.ram_path,
                "boot_seconds": round(g.boot_seconds or 0, 2)}
        if a.json:
            print(json.dumps(info))
        else:
            for k, v in info.items():
                print(f"{k} {v if v is not None else '-'}")
        return 0
    if cmd == "list":
        rows = []
        for g in list_guests():
            c = g.config
            rows.append({"name": g.name, "pid": g.pid, "alive": g.alive(), "kernel": c.kernel,
                         "mem": c.mem, "machine": c.machine, "cpu": c.cpu_model, "smp": c.smp,
                         "backing": c.backing, "ram_path": g.ram_path, "state_dir": str(g.state_dir)})
        if a.json:
            print(json.dumps(rows, indent=2))
        else:
            fmt = "{:<28} {:>8} {:<5} {:<7} {:>6} {:<4} {:<7} {}"
            print(fmt.format("NAME", "PID", "ALIVE", "KERNEL", "MEM", "MACH", "BACKING", "RAM"))
            for r in rows:
                print(fmt.format(r["name"], r["pid"] or "-", "yes" if r["alive"] else "no", r["kernel"],
                                 str(r["mem"]), r["machine"], r["backing"], r["ram_path"] or "-"))
        return 0
    if cmd == "stop":
        if a.all:
            for n in stop_all():
                print("stopped", n)
            return 0
        if not a.names:
            print("vmlab stop: give guest names or --all", file=sys.stderr)
            return 2
        rc = 0
        for n in a.names:
            g = Guest.attach(n, missing_ok=True)
            if g is None:
                print(f"vmlab: no guest {n}", file=sys.stderr)
                rc = 1
                continue
            g.shutdown()
            print("stopped", n)
        return rc
    if cmd == "gc":
        for x in gc_stale(min_age=0):
            print("removed", x)
        return 0

    g = Guest.attach(a.name)
    assert g is not None
    if cmd == "truth":
        if a.raw:
            sys.stdout.write(g.truth_raw(tasks=a.tasks).decode("utf-8", "surrogateescape"))
        else:
            snap = g.truth(tasks=a.tasks)
            sys.stdout.write(json.dumps(snap.raw, indent=1, ensure_ascii=True) + "\n")
        return 0
    if cmd == "run":
        print(g.run(a.prog, *a.args))
        return 0
    if cmd == "kill":
        g.kill(a.pid, a.sig, group=a.group)
        return 0
    if cmd == "sh":
        rc, out = g.sh(" ".join(a.command))
        sys.stdout.write(out)
        return rc
    if cmd == "ping":
        print(f"{g.ping() * 1000:.1f} ms")
        return 0
    if cmd == "console":
        sys.stdout.write(g.console())
        return 0
    if cmd == "qmp":
        print(json.dumps(g.qmp(a.command, _args=json.loads(a.arguments)), indent=2))
        return 0
    if cmd == "pause":
        g.pause()
        return 0
    if cmd == "resume":
        g.resume()
        return 0
    if cmd == "pmemsave":
        print(g.pmemsave(a.addr, a.size, a.path))
        return 0
    if cmd == "dump":
        print(g.dump_guest_memory(a.path))
        return 0
    raise LabError(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(main())

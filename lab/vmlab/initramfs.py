"""The guest's userland: the lab's C programs (lab/guest/*.c, built static
on the host) and busybox packed into a cpio initramfs. Both are cached by a
hash of their inputs, so a change of a source rebuilds them and nothing
else does."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat as statmod
import subprocess
import tempfile
from pathlib import Path

from .errors import LabError
from .paths import GUEST_SRC, _atomic_write, _flock, cache_dir, host_tool

__all__ = ["build_guest_programs", "build_initramfs"]

BUILDER_VERSION = "1"   # bump to force rebuilding the initramfs
GUEST_CFLAGS = ["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-s"]


def _guest_sources() -> list:
    return sorted(p for p in GUEST_SRC.iterdir() if p.suffix in (".c", ".h"))


def _gcc() -> str:
    return host_tool("VMWATCH_GUEST_CC", "gcc", "gcc not found (needed to build the lab's guest programs)")


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


"""A real Debian 12 userland for lab guests: a root file system made by
mmdebstrap (systemd as PID 1, udev, dbus, journald, cron, sshd, users alice
and bob with services running as them, the lab's truth agent as a systemd
unit on ttyS1), packed as a zstd cpio initramfs (no disk). Cached in
~/.cache/vmwatch/debian-<hash>.cpio.zst, the hash over its recipe (suite,
packages, lab/guest/debian/*, the lab's programs), like the kernels."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import LabError
from .initramfs import build_guest_programs
from .paths import GUEST_SRC, _flock, cache_dir, host_tool

__all__ = ["DEBIAN_PACKAGES", "build_debian_initramfs"]

DEBIAN_SRC = GUEST_SRC / "debian"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("VMWATCH_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBIAN_PACKAGES = ("systemd", "systemd-sysv", "udev", "dbus", "cron", "openssh-server", "procps",
                   "libpam-systemd", "runc", "busybox-static")
_EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")
RECIPE_VERSION = "1"   # bump to force a rebuild


def _recipe_hash(progs: Path) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([RECIPE_VERSION, DEBIAN_SUITE, DEBIAN_MIRROR, DEBIAN_PACKAGES, _EXCLUDES,
                         progs.name]).encode())
    for p in sorted(DEBIAN_SRC.iterdir()):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _stage(progs: Path, stage: Path) -> None:
    """The files customize.sh copies into the tree: units and programs."""
    units = stage / "etc/systemd/system"
    units.mkdir(parents=True)
    for p in sorted(DEBIAN_SRC.glob("*.service")) + sorted(DEBIAN_SRC.glob("*.slice")):
        shutil.copy(p, units / p.name)
    bindir = stage / "usr/local/bin"
    bindir.mkdir(parents=True)
    for p in sorted(progs.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            shutil.copy(p, bindir / p.name)
            os.chmod(bindir / p.name, 0o755)


def _run(cmd: list, what: str, **kw) -> None:
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        raise LabError(f"{what} failed (rc {r.returncode}):\n{' '.join(cmd)}\n{r.stdout[-4000:]}")


def _pack(root: Path, out_tmp: Path) -> None:
    """root -> newc cpio (owners, modes, hard links kept), zstd -19."""
    zstd = host_tool("VMWATCH_ZSTD", "zstd", "zstd not found: apt-get install zstd")
    cpio = host_tool("VMWATCH_CPIO", "cpio", "cpio not found: apt-get install cpio")
    names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=root, stdout=subprocess.PIPE,
                           check=True).stdout
    names = b"\n".join(sorted(names.split(b"\n"))).strip(b"\n") + b"\n"
    with open(out_tmp, "wb") as f:
        c = subprocess.Popen([cpio, "-o", "-H", "newc", "--quiet", "--reproducible"], cwd=root,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        z = subprocess.Popen([zstd, "-q", "-T0", "-12", "-c"], stdin=c.stdout, stdout=f)
        assert c.stdout is not None and c.stdin is not None
        c.stdout.close()
        c.stdin.write(names)
        c.stdin.close()
        if c.wait() != 0 or z.wait() != 0:
            raise LabError(f"packing the Debian initramfs failed (cpio {c.returncode}, zstd {z.returncode})")


def build_debian_initramfs(force: bool = False) -> Path:
    """Build (once per recipe) the Debian guest's initramfs; returns
    ~/.cache/vmwatch/debian-<hash>.cpio.zst. Needs root (mmdebstrap's root
    mode, chroot), mmdebstrap, cpio, zstd and the Debian archive."""
    progs = build_guest_programs()
    out = cache_dir() / f"debian-{_recipe_hash(progs)}.cpio.zst"
    if out.exists() and not force:
        return out
    mmdebstrap = host_tool("VMWATCH_MMDEBSTRAP", "mmdebstrap",
                           "mmdebstrap not found: apt-get install mmdebstrap")
    if os.geteuid() != 0:
        raise LabError("building the Debian guest needs root (mmdebstrap --mode=root, chroot)")
    with _flock(cache_dir() / ".debian.lock"):
        if out.exists() and not force:
            return out
        tmp = Path(tempfile.mkdtemp(dir=str(cache_dir()), prefix=".debian-build-"))
        try:
            _stage(progs, tmp / "stage")
            cmd = [mmdebstrap, "--mode=root", "--variant=minbase", "--quiet",
                   "--include=" + ",".join(DEBIAN_PACKAGES)]
            cmd += [f"--dpkgopt=path-exclude={x}" for x in _EXCLUDES]
            cmd += [f"--customize-hook={DEBIAN_SRC / 'customize.sh'} \"$1\" {tmp / 'stage'}",
                    DEBIAN_SUITE, str(tmp / "root"), DEBIAN_MIRROR]
            _run(cmd, "mmdebstrap (the Debian guest's root file system)")
            _pack(tmp / "root", tmp / "out")
            os.chmod(tmp / "out", 0o644)
            os.replace(tmp / "out", out)
        finally:
            _remove_tree(tmp)
    return out


def _remove_tree(tmp: Path) -> None:
    """rm -rf tmp, unless something is still mounted under it (a failed
    mmdebstrap may leave /proc or /sys mounted in its tree: never descend
    into those)."""
    prefix = str(tmp.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        mounted = [ln.split()[1] for ln in f if ln.split()[1].startswith(prefix)]
    if mounted:
        raise LabError(f"not removing {tmp}: still mounted under it: {', '.join(mounted)}")
    shutil.rmtree(tmp, ignore_errors=True)

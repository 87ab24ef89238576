"""Guest kernels: Debian's packaged kernels, fetched with `apt-get download`
and unpacked with `dpkg-deb` into the cache, so the lab boots the same
kernels a distribution ships (not a kernel built for the tests)."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Optional, Sequence

from .errors import LabError
from .paths import _atomic_write, _flock, kernels_dir

__all__ = ["KERNELS", "kernel_package", "fetch_kernel", "fetch_kernels"]

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

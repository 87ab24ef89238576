"""Attack a running lab guest through its shared RAM file (tests only).

  GuestMem(ram_path, info)   read/write guest-physical bytes of a guest
                             booted with backing="shm" (pc machine, <= 3 GiB:
                             file offset == guest physical address);
                             kernel-virtual to physical translation for the
                             kernel image and the direct map, from
                             `vmwatch info --json` (phys_base,
                             page_offset_base, symbols).
  mem.patch()                context manager: every write made through it is
                             undone (original bytes written back) on exit.
  Btf(bytes)                 a small reader of the kernel's BTF (uapi
                             linux/btf.h): types, names, structs and their
                             members (anonymous members included), arrays,
                             typedefs, with the file offset of every field
                             so tests can patch them in guest RAM.
  cache_sum64(bytes)         the discovery cache's file checksum
                             (src/kernel/cache.c sum64), to forge a file
                             an attacker re-sums.

Nothing here is clever about concurrency: the guest keeps running while we
write, so tests pause it (g.paused()) when they patch what its kernel uses.
"""
from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
import subprocess
from dataclasses import dataclass
from typing import Iterator, Optional

KERNEL_MAP = 0xFFFFFFFF80000000   # __START_KERNEL_map

# BTF kinds (include/uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, \
    FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(1, 20)
KIND_NAMES = {v: k for k, v in dict(INT=INT, PTR=PTR, ARRAY=ARRAY, STRUCT=STRUCT, UNION=UNION,
                                    ENUM=ENUM, FWD=FWD, TYPEDEF=TYPEDEF, VOLATILE=VOLATILE,
                                    CONST=CONST, RESTRICT=RESTRICT, FUNC=FUNC,
                                    FUNC_PROTO=FUNC_PROTO, VAR=VAR, DATASEC=DATASEC,
                                    FLOAT=FLOAT, DECL_TAG=DECL_TAG, TYPE_TAG=TYPE_TAG,
                                    ENUM64=ENUM64).items()}
BTF_MAGIC = 0xEB9F
HDR = struct.Struct("<HBBIIIII")   # magic version flags hdr_len type_off type_len str_off str_len


def vmwatch_info(vmwatch, target: str, *symbols: str, env=None) -> dict:
    """`vmwatch info --json --no-cache --symbol S...` (the hidden --symbol is
    for tests): phys_base, page_offset_base, symbol addresses."""
    args = [str(vmwatch), "info", "--json", "--no-cache"]
    for s in symbols:
        args += ["--symbol", s]
    r = subprocess.run(args + [target], capture_output=True, text=True, timeout=120, env=env)
    if r.returncode != 0:
        raise AssertionError(f"vmwatch info failed rc={r.returncode}: {r.stderr}")
    return json.loads(r.stdout)


def kernel_info(info: dict) -> dict:
    """The kernel fields of `info --json`: top level, or (newer vmwatch) its
    "kernel" object."""
    k = info.get("kernel")
    return k if isinstance(k, dict) else info


class GuestMem:
    def __init__(self, ram_path, info: dict) -> None:
        self.path = str(ram_path)
        k = kernel_info(info)
        self.phys_base = int(k["phys_base"], 16)
        self.page_offset_base = int(k["page_offset_base"], 16)
        self.symbols = {k: int(v["addr"], 16) for k, v in (info.get("symbols") or {}).items() if v}
        self.fd = os.open(self.path, os.O_RDWR)
        self.size = os.fstat(self.fd).st_size
        self.map = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._undo: Optional[list] = None

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)

    # ---- addresses
    def phys(self, vaddr: int) -> int:
        if vaddr >= KERNEL_MAP:
            # phys_base is a u64 and may be 'negative' (KASLR moved the image down)
            return (vaddr - KERNEL_MAP + self.phys_base) & 0xFFFFFFFFFFFFFFFF
        if vaddr >= self.page_offset_base:
            return vaddr - self.page_offset_base
        raise ValueError(f"0x{vaddr:x} is neither in the kernel image nor in the direct map")

    def is_kptr(self, vaddr: int) -> bool:
        try:
            p = self.phys(vaddr)
        except ValueError:
            return False
        return 0 <= p < self.size

    # ---- physical
    def read(self, paddr: int, n: int) -> bytes:
        if paddr < 0 or paddr + n > self.size:
            raise ValueError(f"phys 0x{paddr:x}+{n} outside the RAM file")
        return self.map[paddr:paddr + n]

    def write(self, paddr: int, data: bytes) -> None:
        old = self.read(paddr, len(data))
        if self._undo is not None:
            self._undo.append((paddr, old))
        self.map[paddr:paddr + len(data)] = data

    def u32(self, paddr: int) -> int:
        return struct.unpack("<I", self.read(paddr, 4))[0]

    def u64(self, paddr: int) -> int:
        return struct.unpack("<Q", self.read(paddr, 8))[0]

    def put_u32(self, paddr: int, v: int) -> None:
        self.write(paddr, struct.pack("<I", v & 0xFFFFFFFF))

    def put_u64(self, paddr: int, v: int) -> None:
        self.write(paddr, struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF))

    # ---- kernel virtual
    def vread(self, vaddr: int, n: int) -> bytes:
        return self.read(self.phys(vaddr), n)

    def vu32(self, vaddr: int) -> int:
        return self.u32(self.phys(vaddr))

    def vu64(self, vaddr: int) -> int:
        return self.u64(self.phys(vaddr))

    def vput_u32(self, vaddr: int, v: int) -> None:
        self.put_u32(self.phys(vaddr), v)

    def vput_u64(self, vaddr: int, v: int) -> None:
        self.put_u64(self.phys(vaddr), v)

    @contextlib.contextmanager
    def patch(self) -> Iterator["GuestMem"]:
        """Writes inside the block are undone at its end (newest first)."""
        assert self._undo is None, "patch() does not nest"
        self._undo = []
        try:
            yield self
        finally:
            undo, self._undo = self._undo, None
            for paddr, old in reversed(undo):
                self.map[paddr:paddr + len(old)] = old
            self.map.flush()

    # ---- the kernel's BTF
    def btf(self) -> "Btf":
        start, stop = self.symbols["__start_BTF"], self.symbols["__stop_BTF"]
        base = self.phys(start)
        return Btf(self.read(base, stop - start), base)


@dataclass
class BtfType:
    id: int
    off: int           # offset of its struct btf_type in the blob
    name: str
    kind: int
    vlen: int
    kflag: bool
    size_or_type: int

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


@dataclass
class Member:
    name: str
    type: int
    bit_off: int       # from the start of the outer struct (anonymous members summed)
    bitfield: int
    off: int           # blob offset of this struct btf_member (the innermost one)


class Btf:
    """The kernel's BTF blob; `base` is where it starts in guest-physical
    memory, so base + t.off etc. is what to patch."""

    def __init__(self, data: bytes, base: int = 0) -> None:
        self.data = data
        self.base = base
        magic, ver, _flags, hdr_len, type_off, type_len, str_off, str_len = HDR.unpack_from(data, 0)
        if magic != BTF_MAGIC or ver != 1:
            raise ValueError("no BTF magic")
        self.types_start = hdr_len + type_off
        self.str_start = hdr_len + str_off
        self.str_len = str_len
        self.types: list = [None]   # id 0 is void
        self.by_name: dict = {}
        p, end = self.types_start, self.types_start + type_len
        while p < end:
            name_off, info, st = struct.unpack_from("<III", data, p)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            t = BtfType(len(self.types), p, self.name(name_off), kind, vlen, bool(info >> 31), st)
            self.types.append(t)
            if t.name:
                self.by_name.setdefault((t.name, kind), t.id)
            p += 12 + self._extra(kind, vlen)

    @staticmethod
    def _extra(kind: int, vlen: int) -> int:
        if kind in (INT, VAR, DECL_TAG):
            return 4
        if kind == ARRAY:
            return 12
        if kind in (STRUCT, UNION, DATASEC, ENUM64):
            return 12 * vlen
        if kind in (ENUM, FUNC_PROTO):
            return 8 * vlen
        return 0

    def name(self, off: int) -> str:
        if off >= self.str_len:
            return "?"
        s = self.str_start + off
        e = self.data.index(b"\0", s)
        return self.data[s:e].decode(errors="replace")

    def find(self, name: str, kind: int) -> BtfType:
        return self.types[self.by_name[(name, kind)]]

    def struct_(self, name: str) -> BtfType:
        return self.find(name, STRUCT)

    def resolve(self, tid: int) -> int:
        """Through typedef/const/volatile/restrict/type_tag (bounded)."""
        for _ in range(64):
            t = self.types[tid]
            if t is None or t.kind not in (TYPEDEF, CONST, VOLATILE, RESTRICT, TYPE_TAG):
                return tid
            tid = t.size_or_type
        raise ValueError("type loop")

    def raw_members(self, t: BtfType) -> list:
        out = []
        for i in range(t.vlen):
            mo = t.off + 12 + 12 * i
            name_off, mtype, offset = struct.unpack_from("<III", self.data, mo)
            if t.kflag:
                bit, bf = offset & 0xFFFFFF, offset >> 24
            else:
                bit, bf = offset, 0
            out.append(Member(self.name(name_off), mtype, bit, bf, mo))
        return out

    def members(self, t: BtfType, _seen: frozenset = frozenset()) -> list:
        """Named members, anonymous struct/union members flattened (bit
        offsets relative to t). A struct met again inside itself is not
        entered twice (this reader also parses BTF we corrupted)."""
        out = []
        seen = _seen | {t.id}
        for m in self.raw_members(t):
            if m.name:
                out.append(m)
                continue
            sub = self.types[self.resolve(m.type)]
            if sub is not None and sub.kind in (STRUCT, UNION) and sub.id not in seen:
                for sm in self.members(sub, seen):
                    out.append(Member(sm.name, sm.type, m.bit_off + sm.bit_off, sm.bitfield, sm.off))
        return out

    def member(self, struct_name: str, path: str) -> Member:
        """'se.sum_exec_runtime' style paths; bit_off from the outer struct."""
        t = self.struct_(struct_name)
        total = 0
        parts = path.split(".")
        for i, part in enumerate(parts):
            ms = [m for m in self.members(t) if m.name == part]
            if not ms:
                raise KeyError(f"{struct_name}.{path}")
            m = ms[0]
            total += m.bit_off
            if i + 1 < len(parts):
                t = self.types[self.resolve(m.type)]
        return Member(m.name, m.type, total, m.bitfield, m.off)

    def offset(self, struct_name: str, path: str) -> int:
        m = self.member(struct_name, path)
        assert m.bit_off % 8 == 0, f"{struct_name}.{path} is a bitfield"
        return m.bit_off // 8

    def anonymous_members(self, t: BtfType) -> list:
        return [m for m in self.raw_members(t) if not m.name]

    # blob offsets of fields to patch (add self.base for guest-physical)
    @staticmethod
    def size_field(t: BtfType) -> int:
        return t.off + 8           # size (struct/union/int) or type (ptr/typedef/const...)

    @staticmethod
    def array_fields(t: BtfType) -> tuple:
        assert t.kind == ARRAY
        return t.off + 12, t.off + 16, t.off + 20    # type, index_type, nelems

    def array(self, tid: int) -> tuple:
        t = self.types[tid]
        return struct.unpack_from("<III", self.data, t.off + 12)   # type, index_type, nelems


def cache_sum64(data: bytes) -> int:
    """src/kernel/cache.c sum64()."""
    M = (1 << 64) - 1
    h = [14695981039346656037, 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9]

    def mix(l, w):
        x = ((h[l] ^ w) * 1099511628211) & M
        h[l] = x ^ (x >> 29)

    n = len(data)
    i = 0
    while i + 32 <= n:
        for l in range(4):
            mix(l, int.from_bytes(data[i + 8 * l:i + 8 * l + 8], "little"))
        i += 32
    l = 0
    while i < n:
        mix(l, int.from_bytes(data[i:i + 8].ljust(8, b"\0"), "little"))
        i += 8
        l = (l + 1) & 3
    r = n
    for l in range(4):
        r = ((((r ^ h[l]) * 0xFF51AFD7ED558CCD) & M) ^ (r >> 33))
    return r

"""Kernel discovery does not populate guest RAM on the host.

Discovery scans guest RAM for VMCOREINFO. Reading a page the guest never
touched makes the host allocate it: a tmpfs RAM file (/dev/shm, memfd) grows
by that page, private RAM gets the zero page mapped (and page tables) in QEMU.
The scan asks vmw_mem_populated first and reads only populated pages, so on a
fresh 5 GiB guest (~300 MiB populated after boot) `vmwatch info --no-cache`
must leave the host's allocation about where it was:
  - shm, memfd: the RAM file's allocated blocks (st_blocks) grow by < 64 MiB,
    through qemu:PID and (shm) file:PATH;
  - private: QEMU's page tables (VmPTE) grow by < 2 MiB (a full scan maps
    the zero page over all 5 GiB: ~10 MiB of page tables).
Before this, the shm file grew to the full 5 GiB and the scan took 3.5-21 s.
"""
import json
import os
import subprocess
import time

import pytest

from schemas import validate

BOUND = 64 << 20          # bytes a discovery may populate (page tables, kallsyms, BTF: all populated anyway)
PTE_BOUND_KB = 2048


def ram_file_blocks(g):
    """Allocated bytes of the guest's RAM file (shm path, or QEMU's memfd)."""
    if g.ram_path:
        return os.stat(g.ram_path).st_blocks * 512
    fd_dir = f'/proc/{g.pid}/fd'
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f'{fd_dir}/{fd}').startswith('/memfd:'):
                return os.stat(f'{fd_dir}/{fd}').st_blocks * 512
        except OSError:
            continue
    raise AssertionError(f'no memfd among the fds of QEMU {g.pid}')


def vm_pte_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmPTE:'):
                return int(line.split()[1])
    raise AssertionError('no VmPTE in /proc/PID/status')


def info(vmwatch, target):
    t0 = time.monotonic()
    p = subprocess.run([str(vmwatch), 'info', '--json', '--no-cache', target],
                       capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - t0
    assert p.returncode == 0, f'vmwatch info {target} failed ({p.returncode}): {p.stderr}'
    out = validate('info', json.loads(p.stdout))
    d = {**out['vm'], **out['kernel']}
    print(f'{target}: attach {d["attach_ms"]:.0f} ms, scan {d["timings_ms"]["vmcoreinfo_scan"]:.0f} ms, '
          f'wall {wall * 1000:.0f} ms')
    return d


@pytest.mark.slow
@pytest.mark.parametrize('backing', ['shm', 'memfd'])
def test_discovery_does_not_grow_ram_file(fresh_guest, vmwatch, backing):
    g = fresh_guest(kernel='6.1', mem='5G', backing=backing)
    before = ram_file_blocks(g)
    # The test means something only if most of the RAM is still unallocated.
    assert before < (2 << 30), f'RAM file already {before >> 20} MiB allocated'
    targets = [f'qemu:{g.pid}'] + ([f'file:{g.ram_path}'] if g.ram_path else [])
    for target in targets:
        d = info(vmwatch, target)
        after = ram_file_blocks(g)
        print(f'{target}: RAM file allocated {before >> 20} -> {after >> 20} MiB')
        assert after - before < BOUND, \
            f'{target}: RAM file grew by {(after - before) >> 20} MiB ({before >> 20} -> {after >> 20} MiB)'
        assert d['release'] == g.truth().release
        before = ram_file_blocks(g)


@pytest.mark.slow
def test_discovery_does_not_populate_private_ram(fresh_guest, vmwatch):
    g = fresh_guest(kernel='6.1', mem='5G', backing='private')
    before = vm_pte_kb(g.pid)
    d = info(vmwatch, f'qemu:{g.pid}')
    after = vm_pte_kb(g.pid)
    print(f'QEMU VmPTE {before} -> {after} kB')
    assert after - before < PTE_BOUND_KB, f'QEMU page tables grew {before} -> {after} kB'
    assert d['release'] == g.truth().release

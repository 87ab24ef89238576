"""Fuzzing discovery + the process walk (libFuzzer, ASan + UBSan) over mutated
guest-memory images, seeded from real Debian 6.1 and 6.12 guests.

  - build-fuzz/ (clang, sanitizers, libFuzzer coverage) is built by
    tests/fuzz/setup.sh if it is not there yet;
  - make_seed traces the pages that discovery and a walk (threads, command
    lines) read in a paused guest and writes them as a sparse image (a few
    MiB, made here rather than kept in the repository); once more with the
    structural kallsyms fallback;
  - the fuzz target run on an unmutated seed alone finds the guest's
    processes (the same ones as on the whole guest, and those of its /proc);
  - the fuzzer runs for a bounded time on each seed: it must exit 0 with no
    crash-, timeout-, leak- or oom- artifact. An input taking more than
    max(5 s, 10x the seed's own run) counts as a hang.

VMWATCH_FUZZ_SECONDS (default 60) is the fuzzing time, split across the
seeds; VMWATCH_FUZZ_BUILD (default build-fuzz) the build directory. Longer
runs: tests/fuzz/README.md.
"""
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KERNELS = ['6.1', '6.12']
MAX_LEN = 24 << 20
FUZZ_SECONDS = float(os.environ.get('VMWATCH_FUZZ_SECONDS', '60'))


@pytest.fixture(scope='session')
def fuzz_build():
    if not shutil.which('clang'):
        pytest.skip('clang is not installed (scripts/setup.sh installs it)')
    build = Path(os.environ.get('VMWATCH_FUZZ_BUILD') or REPO / 'build-fuzz')
    if not build.is_absolute():
        build = REPO / build
    p = subprocess.run([str(REPO / 'tests/fuzz/setup.sh'), str(build)], capture_output=True,
                       text=True, timeout=1800)
    assert p.returncode == 0, f'tests/fuzz/setup.sh failed:\n{p.stdout}\n{p.stderr}'
    return build / 'tests' / 'fuzz'


def fuzz_env(**extra):
    env = dict(os.environ)
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=1')
    env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1:halt_on_error=1')
    env.update(extra)
    return env


def parse_walk(text):
    """procs=N ... from a fuzz_result_print() block."""
    m = re.search(r'walk: procs=(\d+) threads=(\d+) cmdlines=(\d+) skipped=(\d+) '
                  r'truncated=(\d) fingerprint=([0-9a-f]+)', text)
    assert m, f'no walk result in:\n{text}'
    return {'procs': int(m[1]), 'threads': int(m[2]), 'cmdlines': int(m[3]),
            'skipped': int(m[4]), 'truncated': m[5] == '1', 'fingerprint': m[6]}


def make_seed(fuzz, g, out, *args):
    with g.paused():
        p = subprocess.run([str(fuzz / 'make_seed'), *args, f'file:{g.ram_path}', str(out)],
                           capture_output=True, text=True, timeout=600, env=fuzz_env())
    assert p.returncode == 0, f'make_seed {" ".join(args)} failed:\n{p.stderr}'
    # the first result block is the run on the whole guest
    whole = parse_walk(p.stderr.split('make_seed: image of')[0])
    return whole, p.stderr


def run_seed(fuzz, seed):
    """The fuzz target on one unmutated input: (result, processes, ms)."""
    p = subprocess.run([str(fuzz / 'fuzz_walk'), str(seed)], capture_output=True, text=True,
                       timeout=300, env=fuzz_env(FUZZ_VERBOSE='2'))
    assert p.returncode == 0, p.stderr
    procs = {}
    for line in p.stderr.splitlines():
        if line.startswith('proc '):
            _, pid, ppid, nthreads, comm = line.split(' ', 4)
            procs[int(pid)] = (int(ppid), int(nthreads), comm)
    ms = int(re.search(r'Executed .* in (\d+) ms', p.stderr)[1])
    return parse_walk(p.stderr), procs, ms, p.stderr


@pytest.fixture(scope='module', params=KERNELS)
def seeded(request, guest, fuzz_build, tmp_path_factory):
    """A shared guest of that kernel, its /proc, and seeds made from it."""
    kernel = request.param
    g = guest(kernel=kernel, mem='512M', machine='pc', backing='shm')
    d = tmp_path_factory.mktemp(f'seed-{kernel}')
    truth = g.truth()
    seed, fallback = d / 'seed.img', d / 'fallback.img'
    whole, log = make_seed(fuzz_build, g, seed)
    whole_fb, log_fb = make_seed(fuzz_build, g, fallback, '--fallback')
    yield {'kernel': kernel, 'guest': g, 'truth': truth, 'dir': d, 'seed': seed,
           'fallback': fallback, 'whole': whole, 'whole_fb': whole_fb, 'log': log}
    shutil.rmtree(d, ignore_errors=True)


def test_seed_alone_finds_the_guests_processes(seeded, fuzz_build):
    seed, truth = seeded['seed'], seeded['truth']
    size = seed.stat().st_size
    assert 1 << 20 < size < MAX_LEN, f'seed of {size} bytes'
    got, procs, ms, log = run_seed(fuzz_build, seed)
    print(f"\n  {seeded['kernel']}: seed of {size / 2**20:.1f} MiB, {got['procs']} processes, "
          f"{got['threads']} threads, {got['cmdlines']} command lines, {ms} ms per run")
    assert 'kallsyms via VMCOREINFO' in log
    # exactly what the walk finds on the whole guest
    assert got == seeded['whole'], log
    assert not got['truncated'] and got['skipped'] == 0
    assert len(procs) == got['procs'] and got['cmdlines'] > 0
    # and what the guest's own /proc showed just before the pause
    want = {pid: p for pid, p in truth.procs.items() if pid != truth.agent_pid}
    common = set(want) & set(procs)
    assert {1, 2} <= common
    assert len(common) >= 0.9 * len(want), (sorted(want), sorted(procs))
    assert len(common) >= 0.9 * len(procs), (sorted(want), sorted(procs))
    for pid in common:
        if not want[pid].kthread:
            assert procs[pid][2] == want[pid].comm, pid
            assert procs[pid][0] == want[pid].ppid, pid


def test_fallback_seed_alone_finds_the_same_processes(seeded, fuzz_build):
    got, procs, ms, log = run_seed(fuzz_build, seeded['fallback'])
    assert 'kallsyms located by structure' in log
    assert got == seeded['whole_fb'] == seeded['whole']


def test_fuzzing_finds_no_crash_or_hang(seeded, fuzz_build, tmp_path):
    seconds = max(5, int(FUZZ_SECONDS / len(KERNELS)))
    _, _, ms, _ = run_seed(fuzz_build, seeded['seed'])
    timeout = max(5, math.ceil(10 * ms / 1000))
    seeds, corpus, art = tmp_path / 'seeds', tmp_path / 'corpus', tmp_path / 'artifacts'
    for x in (seeds, corpus, art):
        x.mkdir()
    shutil.copy(seeded['seed'], seeds / 'seed.img')
    argv = [str(fuzz_build / 'fuzz_walk'), f'-max_len={MAX_LEN}', f'-timeout={timeout}',
            '-rss_limit_mb=2048', f'-max_total_time={seconds}', '-print_final_stats=1',
            f'-artifact_prefix={art}/', str(corpus), str(seeds)]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 300,
                           env=fuzz_env())
        log = p.stderr
        artifacts = sorted(x.name for x in art.iterdir())
        stats = dict(re.findall(r'^stat::(\w+):\s*(\d+)', log, re.M))
        print(f"\n  {seeded['kernel']}: {stats.get('number_of_executed_units')} inputs in "
              f"{stats.get('average_exec_per_sec')}/s, "
              f"{len(list(corpus.iterdir()))} new, timeout {timeout} s, "
              f"{log.strip().splitlines()[-1] if log.strip() else ''}")
        tail = '\n'.join(log.splitlines()[-60:])
        assert not artifacts, f'fuzzer artifacts {artifacts}:\n{tail}'
        assert p.returncode == 0, f'fuzzer exited {p.returncode}:\n{tail}'
        assert int(stats.get('number_of_executed_units', 0)) > 1, tail
    finally:
        # new inputs are a few MiB each: do not leave them to pytest's tmp retention
        shutil.rmtree(corpus, ignore_errors=True)

#!/bin/bash
# Configure and build the fuzz build directory (default build-fuzz): clang,
# the library and the targets with ASan + UBSan (UB is fatal) and libFuzzer
# coverage. Idempotent. Prints nothing on success.
#   tests/fuzz/setup.sh [BUILDDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build-fuzz}
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang meson setup "$dir" -Dfuzz=true -Dtests=false --buildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args="-fsanitize=fuzzer-no-link -fsanitize-coverage-ignorelist=$PWD/tests/fuzz/coverage-ignore.txt -fno-sanitize-recover=all -fno-omit-frame-pointer" \
    >/dev/null
fi
ninja -C "$dir" tests/fuzz/fuzz_walk tests/fuzz/make_seed >/dev/null

#!/bin/bash
# Every test: install, build (normal + ASan/UBSan), run the cmocka unit tests
# and the integration tests against real QEMU guests (with the sanitizer
# build of vmwatch). Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --asan || exit 1

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Lab guests running before the tests (booted by hand, say) are left alone.
guests() {
    lab/vmlab.sh list --json 2>/dev/null |
        /usr/bin/python3 -c 'import json, sys; print("\n".join(g["name"] for g in json.load(sys.stdin)))' 2>/dev/null |
        sort
}
guests_before=$(guests)

# Unit tests (cmocka, ASan+UBSan build).
meson test -C build-asan --suite unit --print-errorlogs 2>&1 | tee "$out/unit.log"
upass=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$out/unit.log" | tail -1)
ufail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$out/unit.log" | tail -1)
utime=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$out/unit.log" | tail -1)
ufail=$(( ${ufail:-0} + ${utime:-0} ))

# Integration tests (real guests), with the sanitizer build of the command.
export VMWATCH="$PWD/build-asan/vmwatch"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=99"
/usr/bin/python3 -m pytest tests/integration -q -rfE --durations=15 --junitxml="$out/it.xml" "$@" 2>&1 | tee "$out/it.log"
read -r ipass ifail < <(/usr/bin/python3 - "$out/it.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1); sys.exit()
s = r if r.tag == "testsuite" else r.find("testsuite")
t, f, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
print(t - f - e - sk, f + e)
PY
)
# The tests stop their guests; stop any they left behind (a killed run, say).
left=$(comm -13 <(echo "$guests_before") <(guests))
if [ -n "$left" ]; then
    # shellcheck disable=SC2086
    lab/vmlab.sh stop $left >/dev/null 2>&1 || true
fi

passed=$(( ${upass:-0} + ipass )); failed=$(( ufail + ifail ))
echo "unit: ${upass:-0} passed, ${ufail} failed; integration: $ipass passed, $ifail failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]

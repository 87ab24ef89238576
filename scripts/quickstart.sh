#!/bin/bash
# The main job on a fresh Debian 12 machine: install, build, make sure a VM
# runs (boots a lab guest when none exists), then watch its processes with
# vmwatch top (batch mode: three frames one second apart).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

# A running lab guest, if any.
pid=$(lab/vmlab.sh list --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
g = [x for x in json.load(sys.stdin) if x.get("alive")]
g.sort(key=lambda x: x["name"] != "quickstart")
print(g[0]["pid"] if g else "")' || true)
if [ -z "$pid" ]; then
  echo "quickstart: no VM running; booting a lab guest (Debian 6.1 kernel, 512 MiB, TCG)..." >&2
  lab/vmlab.sh boot --name quickstart --kernel 6.1 --mem 512M --run 'swarm 50' --run 'burn 30' >&2
  pid=$(lab/vmlab.sh list --json | /usr/bin/python3 -c '
import json, sys
print([x for x in json.load(sys.stdin) if x["name"] == "quickstart"][0]["pid"])')
fi
echo "quickstart: watching QEMU pid $pid" >&2
./build/vmwatch info "qemu:$pid"
echo
./build/vmwatch top -b -n 3 -d 1 "qemu:$pid"
echo
echo "quickstart: interactive view: ./build/vmwatch top qemu:$pid" >&2
echo "quickstart: the guest keeps running; stop it with: lab/vmlab.sh stop --all" >&2

#!/bin/sh
# vmlab.sh -- command line of the vmwatch lab (see lab/README.md). The lab
# is the Python package lab/vmlab/; this runs its __main__.py with the
# system Python (stdlib only), from wherever it is called.
exec /usr/bin/python3 "$(dirname "$(readlink -f "$0")")/vmlab" "$@"

#!/bin/sh
# The version from git: `git describe` of the newest v* tag without its "v"
# (v0.2.0-3-gabc1234 -> 0.2.0-3-gabc1234). Fails outside a git checkout or
# without such a tag; meson.build then uses the project() version.
cd "$(dirname "$0")/.." || exit 1
v=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null) || exit 1
echo "${v#v}"

/* SPDX-License-Identifier: MIT */
/*
 * version.h - the version of this build, for --version, logs and metrics:
 * `git describe` of the newest v* tag in a git checkout (scripts/version.sh),
 * re-read by every build (meson's vcs_tag writes version.c from
 * version.c.in, and only when the text changed), else the project() version
 * of meson.build (a release tarball, the Debian package's build).
 */
#pragma once

extern const char vmwatch_version[];
#define VMWATCH_VERSION vmwatch_version

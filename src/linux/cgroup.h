/* SPDX-License-Identifier: MIT */
/*
 * cgroup.h - what a cgroup v2 path says about a process: its systemd unit
 * and slice, and for containers the runtime, container id and Kubernetes
 * pod UID (from the names systemd, docker, podman, containerd/CRI and the
 * kubelet give cgroups). Pure string work on a path the walk read
 * (vmw_proc.cgroup); the path is guest text, so every result is checked
 * (units and slices by their suffix, ids as hex, pod UIDs as UUIDs).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct vmw_cgroup_info {
	char unit[128];           /* "ssh.service", "session-3.scope", "" */
	char slice[128];          /* the innermost slice above it: "system.slice", "" */
	char runtime[16];         /* "docker", "podman", "containerd", "crio", "" */
	char container_id[65];    /* 64 (or 12+) hex digits, "" */
	char pod_uid[37];         /* kubepods: the pod's UID with dashes, "" */
};

/* Classify path ("/system.slice/ssh.service"); false when it says nothing. */
bool vmw_cgroup_classify(const char *path, struct vmw_cgroup_info *ret);

/* cgroup v1 lines of /proc/PID/cgroup (vmw_proc.cgroups_v1: "ID:controllers:path"
 * joined by '\n'). The controllers field as proc_cgroup_show() prints it: the
 * legacy names of the subsystems in mask (bit i: names[i]) joined by ',', then
 * "name=X" for a named hierarchy (name non-empty). -ENOSPC when it does not
 * fit size, -EINVAL for a name that no kernel prints (empty, ',', ':', '\n'). */
int vmw_cgroup_v1_controllers(char *buf, size_t size, unsigned long long mask, const char *const *names,
			      size_t nnames, const char *name);
/* One line of such text at *s (advanced past it): its hierarchy id, its
 * controllers and path (copies). false at the end or on a line that is not
 * "ID:controllers:path" or is too long for these fields. */
struct vmw_cgroup_v1_line {
	unsigned id;
	char controllers[1200];
	char path[4097];
};
bool vmw_cgroup_v1_next(const char **s, struct vmw_cgroup_v1_line *ret);
/* Whether all of s (non-NULL) reads as such lines; "" does (no v1 hierarchy). */
bool vmw_cgroup_v1_valid(const char *s);

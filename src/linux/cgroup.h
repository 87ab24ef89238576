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

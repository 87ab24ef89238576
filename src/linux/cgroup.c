/* SPDX-License-Identifier: MIT */
/* cgroup.c - systemd units, slices and containers from cgroup paths (see cgroup.h). */
#include "linux/cgroup.h"
#include "util/util.h"

#include <string.h>

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n > k && !memcmp(s + n - k, suffix, k);
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return n > 0;
}

static void put(char *dst, size_t size, const char *s, size_t n)
{
	n = MIN(n, size - 1);
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* "<prefix><64 hex>[.scope]" of a runtime, or a bare 64-hex component
 * (docker's cgroupfs driver: /docker/<id>, kubepods/.../<id>). */
static bool container(const char *c, size_t n, struct vmw_cgroup_info *r)
{
	static const struct { const char *prefix, *runtime; } rt[] = {
		{ "docker-", "docker" }, { "libpod-", "podman" }, { "cri-containerd-", "containerd" },
		{ "crio-", "crio" },
	};
	size_t body = ends_with(c, n, ".scope") ? n - 6 : n;

	for (size_t i = 0; i < ARRAY_SIZE(rt); i++) {
		size_t k = strlen(rt[i].prefix);
		if (body > k && !strncmp(c, rt[i].prefix, k) && body - k == 64 && all_hex(c + k, 64)) {
			put(r->runtime, sizeof(r->runtime), rt[i].runtime, strlen(rt[i].runtime));
			put(r->container_id, sizeof(r->container_id), c + k, 64);
			return true;
		}
	}
	if (n == 64 && all_hex(c, 64)) {
		put(r->container_id, sizeof(r->container_id), c, 64);
		return true;
	}
	return false;
}

/* "kubepods-besteffort-pod<uid with _>.slice" or "pod<uid>" (cgroupfs). */
static void pod(const char *c, size_t n, struct vmw_cgroup_info *r)
{
	const char *p = NULL;
	char uid[37];

	for (size_t i = 0; i + 3 < n; i++)
		if (!strncmp(c + i, "pod", 3) && (i == 0 || c[i - 1] == '-'))
			p = c + i + 3;
	if (!p)
		return;
	size_t len = (size_t)(c + n - p);
	if (ends_with(p, len, ".slice"))
		len -= 6;
	if (len != 36)
		return;
	for (size_t i = 0; i < 36; i++) {
		char ch = p[i] == '_' ? '-' : p[i];
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? ch != '-' : !all_hex(&ch, 1))
			return;
		uid[i] = ch;
	}
	put(r->pod_uid, sizeof(r->pod_uid), uid, 36);
}

bool vmw_cgroup_classify(const char *path, struct vmw_cgroup_info *r)
{
	static const char *const unit_suffixes[] = { ".service", ".scope", ".socket", ".mount",
						     ".swap", ".device" };
	bool kube = false;

	memset(r, 0, sizeof(*r));
	for (const char *c = path; c && *c;) {
		size_t n;
		while (*c == '/')
			c++;
		n = strcspn(c, "/");
		if (!n)
			break;
		if (!strncmp(c, "kubepods", 8))
			kube = true;
		if (kube)
			pod(c, n, r);
		if (container(c, n, r) && kube && !r->runtime[0])
			put(r->runtime, sizeof(r->runtime), "kubernetes", 10);
		if (ends_with(c, n, ".slice") && !r->unit[0]) {
			put(r->slice, sizeof(r->slice), c, n);
		} else {
			for (size_t i = 0; i < ARRAY_SIZE(unit_suffixes); i++)
				if (ends_with(c, n, unit_suffixes[i]) && !r->unit[0])
					put(r->unit, sizeof(r->unit), c, n);
		}
		c += n;
	}
	return r->unit[0] || r->slice[0] || r->container_id[0] || r->pod_uid[0];
}

/* SPDX-License-Identifier: MIT */
/*
 * mem_cmdline.c - what a QEMU command line says about guest RAM: machine
 * type, RAM size, max-ram-below-4g and the memory backend. Pure functions
 * (no /proc), so they are unit-tested on literal command lines.
 *
 * Options are in QemuOpts syntax ("pc,accel=tcg,memory-backend=mem", ",,"
 * escapes a comma, the first bare word is the implied key) or, for -object
 * and friends as libvirt writes them, JSON ('{"qom-type":...}').
 */
#include "mem/mem_internal.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#define MiB (1ULL << 20)

/* Copy with truncation (QEMU ids and machine names are short). */
static void copy_str(char *dst, size_t n, const char *src)
{
	size_t len = strnlen(src, n - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

bool vmw_qemu_is_emulator(const char *prog)
{
	const char *base;

	if (!prog || !*prog)
		return false;
	base = strrchr(prog, '/');
	base = base ? base + 1 : prog;
	return !strncmp(base, "qemu-system-", 12) || !strcmp(base, "qemu-kvm") ||
	       !strcmp(base, "kvm");
}

int vmw_qemu_parse_size(const char *s, uint64_t default_unit, uint64_t *ret)
{
	uint64_t whole = 0, unit = default_unit;
	double frac = 0;
	const char *p = s;
	bool hex = false;

	if (!s || !*s)
		return -EINVAL;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		hex = true;
		p += 2;
		if (!*p)
			return -EINVAL;
		for (; *p && strchr("0123456789abcdefABCDEF", *p); p++) {
			unsigned d = *p <= '9' ? (unsigned)(*p - '0') : (unsigned)((*p | 0x20) - 'a' + 10);
			if (whole > (UINT64_MAX - d) / 16)
				return -ERANGE;
			whole = whole * 16 + d;
		}
	} else {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (whole > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
				return -ERANGE;
			whole = whole * 10 + (uint64_t)(*p - '0');
		}
		if (*p == '.') {
			double scale = 0.1;
			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
				frac += (*p - '0') * scale;
		}
	}
	switch (*p) {
	case '\0': break;
	case 'b': case 'B': unit = 1; p++; break;
	case 'k': case 'K': unit = 1ULL << 10; p++; break;
	case 'm': case 'M': unit = 1ULL << 20; p++; break;
	case 'g': case 'G': unit = 1ULL << 30; p++; break;
	case 't': case 'T': unit = 1ULL << 40; p++; break;
	case 'p': case 'P': unit = 1ULL << 50; p++; break;
	case 'e': case 'E': unit = 1ULL << 60; p++; break;
	default: return -EINVAL;
	}
	if (*p || (hex && frac))
		return -EINVAL;
	if (frac && unit == 1)
		return -EINVAL;  /* "1.5" bytes */
	if (whole > UINT64_MAX / unit)
		return -ERANGE;
	*ret = whole * unit + (uint64_t)(frac * (double)unit);
	return 0;
}

/*
 * Value of `key` in one option argument, QemuOpts or JSON; the last
 * occurrence wins, as in QEMU. A bare word is the implied key when first,
 * else "key=on". Returns true and fills out when found.
 */
static bool json_get(const char *arg, const char *key, char *out, size_t outlen)
{
	json_t *root = json_loads(arg, 0, NULL), *v;
	bool found = false;

	if (!root)
		return false;
	v = json_object_get(root, key);
	if (json_is_string(v))
		found = snprintf(out, outlen, "%s", json_string_value(v)) >= 0;
	else if (json_is_integer(v))
		found = snprintf(out, outlen, "%lld", (long long)json_integer_value(v)) >= 0;
	else if (json_is_boolean(v))
		found = snprintf(out, outlen, "%s", json_is_true(v) ? "on" : "off") >= 0;
	json_decref(root);
	return found;
}

static bool opt_get(const char *arg, const char *implied, const char *key, char *out, size_t outlen)
{
	bool found = false, first = true;
	const char *p = arg;

	if (arg[0] == '{')
		return json_get(arg, key, out, outlen);
	while (*p) {
		char k[128], v[4096];
		size_t kn = 0, vn = 0;
		bool has_eq = false;

		/* One element up to an unescaped ',' (",," is a literal comma). */
		for (; *p; p++) {
			if (*p == ',') {
				if (p[1] == ',') {
					p++;
				} else {
					p++;
					break;
				}
			} else if (*p == '=' && !has_eq) {
				has_eq = true;
				continue;
			}
			if (!has_eq && kn + 1 < sizeof(k))
				k[kn++] = *p;
			else if (has_eq && vn + 1 < sizeof(v))
				v[vn++] = *p;
		}
		k[kn] = v[vn] = '\0';
		if (!has_eq) {
			if (first && implied) {
				memcpy(v, k, kn + 1);
				copy_str(k, sizeof(k), implied);
			} else {
				snprintf(v, sizeof(v), "on");
			}
		}
		first = false;
		if (!strcmp(k, key)) {
			snprintf(out, outlen, "%s", v);
			found = true;
		}
	}
	return found;
}

static int parse_bool(const char *v, bool *ret)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "y"))
		*ret = true;
	else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "n"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

/* The options of a QEMU command line that decide where guest RAM lives. */
struct ram_options {
	const char *m_arg, *mem_path;
	char numa_memdev[sizeof(((struct vmw_qemu_config *)0)->backend_id)];
	unsigned numa_memdevs;
	const char **objects;         /* every -object argument */
	size_t nobjects;
};

static int scan_options(size_t argc, const char *const *argv, struct vmw_qemu_config *cfg,
			struct ram_options *o, struct vmw_error *err)
{
	char v[4096];

	for (size_t i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *arg = i + 1 < argc ? argv[i + 1] : NULL;

		if (opt[0] != '-')
			continue;
		opt += opt[1] == '-' ? 2 : 1;  /* QEMU takes -opt and --opt */

		if (!strcmp(opt, "machine") || !strcmp(opt, "M")) {
			if (!arg)
				break;
			if (opt_get(arg, "type", "type", v, sizeof(v)) && *v)
				copy_str(cfg->machine, sizeof(cfg->machine), v);
			if (opt_get(arg, "type", "memory-backend", v, sizeof(v)))
				copy_str(cfg->backend_id, sizeof(cfg->backend_id), v);
			if (opt_get(arg, "type", "max-ram-below-4g", v, sizeof(v)) &&
			    vmw_qemu_parse_size(v, 1, &cfg->max_ram_below_4g) < 0)
				return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -EINVAL,
					"cannot parse max-ram-below-4g=%s in -machine %s", v, arg);
			i++;
		} else if (!strcmp(opt, "m")) {
			if (!arg)
				break;
			o->m_arg = arg;
			i++;
		} else if (!strcmp(opt, "object")) {
			if (!arg)
				break;
			o->objects[o->nobjects++] = arg;
			i++;
		} else if (!strcmp(opt, "numa")) {
			if (!arg)
				break;
			if (opt_get(arg, "type", "memdev", v, sizeof(v))) {
				o->numa_memdevs++;
				copy_str(o->numa_memdev, sizeof(o->numa_memdev), v);
			}
			i++;
		} else if (!strcmp(opt, "mem-path")) {
			if (!arg)
				break;
			o->mem_path = arg;
			i++;
		}
	}
	return 0;
}

/* Type, sharing and size of the memory backend cfg->backend_id names. */
static int parse_backend(const struct ram_options *o, struct vmw_qemu_config *cfg, struct vmw_error *err)
{
	const char *obj = NULL;
	uint64_t size = 0;
	char v[4096];

	for (size_t i = 0; i < o->nobjects; i++)
		if (opt_get(o->objects[i], "qom-type", "id", v, sizeof(v)) && !strcmp(v, cfg->backend_id))
			obj = o->objects[i];
	if (!obj)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -EINVAL,
			"memory backend '%s' is not defined by any -object", cfg->backend_id);
	if (!opt_get(obj, "qom-type", "qom-type", v, sizeof(v)))
		v[0] = '\0';
	if (!strcmp(v, "memory-backend-file")) {
		cfg->backend = VMW_BACKEND_FILE;
		cfg->share = false;
	} else if (!strcmp(v, "memory-backend-memfd")) {
		cfg->backend = VMW_BACKEND_MEMFD;
		cfg->share = true;
	} else if (!strcmp(v, "memory-backend-ram")) {
		cfg->backend = VMW_BACKEND_RAM;
		cfg->share = false;
	} else {
		return vmw_error_set(err, -ENOTSUP,
			"memory backend '%s' has type '%s': vmwatch handles memory-backend-file, "
			"-memfd and -ram", cfg->backend_id, v);
	}
	if (opt_get(obj, "qom-type", "share", v, sizeof(v)) && parse_bool(v, &cfg->share) < 0)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -EINVAL,
				      "cannot parse share=%s in -object %s", v, obj);
	if (opt_get(obj, "qom-type", "mem-path", v, sizeof(v)))
		copy_str(cfg->mem_path, sizeof(cfg->mem_path), v);
	if (!opt_get(obj, "qom-type", "size", v, sizeof(v)) ||
	    vmw_qemu_parse_size(v, 1, &size) < 0 || size == 0)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -EINVAL,
				      "cannot find the size of memory backend '%s' in -object %s",
				      cfg->backend_id, obj);
	/* The backend's size is the RAM size (QEMU insists -m agrees). */
	cfg->ram_size = size;
	return 0;
}

/* A command line QEMU accepted but vmwatch cannot parse is an unsupported
 * QEMU set-up, not a usage error of vmwatch's own arguments. */
int vmw_qemu_parse_cmdline(size_t argc, const char *const *argv,
			   struct vmw_qemu_config *ret, struct vmw_error *err)
{
	struct vmw_qemu_config cfg = { .machine = "pc" };
	_cleanup_free_ const char **objects = calloc(argc ? argc : 1, sizeof(*objects));
	struct ram_options o = { .objects = objects };
	char v[4096];
	int r;

	if (!objects)
		return -ENOMEM;
	if ((r = scan_options(argc, argv, &cfg, &o, err)) < 0)
		return r;

	/* -m [size=]N[unit]: a bare number is MiB; QEMU rounds up to 8 KiB. */
	if (o.m_arg && opt_get(o.m_arg, "size", "size", v, sizeof(v))) {
		if ((r = vmw_qemu_parse_size(v, MiB, &cfg.ram_size)) < 0 || cfg.ram_size == 0)
			return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -EINVAL,
					      "cannot parse the RAM size in -m %s", o.m_arg);
		cfg.ram_size = (cfg.ram_size + 8191) & ~8191ULL;
	}

	if (!cfg.backend_id[0] && o.numa_memdevs) {
		if (o.numa_memdevs > 1)
			return vmw_error_set(err, -ENOTSUP,
				"the guest's RAM is split over %u NUMA memory backends (-numa node,memdev=...): "
				"not supported yet", o.numa_memdevs);
		copy_str(cfg.backend_id, sizeof(cfg.backend_id), o.numa_memdev);
	}

	if (cfg.backend_id[0]) {
		if ((r = parse_backend(&o, &cfg, err)) < 0)
			return r;
	} else if (o.mem_path) {
		/* Legacy -mem-path: a memory-backend-file, mapped private. */
		cfg.backend = VMW_BACKEND_FILE;
		copy_str(cfg.mem_path, sizeof(cfg.mem_path), o.mem_path);
	}

	if (!cfg.ram_size)
		cfg.ram_size = 128 * MiB;  /* pc and q35 default_ram_size */
	*ret = cfg;
	return 0;
}

bool vmw_qemu_opt_get(const char *arg, const char *implied, const char *key, char *out, size_t outlen)
{
	return opt_get(arg, implied, key, out, outlen);
}

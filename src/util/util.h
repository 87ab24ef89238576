/* SPDX-License-Identifier: MIT */
/*
 * util.h - the small shared vocabulary of libvmwatch: error values and
 * scope-based cleanup.
 *
 * Error convention (used by every layer):
 *   - Functions that can fail return an int: 0 (or a non-negative count) on
 *     success, a negative errno value on failure (systemd style).
 *   - Functions that a user can make fail (opening a target, finding a kernel)
 *     also take a `struct vmw_error *err` (may be NULL) that receives a
 *     one-line message naming the object and, where possible, what to do.
 *     Messages are never printed inside the library; front ends print them.
 *   - Hot-path readers (guest memory reads, translation) return only the code.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/*
 * What went wrong, set where the error arises (never derived from message
 * text). The names (vmw_error_kind_name) are stable: the agent's API reason
 * codes and the CLI's JSON errors are these strings.
 */
enum vmw_error_kind {
	VMW_ERR_NONE = 0,
	VMW_ERR_INTERNAL,       /* "error": anything not classified below */
	VMW_ERR_USAGE,          /* "usage": a bad argument or option value */
	VMW_ERR_NOT_FOUND,      /* "not_found": no such target (domain, process, file) */
	VMW_ERR_PERMISSION,     /* "permission": the host refuses access */
	VMW_ERR_GONE,           /* "gone": the VM / QEMU process went away */
	VMW_ERR_NOT_LINUX,      /* "not_linux": no Linux kernel (VMCOREINFO) found in guest RAM */
	VMW_ERR_NO_BTF,         /* "no_btf": the guest kernel carries no usable BTF */
	VMW_ERR_MISSING_LAYOUT, /* "missing_layout": BTF lacks a type or member that is needed */
	VMW_ERR_UNSUPPORTED,    /* "unsupported": a kind of target or kernel vmwatch cannot read */
	VMW_ERR_INCONSISTENT,   /* "inconsistent": guest (or cache) data that is hostile or torn */
	VMW_ERR_IO,             /* "io": reading guest memory or a host file failed */
	VMW_ERR_CRASHED,        /* "crashed": the process reading the guest crashed, hung or misbehaved */
	VMW_ERR__MAX
};

struct vmw_error {
	int code;                  /* negative errno, 0 when no error was recorded */
	enum vmw_error_kind kind;  /* VMW_ERR_NONE when no error was recorded */
	char msg[512];
};

/*
 * Record an error and return `code` (a negative errno) for `return vmw_error_set(...)`.
 * The kind is derived from the errno (vmw_error_kind_from_code); use
 * vmw_error_setk where the cause is known better than the errno says.
 */
int vmw_error_set(struct vmw_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int vmw_error_setk(struct vmw_error *err, enum vmw_error_kind kind, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Kind implied by an errno alone: EACCES/EPERM permission, ESRCH gone, ENOENT not_found, ... */
enum vmw_error_kind vmw_error_kind_from_code(int code);
/* Kind of a failure: err's recorded kind, else the one implied by code. */
enum vmw_error_kind vmw_error_kind_of(const struct vmw_error *err, int code);
/* Stable snake_case name of a kind ("not_linux"); "error" for VMW_ERR_INTERNAL. */
const char *vmw_error_kind_name(enum vmw_error_kind kind);
/* Prepend context ("while reading kallsyms: ") to a recorded message; returns err->code. */
int vmw_error_prefix(struct vmw_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Message of err, or strerror(-code) when no message was recorded. */
const char *vmw_error_msg(const struct vmw_error *err, int code);

/* Scope-based cleanup, after systemd/drgn. */
#define _cleanup_(f) __attribute__((cleanup(f)))
static inline void vmw_freep(void *p) { free(*(void **)p); }
static inline void vmw_closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void vmw_fclosep(FILE **f) { if (*f) fclose(*f); }
#define _cleanup_free_ _cleanup_(vmw_freep)
#define _cleanup_close_ _cleanup_(vmw_closep)
#define _cleanup_fclose_ _cleanup_(vmw_fclosep)

/* Cleanup for a library type with a free function: VMW_DEFINE_CLEANUP(struct vmw_mem, vmw_mem_close)
 * defines vmw_mem_closep() for `_cleanup_(vmw_mem_closep) struct vmw_mem *m = NULL;`. */
#define VMW_DEFINE_CLEANUP(type, func)                  \
	static inline void func##p(type **p)             \
	{                                                \
		if (*p)                                  \
			func(*p);                        \
	}

/* ---- the user's cache directory (cachefile.c) -------------------------------
 * ${XDG_CACHE_HOME:-~/.cache}/vmwatch/discovery (or opt_dir when given) into
 * buf: 0, -ENOENT without HOME, -ENAMETOOLONG. */
int vmw_cache_dir(const char *opt_dir, char *buf, size_t size);
/* StrictModes for the cache directory and its ancestors: 0 when it may be
 * used (or does not exist yet), -EPERM with `why` naming the culprit when
 * someone other than us or root owns or may write it. */
int vmw_cache_dir_trusted(const char *dir, char *why, size_t n);
/* mkdir -p, mode 0700. 0 or -errno. */
int vmw_cache_mkdir_p(const char *path);
/* Open a cache file for reading only when it is a regular file (no symlink
 * followed) that we or root own and nobody else may write; *st is its stat.
 * An fd, or -errno (-EPERM: not trusted). */
struct stat;
int vmw_cache_open_trusted(const char *path, struct stat *st);
/* Read up to n bytes (to the end of the file, across short reads and EINTR):
 * the count, or -errno. */
ssize_t vmw_read_full(int fd, void *buf, size_t n);
/* Write data to path atomically (path.tmp.PID, then rename), mode 0600. */
int vmw_cache_write_atomic(const char *path, const void *data, size_t len);

/* Take ownership out of a cleanup variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Counter delta that never goes negative (guest counters can go backwards). */
static inline uint64_t vmw_sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

/*
 * Cycle guard for walks of guest linked lists (Brent's algorithm): O(1)
 * memory, reports a cycle within a small multiple of its length. Feed every
 * node visited; true means the walk has looped and must stop.
 */
struct vmw_cycle {
	uint64_t saved;
	uint64_t power, steps;
};
static inline void vmw_cycle_init(struct vmw_cycle *c, uint64_t start)
{
	c->saved = start;
	c->power = 1;
	c->steps = 0;
}
static inline bool vmw_cycle_step(struct vmw_cycle *c, uint64_t node)
{
	if (node == c->saved)
		return true;
	if (++c->steps == c->power) {
		c->saved = node;
		c->power <<= 1;
		c->steps = 0;
	}
	return false;
}

/*
 * Guest strings (comm, argv, kernel release, user names) are attacker
 * controlled: a terminal must never receive their control bytes (a forged
 * ps row, a window title, a hyperlink).
 *
 * vmw_utf8_len: the length (1-4) of the printable UTF-8 character at p, or 0
 * when p holds a control character (C0, DEL, C1 U+0080-U+009F), invalid or
 * overlong UTF-8, a surrogate, or the end of the string.
 * vmw_text_sanitize: src as terminal-safe text in dst (always terminated),
 * the way procps shows it: every byte that does not start a printable
 * character becomes '?', printable UTF-8 (e.g. accented names) is kept.
 * Returns the length written.
 */
size_t vmw_utf8_len(const char *p);
size_t vmw_text_sanitize(char *dst, size_t size, const char *src);
/* Write s to f sanitized like vmw_text_sanitize, with no length limit. */
void vmw_text_fputs(const char *s, FILE *f);

/* Parse a size like "512M", "5G", "4096", "524288k" (binary units). 0 or -EINVAL. */
int vmw_parse_size(const char *s, uint64_t *ret);
/* Parse an unsigned number in C syntax (0x.. hex, decimal). 0 or -EINVAL. */
int vmw_parse_u64(const char *s, uint64_t *ret);
/* Parse seconds ("1", "0.5", "1e-2"): finite, > 0 and <= max_s, into
 * nanoseconds (at least 1 us). 0 or -EINVAL. */
int vmw_parse_seconds(const char *s, double max_s, uint64_t *ret_ns);

/*
 * Shared immutable strings with a reference count, for text many records
 * hold alike (the cgroup path of every process of one css_set). Not atomic:
 * every reference belongs to one thread. All accept NULL; vmw_rcstr_new
 * copies len bytes and a NUL, and returns NULL when out of memory.
 */
char *vmw_rcstr_new(const char *s, size_t len);
char *vmw_rcstr_ref(char *s);
void vmw_rcstr_unref(char *s);

/* ---- libraries loaded on demand ----
 * dlopen soname and set n function pointers (names[i] -> *slots[i]), all or
 * none: false with errbuf set if the library or one of the functions is
 * missing. The library is never closed (function pointers and its threads
 * outlive callers). For libraries only some runs need (libvirt, libxml2,
 * libbpf): a process that does not need one never maps or relocates it. */
#define VMW_DL_MAX 32   /* functions one vmw_dl_load call sets */
bool vmw_dl_load(const char *soname, const char *const *names, void **const *slots, size_t n,
		 char *errbuf, size_t en);
/* The same, for a library its caller unloads again (dlclose of the handle
 * returned, once nothing it made is alive and no slot will be called):
 * NULL with errbuf set, or the handle. */
void *vmw_dl_open(const char *soname, const char *const *names, void **const *slots, size_t n,
		  char *errbuf, size_t en);

/* Monotonic clock in nanoseconds. */
uint64_t vmw_now_ns(void);
/* Wall clock (CLOCK_REALTIME) in nanoseconds since the epoch. */
uint64_t vmw_wall_ns(void);

/* A 32-bit integer hash with good avalanche (lowbias32). */
static inline uint32_t vmw_hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/*
 * pid -> index map (open addressing over a power-of-two table), for
 * matching this frame's processes with the previous frame's: build it once
 * per frame with reset + put, then look up. Duplicate pids are allowed (a
 * torn guest list can hold them); get returns the first one put.
 */
struct vmw_pidmap {
	struct vmw_pidmap_slot { int32_t pid; uint32_t idx1; } *slot; /* idx1 = index + 1, 0 = empty */
	size_t cap, n;
};
/* Empty the map and size it for up to n entries. 0 or -ENOMEM (the map is then empty). */
int vmw_pidmap_reset(struct vmw_pidmap *m, size_t n);
/* Add pid -> index; false when the map is full (more puts than reset's n) or index too large. */
bool vmw_pidmap_put(struct vmw_pidmap *m, int32_t pid, size_t index);
/* Index of pid, or -1. */
static inline ptrdiff_t vmw_pidmap_get(const struct vmw_pidmap *m, int32_t pid)
{
	if (!m->cap)
		return -1;
	for (size_t h = vmw_hash32((uint32_t)pid) & (m->cap - 1);; h = (h + 1) & (m->cap - 1)) {
		if (!m->slot[h].idx1)
			return -1;
		if (m->slot[h].pid == pid)
			return (ptrdiff_t)m->slot[h].idx1 - 1;
	}
}
void vmw_pidmap_free(struct vmw_pidmap *m);

/* kvfile.c: read a file of `key = value` lines, calling fn for each (mode:
 * the file's permission bits, for secrets that need 0600). A negative return
 * of fn stops the read; err is then prefixed with FILE:LINE. */
typedef int (*vmw_kv_fn)(void *opaque, const char *key, const char *value, unsigned mode, struct vmw_error *err);
int vmw_kv_load(const char *path, vmw_kv_fn fn, void *opaque, struct vmw_error *err);
/* "5", "5s", "500ms", "15m", "1h" -> seconds; -EINVAL otherwise. */
int vmw_parse_duration(const char *s, double *ret);
/* A PEM file (at most 1 MiB, with a -----BEGIN line) into *ret (free it). */
/* The same from an open file (f NULL: errno says why it could not be opened);
 * f is not closed. */
int vmw_read_pem_from(FILE *f, const char *path, char **ret, struct vmw_error *err);
int vmw_read_pem(const char *path, char **ret, struct vmw_error *err);
/* Replace *dst (freed) by a copy of value: 0 or -ENOMEM (*dst kept). */
int vmw_set_str(char **dst, const char *value);

/* SPDX-License-Identifier: MIT */
/*
 * users.h - the guest's user and group names and its OS, from its own
 * /etc/passwd, /etc/group and /etc/os-release as its page cache holds them
 * (pagecache.h). The files are re-read only when their inode changes
 * (another inode, size or mtime). Guest text is hostile: lines and names are
 * bounded, a name is kept only if it is a plausible user name (printable,
 * no ':' or spaces, at most VMW_USER_NAME_MAX bytes), and at most
 * VMW_USERS_MAX entries are read per file.
 */
#pragma once

#include "linux/pagecache.h"

#define VMW_USER_NAME_MAX 32
#define VMW_USERS_MAX     65536

struct vmw_users;

struct vmw_os_release {
	char pretty_name[128];    /* PRETTY_NAME, "" if absent */
	char id[64];              /* ID */
	char version_id[64];      /* VERSION_ID */
};

int vmw_users_new(struct vmw_users **ret);
void vmw_users_free(struct vmw_users *u);
/* Re-read /etc/passwd, /etc/group and /etc/os-release through f if they
 * changed since the last call (or never were read). A file that cannot be read (not cached)
 * leaves the names known before. Returns true when the tables changed. */
bool vmw_users_refresh(struct vmw_users *u, struct vmw_files *f);
/* The name of uid / gid, or NULL when the guest's files do not name it. */
const char *vmw_users_name(const struct vmw_users *u, uint32_t uid);
const char *vmw_users_group(const struct vmw_users *u, uint32_t gid);
/* The uid the guest's /etc/passwd gives name (getpwnam): true and *ret, or
 * false when it names no such user (or was not read). */
bool vmw_users_uid(const struct vmw_users *u, const char *name, uint32_t *ret);
/* Parse one passwd (or group: name:x:id:...) text; replaces the user
 * (group) table. Returns the number of entries kept. Pure, for tests. */
size_t vmw_users_parse(struct vmw_users *u, bool groups, const char *text, size_t len);

/* The guest's OS as vmw_users_refresh last read it from /etc/os-release (or
 * /usr/lib/os-release), re-read only when that file's inode changes; NULL
 * until it could be read whole (not cached, not there: busybox guests). */
const struct vmw_os_release *vmw_users_os(const struct vmw_users *u);

/* /etc/os-release (or /usr/lib/os-release) of the guest. 0, or a negative
 * errno with err set (not cached, not there). */
int vmw_os_release_read(struct vmw_files *f, struct vmw_os_release *ret, struct vmw_error *err);
/* Parse os-release text (KEY=value, optionally quoted). Pure, for tests. */
void vmw_os_release_parse(const char *text, size_t len, struct vmw_os_release *ret);

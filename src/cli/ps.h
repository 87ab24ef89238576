/* SPDX-License-Identifier: MIT */
/*
 * ps.h - vmwatch ps's procps-compatible parts: output columns (-o, with
 * procps' names, headers and formulas), sort keys (--sort), selection
 * (-p, -u, -U, -C) and tree order (--forest, -H).
 */
#pragma once

#include "linux/linux.h"
#include "linux/summary.h"

#include <stdio.h>

/* What the formulas need beyond a process: the guest's clock and memory.
 * sum is NULL when the summary could not be read (its columns print "-"). */
struct ps_ctx {
	const struct vmw_summary *sum;
};

/* One output row: a process, or one of its threads (-L). */
struct ps_row {
	const struct vmw_proc *p;
	const struct vmw_thread *t;   /* NULL: the process itself */
	int depth;                    /* --forest / -H: generations below a root */
	size_t order;                 /* position in the task list (ties, trees) */
};

struct ps_key;
struct ps_sort;
struct ps_col {
	const struct ps_key *key;
	char header[64];
};

struct ps_format {
	struct ps_col *cols;
	size_t ncols;
	bool forest;                  /* args/cmd drawn with procps' " \_ " tree */
	bool indent;                  /* -H: args/cmd indented two spaces per level */
};

/* Append the columns of one -o argument ("pid,user,args", "pid=ID",
 * "pcpu=" for an empty header). Returns 0, or -EINVAL with err naming the
 * unknown column. */
int ps_format_add(struct ps_format *f, const char *spec, char *err, size_t errsize);
void ps_format_free(struct ps_format *f);
/* A column or sort key needs the guest's summary (uptime, btime, MemTotal). */
bool ps_needs_summary(const struct ps_format *f, const struct ps_sort *s);
void ps_print_header(const struct ps_format *f, FILE *out);
void ps_print_row(const struct ps_format *f, const struct ps_ctx *c, const struct ps_row *r, FILE *out);

/* The USER column's text for one of p's uids: the guest's name for it (from
 * its cached /etc/passwd, cut with '+' like procps), else the number. */
const char *ps_user_text(const struct vmw_proc *p, uint32_t uid, char *buf, size_t size);

/* procps' STAT text of a process (or one of its threads: its state and nice). */
void ps_stat_text(char state, int nice, const struct vmw_proc *p, char *buf, size_t size);
/* procps' TT text of a /proc/PID/stat tty_nr ("?" for none, "pts/0", "ttyS0"). */
const char *ps_tty_name(uint32_t tty_nr, char *buf, size_t size);

/* --sort: "+key,-key,..." (procps names; + or nothing: ascending). */
struct ps_sort {
	struct { const struct ps_key *key; bool desc; } k[16];
	size_t n;
};
int ps_sort_add(struct ps_sort *s, const char *spec, char *err, size_t errsize);
void ps_sort_rows(const struct ps_sort *s, const struct ps_ctx *c, struct ps_row *rows, size_t n);

/* Selection: a process is listed when it matches any given list, or when no
 * list was given. */
struct ps_select {
	int32_t *pids;      size_t npids;
	uint32_t *euids;    size_t neuids;
	uint32_t *ruids;    size_t nruids;
	char **comms;       size_t ncomms;
	/* -u/-U user names, resolved against the guest's /etc/passwd once it is
	 * read (ps_select_resolve_users): into euids (-u) or ruids (-U). */
	struct ps_user_name { char *name; bool real; } *unames;
	size_t nunames;
};
int ps_select_pids(struct ps_select *s, const char *list, char *err, size_t errsize);
int ps_select_users(struct ps_select *s, const char *list, bool real, char *err, size_t errsize);
int ps_select_comms(struct ps_select *s, const char *list, char *err, size_t errsize);
bool ps_selected(const struct ps_select *s, const struct vmw_proc *p);
/* The uids of the user names given to -u/-U, from the guest's passwd (u may be
 * NULL: none known). -ENOENT with err naming the first unknown user. */
int ps_select_resolve_users(struct ps_select *s, const struct vmw_users *u, char *err, size_t errsize);
void ps_select_free(struct ps_select *s);

/* Rows in tree order: each process after its parent (roots: parents not
 * listed), siblings in the given order; depth set. rows is reordered. */
int ps_forest(struct ps_row *rows, size_t n);

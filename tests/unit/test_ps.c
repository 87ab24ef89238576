/* SPDX-License-Identifier: MIT */
/*
 * vmwatch ps's procps columns, sort keys, selection and tree (src/cli/ps_*.c)
 * on processes built here: the formats procps prints at the edges (days,
 * %CPU above 99.9, start yesterday), and ppid loops a hostile guest can make.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ps.h"

#define S 1000000000ull

static char *render(const char *cols, const struct ps_ctx *c, struct ps_row *rows, size_t n, bool forest)
{
	struct ps_format f = { .forest = forest };
	char err[256], *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_int_equal(ps_format_add(&f, cols, err, sizeof(err)), 0);
	ps_print_header(&f, out);
	for (size_t i = 0; i < n; i++)
		ps_print_row(&f, c, &rows[i], out);
	fclose(out);
	ps_format_free(&f);
	return buf;
}

static struct vmw_proc proc(int32_t pid, int32_t ppid, const char *comm)
{
	struct vmw_proc p = { .pid = pid, .ppid = ppid, .state = 'S', .nr_threads = 1 };
	snprintf(p.comm, sizeof(p.comm), "%s", comm);
	return p;
}

static void test_times_and_percentages(void **state)
{
	/* Up 3 days 2 h; MemTotal 1000 kB; btime 1700000000 (UTC). */
	struct vmw_summary sum = { .uptime_ns = (3 * 86400 + 7200) * S + 999999999, .mem_total_kb = 1000,
				   .boot_time_s = 1700000000 };
	struct ps_ctx c = { &sum };
	struct vmw_proc p = proc(42, 1, "busy");
	struct ps_row r = { .p = &p };
	char *out;

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	/* Started 10 s after boot, 2 days of CPU; RSS 500 kB of 1000. */
	p.start_time_ns = 10 * S;
	p.utime_ns = 2 * 86400 * S + 5 * S / 1000;   /* 5 ms: under a tick, not counted */
	p.stime_ns = 3 * S;
	p.rss_anon_bytes = 500 * 1024;
	out = render("pid,pcpu,pmem,etime,time,start,stime", &c, &r, 1, false);
	/* elapsed (266400.99 - 10) s -> 266390; CPU 172803 s: 172803*1000/266390 = 648 -> 64.8 */
	assert_string_equal(out, "    PID %CPU %MEM     ELAPSED       TIME  STARTED STIME\n"
				 "     42 64.8 50.0  3-01:59:50 2-00:00:03   Nov 14 Nov14\n");
	free(out);
	/* A young process, 3 s old with 5 s of CPU on several vCPUs: 166 % prints without a
	 * decimal; it started within 24 h (Nov 18 00:13:17): hh:mm:ss, and today: hh:mm. */
	p.start_time_ns = sum.uptime_ns - 3 * S - S / 2;
	p.utime_ns = 5 * S;
	p.stime_ns = 0;
	out = render("pcpu,etime,etimes,start,stime", &c, &r, 1, false);
	assert_string_equal(out, "%CPU     ELAPSED ELAPSED  STARTED STIME\n"
				 " 166       00:03       3 00:13:17 00:13\n");
	free(out);
	/* No summary: the clock columns say "-". */
	c.sum = NULL;
	out = render("pid=ID,pcpu=,etime", &c, &r, 1, false);
	assert_string_equal(out, "     ID          ELAPSED\n     42    -           -\n");
	free(out);
}

/* TIME, ELAPSED and the command column as procps prints them (and as the
 * printf formats they replace did): hours only when there are some (ELAPSED)
 * or always (TIME), days before them; arguments joined by spaces; a process
 * without a command line as [comm]. */
static void test_clocks_and_command_text(void **state)
{
	struct vmw_summary sum = { .uptime_ns = 100000 * S, .mem_total_kb = 1000, .boot_time_s = 1700000000 };
	struct ps_ctx c = { &sum };
	struct vmw_proc p = proc(7, 1, "worker");
	struct ps_row r = { .p = &p };
	char *argv[] = { "/usr/bin/python3", "-m", "http.server", "", "8000", NULL };
	char *out;

	(void)state;
	p.start_time_ns = (100000 - 7261) * S;      /* 2 h 1 min 1 s ago */
	p.utime_ns = 86399 * S;                     /* 23:59:59 */
	out = render("etime,time,comm,args", &c, &r, 1, false);
	assert_string_equal(out, "    ELAPSED       TIME COMMAND         COMMAND\n"
				 "   02:01:01   23:59:59 worker          [worker]\n");
	free(out);
	p.start_time_ns = 0;                        /* 1 day 03:46:40 ago */
	p.utime_ns = 59 * S;
	p.cmdline = argv;
	out = render("etime,time,args", &c, &r, 1, false);
	assert_string_equal(out, "    ELAPSED       TIME COMMAND\n"
				 " 1-03:46:40   00:00:59 /usr/bin/python3 -m http.server  8000\n");
	free(out);
}

static void test_sort_select_and_errors(void **state)
{
	struct vmw_proc p[4] = { proc(1, 0, "init"), proc(7, 1, "b"), proc(5, 1, "a"), proc(9, 7, "a") };
	struct ps_row rows[4];
	struct ps_sort s = { 0 };
	struct ps_select sel = { 0 };
	struct ps_format f = { 0 };
	struct ps_ctx c = { 0 };
	char err[256];

	(void)state;
	p[1].euid = 1000;
	for (int i = 0; i < 4; i++)
		rows[i] = (struct ps_row){ .p = &p[i], .order = (size_t)i };
	assert_int_equal(ps_sort_add(&s, "comm,-pid", err, sizeof(err)), 0);
	ps_sort_rows(&s, &c, rows, 4);
	assert_int_equal(rows[0].p->pid, 9);
	assert_int_equal(rows[1].p->pid, 5);
	assert_int_equal(rows[2].p->pid, 7);
	assert_int_equal(rows[3].p->pid, 1);
	assert_int_equal(ps_sort_add(&s, "+nosuch", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown sort key 'nosuch'"));
	assert_int_equal(ps_format_add(&f, "pid,%CPU,bogus", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown column 'bogus'"));
	ps_format_free(&f);

	assert_true(ps_selected(&sel, &p[0]));              /* nothing selected: everything */
	assert_int_equal(ps_select_pids(&sel, "9", err, sizeof(err)), 0);
	assert_int_equal(ps_select_users(&sel, "1000", false, err, sizeof(err)), 0);
	assert_true(ps_selected(&sel, &p[3]) && ps_selected(&sel, &p[1]));   /* either list */
	assert_false(ps_selected(&sel, &p[0]));
	assert_int_equal(ps_select_pids(&sel, "1,x", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad process ID 'x'"));
	assert_int_equal(ps_select_users(&sel, ",", false, err, sizeof(err)), -EINVAL);
	assert_int_equal(ps_select_comms(&sel, "a", err, sizeof(err)), 0);
	assert_true(ps_selected(&sel, &p[2]));
	ps_select_free(&sel);
}

static void test_forest_and_ppid_loops(void **state)
{
	/* 1 <- 5 <- 9, and 7 <-> 8 a loop no root reaches (a hostile guest). */
	struct vmw_proc p[5] = { proc(9, 5, "leaf"), proc(7, 8, "x"), proc(1, 0, "init"), proc(8, 7, "y"),
				 proc(5, 1, "mid") };
	struct ps_row rows[5];
	struct ps_ctx c = { 0 };
	char *out;

	(void)state;
	for (int i = 0; i < 5; i++)
		rows[i] = (struct ps_row){ .p = &p[i], .order = (size_t)i };
	assert_int_equal(ps_forest(rows, 5), 0);
	out = render("pid,comm", &c, rows, 5, true);
	assert_string_equal(out, "    PID COMMAND\n"
				 "      1 init\n"
				 "      5  \\_ mid\n"
				 "      9      \\_ leaf\n"
				 "      7 x\n"
				 "      8  \\_ y\n");
	free(out);
}

/* STAT's letters as procps' pr_stat adds them, and the job-control columns. */
static void test_stat_letters_and_job_control(void **state)
{
	struct vmw_proc p[6] = { proc(1, 0, "init"), proc(400, 1, "sshd"), proc(500, 400, "bash"),
				 proc(510, 500, "vi"), proc(2, 0, "kthreadd"), proc(505, 500, "sub") };
	struct vmw_thread t = { .tid = 511, .state = 'R', .nice = -5 };
	struct ps_row rows[7];
	struct ps_ctx c = { 0 };
	char buf[16], *out;

	(void)state;
	/* init: its own session, no terminal. */
	p[0].jobctl_ok = p[0].tty_ok = true;
	p[0].session = p[0].pgrp = 1;
	p[0].tpgid = -1;
	/* sshd: in init's session? no: its own, multi-threaded, nice 5. */
	p[1].jobctl_ok = p[1].tty_ok = true;
	p[1].session = p[1].pgrp = 400;
	p[1].tpgid = -1;
	p[1].nr_threads = 2;
	p[1].nice = 5;
	/* bash: session leader on pts/0 (136,0), the shell's group in the background;
	 * vi: the foreground group, high priority. */
	p[2].jobctl_ok = p[2].tty_ok = true;
	p[2].session = p[2].pgrp = 500;
	p[2].tty_nr = 136 << 8;
	p[2].tpgid = 510;
	p[3].jobctl_ok = p[3].tty_ok = true;
	p[3].session = 500;
	p[3].pgrp = 510;
	p[3].tty_nr = 136 << 8;
	p[3].tpgid = 510;
	p[3].nice = -5;
	p[3].nr_threads = 2;
	p[3].state = 'R';
	/* kthreadd: the model could not read job control: no s or +, "-". */
	p[4].nice = -1;
	/* sub: in bash's session and group, not its leader, in the background. */
	p[5].jobctl_ok = p[5].tty_ok = true;
	p[5].session = p[5].pgrp = 500;
	p[5].tty_nr = 136 << 8;
	p[5].tpgid = 510;
	for (int i = 0; i < 6; i++)
		rows[i] = (struct ps_row){ .p = &p[i], .order = (size_t)i };
	rows[6] = (struct ps_row){ .p = &p[3], .t = &t, .order = 6 };
	out = render("pid,stat,sid,pgid,tpgid,tty", &c, rows, 7, false);
	assert_string_equal(out, "    PID STAT     SID    PGID   TPGID TT\n"
				 "      1 Ss         1       1      -1 ?\n"
				 "    400 SNsl     400     400      -1 ?\n"
				 "    500 Ss       500     500     510 pts/0\n"
				 "    510 R<l+     500     510     510 pts/0\n"
				 "      2 S<         -       -       - -\n"
				 "    505 S        500     500     510 pts/0\n"
				 "    510 R<l+     500     510     510 pts/0\n");
	free(out);
	/* A session leader in the foreground: both. */
	p[2].tpgid = 500;
	ps_stat_text(p[2].state, p[2].nice, &p[2], buf, sizeof(buf));
	assert_string_equal(buf, "Ss+");
	/* tpgid 0 (a terminal without a foreground group) is no process group's. */
	p[2].tpgid = 0;
	ps_stat_text(p[2].state, p[2].nice, &p[2], buf, sizeof(buf));
	assert_string_equal(buf, "Ss");
	/* Names of terminals as /proc/PID/stat numbers them (new_encode_dev). */
	assert_string_equal(ps_tty_name(0, buf, sizeof(buf)), "?");
	assert_string_equal(ps_tty_name(4 << 8 | 1, buf, sizeof(buf)), "tty1");
	assert_string_equal(ps_tty_name(4 << 8 | 64, buf, sizeof(buf)), "ttyS0");
	assert_string_equal(ps_tty_name(5 << 8 | 1, buf, sizeof(buf)), "console");
	assert_string_equal(ps_tty_name(136 << 8 | 3, buf, sizeof(buf)), "pts/3");
	/* pts/300: minor 300 = 0x12c, its high bits at 20. */
	assert_string_equal(ps_tty_name(136 << 8 | 0x2c | 1 << 20, buf, sizeof(buf)), "pts/300");
	assert_string_equal(ps_tty_name(229 << 8, buf, sizeof(buf)), "hvc0");
	assert_string_equal(ps_tty_name(250 << 8 | 7, buf, sizeof(buf)), "250,7");
}

/* -u/-U names: resolved through the guest's passwd into effective / real
 * uids (procps semantics); an unknown name is an error naming it. */
static void test_select_user_names(void **state)
{
	static const char passwd[] = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
				     "bob:x:1001:1001::/home/bob:/bin/sh\n";
	struct vmw_proc p[3] = { proc(1, 0, "init"), proc(7, 1, "hog"), proc(9, 1, "loop") };
	struct ps_select sel = { 0 };
	struct vmw_users *u;
	char err[256];

	(void)state;
	p[1].euid = p[1].uid = 1000;
	p[2].euid = 1000;             /* bob running setuid alice */
	p[2].uid = 1001;
	assert_int_equal(vmw_users_new(&u), 0);
	assert_int_equal(vmw_users_parse(u, false, passwd, sizeof(passwd) - 1), 3);
	assert_int_equal(ps_select_users(&sel, "alice", false, err, sizeof(err)), 0);
	assert_int_equal(ps_select_resolve_users(&sel, u, err, sizeof(err)), 0);
	assert_false(ps_selected(&sel, &p[0]));
	assert_true(ps_selected(&sel, &p[1]) && ps_selected(&sel, &p[2]));
	ps_select_free(&sel);
	assert_int_equal(ps_select_users(&sel, "bob,0", true, err, sizeof(err)), 0);   /* real users */
	assert_int_equal(ps_select_resolve_users(&sel, u, err, sizeof(err)), 0);
	assert_true(ps_selected(&sel, &p[0]) && ps_selected(&sel, &p[2]));
	assert_false(ps_selected(&sel, &p[1]));
	ps_select_free(&sel);
	assert_int_equal(ps_select_users(&sel, "root,mallory\x1b[2J", false, err, sizeof(err)), 0);
	assert_int_equal(ps_select_resolve_users(&sel, u, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "user 'mallory?[2J' is not in the guest's /etc/passwd"));
	ps_select_free(&sel);
	vmw_users_free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_times_and_percentages),
		cmocka_unit_test(test_clocks_and_command_text),
		cmocka_unit_test(test_sort_select_and_errors),
		cmocka_unit_test(test_select_user_names),
		cmocka_unit_test(test_forest_and_ppid_loops),
		cmocka_unit_test(test_stat_letters_and_job_control),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

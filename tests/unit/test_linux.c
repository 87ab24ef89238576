/* SPDX-License-Identifier: MIT */
/* Pure logic of the Linux model: /proc state letters, tty_nr and cputime_adjust. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "linux/linux.h"

static void test_state_letters(void **state)
{
	(void)state;
	assert_int_equal(vmw_linux_state_letter(0x0, 0), 'R');
	assert_int_equal(vmw_linux_state_letter(0x1, 0), 'S');
	assert_int_equal(vmw_linux_state_letter(0x2, 0), 'D');
	assert_int_equal(vmw_linux_state_letter(0x4, 0), 'T');
	assert_int_equal(vmw_linux_state_letter(0x8, 0), 't');
	assert_int_equal(vmw_linux_state_letter(0x0, 0x10), 'X');
	assert_int_equal(vmw_linux_state_letter(0x0, 0x20), 'Z');
	assert_int_equal(vmw_linux_state_letter(0x40, 0), 'P');
	/* TASK_IDLE = TASK_UNINTERRUPTIBLE | TASK_NOLOAD shows as I, not D. */
	assert_int_equal(vmw_linux_state_letter(0x402, 0), 'I');
	/* TASK_WAKEKILL | TASK_UNINTERRUPTIBLE (TASK_KILLABLE) is D. */
	assert_int_equal(vmw_linux_state_letter(0x102, 0), 'D');
	/* TASK_RTLOCK_WAIT pretends to be D. */
	assert_int_equal(vmw_linux_state_letter(0x1000, 0), 'D');
	/* TASK_FREEZABLE bits (0x2000) do not change the letter of S. */
	assert_int_equal(vmw_linux_state_letter(0x2001, 0), 'S');
	/* A zombie still has its last state bits; exit_state wins by being higher. */
	assert_int_equal(vmw_linux_state_letter(0x80, 0x20), 'Z');
}

/* /proc/PID/stat's tty_nr: new_encode_dev(MKDEV(major, minor_start) + index). */
static void test_tty_nr(void **state)
{
	(void)state;
	assert_int_equal(vmw_linux_tty_nr(4, 1, 0), 0x401);          /* tty1 */
	assert_int_equal(vmw_linux_tty_nr(4, 64, 0), 0x440);         /* ttyS0 */
	assert_int_equal(vmw_linux_tty_nr(136, 0, 2), 0x8802);       /* pts/2 */
	/* Minors above 255 go to bits 20 and up: pts/300 is 34860 + (1 << 20). */
	assert_int_equal(vmw_linux_tty_nr(136, 0, 300), (1u << 20) | 0x882c);
	/* An index past the minor's 20 bits carries into the major, like MKDEV() + index. */
	assert_int_equal(vmw_linux_tty_nr(4, (1u << 20) - 1, 1), 5u << 8);
}

static void test_cputime_adjust(void **state)
{
	uint64_t u, s;
	(void)state;

	/* Split rtime in the ratio of the tick samples. */
	vmw_linux_cputime_adjust(1000, 30, 10, 0, 0, &u, &s);
	assert_int_equal(s, 250);
	assert_int_equal(u, 750);
	/* No stime ticks: everything is user time. */
	vmw_linux_cputime_adjust(1000, 0, 0, 0, 0, &u, &s);
	assert_int_equal(u, 1000);
	assert_int_equal(s, 0);
	vmw_linux_cputime_adjust(1000, 0, 5, 0, 0, &u, &s);
	assert_int_equal(u, 0);
	assert_int_equal(s, 1000);
	/* rtime not beyond prev: prev is reported unchanged. */
	vmw_linux_cputime_adjust(500, 30, 10, 300, 200, &u, &s);
	assert_int_equal(u, 300);
	assert_int_equal(s, 200);
	/* stime may not go below prev->stime. */
	vmw_linux_cputime_adjust(1000, 90, 10, 100, 400, &u, &s);
	assert_int_equal(s, 400);
	assert_int_equal(u, 600);
	/* utime may not go below prev->utime. */
	vmw_linux_cputime_adjust(1000, 10, 90, 700, 0, &u, &s);
	assert_int_equal(u, 700);
	assert_int_equal(s, 300);
	/* Large values do not overflow the multiplication. */
	vmw_linux_cputime_adjust(UINT64_C(1) << 62, UINT64_C(1) << 61, UINT64_C(1) << 61, 0, 0, &u, &s);
	assert_true(s == UINT64_C(1) << 61);
	assert_true(u == UINT64_C(1) << 61);
}

static void test_cycle_guard(void **state)
{
	struct vmw_cycle c;
	uint64_t ring[7] = { 10, 20, 30, 40, 50, 60, 70 };
	int steps = 0;
	(void)state;

	/* 1 → 2 → ring that never returns to the head: must be reported. */
	vmw_cycle_init(&c, 1);
	assert_false(vmw_cycle_step(&c, 2));
	for (;; steps++) {
		assert_true(steps < 100);
		if (vmw_cycle_step(&c, ring[steps % 7]))
			break;
	}
	/* A straight list of 1000 distinct nodes is never called a cycle. */
	vmw_cycle_init(&c, 0);
	for (uint64_t i = 1; i <= 1000; i++)
		assert_false(vmw_cycle_step(&c, i));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_letters),
		cmocka_unit_test(test_tty_nr),
		cmocka_unit_test(test_cputime_adjust),
		cmocka_unit_test(test_cycle_guard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

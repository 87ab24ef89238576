/* SPDX-License-Identifier: MIT */
/*
 * sampler_client.c - the front's side of a VM's sampler process: start it
 * (through the monitor), ask for a frame with a deadline, decode the answer
 * as hostile input, and tell a guest's failure from the sampler's own (a
 * crash, a hang, a malformed answer: the sampler is then gone).
 */
#include "agent/agent_int.h"
#include "agent/privsep.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int agent_sampler_start(struct agent_sampler *sp, const struct agent_vm *vm, bool cmdline, bool no_cache,
			struct vmw_error *err)
{
	unsigned flags = (cmdline ? PS_SAMPLER_CMDLINE : 0) | (no_cache ? PS_SAMPLER_NO_CACHE : 0);
	int r;

	memset(sp, 0, sizeof(*sp));
	sp->fd = -1;
	if ((r = ps_spawn_sampler(vm->target, vm->qemu_pid, vm->qemu_start_ticks, flags, vmw_agent_log_level(),
				     &sp->pid, &sp->fd, err)) < 0)
		return r;
	sp->state = VMW_SESSION_WAITING;
	return 0;
}

/* Its end: closing the channel makes it exit. */
void agent_sampler_stop(struct agent_sampler *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
	sp->pid = 0;
}

/* How it ended, in words, once the monitor has reaped it (up to 1 s). */
static void ended_how(pid_t pid, char *buf, size_t n)
{
	int st = 0;

	for (int i = 0; i < 50; i++) {
		if (ps_sampler_status(pid, &st) == 0) {
			ps_describe_status(st, buf, n);
			return;
		}
		usleep(20000);
	}
	snprintf(buf, n, "stopped answering");
}

/* The sampler failed (not the guest): it is killed, reaped, and gone. */
static int sampler_failed(struct agent_sampler *sp, int r, const char *what, struct vmw_error *err)
{
	char how[96];
	pid_t pid = sp->pid;

	ps_kill_sampler(pid);
	agent_sampler_stop(sp);
	if (r == -ETIMEDOUT) {
		vmw_error_setk(err, VMW_ERR_CRASHED, r, "the sampler process (%d) did not answer within %s: killed",
			       (int)pid, what);
	} else if (r == -EPIPE || r == -ECONNRESET) {
		ended_how(pid, how, sizeof(how));
		vmw_error_setk(err, VMW_ERR_CRASHED, -EPIPE, "the sampler process (%d) %s", (int)pid, how);
	} else {
		vmw_error_setk(err, VMW_ERR_CRASHED, r, "the sampler process (%d) %s: killed", (int)pid, what);
	}
	return -EPIPE;
}

/* Receive buffers, shared by the VMs' threads: a frame (~200 KB for 150
 * processes) malloc'ed and freed each time is mmap'ed and unmapped, or
 * trimmed off its thread's heap, page-faulting in again on every frame; a
 * buffer per VM would hold ~200 KB per VM for the few milliseconds it is
 * used in an interval. The VMs' frames are spread over the interval, so a
 * few buffers serve them all; a thread that finds none takes a new one, and
 * one bigger than RXBUF_KEEP (a huge frame) is freed after use. */
#define RXBUF_POOL 2
#define RXBUF_KEEP ((size_t)4 << 20)

struct rxbuf {
	uint8_t *p;
	size_t cap;
};

static pthread_mutex_t rx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rxbuf rx_pool[RXBUF_POOL];
static size_t rx_free;

/* A buffer of at least len bytes (its contents undefined), or p NULL. */
static struct rxbuf rxbuf_get(size_t len)
{
	struct rxbuf b = { 0 };

	pthread_mutex_lock(&rx_lock);
	if (rx_free)
		b = rx_pool[--rx_free];
	pthread_mutex_unlock(&rx_lock);
	if (b.cap < len) {
		free(b.p);
		b.cap = MAX(len, (size_t)65536);
		if (!(b.p = malloc(b.cap)))
			b.cap = 0;
	}
	return b;
}

static void rxbuf_put(struct rxbuf b)
{
	if (b.cap <= RXBUF_KEEP) {
		pthread_mutex_lock(&rx_lock);
		if (rx_free < RXBUF_POOL) {
			rx_pool[rx_free++] = b;
			b.p = NULL;
		}
		pthread_mutex_unlock(&rx_lock);
	}
	free(b.p);
}

/* A read of the answer failed: within the timeout, "within 2s" (formatted
 * here, not for every frame). */
static int sampler_timed_out(struct agent_sampler *sp, int r, uint64_t timeout_ns, struct vmw_error *err)
{
	char what[64];

	snprintf(what, sizeof(what), "%gs", (double)timeout_ns / 1e9);
	return sampler_failed(sp, r, what, err);
}

int agent_sampler_frame(struct agent_sampler *sp, const struct vmw_session_policy *p, uint64_t timeout_ns,
			struct vmw_frame **ret, struct vmw_error *err)
{
	struct ps_frame_req q = { .magic = PS_FRAME_MAGIC, .min_ns = p->min_ns, .max_ns = p->max_ns,
				  .young_ns = p->young_ns };
	struct ps_frame_rep a;
	uint64_t deadline = vmw_now_ns() + timeout_ns;
	struct rxbuf buf;
	int r;

	if (send(sp->fd, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q))
		return sampler_failed(sp, -EPIPE, NULL, err);
	if ((r = ps_read_full(sp->fd, &a, sizeof(a), deadline)) < 0)
		return sampler_timed_out(sp, r, timeout_ns, err);
	if (a.magic != PS_FRAME_MAGIC || a.frame_len > PS_FRAME_MAX || a.state > VMW_SESSION_GONE ||
	    (a.r == 0) != (a.frame_len > 0) || a.r > 0)
		return sampler_failed(sp, -EBADMSG, "sent a malformed answer", err);
	a.msg[sizeof(a.msg) - 1] = a.release[sizeof(a.release) - 1] = a.build_id[sizeof(a.build_id) - 1] = '\0';
	a.cache_warning[sizeof(a.cache_warning) - 1] = '\0';
	sp->state = (enum vmw_session_state)a.state;
	sp->retry_at_ns = a.retry_at_ns;
	sp->attaches = a.attaches;
	memcpy(sp->release, a.release, sizeof(sp->release));
	memcpy(sp->build_id, a.build_id, sizeof(sp->build_id));
	memcpy(sp->cache_warning, a.cache_warning, sizeof(sp->cache_warning));
	if (a.r < 0) {
		enum vmw_error_kind k = a.kind < VMW_ERR__MAX && a.kind != VMW_ERR_CRASHED ? (enum vmw_error_kind)a.kind
											 : VMW_ERR_IO;
		return vmw_error_setk(err, k, a.r >= -4095 ? a.r : -EIO, "%s", a.msg);
	}
	if (!(buf = rxbuf_get(a.frame_len)).p)
		return sampler_failed(sp, -ENOMEM, "sent a frame too big for memory", err);
	if ((r = ps_read_full(sp->fd, buf.p, a.frame_len, deadline)) < 0) {
		rxbuf_put(buf);
		return sampler_timed_out(sp, r, timeout_ns, err);
	}
	r = vmw_frame_decode(buf.p, a.frame_len, ret, err);
	rxbuf_put(buf);
	if (r < 0) {
		char why[sizeof(err->msg)];
		snprintf(why, sizeof(why), "sent a malformed frame (%.400s)", err->msg);
		return sampler_failed(sp, -EBADMSG, why, err);
	}
	return 0;
}

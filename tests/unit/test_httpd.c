/* SPDX-License-Identifier: MIT */
/* httpd: listen addresses, and a real server's header deadline, body bound and streams over loopback. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd/httpd.h"
#include "util/util.h"

static void test_parse_listen(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	struct vmw_error err = { 0 };
	bool lo = false;

	assert_int_equal(vmw_httpd_parse_listen("127.0.0.1:9090", &ss, &lo, &err), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_true(lo);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9090);
	assert_int_equal(vmw_httpd_parse_listen("*:80", &ss, &lo, &err), 0);
	assert_false(lo);
	assert_int_equal(vmw_httpd_parse_listen(":80", &ss, &lo, &err), 0);
	assert_false(lo);
	assert_int_equal(vmw_httpd_parse_listen("[::1]:443", &ss, &lo, &err), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_true(lo);
	assert_int_equal(vmw_httpd_parse_listen("127.0.0.1", &ss, &lo, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "ADDR:PORT"));
	assert_int_equal(vmw_httpd_parse_listen("127.0.0.1:65536", &ss, &lo, &err), -EINVAL);
	assert_int_equal(vmw_httpd_parse_listen("127.0.0.1:0000080", &ss, &lo, &err), -EINVAL);
	assert_int_equal(vmw_httpd_parse_listen("127.0.0.1:8x", &ss, &lo, &err), -EINVAL);
	assert_int_equal(vmw_httpd_parse_listen("[::1:443", &ss, &lo, &err), -EINVAL);
	assert_int_equal(vmw_httpd_parse_listen("[::1]443", &ss, &lo, &err), -EINVAL);
	assert_int_equal(vmw_httpd_parse_listen("no-such-host.invalid:80", &ss, &lo, &err), -EINVAL);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method, void *req)
{
	static const char ok[] = "ok";
	struct MHD_Response *r = MHD_create_response_from_buffer(2, (void *)ok, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_queue_response(c, 200, r);

	(void)cls;
	(void)url;
	(void)method;
	(void)req;
	MHD_destroy_response(r);
	return ret;
}

static int connect_to(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Bytes read until EOF or timeout_ms of silence; -1 on timeout. */
static ssize_t read_all(int fd, char *buf, size_t size, int timeout_ms)
{
	size_t n = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0)
			return -1;
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

/* Write byte every 100 ms (more often than the idle timeout) until the server
 * cuts the connection: the seconds that took, or -1 if not cut within max_s. */
static double trickle_until_cut(int fd, char byte, double max_s)
{
	uint64_t t0 = vmw_now_ns();
	char c;

	while ((double)(vmw_now_ns() - t0) / 1e9 < max_s) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (write(fd, &byte, 1) != 1 || (poll(&p, 1, 100) == 1 && read(fd, &c, 1) <= 0))
			return (double)(vmw_now_ns() - t0) / 1e9;
	}
	return -1;
}

static void test_server(void **state)
{
	(void)state;
	const struct vmw_httpd_ops ops = { .request = answer };
	const struct vmw_httpd_config cfg = {
		.listen = "127.0.0.1:0", .threads = 1, .max_connections = 16, .max_connections_per_ip = 16,
		.header_timeout_s = 0.5, .idle_timeout_s = 1, .max_body_bytes = 1000,
	};
	struct vmw_httpd *h;
	struct vmw_httpd_stats st;
	struct vmw_error err = { 0 };
	char buf[4096];
	unsigned port;
	double cut;
	int fd;

	assert_int_equal(vmw_httpd_start(&cfg, &ops, NULL, &h, &err), 0);
	assert_true(vmw_httpd_loopback(h));
	assert_int_equal(sscanf(vmw_httpd_url(h), "http://127.0.0.1:%u/", &port), 1);

	/* A whole request is answered. */
	fd = connect_to((uint16_t)port);
	dprintf(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_true(read_all(fd, buf, sizeof(buf), 5000) > 0);
	assert_non_null(strstr(buf, "200 OK"));
	close(fd);

	/* Headers trickled for longer than the deadline: cut, although no gap
	 * between bytes reaches libmicrohttpd's idle timeout (1 s). */
	fd = connect_to((uint16_t)port);
	cut = trickle_until_cut(fd, 'G', 5);
	if (!(cut > 0.3 && cut < 1.0))
		fprintf(stderr, "headers trickled: cut after %.3f s (-1: never)\n", cut);
	assert_true(cut > 0.3 && cut < 1.0);
	close(fd);

	/* A body trickled past the deadline: cut too (the headers were in time). */
	fd = connect_to((uint16_t)port);
	dprintf(fd, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n");
	cut = trickle_until_cut(fd, 'b', 5);
	assert_true(cut > 0 && cut < 1.0);
	close(fd);

	/* Kept alive: a first request is answered, the next one trickled is cut
	 * (within idle_timeout + header_timeout of the first one's end). */
	fd = connect_to((uint16_t)port);
	dprintf(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	{
		struct pollfd p = { .fd = fd, .events = POLLIN };
		assert_int_equal(poll(&p, 1, 5000), 1);
		assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	}
	cut = trickle_until_cut(fd, 'G', 5);
	assert_true(cut > 1.0 && cut < 2.0);
	close(fd);

	/* A body beyond max_body_bytes closes the connection unanswered. */
	fd = connect_to((uint16_t)port);
	dprintf(fd, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n");
	memset(buf, 'b', 5000 < sizeof(buf) ? 5000 : sizeof(buf));
	(void)!write(fd, buf, 4000);
	(void)!write(fd, buf, 1000);
	assert_true(read_all(fd, buf, sizeof(buf), 3000) >= 0);
	assert_null(strstr(buf, "200 OK"));
	close(fd);

	vmw_httpd_stats(h, &st);
	assert_int_equal(st.connections, 5);
	assert_int_equal(st.header_timeouts, 3);
	vmw_httpd_stop(h);
}

/*
 * A stream as the agent's event streams are: it suspends while it has
 * nothing to send and ends when a tick says stopping. This one's tick shuts
 * its connection while it waits suspended, which is what a reader that ran
 * just after a stalled stream was shut leaves: the connection must still
 * close (not stay suspended for ever) and the server stop without aborting.
 */
struct tstream {
	struct vmw_httpd *h;
	struct MHD_Connection *c;
	bool sent, suspended, end, shut_asked, gone;
};
static struct tstream ts;

static ssize_t tstream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct tstream *s = cls;
	ssize_t r = 0;

	(void)pos;
	if (!s->sent && max >= 6) {
		s->sent = true;
		memcpy(buf, "hello\n", 6);
		return 6;
	}
	vmw_httpd_lock(s->h);
	if (s->end) {
		r = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		s->suspended = true;
		MHD_suspend_connection(s->c);
	}
	vmw_httpd_unlock(s->h);
	return r;
}

static bool tstream_tick(void *cls, void *stream, uint64_t now, bool stopping)
{
	struct tstream *s = stream;

	(void)cls;
	(void)now;
	if (stopping)
		s->end = true;
	if (s->suspended && s->end) {
		s->suspended = false;
		MHD_resume_connection(s->c);
		return false;
	}
	if (s->suspended && !s->shut_asked) {
		s->shut_asked = true;
		return true;
	}
	return false;
}

static void tstream_gone(void *cls, void *stream)
{
	(void)cls;
	((struct tstream *)stream)->gone = true;
}

static enum MHD_Result tstream_answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				      void *req)
{
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, tstream_read, &ts, NULL);
	enum MHD_Result ret;

	(void)cls;
	(void)url;
	(void)method;
	(void)req;
	vmw_httpd_lock(ts.h);
	ts.c = c;
	vmw_httpd_set_stream(vmw_httpd_conn(c), &ts);
	vmw_httpd_unlock(ts.h);
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static void test_shut_stream_ends(void **state)
{
	(void)state;
	const struct vmw_httpd_ops ops = { .request = tstream_answer, .tick = tstream_tick, .gone = tstream_gone };
	const struct vmw_httpd_config cfg = {
		.listen = "127.0.0.1:0", .threads = 1, .max_connections = 4, .max_connections_per_ip = 4,
		.header_timeout_s = 5, .idle_timeout_s = 60, .max_body_bytes = 1000,
	};
	struct vmw_httpd *h;
	struct vmw_httpd_stats st;
	struct vmw_error err = { 0 };
	char buf[4096];
	unsigned port;
	bool gone = false;
	int fd;

	assert_int_equal(vmw_httpd_start(&cfg, &ops, NULL, &h, &err), 0);
	ts = (struct tstream){ .h = h };
	assert_int_equal(sscanf(vmw_httpd_url(h), "http://127.0.0.1:%u/", &port), 1);
	fd = connect_to((uint16_t)port);
	dprintf(fd, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(read_all(fd, buf, sizeof(buf), 5000) >= 0);   /* until the shut: EOF */
	assert_non_null(strstr(buf, "hello"));
	for (int i = 0; i < 50 && !gone; i++) {
		usleep(100000);
		vmw_httpd_lock(h);
		gone = ts.gone;
		vmw_httpd_unlock(h);
	}
	vmw_httpd_stats(h, &st);
	assert_int_equal(st.stream_drops, 1);
	assert_true(gone);   /* closed, not left suspended */
	close(fd);
	vmw_httpd_stop(h);   /* aborts if a connection is still suspended */
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);   /* writes to a connection the server cut */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_listen),
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_shut_stream_ends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

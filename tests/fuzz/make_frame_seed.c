/* SPDX-License-Identifier: MIT */
/*
 * make_frame_seed.c - fuzz_frame seeds from a real guest: the first and the
 * second frame of TARGET (the second has rates and events), with command
 * lines, encoded as a sampler process sends them.
 *   make_frame_seed TARGET OUTDIR
 */
#include "sampler/sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct vmw_session_opts so = { .sz = sizeof(so), .want_linux = true, .want_summary = true };
	struct vmw_sampler_opts opts = { .sz = sizeof(opts), .walk_flags = VMW_WALK_CMDLINE | VMW_WALK_THREADS };
	struct vmw_session *sess = NULL;
	struct vmw_sampler *s = NULL;
	struct vmw_error err = { 0 };
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: make_frame_seed TARGET OUTDIR\n");
		return 2;
	}
	if ((r = vmw_session_open(argv[1], &so, &sess, &err)) < 0 || (r = vmw_sampler_new(sess, &opts, &s)) < 0) {
		fprintf(stderr, "make_frame_seed: %s\n", vmw_error_msg(&err, r));
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		struct vmw_frame *f = NULL;
		uint8_t *buf;
		size_t len;
		char path[4096];
		FILE *out;

		if (i)
			usleep(200000);
		if ((r = vmw_sampler_frame(s, &f, &err)) < 0 || vmw_frame_encode(f, &buf, &len) < 0) {
			fprintf(stderr, "make_frame_seed: %s\n", vmw_error_msg(&err, r < 0 ? r : -12));
			return 1;
		}
		snprintf(path, sizeof(path), "%s/frame%d", argv[2], i);
		if (!(out = fopen(path, "wb")) || fwrite(buf, 1, len, out) != len || fclose(out)) {
			perror(path);
			return 1;
		}
		free(buf);
		vmw_frame_free(f);
	}
	vmw_sampler_close(s);
	vmw_session_close(sess);
	return 0;
}

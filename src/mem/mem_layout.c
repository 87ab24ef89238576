/* SPDX-License-Identifier: MIT */
/*
 * mem_layout.c - where a QEMU x86 guest's RAM block appears in guest-physical
 * space. Pure functions; the rules follow QEMU 7.2's pc_init1()
 * (hw/i386/pc_piix.c) and pc_q35_init() (hw/i386/pc_q35.c):
 *
 *   pc (i440fx):  lowmem = max-ram-below-4g (default 3.5 GiB); if RAM is at
 *                 least that and the machine is gigabyte-aligned (pc-i440fx
 *                 2.0 and later), lowmem = min(lowmem, 3 GiB).
 *   q35:          lowmem = RAM >= 2.75 GiB ? 2 GiB : 2.75 GiB, then
 *                 min(lowmem, max-ram-below-4g) (default 4 GiB).
 *   both:         RAM >= lowmem: [0, lowmem) and [4 GiB, 4 GiB + RAM - lowmem)
 *                 (block offset lowmem); else all of RAM at 0.
 *
 * The legacy window 0xa0000-0xfffff is left out (see mem_internal.h).
 */
#include "mem/mem_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define GiB (1ULL << 30)
#define FOUR_GIB (4 * GiB)

/* "X.Y..." -> X, or -1 if it does not start with a number. */
static int version_major(const char *v)
{
	int major = 0;

	if (*v < '0' || *v > '9')
		return -1;
	while (*v >= '0' && *v <= '9' && major < 1000)
		major = major * 10 + (*v++ - '0');
	return major;
}

int vmw_machine_parse(const char *type, struct vmw_machine *ret, struct vmw_error *err)
{
	if (!strcmp(type, "q35") || !strncmp(type, "pc-q35-", 7)) {
		*ret = (struct vmw_machine){ VMW_MACHINE_Q35, true };
		return 0;
	}
	if (!strcmp(type, "pc")) {
		*ret = (struct vmw_machine){ VMW_MACHINE_PC, true };
		return 0;
	}
	/* pc-i440fx-X.Y, the old pc-X.Y aliases, and distro names such as
	 * pc-i440fx-rhel7.6.0 (all gigabyte-aligned). Only pc-1.x/0.x keep the
	 * traditional 3.5 GiB split. */
	if (!strncmp(type, "pc-i440fx-", 10) || (!strncmp(type, "pc-", 3) && version_major(type + 3) >= 0)) {
		const char *v = type + (strncmp(type, "pc-i440fx-", 10) ? 3 : 10);
		int major = version_major(v);
		*ret = (struct vmw_machine){ VMW_MACHINE_PC, major < 0 || major >= 2 };
		return 0;
	}
	return vmw_error_set(err, -ENOTSUP,
		"machine type '%s' is not supported: vmwatch knows the RAM layout of the x86 "
		"'pc' (pc-i440fx-*) and 'q35' (pc-q35-*) machines", type);
}

int vmw_ram_layout(const struct vmw_machine *m, uint64_t ram_size, uint64_t max_ram_below_4g,
		   struct vmw_ram_layout *ret, struct vmw_error *err)
{
	uint64_t lowmem, max;
	struct vmw_ram_layout l = { 0 };

	if (ram_size == 0)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -EINVAL, "RAM size is 0");
	if (max_ram_below_4g > FOUR_GIB)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -EINVAL,
			"max-ram-below-4g=0x%llx is more than 4 GiB (QEMU refuses it)",
			(unsigned long long)max_ram_below_4g);

	switch (m->family) {
	case VMW_MACHINE_PC:
		max = max_ram_below_4g ? max_ram_below_4g : 0xe0000000ULL;
		lowmem = max;
		if (ram_size >= max && m->gigabyte_align)
			lowmem = MIN(lowmem, 0xc0000000ULL);
		break;
	case VMW_MACHINE_Q35:
		lowmem = ram_size >= 0xb0000000ULL ? 0x80000000ULL : 0xb0000000ULL;
		max = max_ram_below_4g ? max_ram_below_4g : FOUR_GIB;
		lowmem = MIN(lowmem, max);
		break;
	default:
		return vmw_error_setk(err, VMW_ERR_INTERNAL, -EINVAL, "unknown machine family %d", (int)m->family);
	}

	if (ram_size >= lowmem) {
		l.below_4g = lowmem;
		l.above_4g = ram_size - lowmem;
	} else {
		l.below_4g = ram_size;
	}
	if (l.above_4g > UINT64_MAX - FOUR_GIB)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -EINVAL, "RAM size 0x%llx is too large", (unsigned long long)ram_size);

	l.piece[l.n++] = (struct vmw_ram_piece){ 0, 0, MIN(l.below_4g, VMW_LEGACY_START) };
	if (l.below_4g > VMW_LEGACY_END)
		l.piece[l.n++] = (struct vmw_ram_piece){
			VMW_LEGACY_END, VMW_LEGACY_END, l.below_4g - VMW_LEGACY_END };
	if (l.above_4g)
		l.piece[l.n++] = (struct vmw_ram_piece){ FOUR_GIB, l.below_4g, l.above_4g };
	*ret = l;
	return 0;
}

int vmw_mem_add_layout(struct vmw_mem *mem, const struct vmw_ram_layout *l,
		       const void *base, uint64_t remote)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct vmw_ram_piece *p = &l->piece[i];
		int r = base ? vmw_mem_add_seg(mem, p->gpa, p->len, (const uint8_t *)base + p->offset, 0)
			     : vmw_mem_add_seg(mem, p->gpa, p->len, NULL, remote + p->offset);
		if (r < 0)
			return r;
	}
	return 0;
}

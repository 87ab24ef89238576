/* SPDX-License-Identifier: MIT */
/*
 * symtab.c - the decoded kernel symbol table: an array in kallsyms order plus
 * a name → symbol index (open addressing with linear probing; each slot keeps
 * the name's hash so that probing rarely touches the names).
 */
#include "kernel/kernel_internal.h"

#include <errno.h>
#include <string.h>

uint32_t vmw_symtab_hash(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

uint32_t vmw_symtab_nslots(uint32_t nsyms)
{
	uint32_t size = 16;
	while (size < 2 * (uint64_t)nsyms && size < (1u << 31))
		size <<= 1;
	return size;
}

void vmw_symtab_free(struct vmw_symtab *st)
{
	if (!st)
		return;
	if (st->blob) {
		st->blob_free(st->blob, st->blob_len);
	} else {
		free(st->syms);
		free(st->names);
		free(st->slots);
	}
	free(st);
}

int vmw_symtab_new(struct vmw_ksym *syms, uint32_t nsyms, char *names, size_t names_len,
		   struct vmw_symtab **ret)
{
	struct vmw_symtab *st = calloc(1, sizeof(*st));
	uint32_t size = vmw_symtab_nslots(nsyms);

	if (!st) {
		free(syms);
		free(names);
		return -ENOMEM;
	}
	st->syms = syms;
	st->nsyms = nsyms;
	st->names = names;
	st->names_len = names_len;
	st->slots = calloc(size, sizeof(*st->slots));
	if (!st->slots) {
		vmw_symtab_free(st);
		return -ENOMEM;
	}
	st->slot_mask = size - 1;
	for (uint32_t i = 0; i < nsyms; i++) {
		const char *name = names + syms[i].name;
		uint32_t hash = vmw_symtab_hash(name);
		/* Keep the first of duplicate names (static symbols). */
		for (uint32_t h = hash & st->slot_mask;; h = (h + 1) & st->slot_mask) {
			struct vmw_symtab_slot *e = &st->slots[h];
			if (!e->idx) {
				e->hash = hash;
				e->idx = i + 1;
				break;
			}
			if (e->hash == hash && !strcmp(names + syms[e->idx - 1].name, name))
				break;
		}
	}
	*ret = st;
	return 0;
}

int vmw_symtab_adopt(void *blob, size_t blob_len, void (*blob_free)(void *, size_t),
		     struct vmw_ksym *syms, uint32_t nsyms, char *names, size_t names_len,
		     struct vmw_symtab_slot *slots, uint32_t nslots, struct vmw_symtab **ret)
{
	struct vmw_symtab *st;

	if (!nsyms || nslots != vmw_symtab_nslots(nsyms) || !names_len || names[names_len - 1])
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	*st = (struct vmw_symtab){ .syms = syms, .nsyms = nsyms, .names = names,
				   .names_len = names_len, .slots = slots,
				   .slot_mask = nslots - 1, .blob = blob, .blob_len = blob_len,
				   .blob_free = blob_free };
	*ret = st;
	return 0;
}

const struct vmw_ksym *vmw_symtab_lookup(const struct vmw_symtab *st, const char *name)
{
	uint32_t hash = vmw_symtab_hash(name);
	uint32_t h = hash & st->slot_mask;

	/* Bounded probing and checked indices: the index may come from a file. */
	for (uint32_t n = 0; n <= st->slot_mask; n++, h = (h + 1) & st->slot_mask) {
		const struct vmw_symtab_slot *e = &st->slots[h];
		if (!e->idx || e->idx > st->nsyms)
			return NULL;
		if (e->hash != hash)
			continue;
		const struct vmw_ksym *s = &st->syms[e->idx - 1];
		if (s->name < st->names_len && !strcmp(st->names + s->name, name))
			return s;
	}
	return NULL;
}

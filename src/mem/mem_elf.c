/* SPDX-License-Identifier: MIT */
/*
 * mem_elf.c - ELF cores (QEMU dump-guest-memory, virsh dump --memory-only,
 * /proc/vmcore copies): the program headers say which guest-physical ranges
 * (p_paddr) are at which file offsets. Pure parsing over a byte buffer that
 * holds the whole file; nothing outside it is ever referenced.
 */
#include "mem/mem_internal.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

bool vmw_elf_is_elf(const void *buf, size_t len)
{
	return len >= SELFMAG && !memcmp(buf, ELFMAG, SELFMAG);
}

void vmw_elf_info_free(struct vmw_elf_info *info)
{
	free(info->loads);
	info->loads = NULL;
	info->nloads = 0;
}

static int load_cmp(const void *a, const void *b)
{
	const struct vmw_elf_load *x = a, *y = b;
	return x->paddr < y->paddr ? -1 : x->paddr > y->paddr;
}

/* Does [off, off+size) fit in a buffer of len bytes? (overflow-safe) */
static bool fits(uint64_t off, uint64_t size, size_t len)
{
	return off <= len && size <= len - off;
}

/* The ELF header of an x86-64 core, and its number of program headers
 * (which must lie inside the file). */
static int check_header(const uint8_t *p, size_t len, Elf64_Ehdr *ret_eh, uint64_t *ret_phnum,
			struct vmw_error *err)
{
	Elf64_Ehdr eh;
	uint64_t phnum;

	if (!vmw_elf_is_elf(p, len))
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -ENOEXEC, "not an ELF file");
	if (len < EI_NIDENT)
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOEXEC, "truncated ELF header (%zu bytes)", len);
	if (p[EI_CLASS] == ELFCLASS32)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -ENOEXEC,
			"32-bit ELF core: only 64-bit (x86-64) guest dumps are supported");
	if (p[EI_CLASS] != ELFCLASS64)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -ENOEXEC, "unknown ELF class %u", p[EI_CLASS]);
	if (p[EI_DATA] != ELFDATA2LSB)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -ENOEXEC, "big-endian ELF: only x86-64 (little-endian) cores are supported");
	if (len < sizeof(eh))
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOEXEC, "truncated ELF header (%zu of %zu bytes)", len, sizeof(eh));
	memcpy(&eh, p, sizeof(eh));
	if (eh.e_type != ET_CORE)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -ENOEXEC,
			"ELF file of type %u is not a core dump (expected ET_CORE from dump-guest-memory or virsh dump)",
			eh.e_type);
	if (eh.e_machine != EM_X86_64)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -ENOEXEC, "ELF core for machine %u: only x86-64 (%u) is supported",
				     eh.e_machine, EM_X86_64);
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOEXEC, "bad program header entry size %u (expected %zu)",
				     eh.e_phentsize, sizeof(Elf64_Phdr));

	phnum = eh.e_phnum;
	if (phnum == PN_XNUM) {
		/* More than 65534 headers: the real count is in section 0's sh_info. */
		Elf64_Shdr sh;
		if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(sh) || !fits(eh.e_shoff, sizeof(sh), len))
			return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOEXEC,
				"e_phnum is PN_XNUM but section header 0 (at 0x%llx) is missing or outside the file",
				(unsigned long long)eh.e_shoff);
		memcpy(&sh, p + eh.e_shoff, sizeof(sh));
		phnum = sh.sh_info;
	}
	if (phnum == 0)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -ENOEXEC, "no program headers: not a memory dump");
	if (!fits(eh.e_phoff, phnum * sizeof(Elf64_Phdr), len))
		return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOEXEC,
			"program headers (%llu at offset 0x%llx) run past the end of the file (%zu bytes): truncated?",
			(unsigned long long)phnum, (unsigned long long)eh.e_phoff, len);

	*ret_eh = eh;
	*ret_phnum = phnum;
	return 0;
}

/* The first non-empty PT_NOTE, and every PT_LOAD that holds bytes. */
static int read_program_headers(const uint8_t *p, size_t len, uint64_t phoff, uint64_t phnum,
				struct vmw_elf_load *loads, size_t *ret_nloads, struct vmw_elf_info *info,
				struct vmw_error *err)
{
	size_t nloads = 0;

	for (uint64_t i = 0; i < phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, p + phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_NOTE && !info->note_size && ph.p_filesz) {
			if (!fits(ph.p_offset, ph.p_filesz, len))
				return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOEXEC,
					"note segment (%llu bytes at offset 0x%llx) runs past the end of the file (%zu bytes): truncated?",
					(unsigned long long)ph.p_filesz, (unsigned long long)ph.p_offset, len);
			info->note_offset = ph.p_offset;
			info->note_size = ph.p_filesz;
		}
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_filesz > ph.p_memsz)
			return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOEXEC,
				"segment %llu (guest-physical 0x%llx): file size 0x%llx is larger than memory size 0x%llx",
				(unsigned long long)i, (unsigned long long)ph.p_paddr,
				(unsigned long long)ph.p_filesz, (unsigned long long)ph.p_memsz);
		if (ph.p_paddr + ph.p_memsz < ph.p_paddr)
			return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOEXEC,
				"segment %llu: guest-physical range 0x%llx + 0x%llx wraps around",
				(unsigned long long)i, (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
		if (!fits(ph.p_offset, ph.p_filesz, len))
			return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOEXEC,
				"segment %llu (guest-physical 0x%llx, %llu bytes at file offset 0x%llx) runs past "
				"the end of the file (%zu bytes): truncated dump?",
				(unsigned long long)i, (unsigned long long)ph.p_paddr,
				(unsigned long long)ph.p_filesz, (unsigned long long)ph.p_offset, len);
		if (ph.p_filesz == 0)
			continue;
		loads[nloads++] = (struct vmw_elf_load){
			.paddr = ph.p_paddr, .offset = ph.p_offset, .filesz = ph.p_filesz, .memsz = ph.p_memsz,
		};
	}
	*ret_nloads = nloads;
	return 0;
}

int vmw_elf_parse(const void *buf, size_t len, struct vmw_elf_info *ret, struct vmw_error *err)
{
	const uint8_t *p = buf;
	Elf64_Ehdr eh = { 0 };
	uint64_t phnum = 0;
	_cleanup_free_ struct vmw_elf_load *loads = NULL;
	size_t nloads = 0;
	struct vmw_elf_info info = { 0 };
	int r;

	if ((r = check_header(p, len, &eh, &phnum, err)) < 0)
		return r;
	loads = calloc(phnum, sizeof(*loads));
	if (!loads)
		return -ENOMEM;
	if ((r = read_program_headers(p, len, eh.e_phoff, phnum, loads, &nloads, &info, err)) < 0)
		return r;
	if (nloads == 0)
		return vmw_error_setk(err, VMW_ERR_UNSUPPORTED, -ENOEXEC, "no PT_LOAD segment holds any memory");

	qsort(loads, nloads, sizeof(*loads), load_cmp);
	for (size_t i = 1; i < nloads; i++)
		if (loads[i].paddr < loads[i - 1].paddr + loads[i - 1].filesz)
			return vmw_error_setk(err, VMW_ERR_INCONSISTENT, -ENOEXEC,
				"segments at guest-physical 0x%llx (+0x%llx) and 0x%llx overlap",
				(unsigned long long)loads[i - 1].paddr, (unsigned long long)loads[i - 1].filesz,
				(unsigned long long)loads[i].paddr);

	info.loads = TAKE_PTR(loads);
	info.nloads = nloads;
	*ret = info;
	return 0;
}

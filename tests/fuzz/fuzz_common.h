/*
 * Shared by the fuzz targets: CHECK (a trap that libFuzzer reports as a
 * crash), the display-text property, and, unless FUZZ_OWN_INIT is defined
 * before the include, an LLVMFuzzerInitialize that quiets the logs (errors
 * only). Include it from the target's .c only (one per binary).
 */
#ifndef SFC_FUZZ_COMMON_H
#define SFC_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "log.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

#ifndef FUZZ_OWN_INIT
int	LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOGL_ERROR);
	return 0;
}
#endif

/* true when s (within n bytes) is NUL-terminated valid UTF-8 without control characters. */
static inline bool
fuzz_text_ok(const char *s, size_t n)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 len = strnlen(s, n), i = 0;

	if (len == n)
		return false;
	while (i < len) {
		unsigned char	 c = p[i];
		size_t		 more;

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			more = 1;
		else if (c >= 0xe0 && c <= 0xef)
			more = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			more = 3;
		else
			return false;
		if (i + more >= len)
			return false;
		for (size_t k = 1; k <= more; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return false;
		i += more + 1;
	}
	return true;
}

#endif

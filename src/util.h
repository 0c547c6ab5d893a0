/* Small helpers of the app's own types: roles, slugs, times, sealing AAD. */
#ifndef SFC_UTIL_H
#define SFC_UTIL_H

#include <stddef.h>
#include <time.h>

#include "app.h"

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

/* 0 and *role set when name is viewer|admin|service|operator. */
int		 role_parse(const char *name, enum role *role);
const char	*role_name(enum role role);
/* true when slug matches [a-z0-9-]{1,63}. */
int		 slug_ok(const char *slug);
/*
 * The additional authenticated data that binds a sealed token to its org
 * and column ("org:42:refresh_token"): a ciphertext cannot be moved to
 * another row or column. Changing it makes stored tokens unreadable.
 */
void		 sealed_aad(char *out, size_t outlen, long long org_id,
		    const char *column);
/*
 * RFC 3339 UTC ("2026-11-28T22:00:00Z") into out[21], always terminated:
 * a time after 9999-12-31T23:59:59Z is written as that, one before year 0
 * as 0000-01-01T00:00:00Z (RFC 3339 has four-digit years only).
 */
void		 time_rfc3339(time_t t, char out[21]);

#endif

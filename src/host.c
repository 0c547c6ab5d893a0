#include <string.h>
#include <strings.h>

#include "host.h"

#define HOST_LABEL_MAX	63

int
host_name_ok(const char *host)
{
	const char	*p = host;
	size_t		 n;

	if (strlen(host) > HOST_LEN_MAX)
		return 0;
	for (;;) {
		n = strspn(p, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
		if (n == 0 || n > HOST_LABEL_MAX || p[0] == '-' ||
		    p[n - 1] == '-')
			return 0;
		p += n;
		if (*p == '\0')
			return 1;
		if (*p != '.')
			return 0;
		p++;
	}
}

/* true when host ends with "." and the dlen characters of domain, with at least one character before. */
static int
host_below(const char *host, const char *domain, size_t dlen)
{
	size_t	 hl = strlen(host);

	return hl > dlen + 1 && host[hl - dlen - 1] == '.' &&
	    strncasecmp(host + hl - dlen, domain, dlen) == 0;
}

int
host_matches_pattern(const char *pattern, size_t patlen, const char *host)
{
	if (patlen > 2 && pattern[0] == '*' && pattern[1] == '.')
		return host_below(host, pattern + 2, patlen - 2);
	return strlen(host) == patlen &&
	    strncasecmp(pattern, host, patlen) == 0;
}

int
host_in_domain(const char *host, const char *domain)
{
	return strcasecmp(host, domain) == 0 ||
	    host_below(host, domain, strlen(domain));
}

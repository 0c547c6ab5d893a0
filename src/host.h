/*
 * Host names: the one policy of the daemon, shared by the configuration's
 * host lists (cfg_host_in_list) and the Salesforce client's checks.
 *
 * A host name is RFC 1123: dot-separated labels of ASCII letters, digits
 * and '-', 1..63 characters each, none starting or ending with '-', at most
 * HOST_LEN_MAX characters in all, no trailing dot (so no IP literal in
 * brackets, no '_', no '*', no non-ASCII). Upper case is accepted
 * everywhere and every comparison here ignores ASCII case, as DNS does; a
 * caller that prints a host or builds a URL from it lower-cases it itself.
 */
#ifndef SFC_HOST_H
#define SFC_HOST_H

#include <stddef.h>

/* Longest host name accepted (RFC 1123: 253 characters without a trailing dot). */
#define HOST_LEN_MAX	253

/* true when host is a host name by the rule above. */
int	host_name_ok(const char *host);

/*
 * true when host matches pattern (its first patlen characters, so a word of
 * a space-separated list can be passed in place): a host name, matched
 * whole, or "*.DOMAIN", matched by every host below DOMAIN ("a.DOMAIN",
 * "a.b.DOMAIN") but never by DOMAIN itself. Case-insensitive; host is not
 * checked with host_name_ok() here.
 */
int	host_matches_pattern(const char *pattern, size_t patlen,
	    const char *host);

/* true when host is domain or below it ("x.y" and "a.x.y" for "x.y"); case-insensitive. */
int	host_in_domain(const char *host, const char *domain);

#endif

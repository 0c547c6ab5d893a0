/*
 * A worker's cache of authenticated reads (issue 13, step 3): what
 * db_auth_lookup answered for an API key's hash and the org slug a path
 * names, when both the org and its integration were found. Never a
 * decrypted token: an entry keeps the sealed access token (AES-GCM, as
 * stored), never the refresh token. PostgreSQL keeps it
 * true (sql/010: a NOTIFY for every change, which db.c applies here before
 * each answer); entries also expire, a backstop for a silent connection.
 * A plain data structure: no I/O, no clock (callers pass "now", a
 * monotonic time in seconds).
 */
#ifndef SFC_CACHE_H
#define SFC_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"

#define CACHE_ENTRIES	512
#define CACHE_TTL_S	10.0

struct cache;

/* An empty cache whose entries live ttl_s seconds; NULL on out of memory. */
struct cache	*cache_new(double ttl_s);
void		 cache_free(struct cache *cache);
/*
 * true when a live entry for (hash_hex, slug) exists: *out is a copy
 * (has_integ; its own copy of the sealed access token, for
 * db_integration_clear; no refresh token; its db_now moved on by the
 * entry's age). slug NULL for a path without an org.
 */
bool		 cache_get(struct cache *cache, const char *hash_hex,
		    const char *slug, double now, struct db_auth *out);
/*
 * Stores a copy of a (the sealed access token copied, the refresh token
 * left out), replacing the oldest entry when full.
 */
void		 cache_put(struct cache *cache, const char *hash_hex,
		    const char *slug, double now, const struct db_auth *a);
/*
 * Applies one notification of sql/010: "k:<key id>", "o:<org id>" or
 * anything else (as "*"), which empties the cache.
 */
void		 cache_apply(struct cache *cache, const char *payload);
void		 cache_clear(struct cache *cache);
/* The number of live or expired entries held. */
size_t		 cache_count(const struct cache *cache);

#endif

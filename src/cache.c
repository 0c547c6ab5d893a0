/*
 * The worker cache: CACHE_ENTRIES entries in one array (calloc: pages are
 * touched only as entries are used), chained from a table of buckets by a
 * hash of (key hash, slug). When full, the entries are reused in the order
 * they were filled.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cache.h"

#define CACHE_BUCKETS	1024	/* a power of two, twice the entries */
#define NONE		(-1)

struct cache_entry {
	char		 hash[65];
	char		 slug[64];
	bool		 used;
	double		 stored_at;
	int		 next;		/* the bucket's next entry, or NONE */
	struct db_auth	 auth;		/* has_integ, no tokens */
};

struct cache {
	struct cache_entry	*entries;
	int			 buckets[CACHE_BUCKETS];
	size_t			 count;
	size_t			 hand;	/* the next entry to fill when full */
	double			 ttl_s;
};

static void
buckets_empty(struct cache *cache)
{
	for (size_t i = 0; i < CACHE_BUCKETS; i++)
		cache->buckets[i] = NONE;
}

struct cache *
cache_new(double ttl_s)
{
	struct cache	*cache;

	if ((cache = calloc(1, sizeof(*cache))) == NULL)
		return NULL;
	if ((cache->entries = calloc(CACHE_ENTRIES,
	    sizeof(*cache->entries))) == NULL) {
		free(cache);
		return NULL;
	}
	cache->ttl_s = ttl_s;
	buckets_empty(cache);
	return cache;
}

void
cache_free(struct cache *cache)
{
	if (cache == NULL)
		return;
	free(cache->entries);
	free(cache);
}

/* FNV-1a of the key hash and the slug. */
static size_t
bucket_of(const char *hash_hex, const char *slug)
{
	uint32_t	 h = 2166136261u;

	for (const char *p = hash_hex; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ '/') * 16777619u;
	for (const char *p = slug; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h & (CACHE_BUCKETS - 1);
}

/* The hash compare is constant-time: it is the hash of a secret. */
static bool
entry_is(const struct cache_entry *e, const char *hash_hex, const char *slug)
{
	return strlen(hash_hex) == sizeof(e->hash) - 1 &&
	    CRYPTO_memcmp(e->hash, hash_hex, sizeof(e->hash) - 1) == 0 &&
	    strcmp(e->slug, slug) == 0;
}

static int
find(const struct cache *cache, const char *hash_hex, const char *slug)
{
	int	 i = cache->buckets[bucket_of(hash_hex, slug)];

	for (; i != NONE; i = cache->entries[i].next)
		if (entry_is(&cache->entries[i], hash_hex, slug))
			return i;
	return NONE;
}

static void
unlink_entry(struct cache *cache, int i)
{
	struct cache_entry	*e = &cache->entries[i];
	int			*link = &cache->buckets[bucket_of(e->hash, e->slug)];

	while (*link != NONE && *link != i)
		link = &cache->entries[*link].next;
	if (*link == i)
		*link = e->next;
	e->used = false;
	cache->count--;
}

bool
cache_get(struct cache *cache, const char *hash_hex, const char *slug,
    double now, struct db_auth *out)
{
	const struct cache_entry	*e;
	int				 i;

	if (slug == NULL)
		slug = "";
	if ((i = find(cache, hash_hex, slug)) == NONE)
		return false;
	e = &cache->entries[i];
	if (now - e->stored_at >= cache->ttl_s || now < e->stored_at) {
		unlink_entry(cache, i);
		return false;
	}
	*out = e->auth;
	out->integ.db_now += (time_t)(now - e->stored_at);
	return true;
}

/* A free entry: the next never used one, else the oldest filled. */
static int
take_entry(struct cache *cache)
{
	int	 i;

	for (size_t n = 0; n < CACHE_ENTRIES; n++) {
		i = (int)cache->hand;
		cache->hand = (cache->hand + 1) % CACHE_ENTRIES;
		if (!cache->entries[i].used)
			return i;
	}
	i = (int)cache->hand;
	cache->hand = (cache->hand + 1) % CACHE_ENTRIES;
	unlink_entry(cache, i);
	return i;
}

void
cache_put(struct cache *cache, const char *hash_hex, const char *slug,
    double now, const struct db_auth *a)
{
	struct cache_entry	*e;
	size_t			 b;
	int			 i;

	if (slug == NULL)
		slug = "";
	if (strlen(hash_hex) != sizeof(e->hash) - 1 ||
	    strlen(slug) >= sizeof(e->slug) || !a->has_org || !a->has_integ)
		return;
	if ((i = find(cache, hash_hex, slug)) != NONE)
		unlink_entry(cache, i);
	i = take_entry(cache);
	e = &cache->entries[i];
	memcpy(e->hash, hash_hex, sizeof(e->hash));
	memcpy(e->slug, slug, strlen(slug) + 1);
	e->auth = *a;
	e->auth.integ.access_token_enc = NULL;
	e->auth.integ.refresh_token_enc = NULL;
	e->stored_at = now;
	e->used = true;
	b = bucket_of(e->hash, e->slug);
	e->next = cache->buckets[b];
	cache->buckets[b] = i;
	cache->count++;
}

void
cache_clear(struct cache *cache)
{
	for (size_t i = 0; i < CACHE_ENTRIES; i++)
		cache->entries[i].used = false;
	cache->count = 0;
	cache->hand = 0;
	buckets_empty(cache);
}

static void
forget_key(struct cache *cache, const char *key_id)
{
	for (int i = 0; i < CACHE_ENTRIES; i++)
		if (cache->entries[i].used &&
		    strcmp(cache->entries[i].auth.who.key_id, key_id) == 0)
			unlink_entry(cache, i);
}

/* The entries that name the org: as the path's org or as the key's own. */
static void
forget_org(struct cache *cache, long long org_id)
{
	for (int i = 0; i < CACHE_ENTRIES; i++) {
		const struct db_auth	*a = &cache->entries[i].auth;

		if (cache->entries[i].used &&
		    (a->org.id == org_id || a->who.org_id == org_id))
			unlink_entry(cache, i);
	}
}

/* A positive decimal id, or -1. */
static long long
parse_id(const char *s)
{
	long long	 id = 0;

	if (*s == '\0' || strlen(s) > 18)
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		id = id * 10 + (*s - '0');
	}
	return id;
}

void
cache_apply(struct cache *cache, const char *payload)
{
	long long	 org_id;

	if (strncmp(payload, "k:", 2) == 0 && payload[2] != '\0' &&
	    strlen(payload + 2) < sizeof(((struct principal *)0)->key_id))
		forget_key(cache, payload + 2);
	else if (strncmp(payload, "o:", 2) == 0 &&
	    (org_id = parse_id(payload + 2)) > 0)
		forget_org(cache, org_id);
	else
		cache_clear(cache);
}

size_t
cache_count(const struct cache *cache)
{
	return cache->count;
}

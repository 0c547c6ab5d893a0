/*
 * The worker cache: CACHE_ENTRIES slots chained from a table of buckets by
 * a hash of (key hash, slug), and their answers in an array of their own
 * (calloc: its pages are touched only as answers are stored). When full,
 * the slots are reused in the order they were filled.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cache.h"

#define CACHE_BUCKETS	1024	/* a power of two, twice the entries */
#define NONE		(-1)

/*
 * What lookups, chains and notifications walk: small, apart from the
 * answers, so that a walk touches a few pages and not every answer's.
 */
struct cache_slot {
	char		 hash[65];
	char		 slug[64];
	bool		 used;
	int		 next;		/* the bucket's next slot, or NONE */
	double		 stored_at;
	char		 key_id[40];
	long long	 org_id;	/* the path's org */
	long long	 key_org_id;	/* the key's own, 0 for an operator */
};

struct cache {
	struct cache_slot	*slots;
	struct db_auth		*answers;	/* has_integ; owns its sealed access token */
	int			 buckets[CACHE_BUCKETS];
	size_t			 count;
	size_t			 hand;	/* the next slot to fill when full */
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
	cache->slots = calloc(CACHE_ENTRIES, sizeof(*cache->slots));
	cache->answers = calloc(CACHE_ENTRIES, sizeof(*cache->answers));
	if (cache->slots == NULL || cache->answers == NULL) {
		cache_free(cache);
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
	if (cache->slots != NULL && cache->answers != NULL)
		cache_clear(cache);
	free(cache->slots);
	free(cache->answers);
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
slot_is(const struct cache_slot *e, const char *hash_hex, const char *slug)
{
	return strlen(hash_hex) == sizeof(e->hash) - 1 &&
	    CRYPTO_memcmp(e->hash, hash_hex, sizeof(e->hash) - 1) == 0 &&
	    strcmp(e->slug, slug) == 0;
}

static int
find(const struct cache *cache, const char *hash_hex, const char *slug)
{
	int	 i = cache->buckets[bucket_of(hash_hex, slug)];

	for (; i != NONE; i = cache->slots[i].next)
		if (slot_is(&cache->slots[i], hash_hex, slug))
			return i;
	return NONE;
}

static void
unlink_slot(struct cache *cache, int i)
{
	struct cache_slot	*e = &cache->slots[i];
	int			*link = &cache->buckets[bucket_of(e->hash, e->slug)];

	while (*link != NONE && *link != i)
		link = &cache->slots[*link].next;
	if (*link == i)
		*link = e->next;
	free(cache->answers[i].integ.access_token_enc);
	cache->answers[i].integ.access_token_enc = NULL;
	e->used = false;
	cache->count--;
}

bool
cache_get(struct cache *cache, const char *hash_hex, const char *slug,
    double now, struct db_auth *out)
{
	const struct cache_slot	*e;
	const char		*sealed;
	int			 i;

	if (slug == NULL)
		slug = "";
	if ((i = find(cache, hash_hex, slug)) == NONE)
		return false;
	e = &cache->slots[i];
	if (now - e->stored_at >= cache->ttl_s || now < e->stored_at) {
		unlink_slot(cache, i);
		return false;
	}
	sealed = cache->answers[i].integ.access_token_enc;
	*out = cache->answers[i];
	out->integ.access_token_enc = NULL;
	if (sealed != NULL && (out->integ.access_token_enc = strdup(sealed)) == NULL)
		return false;
	out->integ.db_now += (time_t)(now - e->stored_at);
	return true;
}

/* A free slot: the next never used one, else the oldest filled. */
static int
take_slot(struct cache *cache)
{
	int	 i;

	for (size_t n = 0; n < CACHE_ENTRIES; n++) {
		i = (int)cache->hand;
		cache->hand = (cache->hand + 1) % CACHE_ENTRIES;
		if (!cache->slots[i].used)
			return i;
	}
	i = (int)cache->hand;
	cache->hand = (cache->hand + 1) % CACHE_ENTRIES;
	unlink_slot(cache, i);
	return i;
}

void
cache_put(struct cache *cache, const char *hash_hex, const char *slug,
    double now, const struct db_auth *a)
{
	struct cache_slot	*e;
	char			*sealed = NULL;
	size_t			 b;
	int			 i;

	if (slug == NULL)
		slug = "";
	if (strlen(hash_hex) != sizeof(e->hash) - 1 ||
	    strlen(slug) >= sizeof(e->slug) || !a->has_org || !a->has_integ)
		return;
	if (a->integ.access_token_enc != NULL &&
	    (sealed = strdup(a->integ.access_token_enc)) == NULL)
		return;
	if ((i = find(cache, hash_hex, slug)) != NONE)
		unlink_slot(cache, i);
	i = take_slot(cache);
	e = &cache->slots[i];
	memcpy(e->hash, hash_hex, sizeof(e->hash));
	memcpy(e->slug, slug, strlen(slug) + 1);
	memcpy(e->key_id, a->who.key_id, sizeof(e->key_id));
	e->org_id = a->org.id;
	e->key_org_id = a->who.org_id;
	e->stored_at = now;
	e->used = true;
	cache->answers[i] = *a;
	cache->answers[i].integ.access_token_enc = sealed;
	cache->answers[i].integ.refresh_token_enc = NULL;
	b = bucket_of(e->hash, e->slug);
	e->next = cache->buckets[b];
	cache->buckets[b] = i;
	cache->count++;
}

void
cache_clear(struct cache *cache)
{
	for (size_t b = 0; b < CACHE_BUCKETS; b++)
		while (cache->buckets[b] != NONE)
			unlink_slot(cache, cache->buckets[b]);
	cache->hand = 0;
}

static void
forget_key(struct cache *cache, const char *key_id)
{
	for (int i = 0; i < CACHE_ENTRIES; i++)
		if (cache->slots[i].used &&
		    strcmp(cache->slots[i].key_id, key_id) == 0)
			unlink_slot(cache, i);
}

/* The entries that name the org: as the path's org or as the key's own. */
static void
forget_org(struct cache *cache, long long org_id)
{
	for (int i = 0; i < CACHE_ENTRIES; i++) {
		const struct cache_slot	*e = &cache->slots[i];

		if (e->used && (e->org_id == org_id || e->key_org_id == org_id))
			unlink_slot(cache, i);
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

	if (cache->count == 0)
		return;
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

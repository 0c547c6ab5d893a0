/*
 * Unit tests for src/cache.c (cmocka): hits and misses by key and slug,
 * only the sealed access token kept, expiry, what each notification forgets, and reuse of
 * entries when full.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cache.h"

/* The 64-hex hash of key number n. */
static void
hash_of(int n, char out[65])
{
	snprintf(out, 65, "%064x", n);
}

/* A complete answer: key key_id of org org_id, the org and its integration. */
static struct db_auth
answer(const char *key_id, long long key_org, long long org_id)
{
	struct db_auth	 a;

	memset(&a, 0, sizeof(a));
	snprintf(a.who.key_id, sizeof(a.who.key_id), "%s", key_id);
	a.who.role = ROLE_VIEWER;
	a.who.org_id = key_org;
	a.has_org = true;
	a.org.id = org_id;
	snprintf(a.org.slug, sizeof(a.org.slug), "org-%lld", org_id);
	a.has_integ = true;
	a.integ.org_id = org_id;
	a.integ.status = INTEG_CONNECTED;
	a.integ.db_now = 1000;
	return a;
}

static void
test_hit_miss(void **state)
{
	struct cache	*c = cache_new(10);
	struct db_auth	 a = answer("key_0000000000000001", 7, 7), got;
	char		 h1[65], h2[65];
	char		 access[] = "v1:sealed-access", refresh[] = "v1:sealed-refresh";

	(void)state;
	assert_non_null(c);
	hash_of(1, h1);
	hash_of(2, h2);
	a.integ.access_token_enc = access;
	a.integ.refresh_token_enc = refresh;
	assert_false(cache_get(c, h1, "org-7", 0.0, &got));
	cache_put(c, h1, "org-7", 100.0, &a);
	assert_int_equal(cache_count(c), 1);
	assert_true(cache_get(c, h1, "org-7", 102.5, &got));
	assert_string_equal(got.who.key_id, "key_0000000000000001");
	assert_int_equal(got.org.id, 7);
	assert_true(got.has_integ);
	/* The sealed access token, a copy of the caller's own; no refresh token. */
	assert_non_null(got.integ.access_token_enc);
	assert_ptr_not_equal(got.integ.access_token_enc, access);
	assert_string_equal(got.integ.access_token_enc, "v1:sealed-access");
	assert_null(got.integ.refresh_token_enc);
	/* The database clock moves on with the entry's age. */
	assert_int_equal(got.integ.db_now, 1002);
	db_integration_clear(&got.integ);
	/* The stored copy outlives the caller's. */
	memset(access, 'x', sizeof(access) - 1);
	assert_true(cache_get(c, h1, "org-7", 103.0, &got));
	assert_string_equal(got.integ.access_token_enc, "v1:sealed-access");
	db_integration_clear(&got.integ);
	assert_false(cache_get(c, h2, "org-7", 102.5, &got));
	assert_false(cache_get(c, h1, "org-8", 102.5, &got));
	assert_false(cache_get(c, h1, NULL, 102.5, &got));
	cache_free(c);
}

static void
test_incomplete_not_kept(void **state)
{
	struct cache	*c = cache_new(10);
	struct db_auth	 a = answer("key_0000000000000001", 7, 7), got;
	char		 h[65];

	(void)state;
	hash_of(1, h);
	a.has_integ = false;
	cache_put(c, h, "org-7", 1.0, &a);
	a.has_integ = true;
	a.has_org = false;
	cache_put(c, h, "org-7", 1.0, &a);
	assert_int_equal(cache_count(c), 0);
	assert_false(cache_get(c, h, "org-7", 1.0, &got));
	/* A hash that is not 64 characters is never stored. */
	a.has_org = true;
	cache_put(c, "abc", "org-7", 1.0, &a);
	assert_int_equal(cache_count(c), 0);
	cache_free(c);
}

static void
test_expiry(void **state)
{
	struct cache	*c = cache_new(10);
	struct db_auth	 a = answer("key_0000000000000001", 7, 7), got;
	char		 h[65];

	(void)state;
	hash_of(1, h);
	cache_put(c, h, "org-7", 50.0, &a);
	assert_true(cache_get(c, h, "org-7", 59.9, &got));
	assert_false(cache_get(c, h, "org-7", 60.0, &got));
	assert_int_equal(cache_count(c), 0);
	/* A clock that went back is not trusted either. */
	cache_put(c, h, "org-7", 50.0, &a);
	assert_false(cache_get(c, h, "org-7", 49.0, &got));
	cache_free(c);
}

static void
test_notifications(void **state)
{
	struct cache	*c = cache_new(10);
	struct db_auth	 k1 = answer("key_0000000000000001", 7, 7);
	struct db_auth	 k2 = answer("key_0000000000000002", 8, 8);
	struct db_auth	 op = answer("key_0000000000000003", 0, 8), got;
	char		 h1[65], h2[65], h3[65];

	(void)state;
	hash_of(1, h1);
	hash_of(2, h2);
	hash_of(3, h3);
	cache_put(c, h1, "org-7", 1.0, &k1);
	cache_put(c, h2, "org-8", 1.0, &k2);
	cache_put(c, h3, "org-8", 1.0, &op);
	cache_apply(c, "k:key_0000000000000001");
	assert_false(cache_get(c, h1, "org-7", 1.0, &got));
	assert_true(cache_get(c, h2, "org-8", 1.0, &got));
	/* An org's change forgets every key's entry that names it. */
	cache_apply(c, "o:8");
	assert_false(cache_get(c, h2, "org-8", 1.0, &got));
	assert_false(cache_get(c, h3, "org-8", 1.0, &got));
	cache_put(c, h1, "org-7", 1.0, &k1);
	cache_apply(c, "o:9");
	cache_apply(c, "k:key_0000000000000009");
	assert_true(cache_get(c, h1, "org-7", 1.0, &got));
	/* Anything else, "*" or unreadable, forgets everything. */
	cache_apply(c, "o:x");
	assert_int_equal(cache_count(c), 0);
	cache_put(c, h1, "org-7", 1.0, &k1);
	cache_apply(c, "*");
	assert_int_equal(cache_count(c), 0);
	cache_free(c);
}

static void
test_full_reuses_oldest(void **state)
{
	struct cache	*c = cache_new(10);
	struct db_auth	 a, got;
	char		 h[65], key[40];

	(void)state;
	for (int i = 0; i < CACHE_ENTRIES + 10; i++) {
		snprintf(key, sizeof(key), "key_%016x", i);
		a = answer(key, i + 1, i + 1);
		hash_of(i, h);
		cache_put(c, h, "org", 1.0, &a);
	}
	assert_int_equal(cache_count(c), CACHE_ENTRIES);
	for (int i = 0; i < 10; i++) {
		hash_of(i, h);
		assert_false(cache_get(c, h, "org", 1.0, &got));
	}
	for (int i = 10; i < CACHE_ENTRIES + 10; i++) {
		hash_of(i, h);
		assert_true(cache_get(c, h, "org", 1.0, &got));
		assert_int_equal(got.org.id, i + 1);
	}
	/* Storing again replaces, never duplicates. */
	hash_of(20, h);
	a = answer("key_0000000000000014", 21, 21);
	cache_put(c, h, "org", 2.0, &a);
	assert_int_equal(cache_count(c), CACHE_ENTRIES);
	a.integ.access_token_enc = (char *)"v1:kept";
	cache_put(c, h, "org", 2.0, &a);
	cache_clear(c);
	assert_int_equal(cache_count(c), 0);
	hash_of(20, h);
	assert_false(cache_get(c, h, "org", 2.0, &got));
	cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss),
		cmocka_unit_test(test_incomplete_not_kept),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_notifications),
		cmocka_unit_test(test_full_reuses_oldest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for src/sfid.c (cmocka).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "sfid.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void
test_to18_known_answers(void **state)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "00Dx0000000BV7z", "00Dx0000000BV7zEAG" },
		{ "005x00000012Q9P", "005x00000012Q9PAAU" },
		{ "00Dx0000000BV7zEAG", "00Dx0000000BV7zEAG" },
		{ "005x00000012Q9PAAU", "005x00000012Q9PAAU" },
		{ "000000000000000", "000000000000000AAA" },
		{ "AAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAA555" },
		{ "aaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaAAA" },
		/* bits 0..4 of each chunk: B=1 (1st upper), Q=16 (5th upper) */
		{ "A0000000000000A", "A0000000000000ABAQ" },
	};
	char out[19];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		memset(out, 'x', sizeof(out));
		assert_int_equal(sfid_to18(t[i].in, out), 0);
		assert_string_equal(out, t[i].out);
	}
	/* in place */
	strcpy(out, "00Dx0000000BV7z");
	assert_int_equal(sfid_to18(out, out), 0);
	assert_string_equal(out, "00Dx0000000BV7zEAG");
}

static void
test_to18_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"00Dx0000000BV7",        /* 14 */
		"00Dx0000000BV7zE",      /* 16 */
		"00Dx0000000BV7zEA",     /* 17 */
		"00Dx0000000BV7zEAGX",   /* 19 */
		"00Dx0000000BV7zEAH",    /* wrong suffix */
		"00Dx0000000BV7zeag",    /* suffix is case-sensitive */
		"00Dx0000000BV7zGAE",
		"00DX0000000BV7zEAG",    /* case of the body changes the sum */
		"005x00000012Q9PAAA",
		"00Dx0000000BV7-",       /* bad characters */
		"00Dx0000000BV7 ",
		" 0Dx0000000BV7z",
		"00Dx000000/BV7z",
		"00Dx0000000BV7zEA_",
		"00Dx0000000BV7zEA\n",
		"00Dx00000\xc3\xa9" "BV7z",
	};
	char out[19];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		strcpy(out, "unchanged");
		if (sfid_to18(bad[i], out) != -1)
			fail_msg("accepted bad id #%zu", i);
		assert_string_equal(out, "");
	}
	assert_int_equal(sfid_to18(NULL, out), -1);
}

static void
test_has_prefix(void **state)
{
	static const struct {
		const char *id, *prefix;
		bool ok;
	} t[] = {
		{ "00Dx0000000BV7z", "00D", true },
		{ "00Dx0000000BV7zEAG", "00D", true },
		{ "005x00000012Q9PAAU", "005", true },
		{ "005x00000012Q9PAAU", "00D", false },
		{ "00Dx0000000BV7zEAG", "005", false },
		{ "00Dx0000000BV7zEAG", "00d", false },  /* case-sensitive */
		{ "00Dx0000000BV7zEAH", "00D", false },  /* bad checksum */
		{ "00Dx0000000BV7", "00D", false },      /* bad length */
		{ "00Dx0000000BV7zEAG", "00", false },   /* prefix not 3 */
		{ "00Dx0000000BV7zEAG", "00Dx", false },
		{ "00Dx0000000BV7zEAG", "", false },
		{ "00Dx0000000BV7zEAG", "0-D", false },
		{ NULL, "00D", false },
		{ "00Dx0000000BV7zEAG", NULL, false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (sfid_has_prefix(t[i].id, t[i].prefix) != t[i].ok)
			fail_msg("case #%zu: expected %d", i, t[i].ok);
}

static void
test_identity_path(void **state)
{
	static const struct {
		const char *path;
		const char *org, *user; /* NULL: must fail */
	} t[] = {
		{ "/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU",
		  "00Dx0000000BV7zEAG", "005x00000012Q9PAAU" },
		{ "/id/00Dx0000000BV7z/005x00000012Q9P",
		  "00Dx0000000BV7zEAG", "005x00000012Q9PAAU" },
		{ "/id/00Dx0000000BV7z/005x00000012Q9PAAU",
		  "00Dx0000000BV7zEAG", "005x00000012Q9PAAU" },
		/* segment counts */
		{ "", NULL, NULL },
		{ "/", NULL, NULL },
		{ "/id", NULL, NULL },
		{ "/id/", NULL, NULL },
		{ "/id/00Dx0000000BV7zEAG", NULL, NULL },
		{ "/id/00Dx0000000BV7zEAG/", NULL, NULL },
		{ "/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU/", NULL, NULL },
		{ "/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU/x", NULL, NULL },
		{ "/id/00Dx0000000BV7zEAG//005x00000012Q9PAAU", NULL, NULL },
		{ "/id//00Dx0000000BV7zEAG/005x00000012Q9PAAU", NULL, NULL },
		{ "id/00Dx0000000BV7zEAG/005x00000012Q9PAAU", NULL, NULL },
		{ "/ID/00Dx0000000BV7zEAG/005x00000012Q9PAAU", NULL, NULL },
		{ "/xd/00Dx0000000BV7zEAG/005x00000012Q9PAAU", NULL, NULL },
		{ "/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU?x=1", NULL, NULL },
		{ "https://login.salesforce.com/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU",
		  NULL, NULL },
		/* bad ids */
		{ "/id/00Dx0000000BV7zEAH/005x00000012Q9PAAU", NULL, NULL },
		{ "/id/00Dx0000000BV7zEAG/005x00000012Q9PAAA", NULL, NULL },
		{ "/id/00Dx0000000BV7/005x00000012Q9PAAU", NULL, NULL },
		{ "/id/00Dx0000000BV7zEAG/005x00000012Q9", NULL, NULL },
		/* wrong kinds: user first, org second */
		{ "/id/005x00000012Q9PAAU/00Dx0000000BV7zEAG", NULL, NULL },
		{ "/id/00Dx0000000BV7zEAG/00Dx0000000BV7zEAG", NULL, NULL },
	};
	char org[19], user[19];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		int rc;

		strcpy(org, "unchanged");
		strcpy(user, "unchanged");
		rc = sfid_parse_identity_path(t[i].path, org, user);
		if (t[i].org != NULL) {
			if (rc != 0)
				fail_msg("rejected good path #%zu", i);
			assert_string_equal(org, t[i].org);
			assert_string_equal(user, t[i].user);
		} else {
			if (rc != -1)
				fail_msg("accepted bad path #%zu", i);
			assert_string_equal(org, "");
			assert_string_equal(user, "");
		}
	}
	assert_int_equal(sfid_parse_identity_path(NULL, org, user), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_to18_known_answers),
		cmocka_unit_test(test_to18_rejects),
		cmocka_unit_test(test_has_prefix),
		cmocka_unit_test(test_identity_path),
	};

	return cmocka_run_group_tests_name("sfid", tests, NULL, NULL);
}

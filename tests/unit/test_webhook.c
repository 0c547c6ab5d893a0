/*
 * Unit tests for src/webhook.c and the backoff of src/events.c (cmocka),
 * including the signature worked example of docs/API.md ("Webhooks").
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "webhook.h"

/* The worked example of docs/API.md: keep both in step. */
#define EX_SECRET	"whsec-example-secret"
#define EX_T		1767225600LL
#define EX_BODY		"{\"id\":\"evt_8f14e45fceea167a5a36dedd\"," \
	"\"type\":\"integration.invalid\",\"created_at\":\"2026-01-01T00:00:00Z\"," \
	"\"org\":\"acme\",\"integration\":{\"status\":\"invalid\"}}"
#define EX_HEX		"1be37ec4f34aa0115c33420653472230b58c27f1c44e79405c731fb6793229b0"

static void
test_signature_example(void **state)
{
	char	 out[160];

	(void)state;
	assert_int_equal(webhook_signature(EX_SECRET, EX_T, EX_BODY, out,
	    sizeof(out)), 0);
	assert_string_equal(out, "t=1767225600,v1=" EX_HEX);
	assert_int_equal(webhook_signature(EX_SECRET, EX_T, EX_BODY, out, 20), -1);
	assert_int_equal(webhook_signature(NULL, EX_T, EX_BODY, out,
	    sizeof(out)), -1);
}

/* docs/API.md shows the same numbers (found through $srcdir). */
static void
test_signature_example_documented(void **state)
{
	const char	*srcdir = getenv("srcdir");
	char		 path[1024], *text;
	FILE		*f;
	long		 n;

	(void)state;
	snprintf(path, sizeof(path), "%s/docs/API.md", srcdir ? srcdir : ".");
	if ((f = fopen(path, "r")) == NULL)
		skip();
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	assert_non_null(strstr(text, EX_SECRET));
	assert_non_null(strstr(text, "t=1767225600,v1=" EX_HEX));
	assert_non_null(strstr(text, EX_BODY));
	free(text);
}

static void
test_url_ok(void **state)
{
	static const struct {
		const char	*url;
		bool		 ok;
	} t[] = {
		{ "https://app.example.com/hooks/sfconnect", true },
		{ "https://10.0.0.1:8443/h", true },
		{ "http://127.0.0.1:8081/hook", true },
		{ "http://localhost:9/hook", true },
		{ "http://[::1]:9/hook", true },
		{ "http://app.example.com/hook", false },
		{ "http://127.0.0.2/hook", false },
		{ "http://127.0.0.1.example.com/hook", false },
		{ "ftp://127.0.0.1/hook", false },
		{ "https://app.example.com/a b", false },
		{ "", false },
		{ "HTTP://app.example.com/", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (webhook_url_ok(t[i].url) != t[i].ok)
			fail_msg("%s: expected %d", t[i].url, t[i].ok);
	assert_false(webhook_url_ok(NULL));
}

static void
test_backoff(void **state)
{
	(void)state;
	/* r = 128: the middle of the jitter, exactly the doubling. */
	assert_true(events_backoff_s(5000, 1, 128) == 5.0);
	assert_true(events_backoff_s(5000, 2, 128) == 10.0);
	assert_true(events_backoff_s(5000, 3, 128) == 20.0);
	assert_true(events_backoff_s(5000, 1, 0) == 4.0);
	assert_true(events_backoff_s(5000, 1, 255) < 6.0);
	assert_true(events_backoff_s(5000, 40, 255) == 3600.0);
	assert_true(events_backoff_s(5000, 1000000, 0) <= 3600.0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signature_example),
		cmocka_unit_test(test_signature_example_documented),
		cmocka_unit_test(test_url_ok),
		cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

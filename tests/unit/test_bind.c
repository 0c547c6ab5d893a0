/*
 * Unit tests for the browser binding of the OAuth state (cmocka): when the
 * binding cookie is Secure (src/api_connect.c), the connect_bind_browser
 * flag of the configuration (src/cfg.c), and the Cookie header reaching
 * the request (src/http_parse.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "cfg.h"
#include "http_parse.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void
test_cookie_secure_unless_http_loopback(void **state)
{
	static const char *const secure[] = {
		"https://connect.example.com",
		"https://127.0.0.1:8443",
		"https://localhost",
		"http://connect.example.com",		/* plain http elsewhere: Secure */
		"http://10.0.0.1:8080",
		"http://127.example.com",
		"http://localhost.example.com",
		"http://127.0.0.1.example.com",
		"http://[::2]:8080",
		"http://",
		"ftp://localhost",
	};
	static const char *const plain[] = {
		"http://127.0.0.1:8080",
		"http://127.0.0.1",
		"http://127.1.2.3/sfc/",
		"http://localhost:8080",
		"http://LOCALHOST",
		"http://app.localhost:8080/x",
		"http://[::1]:8080",
		"http://[::1]/",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(secure); i++)
		if (!api_connect_cookie_secure(secure[i]))
			fail_msg("not Secure for %s", secure[i]);
	for (size_t i = 0; i < ARRAY_LEN(plain); i++)
		if (api_connect_cookie_secure(plain[i]))
			fail_msg("Secure for %s", plain[i]);
}

/* Loads the required keys plus extra; cfg_load's value. */
static int
load_with(struct cfg *cfg, const char *extra, char *err, size_t errlen)
{
	char	 path[] = "/tmp/test_bind.XXXXXX";
	char	 text[2048];
	int	 fd, rc;

	snprintf(text, sizeof(text), "database_url = dbname=sfc\n"
	    "listen = unix:/run/sfc.sock\n"
	    "public_base_url = https://connect.example.com\n"
	    "salesforce_client_id = id\n"
	    "salesforce_client_secret_file = /etc/sfc/secret\n"
	    "token_key_file = /etc/sfc/key\n%s", extra);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	rc = cfg_load(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

static void
test_connect_bind_browser_flag(void **state)
{
	static const struct {
		const char	*line;
		long		 want;		/* -1: refused */
	} cases[] = {
		{ "", 1 },
		{ "connect_bind_browser = true\n", 1 },
		{ "connect_bind_browser = false\n", 0 },
		{ "connect_bind_browser = no\n", 0 },
		{ "connect_bind_browser = 1\n", 1 },
		{ "connect_bind_browser = 0\n", 0 },
		{ "connect_bind_browser = maybe\n", -1 },
		{ "connect_bind_browser = 2\n", -1 },
		{ "connect_bind_browser =\n", -1 },
	};
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int rc = load_with(&cfg, cases[i].line, err, sizeof(err));

		if (cases[i].want == -1) {
			assert_int_equal(rc, -1);
			assert_non_null(strstr(err, "connect_bind_browser"));
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(cfg.connect_bind_browser, cases[i].want);
		}
		cfg_free(&cfg);
	}
}

static const char *
param(const char *name, void *arg)
{
	const char *const *kv = arg;

	for (; kv[0] != NULL; kv += 2)
		if (strcmp(kv[0], name) == 0)
			return kv[1];
	return NULL;
}

static long
no_body(char *buf, size_t n, void *arg)
{
	(void)buf;
	(void)n;
	(void)arg;
	return 0;
}

static void
test_cookie_header_reaches_the_request(void **state)
{
	static char		 big[sizeof(((struct http_request *)0)->cookie) + 1];
	const char		*kv[] = { "REQUEST_METHOD", "GET",
				    "REQUEST_URI", "/api/v1/oauth/salesforce/callback",
				    "HTTP_COOKIE", "a=b; sfc_oauth_0123=xyz", NULL, NULL };
	struct http_request	 req;

	(void)state;
	http_request_init(&req);
	assert_int_equal(http_request_parse(&req, param, no_body, kv), 0);
	assert_string_equal(req.cookie, "a=b; sfc_oauth_0123=xyz");
	http_request_free(&req);
	/* Bounded: a longer header is refused like any other (400). */
	memset(big, 'c', sizeof(big) - 1);
	kv[5] = big;
	http_request_init(&req);
	assert_int_equal(http_request_parse(&req, param, no_body, kv), -1);
	assert_true(req.too_long);
	http_request_free(&req);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cookie_secure_unless_http_loopback),
		cmocka_unit_test(test_connect_bind_browser_flag),
		cmocka_unit_test(test_cookie_header_reaches_the_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

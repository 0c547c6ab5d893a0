/*
 * Unit tests for src/host.c (cmocka): the one host-name rule and the
 * pattern matchers behind cfg_host_in_list and the login-host checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "host.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A name of n characters: labels of 63 'a's joined by dots, the last one shorter. */
static void
long_name(char *out, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		out[i] = (i % 64 == 63) ? '.' : 'a';
	out[n] = '\0';
	if (out[n - 1] == '.')
		out[n - 1] = 'b';
}

static void
test_name_ok(void **state)
{
	static const struct {
		const char	*host;
		int		 ok;
	} t[] = {
		{ "login.salesforce.com", 1 },
		{ "acme--dev.sandbox.my.salesforce.com", 1 },
		{ "LOGIN.Salesforce.COM", 1 },	/* upper case: accepted */
		{ "localhost", 1 },
		{ "a", 1 },
		{ "1.2.3.4", 1 },
		{ "x-1.y2", 1 },
		{ "", 0 },
		{ ".", 0 },
		{ ".a.b", 0 },
		{ "a.b.", 0 },		/* no trailing dot */
		{ "a..b", 0 },
		{ "-a.b", 0 },
		{ "a-.b", 0 },
		{ "a.-b", 0 },
		{ "a.b-", 0 },
		{ "a_b.c", 0 },
		{ "a b.c", 0 },
		{ "*.my.salesforce.com", 0 },
		{ "[::1]", 0 },
		{ "a:443", 0 },
		{ "acm\xc3\xa9.com", 0 },
		{ "a\tb", 0 },
	};
	char	 label[70], name[300];
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (host_name_ok(t[i].host) != t[i].ok)
			fail_msg("host_name_ok(\"%s\") != %d", t[i].host, t[i].ok);

	/* Labels: 1..63 characters. */
	memset(label, 'a', 63);
	strcpy(label + 63, ".com");
	assert_true(host_name_ok(label));
	memset(label, 'a', 64);
	strcpy(label + 64, ".com");
	assert_false(host_name_ok(label));

	/* The whole name: at most HOST_LEN_MAX (253) characters. */
	long_name(name, HOST_LEN_MAX);
	assert_int_equal(strlen(name), 253);
	assert_true(host_name_ok(name));
	long_name(name, HOST_LEN_MAX + 1);
	assert_false(host_name_ok(name));
}

static void
test_matches_pattern(void **state)
{
	static const struct {
		const char	*pattern;
		const char	*host;
		int		 match;
	} t[] = {
		{ "login.salesforce.com", "login.salesforce.com", 1 },
		{ "login.salesforce.com", "LOGIN.SalesForce.com", 1 },
		{ "LOGIN.salesforce.com", "login.salesforce.com", 1 },
		{ "login.salesforce.com", "xlogin.salesforce.com", 0 },
		{ "login.salesforce.com", "login.salesforce.com.evil.com", 0 },
		{ "login.salesforce.com", "login.salesforce.co", 0 },
		{ "*.my.salesforce.com", "acme.my.salesforce.com", 1 },
		{ "*.my.salesforce.com", "a.b.my.salesforce.com", 1 },
		{ "*.my.salesforce.com", "ACME.MY.SALESFORCE.COM", 1 },
		{ "*.my.salesforce.com", "my.salesforce.com", 0 },
		{ "*.my.salesforce.com", ".my.salesforce.com", 0 },
		{ "*.my.salesforce.com", "evilmy.salesforce.com", 0 },
		{ "*.my.salesforce.com", "acme.my.salesforce.com.evil.com", 0 },
		{ "*.", "a.", 0 },
		{ "*", "a", 0 },
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (host_matches_pattern(t[i].pattern, strlen(t[i].pattern),
		    t[i].host) != t[i].match)
			fail_msg("host_matches_pattern(\"%s\", \"%s\") != %d",
			    t[i].pattern, t[i].host, t[i].match);

	/* Only the first patlen characters count: a word of a list. */
	assert_true(host_matches_pattern("a.com b.com", 5, "a.com"));
	assert_false(host_matches_pattern("a.com b.com", 5, "b.com"));
	assert_true(host_matches_pattern("*.a.com x", 7, "w.a.com"));
}

static void
test_in_domain(void **state)
{
	(void)state;
	assert_true(host_in_domain("force.com", "force.com"));
	assert_true(host_in_domain("acme.lightning.force.com",
	    "lightning.force.com"));
	assert_true(host_in_domain("a.b.force.com", "force.com"));
	assert_true(host_in_domain("ACME.Force.COM", "force.com"));
	assert_false(host_in_domain("visualforce.com", "force.com"));
	assert_false(host_in_domain("force.com.evil.com", "force.com"));
	assert_false(host_in_domain(".force.com", "force.com"));
	assert_false(host_in_domain("orce.com", "force.com"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_ok),
		cmocka_unit_test(test_matches_pattern),
		cmocka_unit_test(test_in_domain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

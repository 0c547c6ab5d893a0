/*
 * Unit tests for src/fcgi_guard.c (cmocka): the peer allow-list
 * (fastcgi_allowed_peers) and the check of a connection's first records
 * before libfcgi reads them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "fcgi_guard.h"

static bool
allowed(const struct fcgi_peers *p, const char *addr)
{
	struct sockaddr_in	 in;
	struct sockaddr_in6	 in6;

	memset(&in, 0, sizeof(in));
	memset(&in6, 0, sizeof(in6));
	if (inet_pton(AF_INET, addr, &in.sin_addr) == 1) {
		in.sin_family = AF_INET;
		return fcgi_peers_allow(p, (struct sockaddr *)&in, sizeof(in));
	}
	assert_int_equal(inet_pton(AF_INET6, addr, &in6.sin6_addr), 1);
	in6.sin6_family = AF_INET6;
	return fcgi_peers_allow(p, (struct sockaddr *)&in6, sizeof(in6));
}

static void
test_peers(void **state)
{
	struct fcgi_peers	 p;
	struct sockaddr_un	 un = { .sun_family = AF_UNIX };
	char			 err[256];

	(void)state;
	assert_int_equal(fcgi_peers_parse(&p, FCGI_PEERS_DEFAULT, err,
	    sizeof(err)), 0);
	assert_true(allowed(&p, "127.0.0.1"));
	assert_true(allowed(&p, "127.255.0.9"));
	assert_true(allowed(&p, "::1"));
	assert_true(allowed(&p, "::ffff:127.0.0.2"));	/* v4-mapped */
	assert_false(allowed(&p, "128.0.0.1"));
	assert_false(allowed(&p, "::2"));
	assert_false(allowed(&p, "::ffff:10.0.0.1"));
	assert_true(fcgi_peers_allow(&p, (struct sockaddr *)&un, sizeof(un)));

	assert_int_equal(fcgi_peers_parse(&p, " 10.1.0.0/17\t192.0.2.7 "
	    "2001:db8::/33 ", err, sizeof(err)), 0);
	assert_int_equal(p.n, 3);
	assert_true(allowed(&p, "10.1.127.255"));
	assert_false(allowed(&p, "10.1.128.0"));
	assert_true(allowed(&p, "192.0.2.7"));
	assert_false(allowed(&p, "192.0.2.8"));
	assert_true(allowed(&p, "2001:db8:7fff::1"));
	assert_false(allowed(&p, "2001:db8:8000::1"));
	assert_false(allowed(&p, "127.0.0.1"));

	assert_int_equal(fcgi_peers_parse(&p, "0.0.0.0/0", err, sizeof(err)), 0);
	assert_true(allowed(&p, "203.0.113.9"));
	assert_false(allowed(&p, "2001:db8::1"));

	static const char *const bad[] = { "", "   ", "10.0.0.0/33", "::/129",
		"10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/ 8", "localhost",
		"10.0.0.256", "1.2.3.4/08x", "10.0.0.0/0008" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(fcgi_peers_parse(&p, bad[i], err, sizeof(err)),
		    -1);
	assert_non_null(strstr(err, "fastcgi_allowed_peers"));
}

static void
test_loopback(void **state)
{
	struct sockaddr_in	 in = { .sin_family = AF_INET };
	struct sockaddr_in6	 in6 = { .sin6_family = AF_INET6 };

	(void)state;
	inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
	assert_true(fcgi_addr_is_loopback((struct sockaddr *)&in, sizeof(in)));
	inet_pton(AF_INET, "0.0.0.0", &in.sin_addr);
	assert_false(fcgi_addr_is_loopback((struct sockaddr *)&in, sizeof(in)));
	inet_pton(AF_INET6, "::1", &in6.sin6_addr);
	assert_true(fcgi_addr_is_loopback((struct sockaddr *)&in6, sizeof(in6)));
	inet_pton(AF_INET6, "::", &in6.sin6_addr);
	assert_false(fcgi_addr_is_loopback((struct sockaddr *)&in6, sizeof(in6)));
}

/* Appends a record to buf at *n. */
static void
rec(unsigned char *buf, size_t *n, int type, int id, const void *c,
    size_t clen, int pad)
{
	unsigned char	*h = buf + *n;

	h[0] = 1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(clen >> 8);
	h[5] = (unsigned char)clen;
	h[6] = (unsigned char)pad;
	h[7] = 0;
	memcpy(h + 8, c, clen);
	memset(h + 8 + clen, 0, (size_t)pad);
	*n += 8 + clen + (size_t)pad;
}

static const unsigned char begin_body[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };
/* REQUEST_METHOD=GET, SCRIPT_NAME=/healthz */
static const unsigned char pairs[] = "\x0e\x03REQUEST_METHODGET\x0b\x08SCRIPT_NAME/healthz";

static void
test_head(void **state)
{
	static unsigned char	 buf[FCGI_HEAD_MAX + 64];
	const size_t		 plen = sizeof(pairs) - 1;
	unsigned char		 huge[8] = { 0xff, 0xff, 0xff, 0xfe,
				    0xff, 0xff, 0xff, 0xfe };
	size_t			 n = 0, full;

	(void)state;
	rec(buf, &n, 9, 0, "\x00\x00", 2, 6);		/* management: skipped */
	rec(buf, &n, 1, 1, begin_body, 8, 0);
	rec(buf, &n, 4, 2, "junk", 4, 4);		/* another request id */
	rec(buf, &n, 4, 1, pairs, 10, 0);		/* a pair cut in two records */
	rec(buf, &n, 4, 1, pairs + 10, plen - 10, 3);
	rec(buf, &n, 4, 1, "", 0, 0);
	full = n;
	assert_int_equal(fcgi_head_check(buf, full), FCGI_HEAD_OK);
	for (size_t i = 0; i < full; i++)
		assert_int_equal(fcgi_head_check(buf, i), FCGI_HEAD_MORE);
	assert_int_equal(fcgi_request_end(buf, n), 0);
	rec(buf, &n, 5, 2, "", 0, 0);			/* another request's end */
	rec(buf, &n, 5, 1, "body", 4, 4);
	assert_int_equal(fcgi_request_end(buf, n), 0);
	rec(buf, &n, 5, 1, "", 0, 0);			/* what follows is not looked at */
	assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(fcgi_request_end(buf, i), 0);
	assert_int_equal(fcgi_request_end(buf, n), n);
	assert_int_equal(fcgi_request_end(buf, n + 3), n);

	/* The 24 bytes that abort libfcgi 2.4.2: refused at once. */
	n = 0;
	rec(buf, &n, 1, 1, begin_body, 8, 0);
	rec(buf, &n, 4, 1, huge, 8, 0);
	assert_int_equal(n, 32);
	assert_int_equal(fcgi_head_check(buf, 24), FCGI_HEAD_MORE);
	assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_BAD);

	/* A pair running past the end of the parameters. */
	n = 0;
	rec(buf, &n, 1, 1, begin_body, 8, 0);
	rec(buf, &n, 4, 1, "\x05\x05" "abc", 5, 0);
	assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_MORE);
	rec(buf, &n, 4, 1, "", 0, 0);
	assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_BAD);

	/* Version, begin record, stream type, order. */
	n = 0;
	rec(buf, &n, 1, 1, begin_body, 8, 0);
	buf[0] = 2;
	assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_BAD);
	n = 0;
	rec(buf, &n, 1, 0, begin_body, 8, 0);
	assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_BAD);
	n = 0;
	rec(buf, &n, 1, 1, begin_body, 7, 0);
	assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_BAD);
	n = 0;
	rec(buf, &n, 4, 1, pairs, plen, 0);
	assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_BAD);
	n = 0;
	rec(buf, &n, 1, 1, begin_body, 8, 0);
	rec(buf, &n, 5, 1, "x", 1, 0);
	assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_BAD);

	/* More than FCGI_PARAMS_MAX of parameters. */
	n = 0;
	rec(buf, &n, 1, 1, begin_body, 8, 0);
	{
		static unsigned char	 c[60000];

		memset(c, 'a', sizeof(c));
		/* name 1 byte, value 4 bytes: 59994 bytes of pair */
		c[0] = 1;
		c[1] = 0x80;
		c[2] = 0;
		c[3] = 0xea;
		c[4] = 0x55;
		rec(buf, &n, 4, 1, c, sizeof(c), 0);
		assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_MORE);
		rec(buf, &n, 4, 1, c, 8000, 0);
		assert_int_equal(fcgi_head_check(buf, n), FCGI_HEAD_BAD);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peers),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_head),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

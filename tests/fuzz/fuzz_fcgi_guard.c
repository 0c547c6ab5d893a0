/*
 * libFuzzer target: what the FastCGI edge checks before libfcgi reads a
 * connection (src/fcgi_guard.c): fcgi_head_check over the first bytes of
 * a stream, and fcgi_peers_parse / fcgi_peers_allow over an allow-list.
 *
 * Input: the bytes a peer sends (a heap copy of exactly that size, so ASan
 * sees a read past the end); the same bytes, cut at the first NUL, are
 * also parsed as a fastcgi_allowed_peers value.
 *
 * Checked: a verdict is final (OK or BAD for a prefix stays so for the
 * whole input); an OK head has, for the request of its begin record, a
 * parameter stream of at most FCGI_PARAMS_MAX bytes whose name-value pairs
 * end exactly at its end (parsed again here the plain way, in one piece);
 * every entry of an accepted allow-list lets its own address in.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_guard.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* The request's parameter stream reassembled; its length, or -1. */
static long
params_of(const unsigned char *p, size_t n, unsigned char *out)
{
	size_t		 off = 0, len = 0;
	unsigned	 reqid = 0;

	while (n - off >= 8) {
		const unsigned char *h = p + off;
		unsigned	 id = (unsigned)h[2] << 8 | h[3];
		size_t		 clen = (size_t)h[4] << 8 | h[5];

		if (n - off - 8 < clen + h[6])
			return -1;
		if (h[1] == 1) {
			if (reqid == 0)
				reqid = id;	/* a second one is skipped */
		} else if (id != 0 && id == reqid) {
			if (clen == 0)
				return (long)len;
			if (len + clen > FCGI_PARAMS_MAX)
				return -1;
			memcpy(out + len, h + 8, clen);
			len += clen;
		}
		off += 8 + clen + h[6];
	}
	return -1;
}

static int
pairs_ok(const unsigned char *s, size_t n)
{
	size_t	 i = 0;

	while (i < n) {
		size_t	 len[2];

		for (int k = 0; k < 2; k++) {
			if (i >= n)
				return 0;
			if (s[i] & 0x80) {
				if (n - i < 4)
					return 0;
				len[k] = ((size_t)(s[i] & 0x7f) << 24) |
				    ((size_t)s[i + 1] << 16) |
				    ((size_t)s[i + 2] << 8) | s[i + 3];
				i += 4;
			} else
				len[k] = s[i++];
		}
		if (len[0] + len[1] > n - i)
			return 0;
		i += len[0] + len[1];
	}
	return 1;
}

static void
check_peers(const uint8_t *data, size_t size)
{
	struct fcgi_peers	 peers;
	char			 err[256], *list;

	if ((list = strndup((const char *)data, size > 4096 ? 4096 : size)) == NULL)
		return;
	if (fcgi_peers_parse(&peers, list, err, sizeof(err)) == 0) {
		CHECK(peers.n >= 1 && peers.n <= FCGI_PEERS_MAX);
		for (size_t i = 0; i < peers.n; i++) {
			struct sockaddr_in	 in = { .sin_family = AF_INET };
			struct sockaddr_in6	 in6 = { .sin6_family = AF_INET6 };

			if (peers.p[i].family == AF_INET) {
				CHECK(peers.p[i].prefix <= 32);
				memcpy(&in.sin_addr, peers.p[i].addr, 4);
				CHECK(fcgi_peers_allow(&peers,
				    (struct sockaddr *)&in, sizeof(in)));
			} else {
				CHECK(peers.p[i].family == AF_INET6 &&
				    peers.p[i].prefix <= 128);
				memcpy(&in6.sin6_addr, peers.p[i].addr, 16);
				/* a v4-mapped entry is matched as IPv4: not by itself */
				if (!IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr))
					CHECK(fcgi_peers_allow(&peers,
					    (struct sockaddr *)&in6, sizeof(in6)));
			}
		}
	} else
		CHECK(strlen(err) > 0);
	free(list);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char	 stream[FCGI_PARAMS_MAX];
	unsigned char		*p = malloc(size ? size : 1);
	enum fcgi_head		 v, w;
	size_t			 step;
	long			 len;

	if (p == NULL)
		return 0;
	memcpy(p, data, size);
	v = fcgi_head_check(p, size);
	CHECK(v == FCGI_HEAD_OK || v == FCGI_HEAD_MORE || v == FCGI_HEAD_BAD);
	step = size <= 1024 ? 1 : size / 256;
	for (size_t k = 0; k < size; k += step) {
		w = fcgi_head_check(p, k);
		if (w != FCGI_HEAD_MORE)
			CHECK(w == v);
	}
	if (v == FCGI_HEAD_OK) {
		len = params_of(p, size, stream);
		CHECK(len >= 0 && len <= FCGI_PARAMS_MAX);
		CHECK(pairs_ok(stream, (size_t)len));
	}
	check_peers(data, size);
	free(p);
	return 0;
}

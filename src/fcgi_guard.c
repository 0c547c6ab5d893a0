#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_guard.h"

#define FCGI_VERSION_1		1
#define FCGI_BEGIN_REQUEST	1
#define FCGI_PARAMS		4
#define FCGI_STDIN		5
#define FCGI_HEADER_LEN		8
#define FCGI_BEGIN_BODY_LEN	8

/* Parses one "address[/prefix]" entry of len bytes into *pe; 0 or -1. */
static int
peer_parse(struct fcgi_peer *pe, const char *s, size_t len)
{
	char		 text[INET6_ADDRSTRLEN + 8];
	char		*slash, *end;
	unsigned long	 bits;
	unsigned	 maxbits;

	if (len == 0 || len >= sizeof(text))
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	if ((slash = strchr(text, '/')) != NULL)
		*slash++ = '\0';
	memset(pe, 0, sizeof(*pe));
	if (inet_pton(AF_INET, text, pe->addr) == 1) {
		pe->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, text, pe->addr) == 1) {
		pe->family = AF_INET6;
		maxbits = 128;
	} else
		return -1;
	pe->prefix = maxbits;
	if (slash == NULL)
		return 0;
	if (*slash < '0' || *slash > '9' || strlen(slash) > 3)
		return -1;
	bits = strtoul(slash, &end, 10);
	if (*end != '\0' || bits > maxbits)
		return -1;
	pe->prefix = (unsigned)bits;
	return 0;
}

int
fcgi_peers_parse(struct fcgi_peers *out, const char *list, char *err,
    size_t errlen)
{
	const char	*s = list;
	size_t		 len;

	memset(out, 0, sizeof(*out));
	for (;;) {
		s += strspn(s, " \t");
		if (*s == '\0')
			break;
		len = strcspn(s, " \t");
		if (out->n == FCGI_PEERS_MAX) {
			snprintf(err, errlen, "fastcgi_allowed_peers: more than "
			    "%d entries", FCGI_PEERS_MAX);
			return -1;
		}
		if (peer_parse(&out->p[out->n], s, len) == -1) {
			snprintf(err, errlen, "fastcgi_allowed_peers: \"%.*s\" "
			    "is not an IP address or CIDR prefix",
			    len > 64 ? 64 : (int)len, s);
			return -1;
		}
		out->n++;
		s += len;
	}
	if (out->n == 0) {
		snprintf(err, errlen, "fastcgi_allowed_peers: empty");
		return -1;
	}
	return 0;
}

/* true when the first bits of a and b are equal. */
static bool
prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned	 bytes = bits / 8, rest = bits % 8;
	unsigned char	 mask;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

/*
 * The address of sa as family and bytes, an IPv4-mapped IPv6 address
 * turned into IPv4. 0, or -1 when sa is not a whole AF_INET/AF_INET6 one.
 */
static int
addr_of(const struct sockaddr *sa, socklen_t len, int *family,
    unsigned char addr[16])
{
	const struct sockaddr_in	*in;
	const struct sockaddr_in6	*in6;

	if (sa->sa_family == AF_INET && len >= sizeof(*in)) {
		in = (const struct sockaddr_in *)sa;
		*family = AF_INET;
		memcpy(addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(*in6)) {
		in6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			*family = AF_INET;
			memcpy(addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			*family = AF_INET6;
			memcpy(addr, in6->sin6_addr.s6_addr, 16);
		}
		return 0;
	}
	return -1;
}

bool
fcgi_peers_allow(const struct fcgi_peers *peers, const struct sockaddr *sa,
    socklen_t len)
{
	unsigned char	 addr[16];
	int		 family;

	if (len < sizeof(sa->sa_family))
		return false;
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return true;
	if (addr_of(sa, len, &family, addr) == -1)
		return false;
	for (size_t i = 0; i < peers->n; i++)
		if (peers->p[i].family == family &&
		    prefix_equal(peers->p[i].addr, addr, peers->p[i].prefix))
			return true;
	return false;
}

bool
fcgi_addr_is_loopback(const struct sockaddr *sa, socklen_t len)
{
	static const unsigned char	 v6_loop[16] = { [15] = 1 };
	unsigned char			 addr[16];
	int				 family;

	if (len < sizeof(sa->sa_family) || addr_of(sa, len, &family, addr) == -1)
		return false;
	return family == AF_INET ? addr[0] == 127 :
	    memcmp(addr, v6_loop, 16) == 0;
}

/*
 * The FCGI_PARAMS stream read incrementally: each pair is a name length,
 * a value length (1 byte, or 4 with the top bit set) and that many bytes.
 */
struct pairs {
	size_t		 total;		/* stream bytes so far */
	int		 stage;		/* 0: name length, 1: value length, 2: bytes */
	unsigned char	 lb[4];
	unsigned	 lbn;
	uint32_t	 namelen;
	size_t		 left;		/* bytes of the current pair to go */
};

/* Feeds len more stream bytes; -1 when the stream cannot be well-formed. */
static int
pairs_feed(struct pairs *s, const unsigned char *c, size_t len)
{
	uint32_t	 v;

	if (len > FCGI_PARAMS_MAX - s->total)
		return -1;
	s->total += len;
	while (len > 0) {
		if (s->stage == 2) {
			size_t k = len < s->left ? len : s->left;

			c += k;
			len -= k;
			if ((s->left -= k) == 0)
				s->stage = 0;
			continue;
		}
		s->lb[s->lbn++] = *c++;
		len--;
		if (s->lbn == 1 && (s->lb[0] & 0x80) == 0)
			v = s->lb[0];
		else if (s->lbn < 4)
			continue;
		else
			v = ((uint32_t)(s->lb[0] & 0x7f) << 24) |
			    ((uint32_t)s->lb[1] << 16) |
			    ((uint32_t)s->lb[2] << 8) | s->lb[3];
		s->lbn = 0;
		if (v > FCGI_PARAMS_MAX)
			return -1;
		if (s->stage == 0) {
			s->namelen = v;
			s->stage = 1;
		} else {
			s->left = (size_t)s->namelen + v;
			s->stage = s->left > 0 ? 2 : 0;
		}
	}
	return 0;
}

enum fcgi_head
fcgi_head_check(const unsigned char *p, size_t n)
{
	struct pairs	 pairs;
	size_t		 off = 0, clen, pad;
	unsigned	 type, id, reqid = 0;

	memset(&pairs, 0, sizeof(pairs));
	if (n > FCGI_HEAD_MAX)
		n = FCGI_HEAD_MAX;
	for (;;) {
		const unsigned char *h = p + off;

		if (n - off < FCGI_HEADER_LEN)
			return FCGI_HEAD_MORE;
		if (h[0] != FCGI_VERSION_1)
			return FCGI_HEAD_BAD;
		type = h[1];
		id = (unsigned)h[2] << 8 | h[3];
		clen = (size_t)h[4] << 8 | h[5];
		pad = h[6];
		if (n - off - FCGI_HEADER_LEN < clen + pad)
			return FCGI_HEAD_MORE;
		if (type == FCGI_BEGIN_REQUEST) {
			/* A second one is refused by libfcgi (FCGI_CANT_MPX_CONN). */
			if (reqid == 0) {
				if (id == 0 || clen != FCGI_BEGIN_BODY_LEN)
					return FCGI_HEAD_BAD;
				reqid = id;
			}
		} else if (id == 0) {
			/* A management record: answered or ignored by libfcgi. */
		} else if (reqid == 0) {
			return FCGI_HEAD_BAD;
		} else if (id == reqid) {
			if (type != FCGI_PARAMS)
				return FCGI_HEAD_BAD;
			if (clen == 0)
				return pairs.stage == 0 && pairs.lbn == 0 ?
				    FCGI_HEAD_OK : FCGI_HEAD_BAD;
			if (pairs_feed(&pairs, h + FCGI_HEADER_LEN, clen) == -1)
				return FCGI_HEAD_BAD;
		}
		/* Records of another request id are skipped, as libfcgi does. */
		off += FCGI_HEADER_LEN + clen + pad;
	}
}

size_t
fcgi_request_end(const unsigned char *p, size_t n)
{
	size_t		 off = 0, clen, pad;
	unsigned	 type, id, reqid = 0;

	if (n > FCGI_HEAD_MAX)
		n = FCGI_HEAD_MAX;
	while (n - off >= FCGI_HEADER_LEN) {
		const unsigned char *h = p + off;

		type = h[1];
		id = (unsigned)h[2] << 8 | h[3];
		clen = (size_t)h[4] << 8 | h[5];
		pad = h[6];
		if (h[0] != FCGI_VERSION_1 ||
		    n - off - FCGI_HEADER_LEN < clen + pad)
			return 0;
		off += FCGI_HEADER_LEN + clen + pad;
		if (type == FCGI_BEGIN_REQUEST && reqid == 0)
			reqid = id;
		else if (reqid != 0 && id == reqid && type == FCGI_STDIN &&
		    clen == 0)
			return off;
	}
	return 0;
}

/*
 * What the FastCGI edge checks on a connection before libfcgi reads a
 * byte of it: the peer (an allow-list of addresses and CIDR prefixes for
 * TCP) and the head of the stream (the records up to the end of the
 * request's parameters, whose name and value lengths libfcgi 2.4.2 does
 * not bound). Pure functions: no libfcgi, no I/O.
 */
#ifndef SFC_FCGI_GUARD_H
#define SFC_FCGI_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define FCGI_PEERS_DEFAULT	"127.0.0.0/8 ::1"
#define FCGI_PEERS_MAX		32
/* The parameters of one request, all name-value pairs with their lengths. */
#define FCGI_PARAMS_MAX		(64 * 1024)
/* The bytes looked at before libfcgi reads: the parameters and their framing. */
#define FCGI_HEAD_MAX		(FCGI_PARAMS_MAX + 32 * 1024)

struct fcgi_peer {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 addr[16];	/* network order; 4 bytes for AF_INET */
	unsigned	 prefix;	/* bits that must match */
};

struct fcgi_peers {
	size_t		 n;
	struct fcgi_peer p[FCGI_PEERS_MAX];
};

/*
 * Parses a space-separated list of IPv4/IPv6 addresses, each with an
 * optional "/prefix" (e.g. "127.0.0.0/8 ::1 10.1.2.3"). 0, or -1 with one
 * line in err (a bad entry, too many, or an empty list).
 */
int	fcgi_peers_parse(struct fcgi_peers *out, const char *list, char *err,
	    size_t errlen);

/*
 * true when the peer address sa may talk to us: an AF_INET or AF_INET6
 * address inside one of the prefixes (an IPv4-mapped IPv6 address counts
 * as IPv4). Other families (AF_UNIX: the socket's mode decides) are
 * allowed; a malformed address is not.
 */
bool	fcgi_peers_allow(const struct fcgi_peers *peers,
	    const struct sockaddr *sa, socklen_t len);

/* true when sa is an AF_INET/AF_INET6 loopback address (127.0.0.0/8, ::1). */
bool	fcgi_addr_is_loopback(const struct sockaddr *sa, socklen_t len);

enum fcgi_head {
	FCGI_HEAD_OK,	/* the parameters are complete and well-formed */
	FCGI_HEAD_MORE,	/* not yet complete: look again when more has come */
	FCGI_HEAD_BAD,	/* not FastCGI as libfcgi must be given it: close */
};

/*
 * Judges the first n bytes received on a connection (at most
 * FCGI_HEAD_MAX are looked at), reading the records the way libfcgi's
 * FCGX_Accept_r does: one FCGI_BEGIN_REQUEST, management records and
 * records of other request ids skipped, then the request's FCGI_PARAMS
 * records up to the empty one. BAD when a record's version is not 1, the
 * begin record is malformed, a record of the request is not PARAMS, the
 * parameters exceed FCGI_PARAMS_MAX or a name-value pair's lengths run
 * past their end; MORE when the parameters have not ended within n bytes
 * (the caller gives up at FCGI_HEAD_MAX).
 */
enum fcgi_head fcgi_head_check(const unsigned char *p, size_t n);

/*
 * For a head that fcgi_head_check judged OK: when the first n bytes also
 * hold the end of the request's FCGI_STDIN (its empty record), so that
 * a FastCGI client has nothing more to send, the offset just past that
 * record; otherwise 0.
 */
size_t	fcgi_request_end(const unsigned char *p, size_t n);

#endif

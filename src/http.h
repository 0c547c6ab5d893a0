/*
 * The neutral request and response: the edge parser (http_parse.c) fills
 * a request from what the FastCGI edge (fcgi.c) hands it, and fcgi.c
 * writes the response; nothing else sees libfcgi.
 */
#ifndef SFC_HTTP_H
#define SFC_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define HTTP_MAX_BODY		(64 * 1024)
#define HTTP_MAX_RESPONSE	(1024 * 1024)

struct http_request {
	char		 method[16];
	char		 path[1024];		/* undecoded, without the query */
	char		 query[2048];
	char		 content_type[128];
	char		 authorization[512];
	char		 accept[256];
	char		 origin[256];
	char		 cookie[8192];		/* nginx's longest header line */
	char		 prefer[256];		/* RFC 7240 Prefer */
	char		 request_id[65];	/* caller's if sane, else generated */
	bool		 too_long;		/* a path, query or header did not fit */
	bool		 body_too_large;
	bool		 bad_length;		/* CONTENT_LENGTH unparsable or short read */
	size_t		 content_length;
	struct buf	 body;
};

struct http_response {
	int		 status;
	const char	*content_type;	/* static string */
	struct buf	 headers;	/* extra "Name: value\r\n" lines */
	struct buf	 body;
};

void	http_request_init(struct http_request *req);
void	http_request_free(struct http_request *req);
void	http_response_init(struct http_response *res);
void	http_response_free(struct http_response *res);
/* 0, or -1 when value holds CR/LF or the header space is full. */
int	http_add_header(struct http_response *res, const char *name,
	    const char *value);
const char *http_status_text(int status);

/*
 * Copies the query parameter name of query into out (percent-decoded).
 * Returns 1 when found, 0 when absent, -1 when the value is too long or
 * badly encoded.
 */
int	http_query_param(const char *query, const char *name, char *out,
	    size_t outlen);
/* Percent-decodes in into out ('+' stays '+'); -1 on bad escape, NUL or overflow. */
int	http_percent_decode(const char *in, size_t inlen, char *out,
	    size_t outlen);
/* true when s is a sane request id: [A-Za-z0-9._:-]{1,64}. */
bool	http_request_id_ok(const char *s);

#endif

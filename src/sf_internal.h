/*
 * What the three parts of the Salesforce client share, and the parts that
 * need no network, exposed for the unit tests (tests/unit/test_sf.c) and
 * the fuzz target (tests/fuzz/fuzz_token_response.c). Nothing else
 * includes this header.
 *
 *   sf_xfer.c   every libcurl transfer: the token, identity and revoke
 *               calls; the client itself
 *   sf_many.c   the concurrent refresh of a check batch (curl multi)
 *   sf_parse.c  no network: the answers (token, identity, revoke), display
 *               text, the error tables and their classification
 *   sf_hosts.c  no network: the allowed-host check of every URL, the login
 *               hosts (sf_login_base), the authorize URL and the form
 *               encoding of what is sent
 */
#ifndef SFC_SF_INTERNAL_H
#define SFC_SF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "buf.h"
#include "cfg.h"
#include "host.h"
#include "sf.h"

/* Largest Salesforce response body accepted (bytes). */
#define SF_RESPONSE_MAX	(1024 * 1024)
/* Longest URL built or accepted. */
#define SF_URL_MAX	8192

struct sf {
	const struct cfg	*cfg;		/* not owned: outlives the client */
	char			*secret;	/* owned copy, cleansed on free */
	char			*redirect_uri;	/* owned */
	CURL			*curl;		/* owned, reused by every single call */
	CURLSH			*share;		/* owned: connections, DNS, TLS sessions */
};

/* ---------------------------------------------------------------- sf_xfer.c */

/* One HTTP exchange, described for xfer_start(). */
struct sf_req {
	const char	*what;		/* for logs: "token", "revoke", "identity" */
	const char	*url;
	const char	*form;		/* POST body (form-encoded); NULL: GET */
	size_t		 formlen;
	const char	*bearer;	/* access token for Authorization, or NULL */
	struct buf	*out;		/* response body; max SF_RESPONSE_MAX */
	long		 status;	/* out: the HTTP status */
	double		 seconds;	/* out: the transfer's duration */
	bool		 once;		/* curl sends form at most once (body_read()) */
	bool		 refresh;	/* a failure once sent: refresh_outcome_unknown */
};

/* Where a transfer's body goes, and whether it outgrew SF_RESPONSE_MAX. */
struct sink {
	struct buf	*out;
	int		 too_large;
};

/*
 * One transfer on one easy handle, from xfer_start() to xfer_end(): what
 * curl points into while it runs (the sink, the error buffer, the headers,
 * the URL handle) lives here, so the struct must not move meanwhile.
 */
struct sf_xfer {
	CURL			*c;		/* not owned */
	struct sf_req		*r;		/* not owned */
	CURLU			*u;
	struct curl_slist	*hdrs;
	char			*auth;		/* "Authorization: Bearer ..." */
	struct sink		 sink;
	size_t			 body_read;	/* of r->form, by curl (once) */
	bool			 resend_refused; /* curl tried to send it again */
	char			 host[HOST_LEN_MAX + 1];
	char			 errbuf[CURL_ERROR_SIZE];
};

/*
 * A form POST: the request and the buffers curl reads from and writes to
 * while it runs. Must not move between sfx_post_begin() and sfx_post_end().
 */
struct sf_post {
	struct sf_req	 r;
	struct sf_xfer	 x;
	struct buf	 url;
	struct buf	 form;		/* holds secrets: cleansed */
	struct buf	 resp;		/* may hold tokens: cleansed */
};

/* Empties p so that sfx_post_end() may be called on it. */
void	sfx_post_init(struct sf_post *p);
/* Cleanses and frees what a POST built; resets its easy handle. */
void	sfx_post_end(struct sf_post *p);
/*
 * Prepares the refresh grant of refresh_token at login_base on the easy
 * handle c, without running it: empties *out and *err, initialises p. 0,
 * or -1 with *err. Call sfx_post_end() on p in both cases; once c has
 * run, sfx_token_finish() judges it.
 */
int	sfx_refresh_begin(struct sf *sf, CURL *c, struct sf_post *p,
	    const char *login_base, const char *refresh_token,
	    struct sf_token *out, struct sf_error *err);
/*
 * Judges a token endpoint POST that ended with rc. 0 with *out filled, or
 * -1 with *err (*out empty but for a refused answer's new refresh token).
 */
int	sfx_token_finish(struct sf *sf, struct sf_post *p, CURLcode rc,
	    struct sf_token *out, struct sf_error *err);

/* ---------------------------------------------------------------- sf_parse.c */

/*
 * Classifies a non-200 answer of the token or revoke endpoint: body is the
 * response body (NULL or anything). Fills every field of *err, http_status
 * included.
 */
void	sf_classify_error(long status, const char *body, struct sf_error *err);

/*
 * Classifies a libcurl failure (curl_code is a CURLcode other than
 * CURLE_OK) for a request to host; detail is libcurl's error buffer text or
 * NULL. Fills every field of *err (http_status 0).
 */
void	sf_classify_transport(int curl_code, const char *host,
	    const char *detail, struct sf_error *err);

/*
 * Parses a 200 answer of the token endpoint and checks its signature with
 * secret. 0 with *out filled (owned by the caller: sf_token_clear), or -1
 * with *err (http_status 0) and *out empty.
 */
int	sf_parse_token_response(const char *body, const char *secret,
	    struct sf_token *out, struct sf_error *err);

/*
 * Parses a 200 answer of the identity URL and checks that it names the
 * token's org and user. 0 with *out filled, or -1 with *err (http_status 0)
 * and *out zeroed.
 */
int	sf_parse_identity_response(const char *body,
	    const struct sf_token *token, struct sf_identity *out,
	    struct sf_error *err);

/*
 * Judge a whole answer (HTTP status and body) of an endpoint; *err was
 * emptied by the caller, *out too. err->http_status is set to status.
 *
 * sf_token_answer: 0 with *out filled (as sf_parse_token_response), or -1.
 * sf_identity_answer: 0 with *out filled (as sf_parse_identity_response),
 * or -1; a 401 or 403 means the access token is dead (SF_INVALID).
 * sf_revoke_answer: 0 when revoked or already dead (400 invalid_token or
 * unsupported_token_type; *err is then empty), or -1.
 */
int	sf_token_answer(long status, const struct buf *resp,
	    const char *secret, struct sf_token *out, struct sf_error *err);
int	sf_identity_answer(long status, const struct buf *resp,
	    const struct sf_token *token, struct sf_identity *out,
	    struct sf_error *err);
int	sf_revoke_answer(long status, const struct buf *resp,
	    struct sf_error *err);

/*
 * Copies src into dst (size dstlen > 0) as display text: control
 * characters become spaces, invalid UTF-8 becomes '?', and truncation
 * never splits a character (dst is a byte prefix of src when nothing was
 * replaced).
 */
void	sf_text_copy(char *dst, size_t dstlen, const char *src);

/* Empties *err (kind SF_OK). */
void	sf_err_clear(struct sf_error *err);
/* Sets kind, code and message (formatted, then cleaned); keeps http_status. */
void	sf_err_set(struct sf_error *err, enum sf_kind kind, const char *code,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define SF_MALFORMED(err, ...) \
	sf_err_set((err), SF_TRANSIENT, "malformed", __VA_ARGS__)

/* ---------------------------------------------------------------- sf_hosts.c */

enum sf_url_verdict { SF_URL_OK, SF_URL_BAD, SF_URL_NOT_ALLOWED };

/*
 * Checks that url is https://host... with no user info and that host is in
 * allowed (a salesforce_allowed_hosts list). host (hostlen > 0) gets the
 * host name whenever one was parsed. On SF_URL_OK and hp non-NULL, *hp is
 * the parsed handle (owned by the caller: curl_url_cleanup).
 */
enum sf_url_verdict sf_url_check(const char *allowed, const char *url,
	    CURLU **hp, char *host, size_t hostlen);

struct sf_form_field {
	const char	*name;
	const char	*value;
};

/*
 * Appends name=value&... to b, each value percent-encoded (a space as %20).
 * 0, or -1 on a NULL value, a full buffer or out of memory.
 */
int	sf_form_append(struct buf *b, const struct sf_form_field *f, size_t n);
/*
 * Initialises b with the form of f in one allocation of the largest size
 * it can need (the form carries secrets: see buf_presize). 0 or -1; free b
 * with buf_cleanse_free() in both cases.
 */
int	sf_form_build(struct buf *b, const struct sf_form_field *f, size_t n);

#endif

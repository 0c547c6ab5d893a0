/*
 * The Salesforce client's transfers: every libcurl call of the client (the
 * OAuth token, revoke and identity endpoints).
 *
 * Every call goes through xfer_start() and xfer_done(): https only, TLS
 * always verified, a timeout, no redirects, a 1 MiB response cap, and only
 * hosts from salesforce_allowed_hosts (checked on the very URL handle that
 * curl then uses). Single calls run on one reused curl handle
 * (sf_request()); sf_refresh_many() runs the same transfers on a curl multi
 * handle. Every handle shares one connection cache (CURLSH), so connections
 * are reused across calls. Buffers that held a token are cleansed before
 * they are freed; nothing here logs a token or a response body.
 *
 * A struct sf belongs to one thread: the share has no lock callbacks.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "buf.h"
#include "cfg.h"
#include "crypto.h"
#include "host.h"
#include "log.h"
#include "metrics.h"
#include "secret.h"
#include "sf.h"
#include "sf_internal.h"
#include "util.h"

#define SF_USER_AGENT		"sfconnect/0.1"
#define SF_CALLBACK_PATH	"/api/v1/oauth/salesforce/callback"
#define SF_CONNECT_TIMEOUT_MS	5000L
#define SF_RESPONSE_PRESIZE	(16 * 1024)	/* one allocation for usual answers */
#define SF_ONCE_MAXAGE_S	10L	/* idle seconds a sent-once POST reuses a connection */

/* ---------------------------------------------------------------- HTTP */

static size_t
sink_write(char *data, size_t size, size_t n, void *arg)
{
	struct sink	*s = arg;
	size_t		 len = size * n;

	/* Salesforce's answers carry tokens: a growth wipes the old block. */
	s->out->wipe = 1;
	if (len > s->out->max - s->out->len) {
		s->too_large = 1;
		return 0;
	}
	if (buf_append(s->out, data, len) == -1)
		return 0;
	return len;
}

/* Appends line to *list; 0, or -1 out of memory (*list is then unchanged). */
static int
header_add(struct curl_slist **list, const char *line)
{
	struct curl_slist	*l;

	if ((l = curl_slist_append(*list, line)) == NULL)
		return -1;
	*list = l;
	return 0;
}

/* Frees a header list, overwriting each line first (one carries the bearer token). */
static void
headers_free(struct curl_slist *list)
{
	struct curl_slist	*l;

	for (l = list; l != NULL; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

/*
 * The body of a request sent at most once (r->once: a refresh, a code
 * exchange) reaches curl through body_read(), not as CURLOPT_POSTFIELDS,
 * so that curl cannot send it twice by itself. libcurl re-sends a request
 * on a new connection when a reused connection ended before any byte of
 * the answer (Curl_retry_request(): the server closed it idle just as the
 * request went out, or died after reading it). Salesforce may have used
 * the refresh token or the authorization code by then: a used refresh
 * token presented again, with rotation on, revokes the grant; a used code
 * is refused and may revoke the tokens issued from it (RFC 6749 4.1.2).
 * So once any byte of the body went to curl, a new connection for the
 * same transfer (body_sockopt()) and a rewind of the body (body_seek())
 * are refused: the transfer fails as a lost answer (resend_refused()). A
 * body not yet read never left: curl may still send it on another
 * connection.
 */
static size_t
body_read(char *out, size_t size, size_t n, void *arg)
{
	struct sf_xfer	*x = arg;
	size_t		 len = size * n, left = x->r->formlen - x->body_read;

	if (len > left)
		len = left;
	memcpy(out, x->r->form + x->body_read, len);
	x->body_read += len;
	return len;
}

static int
body_seek(void *arg, curl_off_t offset, int origin)
{
	struct sf_xfer	*x = arg;

	if (offset == 0 && origin == SEEK_SET && x->body_read == 0)
		return CURL_SEEKFUNC_OK;
	x->resend_refused = true;
	return CURL_SEEKFUNC_FAIL;
}

static int
body_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	struct sf_xfer	*x = arg;

	(void)fd;
	if (purpose != CURLSOCKTYPE_IPCXN || x->body_read == 0)
		return CURL_SOCKOPT_OK;
	x->resend_refused = true;
	return CURL_SOCKOPT_ERROR;
}

/* Empties x so that xfer_end() may be called on it. */
static void
xfer_init(struct sf_xfer *x)
{
	memset(x, 0, sizeof(*x));
}

/*
 * Prepares r on the easy handle c (reset first) without running it: 0, or
 * -1 with *err: a URL that is not https or whose host is not allowed
 * (SF_CONFIG), or out of memory (SF_TRANSIENT). x was emptied by
 * xfer_init(); call xfer_end() on it in both cases. r must outlive the
 * transfer.
 */
static int
xfer_start(struct sf *sf, CURL *c, struct sf_xfer *x, struct sf_req *r,
    struct sf_error *err)
{
	const struct cfg	*cfg = sf->cfg;
	long			 ctimeout;
	CURLcode		 rc = CURLE_OK;

	x->c = c;
	x->r = r;
	x->sink.out = r->out;
	x->sink.too_large = 0;
	r->status = 0;
	switch (sf_url_check(cfg->salesforce_allowed_hosts, r->url, &x->u,
	    x->host, sizeof(x->host))) {
	case SF_URL_OK:
		break;
	case SF_URL_NOT_ALLOWED:
		sf_err_set(err, SF_CONFIG, "host_not_allowed", "%s is not in "
		    "salesforce_allowed_hosts", x->host);
		return -1;
	case SF_URL_BAD:
		sf_err_set(err, SF_CONFIG, "bad_url",
		    "the Salesforce URL is not a valid https URL");
		return -1;
	}

	if (header_add(&x->hdrs, "Accept: application/json") == -1 ||
	    header_add(&x->hdrs, "Expect:") == -1 ||
	    (r->form != NULL && header_add(&x->hdrs,
	    "Content-Type: application/x-www-form-urlencoded") == -1))
		goto oom;
	if (r->bearer != NULL) {
		size_t	 n = strlen(r->bearer) + sizeof("Authorization: Bearer ");

		if ((x->auth = malloc(n)) == NULL)
			goto oom;
		snprintf(x->auth, n, "Authorization: Bearer %s", r->bearer);
		if (header_add(&x->hdrs, x->auth) == -1)
			goto oom;
	}

	ctimeout = cfg->http_timeout_ms < SF_CONNECT_TIMEOUT_MS ?
	    cfg->http_timeout_ms : SF_CONNECT_TIMEOUT_MS;
	x->errbuf[0] = '\0';
	curl_easy_reset(c);
#define SET(opt, val) do {						\
		if (rc == CURLE_OK)					\
			rc = curl_easy_setopt(c, (opt), (val));		\
	} while (0)
	SET(CURLOPT_SHARE, sf->share);
	SET(CURLOPT_CURLU, x->u);
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, cfg->http_timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, ctimeout);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (cfg->tls_ca_file != NULL && cfg->tls_ca_file[0] != '\0')
		SET(CURLOPT_CAINFO, cfg->tls_ca_file);
	SET(CURLOPT_USERAGENT, SF_USER_AGENT);
	SET(CURLOPT_HTTPHEADER, x->hdrs);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->out->max);
	SET(CURLOPT_WRITEFUNCTION, sink_write);
	SET(CURLOPT_WRITEDATA, &x->sink);
	if (r->form != NULL && r->once) {
		x->body_read = 0;
		x->resend_refused = false;
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_READFUNCTION, body_read);
		SET(CURLOPT_READDATA, x);
		SET(CURLOPT_SEEKFUNCTION, body_seek);
		SET(CURLOPT_SEEKDATA, x);
		SET(CURLOPT_SOCKOPTFUNCTION, body_sockopt);
		SET(CURLOPT_SOCKOPTDATA, x);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->formlen);
		/* Well inside any server's keep-alive: fewer closes in flight. */
		SET(CURLOPT_MAXAGE_CONN, SF_ONCE_MAXAGE_S);
	} else if (r->form != NULL) {
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDS, r->form);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->formlen);
	} else
		SET(CURLOPT_HTTPGET, 1L);
#undef SET
	if (rc != CURLE_OK) {
		sf_classify_transport(rc, x->host, NULL, err);
		return -1;
	}
	return 0;
oom:
	sf_err_set(err, SF_TRANSIENT, "internal", "out of memory");
	return -1;
}

/* true when curl wrote (some of) the request before the transfer failed. */
static bool
request_sent(struct sf_xfer *x)
{
	long	 sent = 0;

	if (x->body_read > 0)
		return true;
	return curl_easy_getinfo(x->c, CURLINFO_REQUEST_SIZE, &sent) ==
	    CURLE_OK && sent > 0;
}

/*
 * Curl wanted to send the request again on a new connection and was
 * refused: the connection died after the request, before any answer.
 */
static void
resend_refused(struct sf_xfer *x, struct sf_error *err)
{
	sf_err_set(err, SF_TRANSIENT, "connect", "the connection to %s closed "
	    "before an answer; the request is not sent again", x->host);
	log_warn(x->r->refresh ? "refresh_not_resent" : "code_not_resent",
	    "%s %s: the connection died before an answer; libcurl's own "
	    "re-send was refused", x->r->what, x->host);
}

/*
 * A refresh that failed after its request went out (a timeout while
 * waiting, a connection dropped before or during the answer): Salesforce
 * may have used the refresh token and, with rotation, replaced it. It is
 * not sent again by this call; the next scheduled try presents the stored
 * token (docs/API.md, "refresh_outcome_unknown").
 */
static void
outcome_unknown(struct sf_xfer *x, struct sf_error *err)
{
	char	 was[sizeof(err->code)];

	snprintf(was, sizeof(was), "%s", err->code);
	sf_err_set(err, SF_TRANSIENT, "refresh_outcome_unknown", "the refresh "
	    "was sent to %s but its answer was lost (%s); it is not sent again "
	    "now", x->host, was);
	log_warn("refresh_outcome_unknown", "%s %s: the request was sent, the "
	    "answer lost (%s); not re-sent", x->r->what, x->host, was);
}

/*
 * Judges a transfer started by xfer_start() that ended with rc. 0 when
 * Salesforce answered (any status: x->r->status, body in x->r->out), or -1
 * with *err: a transport failure or an oversized answer (SF_TRANSIENT).
 */
static int
xfer_done(struct sf_xfer *x, CURLcode rc, struct sf_error *err)
{
	struct sf_req	*r = x->r;
	curl_off_t	 elapsed = 0;

	curl_easy_getinfo(x->c, CURLINFO_TOTAL_TIME_T, &elapsed);
	r->seconds = (double)elapsed / 1e6;
	if (x->sink.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
		sf_err_set(err, SF_TRANSIENT, "response_too_large",
		    "the answer of %s was larger than %d bytes", x->host,
		    SF_RESPONSE_MAX);
		log_warn("sf_http_failed", "%s %s: response too large",
		    r->what, x->host);
		return -1;
	}
	if (rc != CURLE_OK) {
		sf_classify_transport(rc, x->host, x->errbuf, err);
		log_warn("sf_http_failed", "%s %s: %s (%s)", r->what, x->host,
		    err->code, err->message);
		if (x->resend_refused)
			resend_refused(x, err);
		if (r->refresh && request_sent(x))
			outcome_unknown(x, err);
		return -1;
	}
	curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &r->status);
	log_debug("sf_http", "%s %s -> %ld in %lld ms", r->what, x->host,
	    r->status, (long long)(elapsed / 1000));
	return 0;
}

/*
 * Releases what xfer_start() set up and resets the easy handle (which drops
 * curl's pointers to our buffers). The handle must not be in a multi
 * handle. Accepts an x that never got started.
 */
static void
xfer_end(struct sf_xfer *x)
{
	if (x->c != NULL)
		curl_easy_reset(x->c);
	headers_free(x->hdrs);
	secret_free(x->auth);
	curl_url_cleanup(x->u);
	xfer_init(x);
}

/*
 * Performs r on the client's own handle. 0 when Salesforce answered (any
 * status: r->status, body in r->out), or -1 with *err (see xfer_start()
 * and xfer_done()).
 */
static int
sf_request(struct sf *sf, struct sf_req *r, struct sf_error *err)
{
	struct sf_xfer	 x;
	int		 ret = -1;

	xfer_init(&x);
	if (xfer_start(sf, sf->curl, &x, r, err) == 0 &&
	    xfer_done(&x, curl_easy_perform(sf->curl), err) == 0)
		ret = 0;
	xfer_end(&x);
	return ret;
}

/* ---------------------------------------------------------------- the client */

struct sf *
sf_new(const struct cfg *cfg, const char *client_secret)
{
	struct sf	*sf;
	struct buf	 b;
	size_t		 n;

	if (cfg == NULL || client_secret == NULL ||
	    (sf = calloc(1, sizeof(*sf))) == NULL)
		return NULL;
	sf->cfg = cfg;
	buf_init(&b, SF_URL_MAX);
	n = strlen(cfg->public_base_url);
	while (n > 0 && cfg->public_base_url[n - 1] == '/')
		n--;
	if ((sf->secret = strdup(client_secret)) == NULL ||
	    buf_append(&b, cfg->public_base_url, n) == -1 ||
	    buf_puts(&b, SF_CALLBACK_PATH) == -1 ||
	    (sf->redirect_uri = buf_steal(&b)) == NULL ||
	    (sf->curl = curl_easy_init()) == NULL ||
	    (sf->share = curl_share_init()) == NULL ||
	    curl_share_setopt(sf->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
	    curl_share_setopt(sf->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(sf->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
		buf_free(&b);
		sf_free(sf);
		return NULL;
	}
	return sf;
}

void
sf_free(struct sf *sf)
{
	if (sf == NULL)
		return;
	/* Every easy handle leaves the share before the share goes. */
	if (sf->curl != NULL)
		curl_easy_cleanup(sf->curl);
	if (sf->share != NULL)
		curl_share_cleanup(sf->share);
	secret_free(sf->secret);
	free(sf->redirect_uri);
	free(sf);
}


/* Empties p so that sfx_post_end() may be called on it. */
void
sfx_post_init(struct sf_post *p)
{
	memset(&p->r, 0, sizeof(p->r));
	xfer_init(&p->x);
	buf_init(&p->url, SF_URL_MAX);
	buf_init(&p->form, 0);
	buf_init(&p->resp, SF_RESPONSE_MAX);
}

/*
 * Prepares the POST of form f to login_base + path on the easy handle c,
 * without running it. 0, or -1 with *err. p was emptied by sfx_post_init();
 * call sfx_post_end() on it in both cases.
 */
static int
post_begin(struct sf *sf, CURL *c, struct sf_post *p, const char *what,
    const char *login_base, const char *path, const struct sf_form_field *f,
    size_t n, struct sf_error *err)
{
	if (login_base == NULL || buf_puts(&p->url, login_base) == -1 ||
	    buf_puts(&p->url, path) == -1) {
		sf_err_set(err, SF_CONFIG, "bad_url", "the login URL is too long");
		return -1;
	}
	if (sf_form_build(&p->form, f, n) == -1 ||
	    buf_presize(&p->resp, SF_RESPONSE_PRESIZE) == -1) {
		sf_err_set(err, SF_TRANSIENT, "internal", "out of memory");
		return -1;
	}
	p->r.what = what;
	p->r.url = p->url.data;
	p->r.form = p->form.data;
	p->r.formlen = p->form.len;
	p->r.out = &p->resp;
	return xfer_start(sf, c, &p->x, &p->r, err);
}

/* Cleanses and frees what post_begin() built; resets the handle (see xfer_end()). */
void
sfx_post_end(struct sf_post *p)
{
	xfer_end(&p->x);
	buf_cleanse_free(&p->form);
	buf_cleanse_free(&p->resp);
	buf_free(&p->url);
}

/*
 * POSTs form f to login_base + path on the client's own handle. 0 with the
 * answer in p->resp (status in p->r.status), or -1 with *err. p was
 * emptied by sfx_post_init(); call sfx_post_end() on it in every case.
 */
static int
post_form(struct sf *sf, struct sf_post *p, const char *what,
    const char *login_base, const char *path, const struct sf_form_field *f,
    size_t n, struct sf_error *err)
{
	if (post_begin(sf, sf->curl, p, what, login_base, path, f, n,
	    err) == -1)
		return -1;
	return xfer_done(&p->x, curl_easy_perform(sf->curl), err);
}

/*
 * The instance URL is handed to sync workers, who send the access token
 * there; the signature does not cover it, so its host must be allowed too.
 * 0, or -1 with *err (and *out cleared).
 */
static int
instance_allowed(struct sf *sf, struct sf_token *out, struct sf_error *err)
{
	char	 host[HOST_LEN_MAX + 1];

	char	*rotated;

	if (sf_url_check(sf->cfg->salesforce_allowed_hosts, out->instance_url,
	    NULL, host, sizeof(host)) == SF_URL_OK)
		return 0;
	rotated = out->refresh_token;	/* refused or not, the old one is dead */
	out->refresh_token = NULL;
	sf_token_clear(out);
	out->refresh_token = rotated;
	sf_err_set(err, SF_TRANSIENT, "host_not_allowed", "the token response "
	    "names an instance URL on a host that is not in "
	    "salesforce_allowed_hosts");
	return -1;
}

/*
 * Judges a token endpoint POST that ended with rc: the HTTP status, then
 * the answer (signature checked), then its instance URL. 0 with *out
 * filled, or -1 with *err (*out empty but for a refused answer's new
 * refresh token).
 */
int
sfx_token_finish(struct sf *sf, struct sf_post *p, CURLcode rc,
    struct sf_token *out, struct sf_error *err)
{
	if (xfer_done(&p->x, rc, err) == -1 ||
	    sf_token_answer(p->r.status, &p->resp, sf->secret, out, err) == -1)
		return -1;
	return instance_allowed(sf, out, err);
}

/*
 * Prepares the refresh grant of refresh_token at login_base on the easy
 * handle c, without running it: empties *out and *err, initialises p. 0,
 * or -1 with *err. Call sfx_post_end() on p in both cases; once c has run,
 * sfx_token_finish() judges it.
 */
int
sfx_refresh_begin(struct sf *sf, CURL *c, struct sf_post *p,
    const char *login_base, const char *refresh_token, struct sf_token *out,
    struct sf_error *err)
{
	const struct sf_form_field	 f[] = {
		{ "grant_type", "refresh_token" },
		{ "refresh_token", refresh_token },
		{ "client_id", sf->cfg->salesforce_client_id },
		{ "client_secret", sf->secret },
	};

	sfx_post_init(p);
	memset(out, 0, sizeof(*out));
	sf_err_clear(err);
	if (refresh_token == NULL) {
		sf_err_set(err, SF_CONFIG, "internal", "no refresh token");
		return -1;
	}
	/*
	 * Sent at most once (see body_read()): connections are reused, but
	 * libcurl cannot re-send the refresh token by itself.
	 */
	p->r.once = true;
	p->r.refresh = true;
	if (post_begin(sf, c, p, "token", login_base, "/services/oauth2/token",
	    f, ARRAY_LEN(f), err) == -1)
		return -1;
	/* An answer lost to a timeout is costly here: the refresh waits longer. */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, sf->cfg->refresh_timeout_ms);
	return 0;
}

int
sf_exchange_code(struct sf *sf, const char *login_base, const char *code,
    const char *verifier, struct sf_token *out, struct sf_error *err)
{
	const struct sf_form_field	 f[] = {
		{ "grant_type", "authorization_code" },
		{ "code", code },
		{ "client_id", sf->cfg->salesforce_client_id },
		{ "client_secret", sf->secret },
		{ "redirect_uri", sf->redirect_uri },
		{ "code_verifier", verifier },
	};
	struct sf_post	 p;
	int		 ret = -1;

	sfx_post_init(&p);
	memset(out, 0, sizeof(*out));
	sf_err_clear(err);
	if (code == NULL || verifier == NULL) {
		sf_err_set(err, SF_CONFIG, "internal", "no code or verifier");
		goto out;
	}
	/*
	 * Sent at most once (see body_read()): a lost answer fails like any
	 * other (connect, timeout) and the connect is started again.
	 */
	p.r.once = true;
	if (post_begin(sf, sf->curl, &p, "token", login_base,
	    "/services/oauth2/token", f, ARRAY_LEN(f), err) == 0)
		ret = sfx_token_finish(sf, &p, curl_easy_perform(sf->curl), out,
		    err);
out:
	metrics_sf_call(METRICS_SF_TOKEN_CODE, ret == 0 ? SF_OK : err->kind,
	    p.r.seconds);
	sfx_post_end(&p);
	return ret;
}

int
sf_refresh(struct sf *sf, const char *login_base, const char *refresh_token,
    struct sf_token *out, struct sf_error *err)
{
	struct sf_post	 p;
	int		 ret = -1;

	if (sfx_refresh_begin(sf, sf->curl, &p, login_base, refresh_token, out,
	    err) == 0)
		ret = sfx_token_finish(sf, &p, curl_easy_perform(sf->curl), out,
		    err);
	metrics_sf_call(METRICS_SF_TOKEN_REFRESH, ret == 0 ? SF_OK : err->kind,
	    p.r.seconds);
	sfx_post_end(&p);
	return ret;
}

int
sf_identity(struct sf *sf, const struct sf_token *token,
    struct sf_identity *out, struct sf_error *err)
{
	struct buf	 resp;
	struct sf_req	 r;
	char		 host[HOST_LEN_MAX + 1];
	int		 ret = -1;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	sf_err_clear(err);
	buf_init(&resp, SF_RESPONSE_MAX);
	if (token == NULL || token->access_token == NULL) {
		sf_err_set(err, SF_CONFIG, "internal", "no access token");
		goto out;
	}
	/* The id URL comes from Salesforce's answer: a foreign host is a bad answer. */
	switch (sf_url_check(sf->cfg->salesforce_allowed_hosts, token->id_url,
	    NULL, host, sizeof(host))) {
	case SF_URL_OK:
		break;
	case SF_URL_NOT_ALLOWED:
		sf_err_set(err, SF_TRANSIENT, "host_not_allowed", "Salesforce "
		    "named an identity URL on %s, which is not in "
		    "salesforce_allowed_hosts", host);
		goto out;
	case SF_URL_BAD:
		SF_MALFORMED(err, "the identity URL is not an https URL");
		goto out;
	}
	if (buf_presize(&resp, SF_RESPONSE_PRESIZE) == -1) {
		sf_err_set(err, SF_TRANSIENT, "internal", "out of memory");
		goto out;
	}
	r.what = "identity";
	r.url = token->id_url;
	r.bearer = token->access_token;
	r.out = &resp;
	if (sf_request(sf, &r, err) == 0)
		ret = sf_identity_answer(r.status, &resp, token, out, err);
out:
	metrics_sf_call(METRICS_SF_IDENTITY, ret == 0 ? SF_OK : err->kind,
	    r.seconds);
	buf_cleanse_free(&resp);
	return ret;
}

int
sf_revoke(struct sf *sf, const char *login_base, const char *token,
    struct sf_error *err)
{
	const struct sf_form_field	 f[] = {
		{ "token", token },
	};
	struct sf_post	 p;
	int		 ret = -1;

	sfx_post_init(&p);
	sf_err_clear(err);
	if (token == NULL) {
		sf_err_set(err, SF_CONFIG, "internal", "no token to revoke");
		goto out;
	}
	/*
	 * libcurl may send it twice (see body_read()): harmless, a revoke is
	 * idempotent and a dead token's 400 counts as revoked.
	 */
	if (post_form(sf, &p, "revoke", login_base, "/services/oauth2/revoke",
	    f, ARRAY_LEN(f), err) == 0)
		ret = sf_revoke_answer(p.r.status, &p.resp, err);
out:
	metrics_sf_call(METRICS_SF_REVOKE, ret == 0 ? SF_OK : err->kind,
	    p.r.seconds);
	sfx_post_end(&p);
	return ret;
}

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

#define ARRAY_LEN(a)		(sizeof(a) / sizeof((a)[0]))

#define SF_USER_AGENT		"sfconnect/0.1"
#define SF_CALLBACK_PATH	"/api/v1/oauth/salesforce/callback"
#define SF_CONNECT_TIMEOUT_MS	5000L
#define SF_RESPONSE_PRESIZE	(16 * 1024)	/* one allocation for usual answers */

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
	bool		 once;		/* a failure once sent: refresh_outcome_unknown */
};

/* ---------------------------------------------------------------- HTTP */

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
	char			 host[HOST_LEN_MAX + 1];
	char			 errbuf[CURL_ERROR_SIZE];
};

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
	if (r->form != NULL) {
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

	return curl_easy_getinfo(x->c, CURLINFO_REQUEST_SIZE, &sent) ==
	    CURLE_OK && sent > 0;
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
		if (r->once && request_sent(x))
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


/*
 * A form POST: the request and the buffers curl reads from and writes to
 * while it runs. Must not move between post_begin() and post_end().
 */
struct sf_post {
	struct sf_req	 r;
	struct sf_xfer	 x;
	struct buf	 url;
	struct buf	 form;		/* holds secrets: cleansed */
	struct buf	 resp;		/* may hold tokens: cleansed */
};

/* Empties p so that post_end() may be called on it. */
static void
post_init(struct sf_post *p)
{
	memset(&p->r, 0, sizeof(p->r));
	xfer_init(&p->x);
	buf_init(&p->url, SF_URL_MAX);
	buf_init(&p->form, 0);
	buf_init(&p->resp, SF_RESPONSE_MAX);
}

/*
 * Prepares the POST of form f to login_base + path on the easy handle c,
 * without running it. 0, or -1 with *err. p was emptied by post_init();
 * call post_end() on it in both cases.
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
static void
post_end(struct sf_post *p)
{
	xfer_end(&p->x);
	buf_cleanse_free(&p->form);
	buf_cleanse_free(&p->resp);
	buf_free(&p->url);
}

/*
 * POSTs form f to login_base + path on the client's own handle. 0 with the
 * answer in p->resp (status in p->r.status), or -1 with *err. p was
 * emptied by post_init(); call post_end() on it in every case.
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
static int
token_finish(struct sf *sf, struct sf_post *p, CURLcode rc,
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
 * or -1 with *err. Call post_end() on p in both cases; once c has run,
 * token_finish() judges it.
 */
static int
refresh_begin(struct sf *sf, CURL *c, struct sf_post *p,
    const char *login_base, const char *refresh_token, struct sf_token *out,
    struct sf_error *err)
{
	const struct sf_form_field	 f[] = {
		{ "grant_type", "refresh_token" },
		{ "refresh_token", refresh_token },
		{ "client_id", sf->cfg->salesforce_client_id },
		{ "client_secret", sf->secret },
	};

	post_init(p);
	memset(out, 0, sizeof(*out));
	sf_err_clear(err);
	if (refresh_token == NULL) {
		sf_err_set(err, SF_CONFIG, "internal", "no refresh token");
		return -1;
	}
	if (post_begin(sf, c, p, "token", login_base, "/services/oauth2/token",
	    f, ARRAY_LEN(f), err) == -1)
		return -1;
	/*
	 * libcurl silently re-sends a request whose reused connection died
	 * before any answer. Salesforce may have used the refresh token by
	 * then; with rotation on, presenting it again revokes the whole grant.
	 * A request on a fresh connection is never re-sent.
	 */
	curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	/* An answer lost to a timeout is costly here: the refresh waits longer. */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, sf->cfg->refresh_timeout_ms);
	p->r.once = true;
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

	post_init(&p);
	memset(out, 0, sizeof(*out));
	sf_err_clear(err);
	if (code == NULL || verifier == NULL) {
		sf_err_set(err, SF_CONFIG, "internal", "no code or verifier");
		goto out;
	}
	if (post_begin(sf, sf->curl, &p, "token", login_base,
	    "/services/oauth2/token", f, ARRAY_LEN(f), err) == 0)
		ret = token_finish(sf, &p, curl_easy_perform(sf->curl), out,
		    err);
out:
	metrics_sf_call(METRICS_SF_TOKEN_CODE, ret == 0 ? SF_OK : err->kind,
	    p.r.seconds);
	post_end(&p);
	return ret;
}

int
sf_refresh(struct sf *sf, const char *login_base, const char *refresh_token,
    struct sf_token *out, struct sf_error *err)
{
	struct sf_post	 p;
	int		 ret = -1;

	if (refresh_begin(sf, sf->curl, &p, login_base, refresh_token, out,
	    err) == 0)
		ret = token_finish(sf, &p, curl_easy_perform(sf->curl), out,
		    err);
	metrics_sf_call(METRICS_SF_TOKEN_REFRESH, ret == 0 ? SF_OK : err->kind,
	    p.r.seconds);
	post_end(&p);
	return ret;
}

/* ---------------------------------------------------------------- concurrent refresh */

/* One in-flight place of sf_refresh_many(): an easy handle and its transfer. */
struct refresh_slot {
	CURL			*c;	/* owned */
	struct sf_refresh_job	*job;	/* NULL: free */
	struct sf_post		 p;
};

/* Fails job (not run) with an internal error. */
static void
job_fail(struct sf_refresh_job *job, const char *why)
{
	sf_token_clear(&job->token);
	sf_err_clear(&job->err);
	sf_err_set(&job->err, SF_TRANSIENT, "internal", "%s", why);
	job->rc = -1;
}

/*
 * Prepares job on slot s and adds it to m. 0 when it runs, or -1 when job
 * already failed (job->rc -1, job->err filled; the host check lands here).
 */
static int
slot_start(struct sf *sf, CURLM *m, struct refresh_slot *s,
    struct sf_refresh_job *job)
{
	CURLMcode	 mc;

	job->rc = -1;
	if (refresh_begin(sf, s->c, &s->p, job->login_base,
	    job->refresh_token, &job->token, &job->err) == -1)
		goto fail;
	if ((mc = curl_multi_add_handle(m, s->c)) != CURLM_OK) {
		sf_err_set(&job->err, SF_TRANSIENT, "internal", "libcurl could "
		    "not start the request (%s)", curl_multi_strerror(mc));
		goto fail;
	}
	s->job = job;
	return 0;
fail:
	metrics_sf_call(METRICS_SF_TOKEN_REFRESH, job->err.kind, 0);
	post_end(&s->p);
	return -1;
}

/* Judges the finished transfer of slot s (ended with rc) into its job and frees the slot. */
static void
slot_finish(struct sf *sf, CURLM *m, struct refresh_slot *s, CURLcode rc)
{
	struct sf_refresh_job	*job = s->job;

	job->rc = token_finish(sf, &s->p, rc, &job->token, &job->err);
	metrics_sf_call(METRICS_SF_TOKEN_REFRESH, job->rc == 0 ? SF_OK :
	    job->err.kind, s->p.r.seconds);
	curl_multi_remove_handle(m, s->c);
	post_end(&s->p);
	s->job = NULL;
}

/* Stops the transfer of slot s unfinished: its job fails with why. */
static void
slot_abort(CURLM *m, struct refresh_slot *s, const char *why)
{
	curl_multi_remove_handle(m, s->c);
	post_end(&s->p);
	job_fail(s->job, why);
	s->job = NULL;
}

/* Reads the finished transfers of m into their slots; returns how many. */
static size_t
slots_reap(struct sf *sf, CURLM *m, struct refresh_slot *slots,
    size_t nslots)
{
	CURLMsg		*msg;
	CURL		*easy;
	CURLcode	 rc;
	size_t		 done = 0, i;
	int		 left;

	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg dies with curl_multi_remove_handle(): copy it first. */
		easy = msg->easy_handle;
		rc = msg->data.result;
		for (i = 0; i < nslots; i++)
			if (slots[i].job != NULL && slots[i].c == easy)
				break;
		if (i == nslots)
			continue;
		slot_finish(sf, m, &slots[i], rc);
		done++;
	}
	return done;
}

void
sf_refresh_many(struct sf *sf, struct sf_refresh_job *jobs, size_t n,
    int max_parallel)
{
	struct refresh_slot	*slots = NULL;
	CURLM			*m = NULL;
	CURLMcode		 mc = CURLM_OK;
	const char		*why = "out of memory";
	char			 whybuf[128];
	size_t			 todo = 0, nslots = 0, busy = 0, next = 0, i;
	int			 running;

	for (i = 0; i < n; i++)
		if (jobs[i].refresh_token != NULL)
			todo++;
	if (todo == 0)
		return;
	nslots = max_parallel < 1 ? 1 : (size_t)max_parallel;
	if (nslots > todo)
		nslots = todo;
	if ((slots = calloc(nslots, sizeof(*slots))) == NULL)
		goto fail;
	for (i = 0; i < nslots; i++)
		post_init(&slots[i].p);
	if ((m = curl_multi_init()) == NULL)
		goto fail;
	for (i = 0; i < nslots; i++)
		if ((slots[i].c = curl_easy_init()) == NULL)
			goto fail;

	for (;;) {
		/* Fill the free slots, in job order. */
		for (i = 0; i < nslots && next < n; i++) {
			if (slots[i].job != NULL)
				continue;
			while (next < n) {
				struct sf_refresh_job	*job = &jobs[next++];

				if (job->refresh_token == NULL)
					continue;
				if (slot_start(sf, m, &slots[i], job) == 0) {
					busy++;
					break;
				}
			}
		}
		if (busy == 0)
			break;
		if ((mc = curl_multi_perform(m, &running)) != CURLM_OK)
			goto fail;
		busy -= slots_reap(sf, m, slots, nslots);
		/* Something finished: refill before waiting. */
		if (busy < nslots && next < n)
			continue;
		if (busy > 0 &&
		    (mc = curl_multi_poll(m, NULL, 0, 1000, NULL)) != CURLM_OK)
			goto fail;
	}
	goto out;
fail:
	if (mc != CURLM_OK) {
		snprintf(whybuf, sizeof(whybuf), "libcurl failed (%s)",
		    curl_multi_strerror(mc));
		why = whybuf;
	}
	log_warn("sf_http_failed", "token batch: %s", why);
	for (i = 0; slots != NULL && i < nslots; i++)
		if (slots[i].job != NULL)
			slot_abort(m, &slots[i], why);
	for (; next < n; next++)
		if (jobs[next].refresh_token != NULL)
			job_fail(&jobs[next], why);
out:
	for (i = 0; slots != NULL && i < nslots; i++) {
		post_end(&slots[i].p);
		if (slots[i].c != NULL)
			curl_easy_cleanup(slots[i].c);
	}
	if (m != NULL)
		curl_multi_cleanup(m);
	free(slots);
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

	post_init(&p);
	sf_err_clear(err);
	if (token == NULL) {
		sf_err_set(err, SF_CONFIG, "internal", "no token to revoke");
		goto out;
	}
	if (post_form(sf, &p, "revoke", login_base, "/services/oauth2/revoke",
	    f, ARRAY_LEN(f), err) == 0)
		ret = sf_revoke_answer(p.r.status, &p.resp, err);
out:
	metrics_sf_call(METRICS_SF_REVOKE, ret == 0 ? SF_OK : err->kind,
	    p.r.seconds);
	post_end(&p);
	return ret;
}

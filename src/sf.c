/*
 * The Salesforce client: the OAuth token, revoke and identity endpoints.
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
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "buf.h"
#include "cfg.h"
#include "crypto.h"
#include "log.h"
#include "secret.h"
#include "sf.h"
#include "sf_internal.h"
#include "sfid.h"

#define ARRAY_LEN(a)		(sizeof(a) / sizeof((a)[0]))

#define SF_USER_AGENT		"sfconnect/0.1"
#define SF_CALLBACK_PATH	"/api/v1/oauth/salesforce/callback"
#define SF_CONNECT_TIMEOUT_MS	5000L
#define SF_RESPONSE_PRESIZE	(16 * 1024)	/* one allocation for usual answers */
#define SF_URL_MAX		8192
#define SF_TOKEN_MAX		16384		/* longest token accepted (JWT access tokens are long) */
#define SF_HOST_MAX		253

struct sf {
	const struct cfg	*cfg;		/* not owned: outlives the client */
	char			*secret;	/* owned copy, cleansed on free */
	char			*redirect_uri;	/* owned */
	CURL			*curl;		/* owned, reused by every single call */
	CURLSH			*share;		/* owned: connections, DNS, TLS sessions */
};

/* One HTTP exchange, described for xfer_start(). */
struct sf_req {
	const char	*what;		/* for logs: "token", "revoke", "identity" */
	const char	*url;
	const char	*form;		/* POST body (form-encoded); NULL: GET */
	size_t		 formlen;
	const char	*bearer;	/* access token for Authorization, or NULL */
	struct buf	*out;		/* response body; max SF_RESPONSE_MAX */
	long		 status;	/* out: the HTTP status */
};

struct form_field {
	const char	*name;
	const char	*value;
};

/* ---------------------------------------------------------------- text */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t
utf8_seq_len(const unsigned char *s)
{
	size_t	 n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/*
 * Copies src into dst (size dstlen > 0) as display text: control
 * characters become spaces, invalid UTF-8 becomes '?', and truncation
 * never splits a character.
 */
static void
text_copy(char *dst, size_t dstlen, const char *src)
{
	const unsigned char	*s = (const unsigned char *)src;
	size_t			 o = 0, n;

	while (*s != '\0') {
		if ((n = utf8_seq_len(s)) == 0) {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = '?';
			s++;
			continue;
		}
		if (o + n >= dstlen)
			break;
		if (n == 1 && (*s < 0x20 || *s == 0x7f))
			dst[o++] = ' ';
		else {
			memcpy(dst + o, s, n);
			o += n;
		}
		s += n;
	}
	dst[o] = '\0';
}

/* ---------------------------------------------------------------- errors */

static void
err_clear(struct sf_error *err)
{
	memset(err, 0, sizeof(*err));
	err->kind = SF_OK;
}

/* Sets kind, code and message (formatted, then cleaned); keeps http_status. */
static void
err_set(struct sf_error *err, enum sf_kind kind, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
err_set(struct sf_error *err, enum sf_kind kind, const char *code,
    const char *fmt, ...)
{
	char	 msg[sizeof(err->message)];
	va_list	 ap;

	err->kind = kind;
	snprintf(err->code, sizeof(err->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	text_copy(err->message, sizeof(err->message), msg);
}

#define MALFORMED(err, ...) \
	err_set((err), SF_TRANSIENT, "malformed", __VA_ARGS__)

/*
 * What an OAuth error of a 400/401/403 answer means. The first row whose
 * error (and description, when the row has one) matches wins.
 */
static const struct {
	const char	*error;
	const char	*description;	/* NULL: any */
	enum sf_kind	 kind;
} oauth_errors[] = {
	/* A concurrent refresh of the same token: re-read and retry. */
	{ "invalid_grant", "token request is already being processed", SF_TRANSIENT },
	{ "invalid_grant", NULL, SF_INVALID },
	{ "inactive_user", NULL, SF_INVALID },
	{ "inactive_org", NULL, SF_INVALID },
	{ "invalid_client", NULL, SF_CONFIG },
	{ "invalid_client_id", NULL, SF_CONFIG },
	{ "invalid_client_credentials", NULL, SF_CONFIG },
	{ "redirect_uri_mismatch", NULL, SF_CONFIG },
	{ "unsupported_grant_type", NULL, SF_CONFIG },
	{ "invalid_scope", NULL, SF_CONFIG },
	{ "invalid_request", NULL, SF_CONFIG },
	{ "rate_limit_exceeded", NULL, SF_TRANSIENT },
};

/* An error code we pass on: 1..63 characters of [A-Za-z0-9_.-]. */
static int
code_ok(const char *s)
{
	size_t	 n = strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");

	return n > 0 && s[n] == '\0' && n < sizeof(((struct sf_error *)0)->code);
}

/* Finds the string member name of a JSON object; NULL when absent or not a string. */
static const char *
json_str(const cJSON *obj, const char *name)
{
	const cJSON	*item = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Overwrites every string of a parsed document (it may hold tokens), then frees it. */
static void
json_cleanse(cJSON *item)
{
	for (; item != NULL; item = item->next) {
		if (item->valuestring != NULL)
			OPENSSL_cleanse(item->valuestring,
			    strlen(item->valuestring));
		json_cleanse(item->child);
	}
}

static void
json_free(cJSON *root)
{
	json_cleanse(root);
	cJSON_Delete(root);
}

/* Parses a NUL-terminated JSON object; NULL when body is not one. */
static cJSON *
json_parse_object(const char *body)
{
	cJSON	*root;

	if (body == NULL ||
	    (root = cJSON_ParseWithOpts(body, NULL, 1)) == NULL)
		return NULL;
	if (!cJSON_IsObject(root)) {
		json_free(root);
		return NULL;
	}
	return root;
}

void
sf_classify_error(long status, const char *body, struct sf_error *err)
{
	cJSON		*root = NULL;
	const char	*code = NULL, *desc = NULL;
	char		 clean[sizeof(err->message)] = "";
	enum sf_kind	 kind = SF_TRANSIENT;
	size_t		 i;

	err_clear(err);
	err->http_status = status;
	if (status >= 400 && status <= 499 &&
	    (root = json_parse_object(body)) != NULL) {
		code = json_str(root, "error");
		desc = json_str(root, "error_description");
	}
	if (code == NULL || !code_ok(code)) {
		char	 httpcode[32];

		snprintf(httpcode, sizeof(httpcode), "http_%ld", status);
		err_set(err, SF_TRANSIENT, httpcode,
		    "Salesforce answered HTTP %ld", status);
		goto out;
	}
	if (desc != NULL)
		text_copy(clean, sizeof(clean), desc);
	if (status == 400 || status == 401 || status == 403) {
		for (i = 0; i < ARRAY_LEN(oauth_errors); i++) {
			if (strcmp(oauth_errors[i].error, code) != 0)
				continue;
			if (oauth_errors[i].description != NULL &&
			    strcasecmp(oauth_errors[i].description, clean) != 0)
				continue;
			kind = oauth_errors[i].kind;
			break;
		}
	}
	if (clean[0] != '\0')
		err_set(err, kind, code, "%s", clean);
	else
		err_set(err, kind, code, "Salesforce answered %s (HTTP %ld)",
		    code, status);
out:
	json_free(root);
}

/* libcurl failures that mean the TLS handshake or the certificate failed. */
static const CURLcode tls_failures[] = {
	CURLE_PEER_FAILED_VERIFICATION,
	CURLE_SSL_CONNECT_ERROR,
	CURLE_SSL_CERTPROBLEM,
	CURLE_SSL_CIPHER,
	CURLE_SSL_CACERT_BADFILE,
	CURLE_SSL_CRL_BADFILE,
	CURLE_SSL_ISSUER_ERROR,
	CURLE_SSL_PINNEDPUBKEYNOTMATCH,
	CURLE_SSL_INVALIDCERTSTATUS,
	CURLE_SSL_ENGINE_NOTFOUND,
	CURLE_SSL_ENGINE_SETFAILED,
	CURLE_SSL_ENGINE_INITFAILED,
	CURLE_SSL_SHUTDOWN_FAILED,
	CURLE_SSL_CLIENTCERT,
	CURLE_USE_SSL_FAILED,
};

void
sf_classify_transport(int curl_code, const char *host, const char *detail,
    struct sf_error *err)
{
	CURLcode	 rc = (CURLcode)curl_code;
	const char	*why;
	size_t		 i;

	err_clear(err);
	if (host == NULL)
		host = "Salesforce";
	why = detail != NULL && *detail != '\0' ? detail :
	    curl_easy_strerror(rc);
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		err_set(err, SF_TRANSIENT, "timeout",
		    "%s did not answer in time", host);
		return;
	}
	for (i = 0; i < ARRAY_LEN(tls_failures); i++)
		if (rc == tls_failures[i]) {
			err_set(err, SF_TRANSIENT, "tls", "the TLS certificate "
			    "of %s could not be verified (%s)", host, why);
			return;
		}
	if (rc == CURLE_OUT_OF_MEMORY) {
		err_set(err, SF_TRANSIENT, "internal", "out of memory");
		return;
	}
	err_set(err, SF_TRANSIENT, "connect", "could not reach %s (%s)",
	    host, why);
}

/* ---------------------------------------------------------------- buffers */

/*
 * Gives b one allocation of at least size bytes up front, so that appends
 * within it never realloc: a realloc would leave a copy of a token behind
 * in freed memory.
 */
static int
buf_presize(struct buf *b, size_t size)
{
	if (size > (size_t)0x7fffffff ||
	    buf_printf(b, "%*s", (int)size, "") == -1)
		return -1;
	buf_reset(b);
	return 0;
}

/* Overwrites the whole allocation of b, then frees it. */
static void
buf_cleanse_free(struct buf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->cap);
	buf_free(b);
}

/*
 * Appends name=value&... to b, each value percent-encoded (a space as %20).
 * 0, or -1 on a NULL value, a full buffer or out of memory.
 */
static int
form_append(struct buf *b, const struct form_field *f, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (f[i].value == NULL ||
		    (i > 0 && buf_puts(b, "&") == -1) ||
		    buf_puts(b, f[i].name) == -1 || buf_puts(b, "=") == -1 ||
		    buf_put_urlencoded(b, f[i].value) == -1)
			return -1;
	return 0;
}

/*
 * Initialises b with the form of f in one allocation of the largest size
 * it can need (the form carries secrets: see buf_presize). 0 or -1; free b
 * with buf_cleanse_free() in both cases.
 */
static int
form_build(struct buf *b, const struct form_field *f, size_t n)
{
	size_t	 need = 0, i;

	for (i = 0; i < n; i++)
		if (f[i].value != NULL)
			need += strlen(f[i].name) + 2 + 3 * strlen(f[i].value);
	buf_init(b, need);
	if (buf_presize(b, need) == -1)
		return -1;
	return form_append(b, f, n);
}

/* ---------------------------------------------------------------- URLs */

enum url_verdict { URL_OK, URL_BAD, URL_NOT_ALLOWED };

/*
 * Checks that url is https://host... with no user info and that host is in
 * allowed (a salesforce_allowed_hosts list). host (hostlen > 0) gets the
 * host name whenever one was parsed. On URL_OK and hp non-NULL, *hp is the
 * parsed handle (owned by the caller: curl_url_cleanup).
 */
static enum url_verdict
url_check(const char *allowed, const char *url, CURLU **hp, char *host,
    size_t hostlen)
{
	CURLU			*h = NULL;
	char			*scheme = NULL, *hostpart = NULL, *user = NULL;
	enum url_verdict	 v = URL_BAD;

	host[0] = '\0';
	if (hp != NULL)
		*hp = NULL;
	if (url == NULL || strlen(url) > SF_URL_MAX ||
	    (h = curl_url()) == NULL ||
	    curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcmp(scheme, "https") != 0 ||
	    curl_url_get(h, CURLUPART_USER, &user, 0) != CURLUE_NO_USER ||
	    curl_url_get(h, CURLUPART_HOST, &hostpart, 0) != CURLUE_OK)
		goto out;
	text_copy(host, hostlen, hostpart);
	if (!cfg_host_in_list(allowed, hostpart)) {
		v = URL_NOT_ALLOWED;
		goto out;
	}
	v = URL_OK;
	if (hp != NULL) {
		*hp = h;
		h = NULL;
	}
out:
	curl_free(scheme);
	curl_free(hostpart);
	curl_free(user);
	curl_url_cleanup(h);
	return v;
}

/*
 * Parses an identity URL "https://host[:port]/id/<OrgID>/<UserID>" (no
 * query or fragment) into 18-character ids. 0 or -1.
 */
static int
id_url_parse(const char *url, char org[19], char user[19])
{
	CURLU	*h = NULL;
	char	*scheme = NULL, *path = NULL, *query = NULL, *frag = NULL;
	int	 rc = -1;

	org[0] = user[0] = '\0';
	/* libcurl also takes "https:/host" and "HTTPS://": we store the text as given. */
	if (strncmp(url, "https://", 8) != 0 || (h = curl_url()) == NULL ||
	    curl_url_set(h, CURLUPART_URL, url, CURLU_PATH_AS_IS) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcmp(scheme, "https") != 0 ||
	    curl_url_get(h, CURLUPART_QUERY, &query, 0) != CURLUE_NO_QUERY ||
	    curl_url_get(h, CURLUPART_FRAGMENT, &frag, 0) != CURLUE_NO_FRAGMENT ||
	    curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
	    sfid_parse_identity_path(path, org, user) == -1)
		goto out;
	rc = 0;
out:
	curl_free(scheme);
	curl_free(path);
	curl_free(query);
	curl_free(frag);
	curl_url_cleanup(h);
	return rc;
}

/* true when url is "https://host[:port]" with at most a "/" path and nothing else. */
static int
instance_url_ok(const char *url)
{
	CURLU	*h = NULL;
	char	*scheme = NULL, *path = NULL, *query = NULL, *user = NULL;
	int	 ok = 0;

	if (strncmp(url, "https://", 8) != 0 || (h = curl_url()) == NULL ||
	    curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcmp(scheme, "https") != 0 ||
	    curl_url_get(h, CURLUPART_USER, &user, 0) != CURLUE_NO_USER ||
	    curl_url_get(h, CURLUPART_QUERY, &query, 0) != CURLUE_NO_QUERY ||
	    curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
	    strcmp(path, "/") != 0 || strchr(url, '#') != NULL)
		goto out;
	ok = 1;
out:
	curl_free(scheme);
	curl_free(path);
	curl_free(query);
	curl_free(user);
	curl_url_cleanup(h);
	return ok;
}

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
	char			 host[SF_HOST_MAX + 1];
	char			 errbuf[CURL_ERROR_SIZE];
};

static size_t
sink_write(char *data, size_t size, size_t n, void *arg)
{
	struct sink	*s = arg;
	size_t		 len = size * n;

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
	switch (url_check(cfg->salesforce_allowed_hosts, r->url, &x->u,
	    x->host, sizeof(x->host))) {
	case URL_OK:
		break;
	case URL_NOT_ALLOWED:
		err_set(err, SF_CONFIG, "host_not_allowed", "%s is not in "
		    "salesforce_allowed_hosts", x->host);
		return -1;
	case URL_BAD:
		err_set(err, SF_CONFIG, "bad_url",
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
	err_set(err, SF_TRANSIENT, "internal", "out of memory");
	return -1;
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
	if (x->sink.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
		err_set(err, SF_TRANSIENT, "response_too_large",
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

/* ---------------------------------------------------------------- token responses */

/* true when s is 1..max printable ASCII characters without spaces. */
static int
token_ok(const char *s, size_t max)
{
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++)
		if (s[n] < 0x21 || s[n] > 0x7e || n >= max)
			return 0;
	return n > 0;
}

/* Copies a space-separated list into dst, dropping whole words that do not fit. */
static void
words_copy(char *dst, size_t dstlen, const char *src)
{
	size_t	 n;

	/* text_copy keeps byte offsets: dst is a prefix of src. */
	text_copy(dst, dstlen, src);
	n = strlen(dst);
	if (src[n] == '\0' || src[n] == ' ')
		return;
	while (n > 0 && dst[n] != ' ')
		n--;
	dst[n] = '\0';
}

int
sf_parse_token_response(const char *body, const char *secret,
    struct sf_token *out, struct sf_error *err)
{
	static const char *const required[] = {
		"access_token", "instance_url", "id", "issued_at", "signature",
	};
	cJSON		*root = NULL;
	const char	*access, *refresh, *instance, *id, *issued, *sig, *scope;
	char		*end;
	size_t		 i;
	int		 ret = -1;

	memset(out, 0, sizeof(*out));
	err_clear(err);
	if ((root = json_parse_object(body)) == NULL) {
		MALFORMED(err, "the token response is not a JSON object");
		goto out;
	}
	for (i = 0; i < ARRAY_LEN(required); i++) {
		const char	*v = json_str(root, required[i]);

		if (v == NULL || *v == '\0') {
			MALFORMED(err, "the token response has no %s",
			    required[i]);
			goto out;
		}
	}
	access = json_str(root, "access_token");
	refresh = json_str(root, "refresh_token");
	instance = json_str(root, "instance_url");
	id = json_str(root, "id");
	issued = json_str(root, "issued_at");
	sig = json_str(root, "signature");
	scope = json_str(root, "scope");

	if (strspn(issued, "0123456789") != strlen(issued) ||
	    strlen(issued) > 18) {
		MALFORMED(err, "the token response's issued_at is not a number");
		goto out;
	}
	if (!crypto_sf_signature_ok(secret, id, issued, sig)) {
		err_set(err, SF_TRANSIENT, "bad_signature",
		    "the token response signature did not verify");
		goto out;
	}
	if (!token_ok(access, SF_TOKEN_MAX) ||
	    (refresh != NULL && *refresh != '\0' &&
	    !token_ok(refresh, SF_TOKEN_MAX))) {
		MALFORMED(err, "the token response holds an unusable token");
		goto out;
	}
	if (strlen(id) >= sizeof(out->id_url) ||
	    id_url_parse(id, out->org_id, out->user_id) == -1) {
		MALFORMED(err, "the token response's id is not an identity "
		    "URL https://HOST/id/<OrgID>/<UserID>");
		goto out;
	}
	if (strlen(instance) >= sizeof(out->instance_url) ||
	    !instance_url_ok(instance)) {
		MALFORMED(err, "the token response's instance_url is not an "
		    "https URL");
		goto out;
	}
	errno = 0;
	out->issued_at_ms = strtoll(issued, &end, 10);
	if (errno != 0 || *end != '\0') {
		MALFORMED(err, "the token response's issued_at is not a number");
		goto out;
	}
	snprintf(out->id_url, sizeof(out->id_url), "%s", id);
	snprintf(out->instance_url, sizeof(out->instance_url), "%s", instance);
	if (scope != NULL)
		words_copy(out->scope, sizeof(out->scope), scope);
	if ((out->access_token = strdup(access)) == NULL ||
	    (refresh != NULL && *refresh != '\0' &&
	    (out->refresh_token = strdup(refresh)) == NULL)) {
		err_set(err, SF_TRANSIENT, "internal", "out of memory");
		goto out;
	}
	ret = 0;
out:
	if (ret == -1)
		sf_token_clear(out);
	json_free(root);
	return ret;
}

int
sf_parse_identity_response(const char *body, const struct sf_token *token,
    struct sf_identity *out, struct sf_error *err)
{
	cJSON		*root = NULL;
	const char	*org, *user, *s;
	int		 ret = -1;

	memset(out, 0, sizeof(*out));
	err_clear(err);
	if ((root = json_parse_object(body)) == NULL) {
		MALFORMED(err, "the identity response is not a JSON object");
		goto out;
	}
	if ((org = json_str(root, "organization_id")) == NULL ||
	    (user = json_str(root, "user_id")) == NULL ||
	    sfid_to18(org, out->org_id) == -1 ||
	    sfid_to18(user, out->user_id) == -1) {
		MALFORMED(err, "the identity response has no valid "
		    "organization_id and user_id");
		goto out;
	}
	if (strcmp(out->org_id, token->org_id) != 0 ||
	    strcmp(out->user_id, token->user_id) != 0) {
		err_set(err, SF_TRANSIENT, "identity_mismatch", "the identity "
		    "response names another org or user than the token");
		goto out;
	}
	if ((s = json_str(root, "username")) != NULL)
		text_copy(out->username, sizeof(out->username), s);
	if ((s = json_str(root, "display_name")) != NULL)
		text_copy(out->display_name, sizeof(out->display_name), s);
	out->active = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root,
	    "active"));
	ret = 0;
out:
	if (ret == -1)
		memset(out, 0, sizeof(*out));
	json_free(root);
	return ret;
}

/* ---------------------------------------------------------------- public */

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

void
sf_token_clear(struct sf_token *t)
{
	if (t == NULL)
		return;
	secret_free(t->access_token);
	secret_free(t->refresh_token);
	memset(t, 0, sizeof(*t));
}

/* true when host ends with suffix (".x.y") or equals it without the dot. */
static int
host_under(const char *host, const char *suffix)
{
	size_t	 hl = strlen(host), sl = strlen(suffix);

	if (hl == sl - 1 && strcmp(host, suffix + 1) == 0)
		return 1;
	return hl > sl && strcmp(host + hl - sl, suffix) == 0;
}

/* true when host is dot-separated labels of [a-z0-9-], 1..63 each, not starting or ending with '-'. */
static int
host_name_ok(const char *host)
{
	const char	*p = host;
	size_t		 n;

	if (*host == '\0' || strlen(host) > SF_HOST_MAX)
		return 0;
	for (;;) {
		n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789-");
		if (n == 0 || n > 63 || p[0] == '-' || p[n - 1] == '-')
			return 0;
		p += n;
		if (*p == '\0')
			return 1;
		if (*p != '.')
			return 0;
		p++;
	}
}

/* The My Domain part of sf_login_base(): in is non-empty, already trimmed to [p, end). */
static int
login_base_my_domain(const struct cfg *cfg, const char *p, const char *end,
    char *out, size_t outlen, char *err, size_t errlen)
{
	char		 host[SF_HOST_MAX + 2];
	const char	*q, *port = NULL;
	size_t		 hl, portlen = 0, i;
	long		 portnum;

	if ((size_t)(end - p) >= 8 && strncasecmp(p, "https://", 8) == 0)
		p += 8;
	else if (memmem(p, (size_t)(end - p), "://", 3) != NULL) {
		snprintf(err, errlen, "my_domain must be an https:// URL or a "
		    "host name like NAME.my.salesforce.com");
		return -1;
	}
	for (q = p; q < end && strchr(":/?#", *q) == NULL; q++)
		;
	if ((hl = (size_t)(q - p)) == 0 || hl > SF_HOST_MAX)
		goto bad;
	for (i = 0; i < hl; i++)
		host[i] = (p[i] >= 'A' && p[i] <= 'Z') ? p[i] - 'A' + 'a' : p[i];
	host[hl] = '\0';
	if (host_under(host, ".lightning.force.com")) {
		snprintf(err, errlen, "use your My Domain URL "
		    "(NAME.my.salesforce.com), not the Lightning URL "
		    "(*.lightning.force.com)");
		return -1;
	}
	if (host_under(host, ".force.com") ||
	    host_under(host, ".visualforce.com")) {
		snprintf(err, errlen, "use your My Domain URL "
		    "(NAME.my.salesforce.com), not a Visualforce or Sites URL "
		    "(*.force.com, *.visualforce.com)");
		return -1;
	}
	if (!host_name_ok(host))
		goto bad;
	if (q < end && *q == ':') {
		port = ++q;
		while (q < end && *q >= '0' && *q <= '9')
			q++;
		portlen = (size_t)(q - port);
		if (portlen == 0 || portlen > 5 ||
		    (portnum = strtol(port, NULL, 10)) < 1 || portnum > 65535)
			goto bad;
	}
	if (q < end && !(*q == '/' && q + 1 == end)) {
		snprintf(err, errlen, "my_domain must be just the host name "
		    "(NAME.my.salesforce.com), without a path or query");
		return -1;
	}
	if (!cfg_host_in_list(cfg->salesforce_allowed_hosts, host)) {
		snprintf(err, errlen, "%s is not an allowed Salesforce login "
		    "host (expected NAME.my.salesforce.com)", host);
		return -1;
	}
	if ((size_t)snprintf(out, outlen, "https://%s%s%.*s", host,
	    port != NULL ? ":" : "", (int)portlen, port != NULL ? port : "") >=
	    outlen) {
		out[0] = '\0';
		snprintf(err, errlen, "the login URL is too long");
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "my_domain must be a host name like "
	    "NAME.my.salesforce.com (letters, digits, '-' and '.', "
	    "optionally :PORT)");
	return -1;
}

int
sf_login_base(const struct cfg *cfg, const char *environment,
    const char *my_domain, char *out, size_t outlen, char *err,
    size_t errlen)
{
	const char	*base, *p, *end;
	char		 host[SF_HOST_MAX + 1];
	size_t		 n;

	if (outlen == 0 || errlen == 0)
		return -1;
	out[0] = err[0] = '\0';
	if (environment == NULL || *environment == '\0' ||
	    strcmp(environment, "production") == 0)
		base = cfg->salesforce_login_url;
	else if (strcmp(environment, "sandbox") == 0)
		base = cfg->salesforce_sandbox_login_url;
	else {
		snprintf(err, errlen, "environment must be \"production\" or "
		    "\"sandbox\"");
		return -1;
	}

	if (my_domain != NULL) {
		p = my_domain;
		end = p + strlen(p);
		while (*p == ' ' || *p == '\t')
			p++;
		while (end > p && strchr(" \t\r\n", end[-1]) != NULL)
			end--;
		if (p < end)
			return login_base_my_domain(cfg, p, end, out, outlen,
			    err, errlen);
	}

	n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	if (n == 0 || n >= outlen) {
		snprintf(err, errlen, "the configured Salesforce login URL "
		    "is empty or too long");
		return -1;
	}
	memcpy(out, base, n);
	out[n] = '\0';
	if (url_check(cfg->salesforce_allowed_hosts, out, NULL, host,
	    sizeof(host)) != URL_OK) {
		out[0] = '\0';
		snprintf(err, errlen, "the configured Salesforce login URL is "
		    "not an https URL on a host in salesforce_allowed_hosts");
		return -1;
	}
	return 0;
}

char *
sf_authorize_url(struct sf *sf, const char *login_base, const char *state,
    const char *code_challenge)
{
	const struct form_field	 q[] = {
		{ "response_type", "code" },
		{ "client_id", sf->cfg->salesforce_client_id },
		{ "redirect_uri", sf->redirect_uri },
		{ "scope", sf->cfg->salesforce_scope },
		{ "state", state },
		{ "code_challenge", code_challenge },
		{ "code_challenge_method", "S256" },
	};
	struct buf	 b;

	buf_init(&b, SF_URL_MAX);
	if (login_base == NULL || buf_puts(&b, login_base) == -1 ||
	    buf_puts(&b, "/services/oauth2/authorize?") == -1 ||
	    form_append(&b, q, ARRAY_LEN(q)) == -1) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
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
    const char *login_base, const char *path, const struct form_field *f,
    size_t n, struct sf_error *err)
{
	if (login_base == NULL || buf_puts(&p->url, login_base) == -1 ||
	    buf_puts(&p->url, path) == -1) {
		err_set(err, SF_CONFIG, "bad_url", "the login URL is too long");
		return -1;
	}
	if (form_build(&p->form, f, n) == -1 ||
	    buf_presize(&p->resp, SF_RESPONSE_PRESIZE) == -1) {
		err_set(err, SF_TRANSIENT, "internal", "out of memory");
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
    const char *login_base, const char *path, const struct form_field *f,
    size_t n, struct sf_error *err)
{
	if (post_begin(sf, sf->curl, p, what, login_base, path, f, n,
	    err) == -1)
		return -1;
	return xfer_done(&p->x, curl_easy_perform(sf->curl), err);
}

/*
 * Judges a token endpoint POST that ended with rc: the HTTP status, then
 * the answer (signature checked). 0 with *out filled, or -1 with *err
 * (*out stays empty).
 */
/*
 * The instance URL is handed to sync workers, who send the access token
 * there; the signature does not cover it, so its host must be allowed too.
 * 0, or -1 with *err (and *out cleared).
 */
static int
instance_allowed(struct sf *sf, struct sf_token *out, struct sf_error *err)
{
	char	 host[SF_HOST_MAX + 1];

	if (url_check(sf->cfg->salesforce_allowed_hosts, out->instance_url,
	    NULL, host, sizeof(host)) == URL_OK)
		return 0;
	sf_token_clear(out);
	err_set(err, SF_TRANSIENT, "host_not_allowed", "the token response "
	    "names an instance URL on a host that is not in "
	    "salesforce_allowed_hosts");
	return -1;
}

static int
token_finish(struct sf *sf, struct sf_post *p, CURLcode rc,
    struct sf_token *out, struct sf_error *err)
{
	long	 status;
	int	 ret = -1;

	if (xfer_done(&p->x, rc, err) == -1)
		return -1;
	if ((status = p->r.status) != 200) {
		sf_classify_error(status, p->resp.data, err);
		return -1;
	}
	if (p->resp.data == NULL || strlen(p->resp.data) != p->resp.len)
		MALFORMED(err, "the token response is not a JSON object");
	else if (sf_parse_token_response(p->resp.data, sf->secret, out,
	    err) == 0)
		ret = instance_allowed(sf, out, err);
	err->http_status = status;
	return ret;
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
	const struct form_field	 f[] = {
		{ "grant_type", "refresh_token" },
		{ "refresh_token", refresh_token },
		{ "client_id", sf->cfg->salesforce_client_id },
		{ "client_secret", sf->secret },
	};

	post_init(p);
	memset(out, 0, sizeof(*out));
	err_clear(err);
	if (refresh_token == NULL) {
		err_set(err, SF_CONFIG, "internal", "no refresh token");
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
	return 0;
}

int
sf_exchange_code(struct sf *sf, const char *login_base, const char *code,
    const char *verifier, struct sf_token *out, struct sf_error *err)
{
	const struct form_field	 f[] = {
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
	err_clear(err);
	if (code == NULL || verifier == NULL) {
		err_set(err, SF_CONFIG, "internal", "no code or verifier");
		goto out;
	}
	if (post_begin(sf, sf->curl, &p, "token", login_base,
	    "/services/oauth2/token", f, ARRAY_LEN(f), err) == 0)
		ret = token_finish(sf, &p, curl_easy_perform(sf->curl), out,
		    err);
out:
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
	err_clear(&job->err);
	err_set(&job->err, SF_TRANSIENT, "internal", "%s", why);
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
		err_set(&job->err, SF_TRANSIENT, "internal", "libcurl could "
		    "not start the request (%s)", curl_multi_strerror(mc));
		goto fail;
	}
	s->job = job;
	return 0;
fail:
	post_end(&s->p);
	return -1;
}

/* Judges the finished transfer of slot s (ended with rc) into its job and frees the slot. */
static void
slot_finish(struct sf *sf, CURLM *m, struct refresh_slot *s, CURLcode rc)
{
	struct sf_refresh_job	*job = s->job;

	job->rc = token_finish(sf, &s->p, rc, &job->token, &job->err);
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
	char		 host[SF_HOST_MAX + 1], code[32];
	int		 ret = -1;

	memset(out, 0, sizeof(*out));
	err_clear(err);
	buf_init(&resp, SF_RESPONSE_MAX);
	if (token == NULL || token->access_token == NULL) {
		err_set(err, SF_CONFIG, "internal", "no access token");
		goto out;
	}
	/* The id URL comes from Salesforce's answer: a foreign host is a bad answer. */
	switch (url_check(sf->cfg->salesforce_allowed_hosts, token->id_url,
	    NULL, host, sizeof(host))) {
	case URL_OK:
		break;
	case URL_NOT_ALLOWED:
		err_set(err, SF_TRANSIENT, "host_not_allowed", "Salesforce "
		    "named an identity URL on %s, which is not in "
		    "salesforce_allowed_hosts", host);
		goto out;
	case URL_BAD:
		MALFORMED(err, "the identity URL is not an https URL");
		goto out;
	}
	if (buf_presize(&resp, SF_RESPONSE_PRESIZE) == -1) {
		err_set(err, SF_TRANSIENT, "internal", "out of memory");
		goto out;
	}
	memset(&r, 0, sizeof(r));
	r.what = "identity";
	r.url = token->id_url;
	r.bearer = token->access_token;
	r.out = &resp;
	if (sf_request(sf, &r, err) == -1)
		goto out;
	if (r.status == 401 || r.status == 403) {
		err_set(err, SF_INVALID, "bad_oauth_token", "Salesforce refused "
		    "the access token at the identity URL (HTTP %ld)", r.status);
	} else if (r.status != 200) {
		snprintf(code, sizeof(code), "identity_http_%ld", r.status);
		err_set(err, SF_TRANSIENT, code, "the identity URL answered "
		    "HTTP %ld", r.status);
	} else if (resp.data == NULL || strlen(resp.data) != resp.len) {
		MALFORMED(err, "the identity response is not a JSON object");
	} else if (sf_parse_identity_response(resp.data, token, out,
	    err) == 0)
		ret = 0;
	err->http_status = r.status;
out:
	buf_cleanse_free(&resp);
	return ret;
}

int
sf_revoke(struct sf *sf, const char *login_base, const char *token,
    struct sf_error *err)
{
	const struct form_field	 f[] = {
		{ "token", token },
	};
	struct sf_post	 p;
	long		 status;
	int		 ret = -1;

	post_init(&p);
	err_clear(err);
	if (token == NULL) {
		err_set(err, SF_CONFIG, "internal", "no token to revoke");
		goto out;
	}
	if (post_form(sf, &p, "revoke", login_base, "/services/oauth2/revoke",
	    f, ARRAY_LEN(f), err) == -1)
		goto out;
	if ((status = p.r.status) == 200) {
		ret = 0;
		goto out;
	}
	sf_classify_error(status, p.resp.data, err);
	/* Already dead: as good as revoked. */
	if (status == 400 && (strcmp(err->code, "invalid_token") == 0 ||
	    strcmp(err->code, "unsupported_token_type") == 0)) {
		err_clear(err);
		ret = 0;
	}
out:
	post_end(&p);
	return ret;
}

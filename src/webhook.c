#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "crypto.h"
#include "webhook.h"

#define WEBHOOK_USER_AGENT	"sfconnect-webhook/1"

struct webhook {
	const struct cfg	*cfg;
	CURL			*curl;	/* kept: the connection is reused */
	bool			 https;
};

/* What the write callback keeps of the answer. */
struct sink {
	char	*buf;
	size_t	 len, cap;
};

static bool
loopback_host(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0 ||
	    strcasecmp(host, "localhost") == 0;
}

bool
webhook_url_ok(const char *url)
{
	CURLU	*u;
	char	*scheme = NULL, *host = NULL;
	bool	 ok = false;

	if (url == NULL || (u = curl_url()) == NULL)
		return false;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (strncmp(url, "https://", 8) == 0 && strcmp(scheme, "https") == 0)
		ok = true;
	else if (strncmp(url, "http://", 7) == 0 && strcmp(scheme, "http") == 0)
		ok = loopback_host(host);
	for (const char *p = url; ok && *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			ok = false;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

int
webhook_signature(const char *secret, long long t, const char *body,
    char *out, size_t outlen)
{
	char	 hex[65];
	int	 n;

	if (body == NULL ||
	    crypto_webhook_sig(secret, t, body, strlen(body), hex) == -1)
		return -1;
	n = snprintf(out, outlen, "t=%lld,v1=%s", t, hex);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

void
webhook_free(struct webhook *wh)
{
	if (wh == NULL)
		return;
	curl_easy_cleanup(wh->curl);
	free(wh);
}

struct webhook *
webhook_new(const struct cfg *cfg)
{
	struct webhook	*wh;

	if ((wh = calloc(1, sizeof(*wh))) == NULL)
		return NULL;
	wh->cfg = cfg;
	wh->https = strncmp(cfg->webhook_url, "https://", 8) == 0;
	if ((wh->curl = curl_easy_init()) == NULL) {
		free(wh);
		return NULL;
	}
	return wh;
}

/* Keeps the first bytes of the answer, reads (and drops) the rest. */
static size_t
sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink	*s = arg;
	size_t		 n = size * nmemb, room = s->cap - s->len;

	if (room > n)
		room = n;
	memcpy(s->buf + s->len, data, room);
	s->len += room;
	return n;
}

/* The first bytes of the answer, control characters as '.', into res. */
static void
keep_body(struct webhook_result *res, const char *buf, size_t len)
{
	size_t	 i;

	for (i = 0; i < len && i < WEBHOOK_BODY_LOG_MAX; i++)
		res->body[i] = (unsigned char)buf[i] < ' ' || buf[i] == 0x7f ?
		    '.' : buf[i];
	res->body[i] = '\0';
}

static int
set_options(struct webhook *wh, struct curl_slist *hdrs, const char *body,
    struct sink *sink, char *errbuf)
{
	CURL		*c = wh->curl;
	const char	*proto = wh->https ? "https" : "http";
	int		 rc = 0;

#define SET(opt, val)	do {						\
		if (rc == 0 && curl_easy_setopt(c, (opt), (val)) != CURLE_OK) \
			rc = -1;					\
	} while (0)
	SET(CURLOPT_URL, wh->cfg->webhook_url);
	SET(CURLOPT_PROTOCOLS_STR, proto);
	SET(CURLOPT_REDIR_PROTOCOLS_STR, proto);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, wh->cfg->webhook_timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, wh->cfg->webhook_timeout_ms);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (wh->cfg->tls_ca_file[0] != '\0')
		SET(CURLOPT_CAINFO, wh->cfg->tls_ca_file);
	SET(CURLOPT_USERAGENT, WEBHOOK_USER_AGENT);
	SET(CURLOPT_HTTPHEADER, hdrs);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_POST, 1L);
	SET(CURLOPT_POSTFIELDS, body);
	SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	SET(CURLOPT_WRITEFUNCTION, sink_write);
	SET(CURLOPT_WRITEDATA, sink);
#undef SET
	return rc;
}

/* The request headers; NULL on out of memory. */
static struct curl_slist *
make_headers(const char *secret, const char *event_id, const char *body,
    long long t)
{
	struct curl_slist	*h = NULL, *next;
	char			 line[256], sig[160];
	const char		*fixed[] = { "Content-Type: application/json",
				    "Expect:", NULL };

	if (webhook_signature(secret, t, body, sig, sizeof(sig)) == -1)
		return NULL;
	for (int i = 0; fixed[i] != NULL; i++) {
		if ((next = curl_slist_append(h, fixed[i])) == NULL)
			goto fail;
		h = next;
	}
	snprintf(line, sizeof(line), "Sfconnect-Event-Id: %s", event_id);
	if ((next = curl_slist_append(h, line)) == NULL)
		goto fail;
	h = next;
	snprintf(line, sizeof(line), "Sfconnect-Signature: %s", sig);
	if ((next = curl_slist_append(h, line)) == NULL)
		goto fail;
	return next;
fail:
	curl_slist_free_all(h);
	return NULL;
}

enum webhook_outcome
webhook_post(struct webhook *wh, const char *secret, const char *event_id,
    const char *body, long long t, struct webhook_result *res)
{
	struct curl_slist	*hdrs = NULL;
	char			 errbuf[CURL_ERROR_SIZE] = "";
	char			 kept[WEBHOOK_BODY_LOG_MAX];
	struct sink		 sink = { kept, 0, sizeof(kept) };
	enum webhook_outcome	 outcome = WEBHOOK_ERROR;
	CURLcode		 cc;

	memset(res, 0, sizeof(*res));
	if ((hdrs = make_headers(secret, event_id, body, t)) == NULL ||
	    set_options(wh, hdrs, body, &sink, errbuf) == -1) {
		snprintf(res->error, sizeof(res->error), "could not build the request");
		goto out;
	}
	if ((cc = curl_easy_perform(wh->curl)) != CURLE_OK) {
		snprintf(res->error, sizeof(res->error), "%.*s",
		    (int)sizeof(res->error) - 1,
		    errbuf[0] ? errbuf : curl_easy_strerror(cc));
		res->error[strcspn(res->error, "\r\n")] = '\0';
		goto out;
	}
	curl_easy_getinfo(wh->curl, CURLINFO_RESPONSE_CODE, &res->http_status);
	keep_body(res, kept, sink.len);
	if (res->http_status >= 200 && res->http_status < 300)
		outcome = WEBHOOK_DELIVERED;
	else {
		outcome = WEBHOOK_REJECTED;
		snprintf(res->error, sizeof(res->error), "HTTP %ld",
		    res->http_status);
	}
out:
	/* The handle keeps no pointer into this call's buffers. */
	curl_easy_setopt(wh->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(wh->curl, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(wh->curl, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(wh->curl, CURLOPT_POSTFIELDS, NULL);
	curl_slist_free_all(hdrs);
	return outcome;
}

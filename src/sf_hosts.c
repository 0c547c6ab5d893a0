/*
 * The hosts of the Salesforce client, without any network: the check that
 * a URL is https on a host from salesforce_allowed_hosts (sf_url_check,
 * made on every URL before a transfer), which login host a connect talks
 * to (sf_login_base: the configured login URLs or the customer's My
 * Domain), the authorize URL the browser is sent to, and the form encoding
 * of what is sent to the login host. Host names follow the rule of host.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "buf.h"
#include "cfg.h"
#include "host.h"
#include "sf.h"
#include "sf_internal.h"
#include "util.h"


/* ---------------------------------------------------------------- forms */

int
sf_form_append(struct buf *b, const struct sf_form_field *f, size_t n)
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

int
sf_form_build(struct buf *b, const struct sf_form_field *f, size_t n)
{
	size_t	 need = 0, i;

	for (i = 0; i < n; i++)
		if (f[i].value != NULL)
			need += strlen(f[i].name) + 2 + 3 * strlen(f[i].value);
	buf_init(b, need);
	if (buf_presize(b, need) == -1)
		return -1;
	return sf_form_append(b, f, n);
}

/* ---------------------------------------------------------------- allowed hosts */

enum sf_url_verdict
sf_url_check(const char *allowed, const char *url, CURLU **hp, char *host,
    size_t hostlen)
{
	CURLU			*h = NULL;
	char			*scheme = NULL, *hostpart = NULL, *user = NULL;
	enum sf_url_verdict	 v = SF_URL_BAD;

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
	sf_text_copy(host, hostlen, hostpart);
	if (!cfg_host_in_list(allowed, hostpart)) {
		v = SF_URL_NOT_ALLOWED;
		goto out;
	}
	v = SF_URL_OK;
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

/* ---------------------------------------------------------------- login hosts */

/* The My Domain part of sf_login_base(): in is non-empty, already trimmed to [p, end). */
static int
login_base_my_domain(const struct cfg *cfg, const char *p, const char *end,
    char *out, size_t outlen, char *err, size_t errlen)
{
	char		 host[HOST_LEN_MAX + 2];
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
	if ((hl = (size_t)(q - p)) == 0 || hl > HOST_LEN_MAX)
		goto bad;
	for (i = 0; i < hl; i++)
		host[i] = (p[i] >= 'A' && p[i] <= 'Z') ? p[i] - 'A' + 'a' : p[i];
	host[hl] = '\0';
	if (host_in_domain(host, "lightning.force.com")) {
		snprintf(err, errlen, "use your My Domain URL "
		    "(NAME.my.salesforce.com), not the Lightning URL "
		    "(*.lightning.force.com)");
		return -1;
	}
	if (host_in_domain(host, "force.com") ||
	    host_in_domain(host, "visualforce.com")) {
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
	char		 host[HOST_LEN_MAX + 1];
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
	if (sf_url_check(cfg->salesforce_allowed_hosts, out, NULL, host,
	    sizeof(host)) != SF_URL_OK) {
		out[0] = '\0';
		snprintf(err, errlen, "the configured Salesforce login URL is "
		    "not an https URL on a host in salesforce_allowed_hosts");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- authorize URL */

char *
sf_authorize_url(struct sf *sf, const char *login_base, const char *state,
    const char *code_challenge)
{
	const struct sf_form_field	 q[] = {
		{ "response_type", "code" },
		{ "client_id", sf->cfg->salesforce_client_id },
		{ "redirect_uri", sf->redirect_uri },
		{ "scope", sf->cfg->salesforce_scope },
		{ "state", state },
		{ "code_challenge", code_challenge },
		{ "code_challenge_method", "S256" },
		/*
		 * The browser's Salesforce session must not silently pick
		 * the org or user: login (the default) asks to sign in.
		 */
		{ "prompt", sf->cfg->connect_prompt },
	};
	const char	*prompt = sf->cfg->connect_prompt;
	struct buf	 b;

	buf_init(&b, SF_URL_MAX);
	if (login_base == NULL || buf_puts(&b, login_base) == -1 ||
	    buf_puts(&b, "/services/oauth2/authorize?") == -1 ||
	    sf_form_append(&b, q, ARRAY_LEN(q) -
	    (prompt == NULL || *prompt == '\0')) == -1) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

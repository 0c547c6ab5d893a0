#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "host.h"
#include "util.h"

enum cfg_type { CFG_STR, CFG_URL, CFG_LISTEN, CFG_LONG };

struct cfg_key {
	const char	*name;
	enum cfg_type	 type;
	size_t		 offset;
	const char	*def;		/* NULL: required (unless optional) */
	int		 optional;	/* may be absent or empty */
	long		 min, max;	/* CFG_LONG bounds */
};

#define S(f)	offsetof(struct cfg, f)
static const struct cfg_key keys[] = {
	/* The service */
	{ "database_url", CFG_STR, S(database_url), NULL, 0, 0, 0 },
	{ "listen", CFG_LISTEN, S(listen), NULL, 0, 0, 0 },
	{ "workers", CFG_LONG, S(workers), "4", 0, 1, 256 },
	{ "public_base_url", CFG_URL, S(public_base_url), NULL, 0, 0, 0 },
	{ "log_level", CFG_STR, S(log_level), "info", 0, 0, 0 },
	{ "fastcgi_allowed_peers", CFG_STR, S(fastcgi_allowed_peers), "", 1, 0, 0 },

	/* Salesforce */
	{ "salesforce_client_id", CFG_STR, S(salesforce_client_id), NULL, 0, 0, 0 },
	{ "salesforce_client_secret_file", CFG_STR, S(salesforce_client_secret_file), NULL, 0, 0, 0 },
	{ "salesforce_login_url", CFG_URL, S(salesforce_login_url), "https://login.salesforce.com", 0, 0, 0 },
	{ "salesforce_sandbox_login_url", CFG_URL, S(salesforce_sandbox_login_url), "https://test.salesforce.com", 0, 0, 0 },
	{ "salesforce_allowed_hosts", CFG_STR, S(salesforce_allowed_hosts),
	  "login.salesforce.com test.salesforce.com *.my.salesforce.com *.salesforce.com", 0, 0, 0 },
	{ "salesforce_scope", CFG_STR, S(salesforce_scope), "api refresh_token id", 0, 0, 0 },
	{ "tls_ca_file", CFG_STR, S(tls_ca_file), "", 1, 0, 0 },
	{ "http_timeout_ms", CFG_LONG, S(http_timeout_ms), "10000", 0, 100, 120000 },
	{ "refresh_timeout_ms", CFG_LONG, S(refresh_timeout_ms), "30000", 0, 100, 300000 },
	{ "connect_prompt", CFG_STR, S(connect_prompt), "login", 1, 0, 0 },
	{ "connect_bind_browser", CFG_LONG, S(connect_bind_browser), "true", 0, 0, 1 },

	/* Tokens and checks */
	{ "token_key_file", CFG_STR, S(token_key_file), NULL, 0, 0, 0 },
	{ "token_previous_key_files", CFG_STR, S(token_previous_key_files), "", 1, 0, 0 },
	{ "access_token_max_age_s", CFG_LONG, S(access_token_max_age_s), "3600", 0, 1, 86400 },
	{ "refresh_lock_timeout_ms", CFG_LONG, S(refresh_lock_timeout_ms), "25000", 0, 100, 300000 },
	{ "check_interval_s", CFG_LONG, S(check_interval_s), "86400", 0, 1, 30 * 86400 },
	{ "check_concurrency", CFG_LONG, S(check_concurrency), "8", 0, 1, 256 },
	{ "invalid_recheck_interval_s", CFG_LONG, S(invalid_recheck_interval_s), "86400", 0, 0, 30 * 86400 },
	{ "degraded_alert_after_s", CFG_LONG, S(degraded_alert_after_s), "21600", 0, 1, 30 * 86400 },
	{ "audit_retention_days", CFG_LONG, S(audit_retention_days), "400", 0, 0, 36500 },

	/* Webhooks */
	{ "webhook_url", CFG_STR, S(webhook_url), "", 1, 0, 0 },
	{ "webhook_secret_file", CFG_STR, S(webhook_secret_file), "", 1, 0, 0 },
	{ "webhook_timeout_ms", CFG_LONG, S(webhook_timeout_ms), "5000", 0, 100, 60000 },
	{ "webhook_retry_base_ms", CFG_LONG, S(webhook_retry_base_ms), "5000", 0, 10, 3600000 },
	{ "webhook_max_age_s", CFG_LONG, S(webhook_max_age_s), "86400", 0, 1, 30 * 86400 },

	/* The browser */
	{ "allowed_return_origins", CFG_STR, S(allowed_return_origins), "", 1, 0, 0 },
	{ "cors_allowed_origins", CFG_STR, S(cors_allowed_origins), "", 1, 0, 0 },
	{ "banner_action_url", CFG_STR, S(banner_action_url), "/admin/integrations", 0, 0, 0 },
	{ "bulk_check_sync_max", CFG_LONG, S(bulk_check_sync_max), "2000", 0, 0, 100000000 },
};
#undef S

#define NKEYS		ARRAY_LEN(keys)
#define MAX_VALUE	4096

static const struct cfg_key *
find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static char *
trim(char *s)
{
	char	*end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static int
valid_url(const char *v)
{
	const char	*host;

	if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else
		return 0;
	if (*host == '\0' || *host == '/')
		return 0;
	for (const char *p = v; *p != '\0'; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return 0;
	return 1;
}

static int
valid_listen(const char *v)
{
	const char	*colon;
	char		*end;
	long		 port;

	if (strncmp(v, "unix:", 5) == 0)
		return v[5] == '/' && strlen(v + 5) > 1 && strlen(v + 5) < 108;
	if ((colon = strrchr(v, ':')) == NULL || colon == v ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) > 5)
		return 0;
	for (const char *p = v; p < colon; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	return errno == 0 && *end == '\0' && port > 0 && port < 65536;
}

/* A flag's words as the digits CFG_LONG reads; anything else as it is. */
static const char *
flag_word(const char *v)
{
	if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
	    strcmp(v, "on") == 0)
		return "1";
	if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 ||
	    strcmp(v, "off") == 0)
		return "0";
	return v;
}

/* Stores value for key k; 0 or -1 with err set. */
static int
set_value(struct cfg *cfg, const struct cfg_key *k, const char *value,
    char *err, size_t errlen)
{
	char	*copy, *end;
	long	 n;

	if (strlen(value) > MAX_VALUE) {
		snprintf(err, errlen, "config: %s: value too long", k->name);
		return -1;
	}
	switch (k->type) {
	case CFG_LONG:
		if (k->min == 0 && k->max == 1)	/* a flag: true/false too */
			value = flag_word(value);
		errno = 0;
		n = strtol(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' ||
		    n < k->min || n > k->max) {
			snprintf(err, errlen,
			    "config: %s: must be an integer from %ld to %ld",
			    k->name, k->min, k->max);
			return -1;
		}
		*(long *)((char *)cfg + k->offset) = n;
		return 0;
	case CFG_URL:
		if (!valid_url(value)) {
			snprintf(err, errlen,
			    "config: %s: must be an http(s):// URL", k->name);
			return -1;
		}
		break;
	case CFG_LISTEN:
		if (!valid_listen(value)) {
			snprintf(err, errlen, "config: %s: must be unix:/path "
			    "(under 108 bytes) or host:port", k->name);
			return -1;
		}
		break;
	case CFG_STR:
		break;
	}
	if ((copy = strdup(value)) == NULL) {
		snprintf(err, errlen, "config: out of memory");
		return -1;
	}
	free(*(char **)((char *)cfg + k->offset));
	*(char **)((char *)cfg + k->offset) = copy;
	return 0;
}

static int
load_file(struct cfg *cfg, const char *path, char *err, size_t errlen)
{
	FILE			*f;
	char			 line[MAX_VALUE + 256], *key, *value, *eq;
	const struct cfg_key	*k;
	int			 lineno = 0, rc = -1;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "config: %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "config: %s:%d: line too long",
			    path, lineno);
			goto out;
		}
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			snprintf(err, errlen, "config: %s:%d: expected key = value",
			    path, lineno);
			goto out;
		}
		*eq = '\0';
		key = trim(key);
		value = trim(eq + 1);
		if ((k = find_key(key)) == NULL) {
			snprintf(err, errlen, "config: %s:%d: unknown key %s",
			    path, lineno, key);
			goto out;
		}
		if (set_value(cfg, k, value, err, errlen) == -1)
			goto out;
	}
	rc = 0;
out:
	fclose(f);
	return rc;
}

static int
load_env(struct cfg *cfg, char *err, size_t errlen)
{
	char		 name[128];
	const char	*value;

	for (size_t i = 0; i < NKEYS; i++) {
		size_t j = (size_t)snprintf(name, sizeof(name), "SFCONNECT_");

		for (const char *p = keys[i].name; *p != '\0'; p++)
			name[j++] = (char)toupper((unsigned char)*p);
		name[j] = '\0';
		if ((value = getenv(name)) == NULL)
			continue;
		if (set_value(cfg, &keys[i], value, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/* Every integer key at its default first, so an explicit 0 is kept. */
static int
long_defaults(struct cfg *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].type == CFG_LONG &&
		    set_value(cfg, &keys[i], keys[i].def, err, errlen) == -1)
			return -1;
	return 0;
}

static int
apply_defaults_and_check(struct cfg *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cfg_key *k = &keys[i];
		char *sval;

		if (k->type == CFG_LONG)
			continue;	/* set by long_defaults() */
		sval = *(char **)((char *)cfg + k->offset);
		if (sval != NULL && (*sval != '\0' || k->optional))
			continue;
		if (k->def == NULL) {
			snprintf(err, errlen, "config: %s: missing (required)",
			    k->name);
			return -1;
		}
		if (set_value(cfg, k, k->def, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/* connect_prompt: space-separated words of Salesforce's prompt values, or empty. */
static int
check_prompt(const struct cfg *cfg, char *err, size_t errlen)
{
	static const char *const words[] = { "login", "consent",
	    "select_account" };
	const char	*p = cfg->connect_prompt;
	size_t		 len, i;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if ((len = strcspn(p, " ")) == 0)
			break;
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strlen(words[i]) == len && strncmp(p, words[i], len) == 0)
				break;
		if (i == sizeof(words) / sizeof(words[0])) {
			snprintf(err, errlen, "config: connect_prompt: must be "
			    "empty or words of login, consent, select_account");
			return -1;
		}
		p += len;
	}
	return 0;
}

int
cfg_load(struct cfg *cfg, const char *path, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	if (long_defaults(cfg, err, errlen) == -1)
		return -1;
	if (path != NULL && load_file(cfg, path, err, errlen) == -1)
		return -1;
	if (load_env(cfg, err, errlen) == -1)
		return -1;
	if (apply_defaults_and_check(cfg, err, errlen) == -1)
		return -1;
	return check_prompt(cfg, err, errlen);
}

void
cfg_free(struct cfg *cfg)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].type != CFG_LONG) {
			char **p = (char **)((char *)cfg + keys[i].offset);

			free(*p);
			*p = NULL;
		}
}

/* Calls fn on each space-separated word of list until it returns non-zero. */
static int
list_any(const char *list, const char *arg,
    int (*fn)(const char *word, size_t len, const char *arg))
{
	const char	*p = list;

	while (p != NULL && *p != '\0') {
		size_t len;

		while (*p == ' ' || *p == '\t')
			p++;
		len = strcspn(p, " \t");
		if (len > 0 && fn(p, len, arg))
			return 1;
		p += len;
	}
	return 0;
}

static int
word_eq(const char *word, size_t len, const char *arg)
{
	return strlen(arg) == len && strncmp(word, arg, len) == 0;
}

int
cfg_word_in_list(const char *list, const char *word)
{
	return list_any(list, word, word_eq);
}

int
cfg_host_in_list(const char *list, const char *host)
{
	if (!host_name_ok(host))
		return 0;
	return list_any(list, host, host_matches_pattern);
}

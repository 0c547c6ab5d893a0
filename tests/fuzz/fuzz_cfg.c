/*
 * libFuzzer target: the configuration reader of src/cfg.c.
 *
 * Input: the whole input is written to a fresh temp file (mkstemp, removed
 * again at once) and loaded with cfg_load. Its first two lines are also
 * used as a host list and a host for cfg_host_in_list, checked against a
 * plain reference. LLVMFuzzerInitialize unsets every SFCONNECT_* variable:
 * cfg_load reads them and they would mask the file.
 *
 * Checked: a loaded config has every string set, every required one
 * non-empty and every number positive; a refusal is one non-empty line.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cfg.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

extern char **environ;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char	 name[256];
	bool	 again = true;

	(void)argc;
	(void)argv;
	while (again) {
		again = false;
		for (char **e = environ; *e != NULL; e++) {
			size_t n = strcspn(*e, "=");

			if (strncmp(*e, "SFCONNECT_", 10) != 0 || n >= sizeof(name))
				continue;
			memcpy(name, *e, n);
			name[n] = '\0';
			unsetenv(name);
			again = true;	/* environ changed: start over */
			break;
		}
	}
	return 0;
}

/*
 * The rule of src/host.h: RFC 1123 labels of [A-Za-z0-9-], 1..63 each, no
 * '-' at either end of a label, 253 characters at most.
 */
static bool
ref_host_ok(const char *h)
{
	size_t	 n = strlen(h), label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || h[i] == '.') {
			if (label == 0 || label > 63 || h[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)h[i]) && h[i] != '-')
			return false;
		if (label++ == 0 && h[i] == '-')
			return false;
	}
	return true;
}

/* "name" matches itself; "*.suffix" matches any host ending in ".suffix". */
static bool
ref_host_in_list(const char *list, const char *host)
{
	size_t	 hlen = strlen(host), i = 0, llen = strlen(list);

	if (!ref_host_ok(host))
		return false;
	while (i < llen) {
		size_t j = i;

		while (j < llen && list[j] != ' ' && list[j] != '\t')
			j++;
		if (j - i > 2 && list[i] == '*' && list[i + 1] == '.') {
			size_t slen = j - i - 1;

			if (hlen > slen &&
			    strncasecmp(host + hlen - slen, list + i + 1, slen) == 0)
				return true;
		} else if (j - i == hlen && hlen > 0 &&
		    strncasecmp(list + i, host, hlen) == 0)
			return true;
		i = j + 1;
	}
	return false;
}

static void
check_cfg(const struct cfg *c)
{
	const char *const required[] = {
		c->database_url, c->listen, c->public_base_url,
		c->salesforce_client_id, c->salesforce_client_secret_file,
		c->salesforce_login_url, c->salesforce_sandbox_login_url,
		c->salesforce_allowed_hosts, c->salesforce_scope,
		c->token_key_file, c->log_level,
	};
	const char *const optional[] = {
		c->tls_ca_file, c->token_previous_key_files,
		c->allowed_return_origins, c->webhook_url,
		c->webhook_secret_file, c->cors_allowed_origins,
	};

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		CHECK(required[i] != NULL && required[i][0] != '\0');
	for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
		CHECK(optional[i] != NULL);
	CHECK(c->workers > 0 && c->http_timeout_ms > 0 &&
	    c->access_token_max_age_s > 0 && c->check_interval_s > 0 &&
	    c->check_concurrency > 0 && c->refresh_lock_timeout_ms > 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		 path[] = "/tmp/sfc-fuzz-cfg.XXXXXX", err[512];
	char		*list = NULL, *host = NULL;
	struct cfg	 cfg;
	const uint8_t	*nl, *h;
	FILE		*f;
	int		 fd, rc;

	/* cfg_load on the input as a file. */
	if ((fd = mkstemp(path)) == -1)
		abort();
	if ((f = fdopen(fd, "w")) == NULL ||
	    fwrite(data, 1, size, f) != size || fclose(f) != 0) {
		unlink(path);
		abort();
	}
	memset(err, 0, sizeof(err));
	rc = cfg_load(&cfg, path, err, sizeof(err));
	unlink(path);
	if (rc == 0)
		check_cfg(&cfg);
	else {
		CHECK(rc == -1);
		CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
	}
	cfg_free(&cfg);

	/* cfg_host_in_list on the first line (list) and the second (host). */
	nl = memchr(data, '\n', size);
	list = strndup((const char *)data, nl != NULL ? (size_t)(nl - data) : size);
	h = nl != NULL ? nl + 1 : data + size;
	nl = memchr(h, '\n', size - (size_t)(h - data));
	host = strndup((const char *)h, nl != NULL ? (size_t)(nl - h) :
	    size - (size_t)(h - data));
	if (list != NULL && host != NULL) {
		CHECK((cfg_host_in_list(list, host) != 0) ==
		    ref_host_in_list(list, host));
		/* A word never holds a blank and is never empty. */
		if (*host == '\0' || strpbrk(host, " \t") != NULL)
			CHECK(!cfg_word_in_list(list, host));
		else if (cfg_word_in_list(list, host))
			CHECK(strstr(list, host) != NULL);
	}
	free(list);
	free(host);
	return 0;
}

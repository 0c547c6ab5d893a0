/*
 * Unit tests for src/cfg.c (cmocka): loading, defaults, environment
 * overrides, validation, and the host / word list matchers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

extern char **environ;

/* The keys without a default, one line each, in a valid configuration. */
static const struct {
	const char *key, *line;
} required[] = {
	{ "database_url", "database_url = host=/tmp/pg user=app dbname=sfc\n" },
	{ "listen", "listen = unix:/run/sfconnect/sfconnect.sock\n" },
	{ "public_base_url", "public_base_url = https://connect.example.com\n" },
	{ "salesforce_client_id", "salesforce_client_id = 3MVG9abcdef\n" },
	{ "salesforce_client_secret_file",
	  "salesforce_client_secret_file = /etc/sfconnect/client_secret\n" },
	{ "token_key_file", "token_key_file = /etc/sfconnect/token.key\n" },
};

/* All required lines except the one of key skip (NULL: none skipped). */
static void
base_config(char *out, size_t outlen, const char *skip)
{
	size_t	 i;

	out[0] = '\0';
	for (i = 0; i < ARRAY_LEN(required); i++)
		if (skip == NULL || strcmp(required[i].key, skip) != 0)
			strncat(out, required[i].line, outlen - strlen(out) - 1);
}

/* Writes text to a temp file, loads it, removes it. Returns cfg_load's value. */
static int
load_text(struct cfg *cfg, const char *text, char *err, size_t errlen)
{
	char	 path[] = "/tmp/test_cfg.XXXXXX";
	int	 fd, rc;
	size_t	 len = strlen(text);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	err[0] = '\0';
	rc = cfg_load(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

/* Base configuration plus extra lines appended. */
static int
load_with(struct cfg *cfg, const char *extra, char *err, size_t errlen)
{
	char	 text[8192];

	base_config(text, sizeof(text), NULL);
	strncat(text, extra, sizeof(text) - strlen(text) - 1);
	return load_text(cfg, text, err, errlen);
}

/* The error is a single line that names key. */
static void
assert_err_names(const char *err, const char *key)
{
	if (strstr(err, key) == NULL)
		fail_msg("error \"%s\" does not name %s", err, key);
	if (strchr(err, '\n') != NULL || strchr(err, '\r') != NULL)
		fail_msg("error \"%s\" is not one line", err);
}

/* Unsets every SFCONNECT_* variable so the caller's environment cannot leak in. */
static int
clear_env(void **state)
{
	char	**e, name[256];
	int	 again = 1;

	(void)state;
	while (again) {
		again = 0;
		for (e = environ; e != NULL && *e != NULL; e++) {
			size_t n = strcspn(*e, "=");

			if (strncmp(*e, "SFCONNECT_", 10) != 0 || n >= sizeof(name))
				continue;
			memcpy(name, *e, n);
			name[n] = '\0';
			unsetenv(name);
			again = 1;
			break;
		}
	}
	return 0;
}

static void
test_values_and_defaults(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	assert_int_equal(load_with(&cfg, "", err, sizeof(err)), 0);
	assert_string_equal(cfg.database_url, "host=/tmp/pg user=app dbname=sfc");
	assert_string_equal(cfg.listen, "unix:/run/sfconnect/sfconnect.sock");
	assert_string_equal(cfg.public_base_url, "https://connect.example.com");
	assert_string_equal(cfg.salesforce_client_id, "3MVG9abcdef");
	assert_string_equal(cfg.salesforce_client_secret_file,
	    "/etc/sfconnect/client_secret");
	assert_string_equal(cfg.token_key_file, "/etc/sfconnect/token.key");
	/* defaults */
	assert_int_equal(cfg.workers, 4);
	assert_string_equal(cfg.salesforce_login_url, "https://login.salesforce.com");
	assert_string_equal(cfg.salesforce_sandbox_login_url,
	    "https://test.salesforce.com");
	assert_string_equal(cfg.salesforce_allowed_hosts,
	    "login.salesforce.com test.salesforce.com *.my.salesforce.com "
	    "*.salesforce.com");
	assert_string_equal(cfg.salesforce_scope, "api refresh_token id");
	assert_int_equal(cfg.http_timeout_ms, 10000);
	assert_int_equal(cfg.access_token_max_age_s, 3600);
	assert_int_equal(cfg.check_interval_s, 86400);
	assert_int_equal(cfg.check_concurrency, 8);
	assert_int_equal(cfg.refresh_lock_timeout_ms, 25000);
	assert_int_equal(cfg.audit_retention_days, 400);
	assert_string_equal(cfg.log_level, "info");
	assert_string_equal(cfg.banner_action_url, "/admin/integrations");
	/* optional strings are "" rather than NULL */
	assert_non_null(cfg.tls_ca_file);
	assert_string_equal(cfg.tls_ca_file, "");
	assert_string_equal(cfg.token_previous_key_files, "");
	assert_string_equal(cfg.allowed_return_origins, "");
	assert_string_equal(cfg.webhook_url, "");
	assert_string_equal(cfg.webhook_secret_file, "");
	assert_string_equal(cfg.cors_allowed_origins, "");
	cfg_free(&cfg);
	assert_null(cfg.database_url);
	cfg_free(&cfg);		/* twice is harmless */
}

static void
test_explicit_values(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	assert_int_equal(load_with(&cfg,
	    "workers = 16\n"
	    "salesforce_login_url = http://127.0.0.1:8443\n"
	    "salesforce_scope = api id\n"
	    "http_timeout_ms = 100\n"
	    "refresh_lock_timeout_ms = 120000\n"
	    "audit_retention_days = 0\n"
	    "cors_allowed_origins = https://a.example.com https://b.example.com\n"
	    "log_level = debug\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.workers, 16);
	assert_string_equal(cfg.salesforce_login_url, "http://127.0.0.1:8443");
	assert_string_equal(cfg.salesforce_scope, "api id");
	assert_int_equal(cfg.http_timeout_ms, 100);
	assert_int_equal(cfg.refresh_lock_timeout_ms, 120000);
	assert_int_equal(cfg.audit_retention_days, 0);	/* 0 is kept, not the default */
	assert_string_equal(cfg.cors_allowed_origins,
	    "https://a.example.com https://b.example.com");
	assert_string_equal(cfg.log_level, "debug");
	cfg_free(&cfg);
}

static void
test_duplicate_key_last_wins(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	assert_int_equal(load_with(&cfg,
	    "salesforce_client_id = first\nsalesforce_client_id = second\n",
	    err, sizeof(err)), 0);
	assert_string_equal(cfg.salesforce_client_id, "second");
	cfg_free(&cfg);		/* ASan: the first copy was not leaked */
}

static void
test_missing_required(void **state)
{
	struct cfg	 cfg;
	char		 text[8192], err[256];
	size_t		 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(required); i++) {
		base_config(text, sizeof(text), required[i].key);
		assert_int_equal(load_text(&cfg, text, err, sizeof(err)), -1);
		assert_err_names(err, required[i].key);
		cfg_free(&cfg);
	}
}

static void
test_required_empty_is_missing(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	assert_int_equal(load_with(&cfg, "token_key_file =\n", err,
	    sizeof(err)), -1);
	assert_err_names(err, "token_key_file");
	cfg_free(&cfg);
	assert_int_equal(load_with(&cfg, "database_url =    \n", err,
	    sizeof(err)), -1);
	assert_err_names(err, "database_url");
	cfg_free(&cfg);
}

static void
test_bad_integers(void **state)
{
	static const struct {
		const char *line, *key;
	} t[] = {
		{ "workers = abc\n", "workers" },
		{ "workers = 4x\n", "workers" },
		{ "workers = 4.5\n", "workers" },
		{ "workers =\n", "workers" },
		{ "workers = 0\n", "workers" },
		{ "workers = -3\n", "workers" },
		{ "workers = 257\n", "workers" },
		{ "workers = 99999999999999999999999\n", "workers" },
		{ "http_timeout_ms = 99\n", "http_timeout_ms" },
		{ "http_timeout_ms = 120001\n", "http_timeout_ms" },
		{ "access_token_max_age_s = 86401\n", "access_token_max_age_s" },
		{ "check_interval_s = 0\n", "check_interval_s" },
		{ "check_concurrency = 1000\n", "check_concurrency" },
		{ "refresh_lock_timeout_ms = ten\n", "refresh_lock_timeout_ms" },
	};
	struct cfg	 cfg;
	char		 err[256];
	size_t		 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		if (load_with(&cfg, t[i].line, err, sizeof(err)) != -1)
			fail_msg("accepted \"%s\"", t[i].line);
		assert_err_names(err, t[i].key);
		cfg_free(&cfg);
	}
}

static void
test_integer_bounds_accepted(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	assert_int_equal(load_with(&cfg, "workers = 1\nhttp_timeout_ms = 120000\n"
	    "check_interval_s = 2592000\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.workers, 1);
	assert_int_equal(cfg.http_timeout_ms, 120000);
	assert_int_equal(cfg.check_interval_s, 2592000);
	cfg_free(&cfg);
	assert_int_equal(load_with(&cfg, "workers = 256\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.workers, 256);
	cfg_free(&cfg);
}

static void
test_unknown_key(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	assert_int_equal(load_with(&cfg, "colour = blue\n", err, sizeof(err)), -1);
	assert_err_names(err, "colour");
	cfg_free(&cfg);
	/* keys are case-sensitive in the file */
	assert_int_equal(load_with(&cfg, "WORKERS = 3\n", err, sizeof(err)), -1);
	assert_err_names(err, "WORKERS");
	cfg_free(&cfg);
}

static void
test_line_without_equals(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	assert_int_equal(load_with(&cfg, "workers 4\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":7:"));	/* the 7th line */
	assert_null(strchr(err, '\n'));
	cfg_free(&cfg);
}

static void
test_comments_and_blank_lines(void **state)
{
	struct cfg	 cfg;
	char		 text[8192], err[256];

	(void)state;
	snprintf(text, sizeof(text), "# sfconnect configuration\n\n   \n"
	    "\t# indented comment = ignored\n");
	base_config(text + strlen(text), sizeof(text) - strlen(text), NULL);
	strncat(text, "\n#workers = 9\n   workers\t=\t5   \r\n"
	    "salesforce_scope=api\n# trailing comment", sizeof(text) -
	    strlen(text) - 1);
	assert_int_equal(load_text(&cfg, text, err, sizeof(err)), 0);
	assert_int_equal(cfg.workers, 5);
	assert_string_equal(cfg.salesforce_scope, "api");
	cfg_free(&cfg);
}

static void
test_missing_file(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	assert_int_equal(cfg_load(&cfg, "/nonexistent/sfconnect.conf", err,
	    sizeof(err)), -1);
	assert_err_names(err, "/nonexistent/sfconnect.conf");
	cfg_free(&cfg);
}

static void
test_env_overrides_file(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	assert_int_equal(setenv("SFCONNECT_WORKERS", "7", 1), 0);
	assert_int_equal(setenv("SFCONNECT_SALESFORCE_SCOPE", "api id", 1), 0);
	assert_int_equal(load_with(&cfg, "workers = 3\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.workers, 7);
	assert_string_equal(cfg.salesforce_scope, "api id");
	cfg_free(&cfg);
	unsetenv("SFCONNECT_WORKERS");
	unsetenv("SFCONNECT_SALESFORCE_SCOPE");
}

static void
test_env_supplies_required(void **state)
{
	struct cfg	 cfg;
	char		 text[8192], err[256];

	(void)state;
	base_config(text, sizeof(text), "token_key_file");
	assert_int_equal(setenv("SFCONNECT_TOKEN_KEY_FILE", "/run/key", 1), 0);
	assert_int_equal(load_text(&cfg, text, err, sizeof(err)), 0);
	assert_string_equal(cfg.token_key_file, "/run/key");
	cfg_free(&cfg);
	unsetenv("SFCONNECT_TOKEN_KEY_FILE");
}

static void
test_env_only(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	setenv("SFCONNECT_DATABASE_URL", "host=/tmp", 1);
	setenv("SFCONNECT_LISTEN", "127.0.0.1:9000", 1);
	setenv("SFCONNECT_PUBLIC_BASE_URL", "http://localhost:8080", 1);
	setenv("SFCONNECT_SALESFORCE_CLIENT_ID", "id", 1);
	setenv("SFCONNECT_SALESFORCE_CLIENT_SECRET_FILE", "/s", 1);
	setenv("SFCONNECT_TOKEN_KEY_FILE", "/k", 1);
	assert_int_equal(cfg_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.listen, "127.0.0.1:9000");
	assert_int_equal(cfg.workers, 4);
	cfg_free(&cfg);
}

static void
test_env_bad_value(void **state)
{
	struct cfg	 cfg;
	char		 err[256];

	(void)state;
	setenv("SFCONNECT_WORKERS", "many", 1);
	assert_int_equal(load_with(&cfg, "", err, sizeof(err)), -1);
	assert_err_names(err, "workers");
	cfg_free(&cfg);
	unsetenv("SFCONNECT_WORKERS");
}

static void
test_listen(void **state)
{
	static const struct {
		const char	*value;
		int		 ok;
	} t[] = {
		{ "unix:/run/sfconnect.sock", 1 },
		{ "127.0.0.1:9000", 1 },
		{ "localhost:1", 1 },
		{ "[::1]:65535", 1 },
		{ "unix:relative.sock", 0 },
		{ "unix:", 0 },
		{ "unix:./x.sock", 0 },
		{ "host:notaport", 0 },
		{ "host:", 0 },
		{ "host:0", 0 },
		{ "host:65536", 0 },
		{ "host:80x", 0 },
		{ ":9000", 0 },
		{ "9000", 0 },
		{ "/run/sfconnect.sock", 0 },
	};
	struct cfg	 cfg;
	char		 line[256], err[256];
	size_t		 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		int rc;

		snprintf(line, sizeof(line), "listen = %s\n", t[i].value);
		rc = load_with(&cfg, line, err, sizeof(err));
		if (t[i].ok) {
			if (rc != 0)
				fail_msg("rejected \"%s\": %s", t[i].value, err);
			assert_string_equal(cfg.listen, t[i].value);
		} else {
			if (rc != -1)
				fail_msg("accepted \"%s\"", t[i].value);
			assert_err_names(err, "listen");
		}
		cfg_free(&cfg);
	}
}

static void
test_listen_unix_path_length(void **state)
{
	struct cfg	 cfg;
	char		 line[512], err[256];

	(void)state;
	/* sun_path holds 108 bytes with the NUL: a 107-byte path fits */
	snprintf(line, sizeof(line), "listen = unix:/%0106d\n", 0);
	assert_int_equal(load_with(&cfg, line, err, sizeof(err)), 0);
	assert_int_equal(strlen(cfg.listen), 5 + 107);
	cfg_free(&cfg);
	snprintf(line, sizeof(line), "listen = unix:/%0107d\n", 0);
	assert_int_equal(load_with(&cfg, line, err, sizeof(err)), -1);
	assert_err_names(err, "listen");
	cfg_free(&cfg);
	snprintf(line, sizeof(line), "listen = unix:/%0200d\n", 0);
	assert_int_equal(load_with(&cfg, line, err, sizeof(err)), -1);
	assert_err_names(err, "listen");
	cfg_free(&cfg);
}

static void
test_bad_urls(void **state)
{
	static const struct {
		const char *key, *value;
	} t[] = {
		{ "public_base_url", "connect.example.com" },
		{ "public_base_url", "ftp://connect.example.com" },
		{ "public_base_url", "https://" },
		{ "public_base_url", "https:///path" },
		{ "public_base_url", "https://exa mple.com" },
		{ "public_base_url", "https://example.com/\x01" },
		{ "public_base_url", "//example.com" },
		{ "salesforce_login_url", "javascript:alert(1)" },
		{ "salesforce_login_url", "login.salesforce.com" },
		{ "salesforce_sandbox_login_url", "http:/test.salesforce.com" },
	};
	struct cfg	 cfg;
	char		 line[256], err[256];
	size_t		 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		snprintf(line, sizeof(line), "%s = %s\n", t[i].key, t[i].value);
		if (load_with(&cfg, line, err, sizeof(err)) != -1)
			fail_msg("accepted %s", line);
		assert_err_names(err, t[i].key);
		cfg_free(&cfg);
	}
}

static void
test_value_too_long(void **state)
{
	struct cfg	 cfg;
	char		*line, err[256];
	size_t		 n = 5000;

	(void)state;
	line = malloc(n + 64);
	assert_non_null(line);
	memcpy(line, "webhook_url = ", 14);
	memset(line + 14, 'a', n);
	strcpy(line + 14 + n, "\n");
	assert_int_equal(load_with(&cfg, line, err, sizeof(err)), -1);
	assert_null(strchr(err, '\n'));
	cfg_free(&cfg);
	free(line);
}

static void
test_host_in_list(void **state)
{
	static const char list[] = "login.salesforce.com  *.my.salesforce.com\t"
	    "test.salesforce.com";
	static const struct {
		const char	*host;
		int		 in;
	} t[] = {
		{ "login.salesforce.com", 1 },
		{ "test.salesforce.com", 1 },
		{ "LOGIN.Salesforce.COM", 1 },
		{ "acme.my.salesforce.com", 1 },
		{ "a.b.my.salesforce.com", 1 },
		{ "ACME.MY.SALESFORCE.COM", 1 },
		{ "acme--dev.sandbox.my.salesforce.com", 1 },
		{ "my.salesforce.com", 0 },
		{ ".my.salesforce.com", 0 },
		{ "evilmy.salesforce.com", 0 },
		{ "acme.my.salesforce.com.evil.com", 0 },
		{ "login.salesforce.com.evil.com", 0 },
		{ "xlogin.salesforce.com", 0 },
		{ "login.salesforce.co", 0 },
		{ "salesforce.com", 0 },
		{ "evil.com", 0 },
		{ "", 0 },
		{ "*.my.salesforce.com", 0 },	/* not a host name: "*" is refused */
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (cfg_host_in_list(list, t[i].host) != t[i].in)
			fail_msg("cfg_host_in_list(\"%s\") != %d", t[i].host,
			    t[i].in);
	assert_false(cfg_host_in_list("", "login.salesforce.com"));
	assert_false(cfg_host_in_list("   ", "login.salesforce.com"));
	assert_true(cfg_host_in_list("  login.salesforce.com  ",
	    "login.salesforce.com"));
}

static void
test_word_in_list(void **state)
{
	static const char list[] = "https://app.example.com  "
	    "http://localhost:3000\thttps://b.example.com";
	static const struct {
		const char	*word;
		int		 in;
	} t[] = {
		{ "https://app.example.com", 1 },
		{ "http://localhost:3000", 1 },
		{ "https://b.example.com", 1 },
		{ "https://APP.example.com", 0 },
		{ "https://app.example.com/", 0 },
		{ "https://app.example.co", 0 },
		{ "https://app.example.com.evil.com", 0 },
		{ "http://app.example.com", 0 },
		{ "app.example.com", 0 },
		{ "https://app.example.com  http://localhost:3000", 0 },
		{ "", 0 },
		{ "null", 0 },
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (cfg_word_in_list(list, t[i].word) != t[i].in)
			fail_msg("cfg_word_in_list(\"%s\") != %d", t[i].word,
			    t[i].in);
	assert_false(cfg_word_in_list("", ""));
	assert_false(cfg_word_in_list("", "https://app.example.com"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_and_defaults),
		cmocka_unit_test(test_explicit_values),
		cmocka_unit_test(test_duplicate_key_last_wins),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_required_empty_is_missing),
		cmocka_unit_test(test_bad_integers),
		cmocka_unit_test(test_integer_bounds_accepted),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_line_without_equals),
		cmocka_unit_test(test_comments_and_blank_lines),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test_teardown(test_env_overrides_file, clear_env),
		cmocka_unit_test_teardown(test_env_supplies_required, clear_env),
		cmocka_unit_test_teardown(test_env_only, clear_env),
		cmocka_unit_test_teardown(test_env_bad_value, clear_env),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_listen_unix_path_length),
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_value_too_long),
		cmocka_unit_test(test_host_in_list),
		cmocka_unit_test(test_word_in_list),
	};

	return cmocka_run_group_tests(tests, clear_env, NULL);
}

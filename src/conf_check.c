/* sfconnectd --check-config: everything start-up validates, then exit. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "conf_check.h"
#include "db.h"
#include "keyring.h"
#include "log.h"
#include "secret.h"
#include "webhook.h"

/* One problem found by --check-config: one line on stderr. */
static void
problem(int *count, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
problem(int *count, const char *fmt, ...)
{
	va_list	 ap;

	fputs("sfconnectd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	(*count)++;
}

/* The secret and key files: each one that does not load is a problem. */
static void
check_secret_files(const struct cfg *cfg, int *count)
{
	struct keyring	*kr = NULL;
	char		*secret;
	char		 err[512];

	if (keyring_load(&kr, cfg->token_key_file,
	    cfg->token_previous_key_files, err, sizeof(err)) == -1)
		problem(count, "%s", err);
	keyring_free(kr);
	if ((secret = secret_read_setting("salesforce_client_secret_file",
	    cfg->salesforce_client_secret_file, err, sizeof(err))) == NULL)
		problem(count, "%s", err);
	secret_free(secret);
	if (cfg->webhook_url[0] != '\0' && !webhook_url_ok(cfg->webhook_url))
		problem(count, "webhook_url: must be an https:// URL (or "
		    "http:// on loopback)");
	if (cfg->webhook_url[0] != '\0' && cfg->webhook_secret_file[0] == '\0')
		problem(count, "webhook_secret_file: missing (required with "
		    "webhook_url)");
	if (cfg->webhook_secret_file[0] != '\0') {
		secret = secret_read_setting("webhook_secret_file",
		    cfg->webhook_secret_file, err, sizeof(err));
		if (secret == NULL)
			problem(count, "%s", err);
		secret_free(secret);
	}
}

/* The files and directories the daemon opens later, not at start-up. */
static void
check_paths(const struct cfg *cfg, int *count)
{
	char		 dir[128];
	struct stat	 st;
	char		*slash;

	if (cfg->tls_ca_file[0] != '\0' && access(cfg->tls_ca_file, R_OK) == -1)
		problem(count, "tls_ca_file: %s: %s", cfg->tls_ca_file,
		    strerror(errno));
	if (strncmp(cfg->listen, "unix:", 5) != 0)
		return;
	snprintf(dir, sizeof(dir), "%s", cfg->listen + 5);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), "/");
	if (stat(dir, &st) == -1)
		problem(count, "listen: directory %s: %s", dir, strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		problem(count, "listen: %s: not a directory", dir);
}

/* --check-database: the database answers and has this binary's schema. */
static void
check_database(const struct cfg *cfg, int *count)
{
	char		 err[512];
	struct db	*db = db_open(cfg->database_url, err, sizeof(err));

	if (db == NULL) {
		problem(count, "database_url: %s", err);
		return;
	}
	if (db_schema_check(db, err, sizeof(err)) == DB_ERROR)
		problem(count, "database_url: %s", err);
	db_close(db);
}

/*
 * --check-config: what start-up validates (every key, the secret and key
 * files with their modes and lengths, the URLs), plus the CA file and the
 * socket's directory, and the database with with_db. One line per
 * problem on stderr; 0 when there is none, else 1.
 */
int
conf_check(const char *path, bool with_db)
{
	struct cfg	 cfg;
	char		 err[512];
	enum log_level	 level;
	int		 count = 0;

	if (cfg_load(&cfg, path, err, sizeof(err)) == -1) {
		problem(&count, "%s", err);
		cfg_free(&cfg);
		return 1;
	}
	if (log_parse_level(cfg.log_level, &level) == -1)
		problem(&count, "%s", LOG_LEVEL_USAGE);
	check_secret_files(&cfg, &count);
	check_paths(&cfg, &count);
	if (with_db)
		check_database(&cfg, &count);
	if (count == 0)
		printf("sfconnectd: %s: configuration OK%s\n", path,
		    with_db ? " (database reachable, schema current)" : "");
	cfg_free(&cfg);
	return count == 0 ? 0 : 1;
}

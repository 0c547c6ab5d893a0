/*
 * sfconnect-admin: migrations, orgs and API keys from the shell. Results on
 * stdout, errors on stderr, exit status 0 only on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "app.h"
#include "cfg.h"
#include "db.h"
#include "db_jobs.h"
#include "keyring.h"
#include "keys.h"
#include "lifecycle.h"
#include "secret.h"
#include "sf.h"
#include "util.h"

struct cmd {
	const char	*word1, *word2;		/* word2 NULL: one-word command */
	int		(*fn)(struct db *, int, char **);
	const char	*usage;
};

static int cmd_migrate(struct db *, int, char **);
static int cmd_org_create(struct db *, int, char **);
static int cmd_org_list(struct db *, int, char **);
static int cmd_key_create(struct db *, int, char **);
static int cmd_key_list(struct db *, int, char **);
static int cmd_key_revoke(struct db *, int, char **);
static int cmd_check(struct db *, int, char **);
static int cmd_rotate_keys(struct db *, int, char **);
static int cmd_webhooks_retry(struct db *, int, char **);

static const struct cmd cmds[] = {
	{ "migrate", NULL, cmd_migrate, "migrate" },
	{ "org", "create", cmd_org_create, "org create SLUG [--name NAME]" },
	{ "org", "list", cmd_org_list, "org list" },
	{ "key", "create", cmd_key_create, "key create --org SLUG --role "
	    "viewer|admin|service [--label L] | key create --role operator "
	    "[--label L]" },
	{ "key", "list", cmd_key_list, "key list [--org SLUG]" },
	{ "key", "revoke", cmd_key_revoke, "key revoke ID" },
	{ "check", NULL, cmd_check, "check --org SLUG | check --all" },
	{ "rotate-keys", NULL, cmd_rotate_keys, "rotate-keys" },
	{ "webhooks", "retry", cmd_webhooks_retry, "webhooks retry ID|--failed" },
};
#define NCMDS	(sizeof(cmds) / sizeof(cmds[0]))

static void
usage(void)
{
	fprintf(stderr, "usage: sfconnect-admin -c FILE COMMAND\ncommands:\n");
	for (size_t i = 0; i < NCMDS; i++)
		fprintf(stderr, "  %s\n", cmds[i].usage);
	exit(2);
}

/*
 * Reads "--name value" options from argv into values (same order as names).
 * Returns 0, or -1 on an unknown option, a missing value or a stray word.
 */
static int
get_opts(int argc, char **argv, const char *const *names, const char **values,
    int nnames)
{
	for (int i = 0; i < argc; i++) {
		int j;

		for (j = 0; j < nnames; j++)
			if (strcmp(argv[i], names[j]) == 0)
				break;
		if (j == nnames || i + 1 >= argc) {
			fprintf(stderr, "sfconnect-admin: unexpected %s\n", argv[i]);
			return -1;
		}
		values[j] = argv[++i];
	}
	return 0;
}

static int
report_db(const char *what, int rc)
{
	if (rc == DB_OK)
		return 0;
	fprintf(stderr, "sfconnect-admin: %s: %s\n", what,
	    rc == DB_CONFLICT ? "already exists" :
	    rc == DB_NOTFOUND ? "not found" :
	    rc == DB_UNAVAILABLE ? "database unavailable" : "database error");
	return 1;
}

static int
cmd_migrate(struct db *db, int argc, char **argv)
{
	char	 err[512] = "";

	(void)argv;
	if (argc != 0)
		usage();
	if (db_migrate(db, err, sizeof(err)) != DB_OK) {
		fprintf(stderr, "sfconnect-admin: migrate: %s\n",
		    err[0] ? err : "failed");
		return 1;
	}
	return 0;
}

static int
cmd_org_create(struct db *db, int argc, char **argv)
{
	static const char *const names[] = { "--name" };
	const char	*values[1] = { NULL };
	struct org	 org;
	int		 rc;

	if (argc < 1 || get_opts(argc - 1, argv + 1, names, values, 1) == -1)
		usage();
	if (!slug_ok(argv[0])) {
		fprintf(stderr, "sfconnect-admin: bad slug %s: use 1 to 63 of "
		    "a-z, 0-9 and -\n", argv[0]);
		return 1;
	}
	if (values[0] != NULL && strlen(values[0]) > 200) {
		fprintf(stderr, "sfconnect-admin: --name: at most 200 characters\n");
		return 1;
	}
	rc = db_org_create(db, argv[0], values[0] ? values[0] : argv[0], &org);
	if (report_db("org create", rc) != 0)
		return 1;
	printf("created org %s\n", org.slug);
	return 0;
}

static int
print_json_rows(cJSON *array, const char *const *fields, int nfields)
{
	const cJSON	*row;

	cJSON_ArrayForEach(row, array) {
		for (int i = 0; i < nfields; i++) {
			const cJSON *v = cJSON_GetObjectItem(row, fields[i]);

			printf("%s%s", i ? "\t" : "",
			    cJSON_IsString(v) ? v->valuestring : "-");
		}
		printf("\n");
	}
	return 0;
}

#define LIST_PAGE	500

/* A keyset list: appends up to LIST_PAGE rows after cursor after ("": first). */
typedef enum db_rc (*list_page_fn)(struct db *db, const char *arg,
    const char *after, cJSON *page);

/* Prints every page of a list; the cursor is member of a page's last row. */
static enum db_rc
print_all_pages(struct db *db, list_page_fn fetch, const char *arg,
    const char *member, const char *const *fields, int nfields)
{
	char		 after[64] = "";
	enum db_rc	 rc;
	int		 n;

	do {
		cJSON *page = cJSON_CreateArray();

		rc = fetch(db, arg, after, page);
		n = cJSON_GetArraySize(page);
		if (rc == DB_OK && n > 0)
			snprintf(after, sizeof(after), "%s", cJSON_GetObjectItem(
			    cJSON_GetArrayItem(page, n - 1), member)->valuestring);
		print_json_rows(page, fields, nfields);
		cJSON_Delete(page);
	} while (rc == DB_OK && n == LIST_PAGE);
	return rc;
}

static enum db_rc
org_page(struct db *db, const char *arg, const char *after, cJSON *page)
{
	(void)arg;
	return db_org_list(db, after, LIST_PAGE, page);
}

static enum db_rc
key_page(struct db *db, const char *org, const char *after, cJSON *page)
{
	return db_key_list(db, org, after, LIST_PAGE, page);
}

static int
cmd_org_list(struct db *db, int argc, char **argv)
{
	static const char *const fields[] = { "slug", "name", "created_at" };

	(void)argv;
	if (argc != 0)
		usage();
	return report_db("org list", print_all_pages(db, org_page, NULL, "slug",
	    fields, 3));
}

static int
cmd_key_create(struct db *db, int argc, char **argv)
{
	static const char *const names[] = { "--org", "--role", "--label" };
	const char	*values[3] = { NULL, NULL, NULL };
	enum role	 role;
	struct org	 org = { .id = 0 };
	struct new_key	 key;
	int		 rc;

	if (get_opts(argc, argv, names, values, 3) == -1 || values[1] == NULL)
		usage();
	if (role_parse(values[1], &role) == -1) {
		fprintf(stderr, "sfconnect-admin: --role must be viewer, admin, "
		    "service or operator\n");
		return 1;
	}
	if ((role == ROLE_OPERATOR) != (values[0] == NULL)) {
		fprintf(stderr, "sfconnect-admin: %s\n", role == ROLE_OPERATOR ?
		    "an operator key belongs to no org: drop --org" :
		    "--org SLUG is required for this role");
		return 1;
	}
	if (values[2] != NULL && strlen(values[2]) > 120) {
		fprintf(stderr, "sfconnect-admin: --label: at most 120 characters\n");
		return 1;
	}
	if (values[0] != NULL &&
	    report_db("org", db_org_get(db, values[0], &org)) != 0)
		return 1;
	rc = keys_mint(db, org.id, role, values[2] ? values[2] : "", &key);
	if (report_db("key create", rc) != 0)
		return 1;
	printf("created %s key %s%s%s (shown once): %s\n", role_name(role),
	    key.id, values[0] ? " for org " : "", values[0] ? values[0] : "",
	    key.key);
	keys_wipe(&key);
	return 0;
}

static int
cmd_key_list(struct db *db, int argc, char **argv)
{
	static const char *const names[] = { "--org" };
	static const char *const fields[] = { "id", "org", "role", "label",
	    "created_at", "revoked_at" };
	const char	*values[1] = { NULL };

	if (get_opts(argc, argv, names, values, 1) == -1)
		usage();
	return report_db("key list", print_all_pages(db, key_page, values[0],
	    "id", fields, 6));
}

static int
cmd_key_revoke(struct db *db, int argc, char **argv)
{
	if (argc != 1)
		usage();
	if (report_db("key revoke", db_key_revoke(db, argv[0])) != 0)
		return 1;
	printf("revoked %s\n", argv[0]);
	return 0;
}

/* The configuration, for commands that talk to Salesforce. */
static const struct cfg	*loaded_cfg;

static int
report_check(const char *what, const struct lc_counts *counts)
{
	printf("%s: %d checked: %d connected, %d degraded, %d invalid\n", what,
	    counts->checked, counts->connected, counts->degraded,
	    counts->invalid);
	return counts->checked == counts->connected ? 0 : 1;
}

static int
check_org(struct app *app, const char *slug)
{
	struct integration	 integ;
	struct org		 org;
	enum lc_rc		 lrc;
	int			 rc;

	if (report_db("org", db_org_get(app->db, slug, &org)) != 0)
		return 1;
	lrc = lc_check(app, org.id, "sfconnect-admin");
	if (lrc == LC_NOT_CONNECTED) {
		fprintf(stderr, "sfconnect-admin: check: %s is not connected\n", slug);
		return 1;
	}
	if (lrc != LC_OK) {
		fprintf(stderr, "sfconnect-admin: check: database unavailable\n");
		return 1;
	}
	if (report_db("check", db_integration_get(app->db, org.id, &integ)) != 0)
		return 1;
	printf("%s\t%s\t%s\t%s\n", slug, integ_status_name(integ.status),
	    integ.sf_org_id,
	    integ.last_error_code[0] ? integ.last_error_code : "-");
	rc = integ.status == INTEG_CONNECTED ? 0 : 1;
	db_integration_clear(&integ);
	return rc;
}

/* The progress of a check job on stderr: a bar on a terminal, else lines. */
struct progress {
	struct db	*db;
	long long	 id;
	bool		 tty;
	double		 last;		/* monotonic seconds of the last output */
	long long	 last_checked;
};

static double
mono_s(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
progress_draw(struct progress *p, const struct db_job *j)
{
	char	 eta[32] = "";
	int	 pct = j->total > 0 ? (int)(100 * j->checked / j->total) : 100;
	int	 fill = pct * 30 / 100;
	double	 elapsed = (j->finished ? j->finished_at : j->now) - j->started_at;
	double	 rate = j->started_at > 0 && elapsed > 0 ?
		    (double)j->checked / elapsed : 0;

	if (rate > 0 && !j->finished)
		snprintf(eta, sizeof(eta), ", %.0fs left",
		    (double)(j->total - j->checked) / rate);
	if (p->tty)
		fprintf(stderr, "\r[%.*s%*s] %lld/%lld %3d%% %.0f/s%s\033[K",
		    fill, "##############################", 30 - fill, "",
		    j->checked, j->total, pct, rate, eta);
	else
		fprintf(stderr, "check: job %lld: %lld/%lld checked (%d%%), "
		    "%.0f/s%s\n", j->id, j->checked, j->total, pct, rate, eta);
	fflush(stderr);
}

/* After each batch: at most 5 bars or 1 line a second. */
static void
progress_batch(void *arg)
{
	struct progress	*p = arg;
	struct db_job	 j;
	double		 now = mono_s();

	if (now - p->last < (p->tty ? 0.2 : 1.0) ||
	    db_job_get(p->db, p->id, &j) != DB_OK || j.checked == p->last_checked)
		return;
	p->last = now;
	p->last_checked = j.checked;
	progress_draw(p, &j);
}

/*
 * Creates a check job over every connected or degraded org and works on it
 * (with any sfconnectd checker) until it is finished.
 */
static int
check_all(struct app *app)
{
	struct progress	 p = { .db = app->db, .tty = isatty(STDERR_FILENO) == 1 };
	struct lc_counts counts = { .checked = 0 };
	struct db_job	 j;
	long long	 total;
	bool		 finished = false;
	int		 batches, rc;

	if ((rc = report_db("check", db_job_create(app->db, LC_ROUTINE_CHECK, 0,
	    "sfconnect-admin", &p.id, &total))) != 0)
		return rc;
	while (!finished) {
		if ((rc = report_db("check", lc_job_work(app, p.id,
		    progress_batch, &p, &batches, &finished))) != 0)
			return rc;
		if (!finished && batches == 0) {
			progress_batch(&p);	/* rows held by another process */
			usleep(200 * 1000);
		}
	}
	if ((rc = report_db("check", db_job_get(app->db, p.id, &j))) != 0)
		return rc;
	if (p.tty || p.last_checked != j.checked)
		progress_draw(&p, &j);
	if (p.tty)
		fputc('\n', stderr);
	counts.checked = (int)j.checked;
	counts.connected = (int)j.connected;
	counts.degraded = (int)j.degraded;
	counts.invalid = (int)j.invalid;
	return report_check("all", &counts);
}

/* Refreshes one org, or every connected or degraded one, now. */
static int
cmd_check(struct db *db, int argc, char **argv)
{
	struct app		 app = { .cfg = loaded_cfg, .db = db };
	char			 err[512];
	int			 rc = 1;

	if (!((argc == 2 && strcmp(argv[0], "--org") == 0) ||
	    (argc == 1 && strcmp(argv[0], "--all") == 0)))
		usage();
	if (keyring_load(&app.keyring, loaded_cfg->token_key_file,
	    loaded_cfg->token_previous_key_files, err, sizeof(err)) == -1 ||
	    (app.client_secret = secret_read_file(
	    loaded_cfg->salesforce_client_secret_file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "sfconnect-admin: %s\n", err);
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (app.sf = sf_new(loaded_cfg, app.client_secret)) == NULL)
		goto out;
	if (argc == 2)
		rc = check_org(&app, argv[1]);
	else
		rc = check_all(&app);
out:
	sf_free(app.sf);
	keyring_free(app.keyring);
	secret_free(app.client_secret);
	curl_global_cleanup();
	return rc;
}

struct org_ids {
	long long	*ids;
	size_t		 n, cap;
	int		 oom;
};

static void
collect_org(long long org_id, void *arg)
{
	struct org_ids	*list = arg;
	long long	*p;

	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 64;

		if ((p = realloc(list->ids, cap * sizeof(*p))) == NULL) {
			list->oom = 1;
			return;
		}
		list->ids = p;
		list->cap = cap;
	}
	list->ids[list->n++] = org_id;
}

/*
 * Re-seals one column value with the current key when it was sealed with
 * an older one. *out gets the value to store (caller frees); -1 when the
 * value cannot be opened with any configured key.
 */
static int
reseal(const struct keyring *kr, long long org_id, const char *column,
    const char *sealed, char **out, int *changed)
{
	char	 aad[128], *plain;

	*out = NULL;
	if (sealed == NULL)
		return 0;
	if (!keyring_needs_rotation(kr, sealed))
		return (*out = strdup(sealed)) != NULL ? 0 : -1;
	sealed_aad(aad, sizeof(aad), org_id, column);
	if ((plain = keyring_open(kr, aad, sealed)) == NULL)
		return -1;
	*out = keyring_seal(kr, aad, plain);
	secret_free(plain);
	*changed = 1;
	return *out != NULL ? 0 : -1;
}

/* Re-seals one org's tokens under its row lock. 1 changed, 0 not, -1 error. */
static int
rotate_org(struct db *db, const struct keyring *kr, long long org_id,
    long lock_timeout_ms)
{
	struct integration	 integ = { .org_id = 0 };
	char			*access = NULL, *refresh = NULL;
	int			 changed = 0, rc = -1;

	if (db_begin(db) != DB_OK ||
	    db_integration_lock(db, org_id, lock_timeout_ms, &integ) != DB_OK)
		goto out;
	if (reseal(kr, org_id, "access_token", integ.access_token_enc, &access,
	    &changed) == -1 || reseal(kr, org_id, "refresh_token",
	    integ.refresh_token_enc, &refresh, &changed) == -1) {
		fprintf(stderr, "sfconnect-admin: rotate-keys: org %s: tokens "
		    "cannot be opened with the configured keys\n", integ.org_slug);
		goto out;
	}
	if (changed && db_integration_reseal(db, org_id, access, refresh) != DB_OK)
		goto out;
	if (db_commit(db) == DB_OK)
		rc = changed;
out:
	db_rollback(db);
	db_integration_clear(&integ);
	free(access);
	free(refresh);
	return rc;
}

/* Re-seals every stored token with the current token key. */
static int
cmd_rotate_keys(struct db *db, int argc, char **argv)
{
	struct keyring		*kr = NULL;
	struct org_ids		 list = { .ids = NULL };
	char			 err[512];
	int			 rotated = 0, failed = 0, rc;

	(void)argv;
	if (argc != 0)
		usage();
	if (keyring_load(&kr, loaded_cfg->token_key_file,
	    loaded_cfg->token_previous_key_files, err, sizeof(err)) == -1) {
		fprintf(stderr, "sfconnect-admin: %s\n", err);
		return 1;
	}
	if (report_db("rotate-keys", db_sealed_orgs(db, collect_org, &list)) != 0 ||
	    list.oom) {
		free(list.ids);
		keyring_free(kr);
		return 1;
	}
	for (size_t i = 0; i < list.n; i++) {
		rc = rotate_org(db, kr, list.ids[i],
		    loaded_cfg->refresh_lock_timeout_ms);
		if (rc == -1)
			failed++;
		else
			rotated += rc;
	}
	printf("re-sealed the tokens of %d of %zu orgs with key %s; %d failed\n",
	    rotated, list.n, keyring_current_id(kr), failed);
	free(list.ids);
	keyring_free(kr);
	return failed == 0 ? 0 : 1;
}

/* Makes one delivered or failed event (ID: delivery or event id), or every failed one, pending again. */
static int
cmd_webhooks_retry(struct db *db, int argc, char **argv)
{
	long long	 n;
	bool		 all;

	if (argc != 1)
		usage();
	all = strcmp(argv[0], "--failed") == 0;
	if (report_db("webhooks retry", db_outbox_retry(db, all ? NULL : argv[0],
	    &n)) != 0)
		return 1;
	printf("%lld event%s pending again\n", n, n == 1 ? "" : "s");
	return 0;
}

int
main(int argc, char *argv[])
{
	struct cfg	 cfg;
	struct db	*db = NULL;
	char		 err[512];
	const char	*path = NULL;
	const struct cmd *cmd = NULL;
	int		 opt, rc = 1, skip;

	while ((opt = getopt(argc, argv, "+c:")) != -1) {
		if (opt != 'c')
			usage();
		path = optarg;
	}
	argc -= optind;
	argv += optind;
	if (path == NULL || argc < 1)
		usage();
	for (size_t i = 0; i < NCMDS && cmd == NULL; i++)
		if (strcmp(argv[0], cmds[i].word1) == 0 &&
		    (cmds[i].word2 == NULL ||
		    (argc > 1 && strcmp(argv[1], cmds[i].word2) == 0)))
			cmd = &cmds[i];
	if (cmd == NULL)
		usage();
	skip = cmd->word2 ? 2 : 1;
	if (cfg_load(&cfg, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "sfconnect-admin: %s\n", err);
		goto out;
	}
	loaded_cfg = &cfg;
	if ((db = db_open(cfg.database_url, err, sizeof(err))) == NULL) {
		fprintf(stderr, "sfconnect-admin: %s\n", err);
		goto out;
	}
	if (cmd->fn != cmd_migrate &&
	    db_schema_check(db, err, sizeof(err)) != DB_OK) {
		fprintf(stderr, "sfconnect-admin: %s\n", err);
		goto out;
	}
	rc = cmd->fn(db, argc - skip, argv + skip);
out:
	db_close(db);
	cfg_free(&cfg);
	return rc;
}

/* The store: integrations, read and written. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "buf.h"
#include "crypto.h"
#include "db.h"
#include "db_internal.h"
#include "log.h"
#include "util.h"

/* Integrations. */

/* 0 and *status set when text is a stored status; -1 otherwise. */
static int
pg_status_parse(const char *text, enum integ_status *status)
{
	for (int st = 0; st < INTEG__MAX; st++)
		if (strcmp(text, db_pg_status[st]) == 0) {
			*status = (enum integ_status)st;
			return 0;
		}
	return -1;
}

/* The PostgreSQL array literal of set ("{connected,degraded}") into out. */
void
dbi_status_array(integ_status_set set, char *out, size_t outlen)
{
	size_t	 len;

	snprintf(out, outlen, "{");
	for (int st = 0; st < INTEG__MAX; st++) {
		if ((set & INTEG_SET(st)) == 0)
			continue;
		len = strlen(out);
		snprintf(out + len, outlen - len, "%s%s", len > 1 ? "," : "",
		    db_pg_status[st]);
	}
	len = strlen(out);
	snprintf(out + len, outlen - len, "}");
}

static char *
dup_nullable(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL :
	    strdup(PQgetvalue(res, row, col));
}

int
dbi_load_integration(const PGresult *res, int row, int col0,
    struct integration *integ)
{
	int	 c = col0, status_ok;

	memset(integ, 0, sizeof(*integ));
	integ->org_id = dbi_ll_col(res, row, c++);
	dbi_copy_col(res, row, c++, integ->org_slug, sizeof(integ->org_slug));
	status_ok = pg_status_parse(PQgetvalue(res, row, c++), &integ->status);
	dbi_copy_col(res, row, c++, integ->sf_org_id, sizeof(integ->sf_org_id));
	dbi_copy_col(res, row, c++, integ->sf_user_id, sizeof(integ->sf_user_id));
	dbi_copy_col(res, row, c++, integ->sf_username, sizeof(integ->sf_username));
	dbi_copy_col(res, row, c++, integ->sf_display_name,
	    sizeof(integ->sf_display_name));
	dbi_copy_col(res, row, c++, integ->instance_url, sizeof(integ->instance_url));
	dbi_copy_col(res, row, c++, integ->environment, sizeof(integ->environment));
	dbi_copy_col(res, row, c++, integ->login_host, sizeof(integ->login_host));
	dbi_copy_col(res, row, c++, integ->connected_by, sizeof(integ->connected_by));
	dbi_copy_col(res, row, c++, integ->previous_sf_org_id,
	    sizeof(integ->previous_sf_org_id));
	integ->access_token_enc = dup_nullable(res, row, c++);
	integ->refresh_token_enc = dup_nullable(res, row, c++);
	integ->token_generation = dbi_ll_col(res, row, c++);
	integ->issued_at = (time_t)dbi_ll_col(res, row, c++);
	integ->connected_at = (time_t)dbi_ll_col(res, row, c++);
	integ->last_refreshed_at = (time_t)dbi_ll_col(res, row, c++);
	integ->last_checked_at = (time_t)dbi_ll_col(res, row, c++);
	dbi_copy_col(res, row, c++, integ->last_error_kind,
	    sizeof(integ->last_error_kind));
	dbi_copy_col(res, row, c++, integ->last_error_code,
	    sizeof(integ->last_error_code));
	dbi_copy_col(res, row, c++, integ->last_error_message,
	    sizeof(integ->last_error_message));
	integ->last_error_at = (time_t)dbi_ll_col(res, row, c++);
	integ->failure_count = (int)dbi_ll_col(res, row, c++);
	integ->next_retry_at = (time_t)dbi_ll_col(res, row, c++);
	integ->db_now = (time_t)dbi_ll_col(res, row, c++);
	dbi_copy_col(res, row, c++, integ->refresh_fp, sizeof(integ->refresh_fp));
	dbi_copy_col(res, row, c++, integ->scope, sizeof(integ->scope));
	if (status_ok == -1) {
		log_error("db_bad_status", "org %lld: unknown integration status",
		    integ->org_id);
		db_integration_clear(integ);
		return -1;
	}
	if ((!PQgetisnull(res, row, col0 + 12) && integ->access_token_enc == NULL) ||
	    (!PQgetisnull(res, row, col0 + 13) &&
	    integ->refresh_token_enc == NULL)) {
		db_integration_clear(integ);
		return -1;
	}
	return 0;
}

/* Fills integ from row of a result with INTEG_COLS; -1 on out of memory. */
static int
load_integration(const PGresult *res, int row, struct integration *integ)
{
	return dbi_load_integration(res, row, 0, integ);
}

void
db_integration_clear(struct integration *integ)
{
	free(integ->access_token_enc);
	free(integ->refresh_token_enc);
	integ->access_token_enc = integ->refresh_token_enc = NULL;
}

/*
 * Fills integ from the single row of res: DB_NOTFOUND without one,
 * DB_ERROR on a bad row or out of memory.
 */
static enum db_rc
load_single_integration(const PGresult *res, struct integration *integ)
{
	if (PQntuples(res) != 1)
		return DB_NOTFOUND;
	if (load_integration(res, 0, integ) == -1)
		return DB_ERROR;
	return DB_OK;
}

/* The one integration row that statement st (parameter: the org id) reads. */
static enum db_rc
integration_by_id(struct db *db, enum stmt st, long long org_id,
    struct integration *integ)
{
	PGresult	*res;
	enum db_rc	 rc;

	if ((rc = dbi_run_id(db, st, org_id, &res)) != DB_OK)
		return rc;
	rc = load_single_integration(res, integ);
	PQclear(res);
	return rc;
}

enum db_rc
db_integration_get(struct db *db, long long org_id, struct integration *integ)
{
	return integration_by_id(db, ST_INTEG_GET, org_id, integ);
}

enum db_rc
db_integration_list(struct db *db, const enum integ_status *status,
    const char *after, int limit,
    void (*fn)(const struct integration *, void *), void *arg, int *n)
{
	char			 lim[16];
	const char		*all[2] = { after ? after : "", lim };
	const char		*one[3] = { all[0],
				    status ? db_pg_status[*status] : "", lim };
	struct integration	 integ;
	PGresult		*res;
	enum db_rc		 rc;

	snprintf(lim, sizeof(lim), "%d", limit);
	*n = 0;
	rc = status != NULL ? dbi_run(db, ST_INTEG_LIST_STATUS, 3, one, &res) :
	    dbi_run(db, ST_INTEG_LIST, 2, all, &res);
	if (rc != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res); row++) {
		if (load_integration(res, row, &integ) == -1) {
			rc = DB_ERROR;
			break;
		}
		fn(&integ, arg);
		db_integration_clear(&integ);
		(*n)++;
	}
	PQclear(res);
	return rc;
}


/* Integration writes. */

enum db_rc
db_integration_lock(struct db *db, long long org_id, long lock_timeout_ms,
    struct integration *integ)
{
	char		 sql[128];
	enum db_rc	 rc;

	/* The statement timeout must not cut a lock wait short (a 500, not a 503). */
	snprintf(sql, sizeof(sql), "SET LOCAL lock_timeout = %ld; "
	    "SET LOCAL statement_timeout = %ld", lock_timeout_ms,
	    lock_timeout_ms + 30000);
	if ((rc = dbi_exec_simple(db, sql)) != DB_OK)
		return rc;
	return integration_by_id(db, ST_INTEG_LOCK, org_id, integ);
}

enum db_rc
db_integration_connect(struct db *db, long long org_id,
    const struct connection *c)
{
	char		 id[24], issued[24];
	const char	*params[14] = { id, c->sf_org_id, c->sf_user_id,
			    c->username, c->display_name, c->instance_url,
			    c->environment, c->login_host, c->access_enc,
			    c->refresh_enc, issued, c->connected_by,
			    c->refresh_fp, c->scope };

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(issued, sizeof(issued), "%lld", c->issued_at_ms);
	return dbi_run_discard(db, ST_INTEG_CONNECT, 14, params);
}

enum db_rc
db_integration_disconnect(struct db *db, long long org_id)
{
	char		 id[24];
	const char	*param = id;

	snprintf(id, sizeof(id), "%lld", org_id);
	return dbi_run_discard(db, ST_INTEG_DISCONNECT, 1, &param);
}

/* Token lifecycle. */

enum db_rc
db_now(struct db *db, char out[32])
{
	PGresult	*res;
	enum db_rc	 rc = dbi_run(db, ST_NOW, 0, NULL, &res);

	if (rc != DB_OK)
		return rc;
	dbi_copy_col(res, 0, 0, out, 32);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_integration_claim(struct db *db, integ_status_set statuses,
    const char *cutoff, bool due_retries, int limit, struct integration *out,
    int *n)
{
	char		 lim[16], array[64];
	const char	*params[4] = { array, cutoff, lim,
			    due_retries ? "t" : "f" };
	PGresult	*res;
	enum db_rc	 rc;

	*n = 0;
	dbi_status_array(statuses, array, sizeof(array));
	snprintf(lim, sizeof(lim), "%d", limit);
	if ((rc = dbi_run(db, ST_INTEG_CLAIM, 4, params, &res)) != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res) && row < limit; row++) {
		if (load_integration(res, row, &out[row]) == -1) {
			rc = DB_ERROR;
			break;
		}
		(*n)++;
	}
	PQclear(res);
	if (rc != DB_OK) {
		for (int i = 0; i < *n; i++)
			db_integration_clear(&out[i]);
		*n = 0;
	}
	return rc;
}

enum db_rc
db_integration_refreshed(struct db *db, long long org_id,
    const char *access_enc, const char *refresh_enc, const char *refresh_fp,
    const char *instance_url, long long issued_at_ms, long long *generation)
{
	char		 id[24], issued[24], expected[24];
	const char	*params[7] = { id, access_enc, refresh_enc, instance_url,
			    issued, expected, refresh_fp };
	PGresult	*res;
	enum db_rc	 rc;

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(issued, sizeof(issued), "%lld", issued_at_ms);
	snprintf(expected, sizeof(expected), "%lld", *generation);
	if ((rc = dbi_run_row(db, ST_INTEG_REFRESHED, 7, params, &res)) != DB_OK)
		return rc;
	*generation = dbi_ll_col(res, 0, 0);
	PQclear(res);
	return DB_OK;
}

#define REFRESHED_ARRAY_MAX	(4 * 1024 * 1024)

/* Appends v to the array literal in b, quoted (NULL: unquoted NULL). */
static int
array_add(struct buf *b, const char *v)
{
	if (b->len > 1 && buf_puts(b, ",") == -1)
		return -1;
	if (v == NULL)
		return buf_puts(b, "NULL");
	if (buf_puts(b, "\"") == -1)
		return -1;
	for (; *v != '\0'; v++) {
		if ((*v == '"' || *v == '\\') && buf_puts(b, "\\") == -1)
			return -1;
		if (buf_append(b, v, 1) == -1)
			return -1;
	}
	return buf_puts(b, "\"");
}

enum db_rc
db_integration_refreshed_many(struct db *db, struct db_refreshed *rows,
    size_t n)
{
	struct buf	 a[7];
	const char	*params[7];
	char		 num[24];
	PGresult	*res = NULL;
	enum db_rc	 rc = DB_ERROR;
	size_t		 i, k;
	int		 r, bad = 0;

	for (k = 0; k < 7; k++) {
		buf_init(&a[k], REFRESHED_ARRAY_MAX);
		a[k].wipe = 1;		/* sealed tokens: cleansed all the same */
		bad |= buf_puts(&a[k], "{");
	}
	for (i = 0; i < n && bad == 0; i++) {
		snprintf(num, sizeof(num), "%lld", rows[i].org_id);
		bad |= array_add(&a[0], num);
		bad |= array_add(&a[1], rows[i].access_enc);
		bad |= array_add(&a[2], rows[i].refresh_enc);
		bad |= array_add(&a[3], rows[i].instance_url);
		snprintf(num, sizeof(num), "%lld", rows[i].issued_at_ms);
		bad |= array_add(&a[4], num);
		snprintf(num, sizeof(num), "%lld", rows[i].generation);
		bad |= array_add(&a[5], num);
		bad |= array_add(&a[6], rows[i].refresh_fp);
		rows[i].stored = false;
	}
	for (k = 0; k < 7; k++) {
		bad |= buf_puts(&a[k], "}");
		params[k] = a[k].data;
	}
	if (bad != 0)
		goto out;
	if ((rc = dbi_run(db, ST_INTEG_REFRESHED_MANY, 7, params, &res)) !=
	    DB_OK)
		goto out;
	for (r = 0; r < PQntuples(res); r++) {
		long long	 id = dbi_ll_col(res, r, 0);

		for (i = 0; i < n; i++)
			if (rows[i].org_id == id) {
				rows[i].generation = dbi_ll_col(res, r, 1);
				rows[i].stored = true;
			}
	}
out:
	PQclear(res);
	for (k = 0; k < 7; k++)
		buf_cleanse_free(&a[k]);
	return rc;
}

enum db_rc
db_integration_failed(struct db *db, long long org_id,
    enum integ_status status, const char *kind, const char *code,
    const char *message, double retry_s)
{
	char		 id[24], retry[32];
	const char	*params[6] = { id, db_pg_status[status], kind, code, message,
			    retry };

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(retry, sizeof(retry), "%.3f", retry_s);
	return dbi_run_discard(db, ST_INTEG_FAILED, 6, params);
}

enum db_rc
db_integration_rotated(struct db *db, long long org_id, const char *refresh_enc,
    const char *refresh_fp, long long generation)
{
	char		 id[24], expected[24];
	const char	*params[4] = { id, refresh_enc, refresh_fp, expected };
	PGresult	*res;
	enum db_rc	 rc;

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(expected, sizeof(expected), "%lld", generation);
	if ((rc = dbi_run_row(db, ST_INTEG_ROTATED, 4, params, &res)) == DB_OK)
		PQclear(res);
	return rc;
}

enum db_rc
db_integration_stamp(struct db *db, long long org_id, double retry_s)
{
	char		 id[24], retry[32];
	const char	*params[2] = { id, retry };

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(retry, sizeof(retry), "%.3f", retry_s);
	return dbi_run_discard(db, ST_INTEG_STAMP, 2, params);
}

enum db_rc
db_savepoint(struct db *db)
{
	return dbi_exec_simple(db, "SAVEPOINT sfc_row");
}

enum db_rc
db_rollback_savepoint(struct db *db)
{
	return dbi_exec_simple(db, "ROLLBACK TO SAVEPOINT sfc_row");
}

enum db_rc
db_status_counts(struct db *db, void (*fn)(enum integ_status status,
    long long n, void *arg), void *arg)
{
	enum integ_status status;
	PGresult	*res;
	enum db_rc	 rc = dbi_run(db, ST_STATUS_COUNTS, 0, NULL, &res);

	if (rc != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res); row++)
		if (pg_status_parse(PQgetvalue(res, row, 0), &status) == 0)
			fn(status, dbi_ll_col(res, row, 1), arg);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_check_lag(struct db *db, double *seconds)
{
	PGresult	*res;
	enum db_rc	 rc = dbi_run(db, ST_CHECK_LAG, 0, NULL, &res);

	*seconds = 0;
	if (rc != DB_OK)
		return rc;
	if (PQntuples(res) == 1)
		*seconds = atof(PQgetvalue(res, 0, 0));
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_sealed_orgs(struct db *db, void (*fn)(long long org_id, void *arg),
    void *arg)
{
	PGresult	*res;
	enum db_rc	 rc = dbi_run(db, ST_SEALED_ORGS, 0, NULL, &res);

	if (rc != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res); row++)
		fn(dbi_ll_col(res, row, 0), arg);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_integration_reseal(struct db *db, long long org_id, const char *access_enc,
    const char *refresh_enc)
{
	char		 id[24];
	const char	*params[3] = { id, access_enc, refresh_enc };

	snprintf(id, sizeof(id), "%lld", org_id);
	return dbi_run_discard(db, ST_INTEG_RESEAL, 3, params);
}


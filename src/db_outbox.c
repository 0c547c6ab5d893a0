/* The store: the webhook outbox. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "crypto.h"
#include "db.h"
#include "db_internal.h"
#include "log.h"
#include "util.h"

/* The webhook outbox. */

enum db_rc
db_outbox_add(struct db *db, const char *event_id, long long org_id,
    const char *type, const char *body)
{
	char		 org[24];
	const char	*params[4] = { event_id, org, type, body };

	snprintf(org, sizeof(org), "%lld", org_id);
	return dbi_run_discard(db, ST_OUTBOX_ADD, 4, params);
}

void
db_delivery_clear(struct db_delivery *d)
{
	free(d->body);
	d->body = NULL;
}

enum db_rc
db_outbox_claim(struct db *db, int limit, long lease_ms,
    struct db_delivery *out, int *n)
{
	char		 lim[16], lease[32];
	const char	*params[2] = { lim, lease };
	PGresult	*res;
	enum db_rc	 rc;

	*n = 0;
	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(lease, sizeof(lease), "%.3f", (double)lease_ms / 1000.0);
	if ((rc = dbi_run(db, ST_OUTBOX_CLAIM, 2, params, &res)) != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res) && row < limit; row++) {
		struct db_delivery *d = &out[row];

		memset(d, 0, sizeof(*d));
		d->id = dbi_ll_col(res, row, 0);
		dbi_copy_col(res, row, 1, d->event_id, sizeof(d->event_id));
		d->org_id = dbi_ll_col(res, row, 2);
		dbi_copy_col(res, row, 3, d->type, sizeof(d->type));
		d->attempts = (int)dbi_ll_col(res, row, 5);
		d->age_s = atof(PQgetvalue(res, row, 6));
		if ((d->body = strdup(PQgetvalue(res, row, 4))) == NULL) {
			rc = DB_ERROR;
			break;
		}
		(*n)++;
	}
	PQclear(res);
	return rc;
}

enum db_rc
db_outbox_record(struct db *db, const struct db_delivery *d,
    const char *outcome, long http_status, const char *error, double retry_s,
    long max_age_s, bool *failed)
{
	char		 id[24], attempts[16], status[16], retry[32], age[24];
	const char	*params[7] = { id, attempts, outcome, status,
			    error ? error : "", retry, age };
	PGresult	*res;
	enum db_rc	 rc;

	*failed = false;
	snprintf(id, sizeof(id), "%lld", d->id);
	snprintf(attempts, sizeof(attempts), "%d", d->attempts);
	snprintf(status, sizeof(status), "%ld", http_status);
	snprintf(retry, sizeof(retry), "%.3f", retry_s);
	snprintf(age, sizeof(age), "%ld", max_age_s);
	/* DB_NOTFOUND: claimed again elsewhere meanwhile. */
	if ((rc = dbi_run_row(db, ST_OUTBOX_RECORD, 7, params, &res)) != DB_OK)
		return rc;
	*failed = strcmp(PQgetvalue(res, 0, 0), "failed") == 0;
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_outbox_list(struct db *db, const char *status, long long after, int limit,
    cJSON *array)
{
	char		 from[24], lim[16];
	const char	*params[3] = { from, status ? status : "", lim };

	snprintf(from, sizeof(from), "%lld", after);
	snprintf(lim, sizeof(lim), "%d", limit);
	return dbi_run_json_array(db, ST_OUTBOX_LIST, 3, params, array);
}

enum db_rc
db_outbox_retry(struct db *db, const char *id, long long *n)
{
	const char	*param = id ? id : "";
	PGresult	*res;
	enum db_rc	 rc;

	*n = 0;
	if ((rc = dbi_run(db, ST_OUTBOX_RETRY, 1, &param, &res)) != DB_OK)
		return rc;
	*n = PQntuples(res);
	PQclear(res);
	return id != NULL && *n == 0 ? DB_NOTFOUND : DB_OK;
}

enum db_rc
db_outbox_stats(struct db *db, struct db_outbox_stats *st)
{
	PGresult	*res;
	enum db_rc	 rc;

	memset(st, 0, sizeof(*st));
	if ((rc = dbi_run(db, ST_OUTBOX_GAUGES, 0, NULL, &res)) != DB_OK)
		return rc;
	st->pending = dbi_ll_col(res, 0, 0);
	st->failed = dbi_ll_col(res, 0, 1);
	st->oldest_pending_s = atof(PQgetvalue(res, 0, 2));
	PQclear(res);
	if ((rc = dbi_run(db, ST_OUTBOX_COUNTS, 0, NULL, &res)) != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res) && row < DB_OUTCOMES; row++) {
		dbi_copy_col(res, row, 0, st->outcome[row], sizeof(st->outcome[row]));
		st->attempts[row] = dbi_ll_col(res, row, 1);
	}
	st->noutcomes = PQntuples(res) < DB_OUTCOMES ? PQntuples(res) :
	    DB_OUTCOMES;
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_outbox_next_due(struct db *db, double *in_s)
{
	PGresult	*res;
	enum db_rc	 rc;

	if ((rc = dbi_run(db, ST_OUTBOX_NEXT_DUE, 0, NULL, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		rc = DB_NOTFOUND;
	else
		*in_s = atof(PQgetvalue(res, 0, 0));
	PQclear(res);
	return rc;
}

enum db_rc
db_listen_webhooks(struct db *db)
{
	enum db_rc	 rc;

	if ((rc = dbi_exec_simple(db, "LISTEN " DB_WEBHOOK_CHANNEL)) == DB_OK)
		db->listening = true;
	return rc;
}

/* true when a webhook notification came since the last call. */
static bool
webhook_notified(struct db *db)
{
	bool	 was;

	dbi_take_notifies(db);
	was = db->notified;
	db->notified = false;
	return was;
}

enum db_rc
db_wait_notify(struct db *db, int timeout_ms)
{
	struct pollfd	 pfd;
	int		 r;

	if (webhook_notified(db))
		return DB_OK;
	if ((pfd.fd = PQsocket(db->conn)) < 0)
		return DB_UNAVAILABLE;
	pfd.events = POLLIN;
	pfd.revents = 0;
	r = poll(&pfd, 1, timeout_ms);
	if (r == -1)
		return errno == EINTR ? DB_NOTFOUND : DB_ERROR;
	if (r == 0)
		return DB_NOTFOUND;
	if (!PQconsumeInput(db->conn))
		return DB_UNAVAILABLE;
	return webhook_notified(db) ? DB_OK : DB_NOTFOUND;
}


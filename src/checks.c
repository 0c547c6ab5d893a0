/*
 * Background and bulk checks: batches of claimed integrations refreshed
 * concurrently, each outcome written under its own savepoint.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lifecycle.h"
#include "lifecycle_internal.h"
#include "log.h"
#include "metrics.h"
#include "secret.h"

static void
count_status(struct lc_counts *counts, enum integ_status status)
{
	counts->checked++;
	switch (status) {
	case INTEG_CONNECTED:
		counts->connected++;
		break;
	case INTEG_DEGRADED:
		counts->degraded++;
		break;
	case INTEG_INVALID:
	case INTEG_DISCONNECTED:
	case INTEG__MAX:
		counts->invalid++;
		break;
	}
}

struct batch {
	struct integration	*rows;
	struct sf_refresh_job	*jobs;
	char			**refresh;
	enum integ_status	*status;
	int			 n;
};

static void
batch_free(struct batch *b)
{
	for (int i = 0; i < b->n; i++) {
		secret_free(b->refresh[i]);
		sf_token_clear(&b->jobs[i].token);
		db_integration_clear(&b->rows[i]);
	}
	free(b->rows);
	free(b->jobs);
	free(b->refresh);
	free(b->status);
}

/*
 * Runs again, all at once after one pause, the refreshes of b that met
 * "token request is already being processed", so the batch's row locks
 * are held for one retry, not one per org.
 */
static void
retry_processing(struct app *app, struct batch *b, int limit)
{
	int	 n = 0;

	for (int i = 0; i < b->n; i++) {
		if (lci_already_processing(&b->jobs[i])) {
			sf_token_clear(&b->jobs[i].token);
			n++;
		} else
			b->jobs[i].refresh_token = NULL;	/* skipped */
	}
	if (n > 0) {
		usleep(500 * 1000);
		sf_refresh_many(app->sf, b->jobs, (size_t)b->n, limit);
	}
	for (int i = 0; i < b->n; i++)
		b->jobs[i].refresh_token = b->refresh[i];
}

/*
 * Writes the outcome of row i of b under a savepoint: a write that fails
 * for this row alone (not the connection) is undone, the row is only
 * marked checked (keeping a rotated refresh token), and the batch goes on.
 * A db_rc that stops the batch.
 */
static int
write_row(struct app *app, struct batch *b, int i, const char *actor,
    long long *generation)
{
	struct integration	*row = &b->rows[i];
	int			 rc;

	if ((rc = db_savepoint(app->db)) != DB_OK)
		return rc;
	rc = lci_apply_outcome(app, row, &b->jobs[i], actor, &b->status[i],
	    generation);
	if (rc == DB_OK || rc == DB_UNAVAILABLE)
		return rc;
	log_error("check_write_failed", "org %s: the outcome of its check "
	    "could not be stored (%s); checking the others", row->org_slug,
	    b->jobs[i].rc == 0 ? "ok" : b->jobs[i].err.code);
	if ((rc = db_rollback_savepoint(app->db)) != DB_OK)
		return rc;
	b->status[i] = row->status;
	if (b->jobs[i].token.refresh_token != NULL &&
	    (rc = lci_write_rotated_only(app, row,
	    b->jobs[i].token.refresh_token)) != DB_OK)
		return rc;
	return db_integration_stamp(app->db, row->org_id, lci_retry_in_s(app,
	    row->status, row->last_error_code, row->last_error_message,
	    row->failure_count));
}

/* Refreshes the claimed rows of b concurrently and writes each outcome. */
static int
refresh_batch(struct app *app, struct batch *b, const char *actor, int limit)
{
	long long	 generation;
	int		 rc = DB_OK;

	for (int i = 0; i < b->n; i++) {
		b->jobs[i].login_base = b->rows[i].login_host;
		b->refresh[i] = lci_open_column(app, b->rows[i].org_id,
		    "refresh_token", b->rows[i].refresh_token_enc);
		b->jobs[i].refresh_token = b->refresh[i];
		if (b->refresh[i] == NULL)
			lci_job_failed(&b->jobs[i], "token_key", "the stored refresh "
			    "token cannot be decrypted with the configured keys");
	}
	sf_refresh_many(app->sf, b->jobs, (size_t)b->n, limit);
	retry_processing(app, b, limit);
	for (int i = 0; i < b->n; i++) {
		lci_refuse_foreign_org(&b->rows[i], &b->jobs[i]);
		metrics_refresh(b->jobs[i].rc == 0 ? SF_OK : b->jobs[i].err.kind);
		b->status[i] = b->rows[i].status;
		if (rc == DB_OK)
			rc = write_row(app, b, i, actor, &generation);
	}
	if (rc == DB_OK)
		rc = db_commit(app->db);
	if (rc != DB_OK)
		for (int i = 0; i < b->n; i++)
			if (b->jobs[i].token.refresh_token != NULL)
				(void)lci_save_rotated(app, &b->rows[i], &b->jobs[i],
				    actor, &b->status[i], &generation);
	return rc;
}

int
lci_check_batch(struct app *app, integ_status_set statuses, const char *cutoff,
    bool due_retries, const char *actor, struct lc_counts *counts, int *n)
{
	struct batch	 b = { .n = 0 };
	int		 limit = (int)app->cfg->check_concurrency, rc;

	*n = 0;
	b.rows = calloc((size_t)limit, sizeof(*b.rows));
	b.jobs = calloc((size_t)limit, sizeof(*b.jobs));
	b.refresh = calloc((size_t)limit, sizeof(*b.refresh));
	b.status = calloc((size_t)limit, sizeof(*b.status));
	if (b.rows == NULL || b.jobs == NULL || b.refresh == NULL ||
	    b.status == NULL) {
		rc = DB_ERROR;
		goto out;
	}
	if ((rc = db_begin(app->db)) != DB_OK ||
	    (rc = db_integration_claim(app->db, statuses, cutoff, due_retries,
	    limit, b.rows, &b.n)) != DB_OK || b.n == 0)
		goto out;
	rc = refresh_batch(app, &b, actor, limit);
	if (rc == DB_OK)
		for (int i = 0; i < b.n; i++)
			count_status(counts, b.status[i]);
	*n = b.n;
out:
	db_rollback(app->db);
	batch_free(&b);
	return rc;
}

/*
 * true when a SIGTERM or SIGINT waits: sfconnectd blocks them while work is
 * in progress, so a long run of batches stops between two of them.
 */
bool
lci_stop_pending(void)
{
	sigset_t	 pending;

	return sigpending(&pending) == 0 && (sigismember(&pending, SIGTERM) == 1 ||
	    sigismember(&pending, SIGINT) == 1);
}

int
lc_check_due(struct app *app, integ_status_set statuses, long older_than_s,
    bool due_retries, const char *actor, struct lc_counts *counts)
{
	char	 now[32], cutoff[48];
	int	 rc, n;

	if ((rc = db_now(app->db, now)) != DB_OK)
		return rc;
	snprintf(cutoff, sizeof(cutoff), "%.6f", atof(now) - (double)older_than_s);
	do {
		rc = lci_check_batch(app, statuses, cutoff, due_retries, actor,
		    counts, &n);
	} while (rc == DB_OK && n > 0 && !lci_stop_pending());
	return rc;
}

int
lc_recheck_invalid(struct app *app, const char *actor,
    struct lc_counts *counts)
{
	int	 rc, n;

	if (app->cfg->invalid_recheck_interval_s == 0)
		return DB_OK;
	/* No cutoff: only those whose re-check (next_retry_at) is due. */
	do {
		rc = lci_check_batch(app, INTEG_SET(INTEG_INVALID), "0", true, actor,
		    counts, &n);
	} while (rc == DB_OK && n > 0 && !lci_stop_pending());
	return rc;
}

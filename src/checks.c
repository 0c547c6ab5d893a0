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
	struct db		*db;	/* not owned: the one that claimed it */
	struct integration	*rows;
	struct sf_refresh_job	*jobs;
	char			**refresh;
	enum integ_status	*status;
	int			 n;
};

/* Frees what the batch claimed and empties it for the next claim. */
static void
batch_clear(struct batch *b)
{
	for (int i = 0; i < b->n; i++) {
		secret_free(b->refresh[i]);
		b->refresh[i] = NULL;
		sf_token_clear(&b->jobs[i].token);
		db_integration_clear(&b->rows[i]);
	}
	memset(b->jobs, 0, (size_t)b->n * sizeof(*b->jobs));
	b->n = 0;
}

static void
batch_free(struct batch *b)
{
	if (b->rows != NULL && b->jobs != NULL && b->refresh != NULL)
		batch_clear(b);
	free(b->rows);
	free(b->jobs);
	free(b->refresh);
	free(b->status);
}

/* Room for limit rows on db; -1 out of memory (batch_free() it anyway). */
static int
batch_alloc(struct batch *b, struct db *db, int limit)
{
	memset(b, 0, sizeof(*b));
	b->db = db;
	b->rows = calloc((size_t)limit, sizeof(*b->rows));
	b->jobs = calloc((size_t)limit, sizeof(*b->jobs));
	b->refresh = calloc((size_t)limit, sizeof(*b->refresh));
	b->status = calloc((size_t)limit, sizeof(*b->status));
	return b->rows == NULL || b->jobs == NULL || b->refresh == NULL ||
	    b->status == NULL ? -1 : 0;
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

/* Opens the claimed rows' refresh tokens into the jobs of b. */
static void
batch_prepare(struct app *app, struct batch *b)
{
	for (int i = 0; i < b->n; i++) {
		b->jobs[i].login_base = b->rows[i].login_host;
		b->refresh[i] = lci_open_column(app, b->rows[i].org_id,
		    "refresh_token", b->rows[i].refresh_token_enc);
		b->jobs[i].refresh_token = b->refresh[i];
		if (b->refresh[i] == NULL)
			lci_job_failed(&b->jobs[i], "token_key", "the stored refresh "
			    "token cannot be decrypted with the configured keys");
	}
}

/*
 * Writes in one statement the outcomes of b that need nothing else: a
 * refresh that succeeded of a row that was connected (no transition to
 * record). done[i] tells which were stored; the others, and all of them
 * when the statement fails (undone under its savepoint), are then written
 * one by one. A db_rc that stops the batch.
 */
static int
write_connected(struct app *app, struct batch *b, bool *done)
{
	struct db_refreshed	*w;
	char			(*fp)[17];
	int			*row, n = 0, rc = DB_OK;

	w = calloc((size_t)b->n, sizeof(*w));
	fp = calloc((size_t)b->n, sizeof(*fp));
	row = calloc((size_t)b->n, sizeof(*row));
	if (w == NULL || fp == NULL || row == NULL)
		goto out;		/* one by one, then */
	for (int i = 0; i < b->n; i++) {
		if (b->jobs[i].rc != 0 || b->rows[i].status != INTEG_CONNECTED)
			continue;
		if (lci_seal_refreshed(app, &b->rows[i], &b->jobs[i].token,
		    &w[n], fp[n]) == -1) {
			lci_sealed_free(&w[n]);
			continue;
		}
		row[n++] = i;
	}
	if (n < 2 || (rc = db_savepoint(app->db)) != DB_OK)
		goto out;
	if ((rc = db_integration_refreshed_many(app->db, w, (size_t)n)) !=
	    DB_OK) {
		if (rc == DB_UNAVAILABLE)
			goto out;
		log_warn("check_write_many_failed", "a batch of %d refreshed "
		    "orgs could not be written at once; one by one", n);
		rc = db_rollback_savepoint(app->db);
		goto out;
	}
	for (int k = 0; k < n; k++)
		if (w[k].stored) {
			done[row[k]] = true;
			b->status[row[k]] = INTEG_CONNECTED;
		}
out:
	for (int k = 0; w != NULL && k < n; k++)
		lci_sealed_free(&w[k]);
	free(w);
	free(fp);
	free(row);
	return rc;
}

/*
 * Writes each refreshed outcome of b on b->db (app->db meanwhile) and
 * commits; if that fails, every rotated refresh token is saved on its own.
 * Between two rows, the refreshes of the next batch move on (mm, or NULL).
 */
static int
batch_write(struct app *app, struct batch *b, const char *actor,
    struct sf_many *mm)
{
	struct db	*home = app->db;
	long long	 generation;
	bool		*done;
	int		 rc = DB_OK;

	app->db = b->db;
	if ((done = calloc((size_t)b->n, sizeof(*done))) == NULL)
		rc = DB_ERROR;
	for (int i = 0; i < b->n; i++) {
		lci_refuse_foreign_org(&b->rows[i], &b->jobs[i]);
		metrics_refresh(b->jobs[i].rc == 0 ? SF_OK : b->jobs[i].err.kind);
		b->status[i] = b->rows[i].status;
	}
	if (rc == DB_OK)
		rc = write_connected(app, b, done);
	for (int i = 0; i < b->n && rc == DB_OK; i++) {
		if (!done[i])
			rc = write_row(app, b, i, actor, &generation);
		if (mm != NULL)
			sf_many_pump(mm);
	}
	free(done);
	if (rc == DB_OK)
		rc = db_commit(app->db);
	if (rc != DB_OK)
		for (int i = 0; i < b->n; i++)
			if (b->jobs[i].token.refresh_token != NULL)
				(void)lci_save_rotated(app, &b->rows[i], &b->jobs[i],
				    actor, &b->status[i], &generation);
	db_rollback(app->db);
	app->db = home;
	return rc;
}

/* Claims a batch of at most limit rows on b->db and opens its tokens. */
static int
batch_claim(struct app *app, struct batch *b, integ_status_set statuses,
    const char *cutoff, bool due_retries, int limit)
{
	int	 rc;

	b->n = 0;
	if ((rc = db_begin(b->db)) != DB_OK ||
	    (rc = db_integration_claim(b->db, statuses, cutoff, due_retries,
	    limit, b->rows, &b->n)) != DB_OK || b->n == 0) {
		db_rollback(b->db);
		return rc;
	}
	batch_prepare(app, b);
	return DB_OK;
}

static void
count_batch(const struct batch *b, struct lc_counts *counts)
{
	for (int i = 0; i < b->n; i++)
		count_status(counts, b->status[i]);
}

int
lci_check_batch(struct app *app, integ_status_set statuses, const char *cutoff,
    bool due_retries, const char *actor, struct lc_counts *counts, int *n)
{
	struct batch	 b;
	int		 limit = (int)app->cfg->check_concurrency, rc;

	*n = 0;
	if (batch_alloc(&b, app->db, limit) == -1) {
		rc = DB_ERROR;
		goto out;
	}
	if ((rc = batch_claim(app, &b, statuses, cutoff, due_retries,
	    limit)) != DB_OK || b.n == 0)
		goto out;
	sf_refresh_many(app->sf, b.jobs, (size_t)b.n, limit);
	retry_processing(app, &b, limit);
	rc = batch_write(app, &b, actor, NULL);
	if (rc == DB_OK)
		count_batch(&b, counts);
	*n = b.n;
out:
	batch_free(&b);
	return rc;
}

/* Writes b (see batch_write()) and counts it; *rc keeps the first failure. */
static void
write_counted(struct app *app, struct lc_batches *run, struct batch *b,
    struct sf_many *mm, int *rc)
{
	int	 wrc;

	if ((wrc = batch_write(app, b, run->actor, mm)) == DB_OK) {
		count_batch(b, run->counts);
		run->batches++;
		if (run->progress != NULL)
			run->progress(run->arg);
	} else if (*rc == DB_OK)
		*rc = wrc;
	batch_clear(b);
}

/*
 * Batches on two connections, so that Salesforce does not wait for the
 * database: while batch a refreshes, the batch refreshed before it (b) is
 * written and committed, and the next one is claimed on b's connection,
 * ready to start the moment a is done. Every batch whose refreshes started
 * is written before this returns, whatever failed meanwhile: a rotated
 * token is never dropped.
 */
static int
check_pipelined(struct app *app, struct lc_batches *run, struct sf_many *mm,
    struct batch *a, struct batch *b, int limit)
{
	struct batch	*t;
	int		 rc, crc;

	if ((rc = batch_claim(app, a, run->statuses, run->cutoff,
	    run->due_retries, limit)) != DB_OK || a->n == 0) {
		run->drained = rc == DB_OK;
		return rc;
	}
	sf_many_start(mm, a->jobs, (size_t)a->n);
	while (a->n > 0) {
		if (b->n > 0)
			write_counted(app, run, b, mm, &rc);
		if (rc == DB_OK && !lci_stop_pending()) {
			if ((crc = db_ensure(b->db)) == DB_OK)
				crc = batch_claim(app, b, run->statuses,
				    run->cutoff, run->due_retries, limit);
			if (crc != DB_OK)
				rc = crc;
			else if (b->n == 0)
				run->drained = true;
		}
		sf_many_wait(mm);
		retry_processing(app, a, limit);
		if (b->n > 0)
			sf_many_start(mm, b->jobs, (size_t)b->n);
		t = a;		/* a: refreshing (or none left), b: to write */
		a = b;
		b = t;
	}
	if (b->n > 0)
		write_counted(app, run, b, NULL, &rc);
	if (rc != DB_OK)
		run->drained = false;
	return rc;
}

int
lci_check_batches(struct app *app, struct lc_batches *run)
{
	struct batch	 b[2];
	struct sf_many	*mm = NULL;
	int		 limit = (int)app->cfg->check_concurrency, rc, n;

	run->batches = 0;
	run->drained = false;
	if (app->db_pipe == NULL) {
		do {
			rc = lci_check_batch(app, run->statuses, run->cutoff,
			    run->due_retries, run->actor, run->counts, &n);
			if (rc == DB_OK && n > 0) {
				run->batches++;
				if (run->progress != NULL)
					run->progress(run->arg);
			}
		} while (rc == DB_OK && n > 0 && !lci_stop_pending());
		run->drained = rc == DB_OK && n == 0;
		return rc;
	}
	if (batch_alloc(&b[0], app->db, limit) == -1 ||
	    batch_alloc(&b[1], app->db_pipe, limit) == -1 ||
	    (mm = sf_many_new(app->sf, limit)) == NULL) {
		rc = DB_ERROR;
		goto out;
	}
	rc = check_pipelined(app, run, mm, &b[0], &b[1], limit);
out:
	sf_many_free(mm);
	batch_free(&b[0]);
	batch_free(&b[1]);
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
	struct lc_batches	 run = { .progress = NULL };
	char			 now[32], cutoff[48];
	int			 rc;

	if ((rc = db_now(app->db, now)) != DB_OK)
		return rc;
	snprintf(cutoff, sizeof(cutoff), "%.6f", atof(now) - (double)older_than_s);
	run.statuses = statuses;
	run.cutoff = cutoff;
	run.due_retries = due_retries;
	run.actor = actor;
	run.counts = counts;
	return lci_check_batches(app, &run);
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

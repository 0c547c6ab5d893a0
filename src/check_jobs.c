/*
 * Check jobs: a bulk check whose scope lives in PostgreSQL (db_jobs.h), worked
 * batch by batch by whichever checker process claims its rows first.
 */
#include "db_jobs.h"
#include "lifecycle.h"
#include "lifecycle_internal.h"
#include "log.h"

int
lc_job_work(struct app *app, long long id, lc_progress_fn *progress,
    void *arg, int *batches, bool *finished)
{
	struct db_job_work	 w;
	struct lc_counts	 counts = { .checked = 0 };
	struct lc_batches	 run = { .progress = progress, .arg = arg };
	int			 rc;

	*batches = 0;
	*finished = false;
	rc = db_job_work(app->db, id, &w);
	if (rc == DB_NOTFOUND && id != 0) {
		*finished = true;	/* no longer running */
		return DB_OK;
	}
	if (rc != DB_OK)
		return rc;
	if ((rc = db_job_started(app->db, w.id)) != DB_OK)
		return rc;
	run.statuses = w.statuses;
	run.cutoff = w.cutoff;
	run.due_retries = false;
	run.actor = w.actor;
	run.counts = &counts;
	rc = lci_check_batches(app, &run);
	*batches = run.batches;
	if (rc != DB_OK) {
		log_warn("check_job", "job %lld: a batch failed; it is claimed "
		    "again later", w.id);
		return rc;
	}
	if (run.drained && (rc = db_job_finish(app->db, w.id, finished)) == DB_OK &&
	    *finished && counts.checked > 0)
		log_info("check_job_finished", "job %lld finished (%d checked "
		    "here: %d connected, %d degraded, %d invalid)", w.id,
		    counts.checked, counts.connected, counts.degraded,
		    counts.invalid);
	return rc;
}

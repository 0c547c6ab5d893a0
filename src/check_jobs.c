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
	int			 rc, n;

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
	do {
		rc = lci_check_batch(app, w.statuses, w.cutoff, false, w.actor,
		    &counts, &n);
		if (rc == DB_OK && n > 0) {
			(*batches)++;
			if (progress != NULL)
				progress(arg);
		}
	} while (rc == DB_OK && n > 0 && !lci_stop_pending());
	if (rc != DB_OK) {
		log_warn("check_job", "job %lld: a batch failed; it is claimed "
		    "again later", w.id);
		return rc;
	}
	if (n == 0 && (rc = db_job_finish(app->db, w.id, finished)) == DB_OK &&
	    *finished && counts.checked > 0)
		log_info("check_job_finished", "job %lld finished (%d checked "
		    "here: %d connected, %d degraded, %d invalid)", w.id,
		    counts.checked, counts.connected, counts.degraded,
		    counts.invalid);
	return rc;
}

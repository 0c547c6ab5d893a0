/* The store of check jobs: see db_jobs.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "db_jobs.h"

enum db_rc
db_job_create(struct db *db, integ_status_set statuses, double older_than_s,
    const char *actor, long long *id, long long *total)
{
	char		 array[64], set[16], older[32];
	const char	*params[4] = { array, set, older, actor };
	PGresult	*res;
	enum db_rc	 rc;

	dbi_status_array(statuses, array, sizeof(array));
	snprintf(set, sizeof(set), "%u", statuses);
	snprintf(older, sizeof(older), "%.3f", older_than_s);
	if ((rc = dbi_run_row(db, ST_JOB_CREATE, 4, params, &res)) != DB_OK)
		return rc == DB_NOTFOUND ? DB_ERROR : rc;
	*id = dbi_ll_col(res, 0, 0);
	*total = dbi_ll_col(res, 0, 1);
	PQclear(res);
	return DB_OK;
}

static void
load_job_work(const PGresult *res, void *out)
{
	struct db_job_work	*w = out;

	w->id = dbi_ll_col(res, 0, 0);
	w->statuses = (integ_status_set)dbi_ll_col(res, 0, 1);
	dbi_copy_col(res, 0, 2, w->cutoff, sizeof(w->cutoff));
	dbi_copy_col(res, 0, 3, w->actor, sizeof(w->actor));
}

enum db_rc
db_job_work(struct db *db, long long id, struct db_job_work *w)
{
	memset(w, 0, sizeof(*w));
	return dbi_get_id(db, ST_JOB_WORK, id, load_job_work, w);
}

enum db_rc
db_job_started(struct db *db, long long id)
{
	PGresult	*res;
	enum db_rc	 rc = dbi_run_id(db, ST_JOB_STARTED, id, &res);

	if (rc == DB_OK)
		PQclear(res);
	return rc;
}

enum db_rc
db_job_finish(struct db *db, long long id, bool *finished)
{
	PGresult	*res;
	enum db_rc	 rc;

	*finished = false;
	if ((rc = dbi_run_id_row(db, ST_JOB_FINISH, id, &res)) != DB_OK)
		return rc == DB_NOTFOUND ? DB_ERROR : rc;
	*finished = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return DB_OK;
}

static double
epoch_col(const PGresult *res, int col)
{
	const char	*v = PQgetvalue(res, 0, col);

	return v[0] == '\0' ? 0 : strtod(v, NULL);
}

static void
load_job(const PGresult *res, void *out)
{
	struct db_job	*job = out;

	job->id = dbi_ll_col(res, 0, 0);
	job->finished = strcmp(PQgetvalue(res, 0, 1), "finished") == 0;
	job->total = dbi_ll_col(res, 0, 2);
	job->checked = dbi_ll_col(res, 0, 3);
	job->connected = dbi_ll_col(res, 0, 4);
	job->degraded = dbi_ll_col(res, 0, 5);
	job->invalid = dbi_ll_col(res, 0, 6);
	job->created_at = epoch_col(res, 7);
	job->started_at = epoch_col(res, 8);
	job->finished_at = epoch_col(res, 9);
	job->now = epoch_col(res, 10);
	dbi_copy_col(res, 0, 11, job->actor, sizeof(job->actor));
}

enum db_rc
db_job_get(struct db *db, long long id, struct db_job *job)
{
	memset(job, 0, sizeof(*job));
	return dbi_get_id(db, ST_JOB_GET, id, load_job, job);
}

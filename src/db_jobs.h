/*
 * The store of check jobs (sql/008_check_jobs.sql): a bulk check's scope,
 * shared by every checker process of every host through PostgreSQL.
 */
#ifndef SFC_DB_JOBS_H
#define SFC_DB_JOBS_H

#include <stdbool.h>

#include "db.h"
#include "integ.h"

/* What a checker needs to work on a running job. */
struct db_job_work {
	long long		 id;
	integ_status_set	 statuses;
	char			 cutoff[48];	/* epoch seconds, the claim's cutoff */
	char			 actor[160];
};

/* A job as GET /api/v1/admin/check-jobs/{id} shows it. */
struct db_job {
	long long	 id;
	bool		 finished;
	long long	 total, checked, connected, degraded, invalid;
	double		 created_at, started_at, finished_at, now;	/* 0: none */
	char		 actor[160];
};

/*
 * A new running job over the integrations with a status in statuses that
 * were last checked more than older_than_s ago (or never). *id and *total
 * (the number of them) are filled.
 */
enum db_rc	 db_job_create(struct db *db, integ_status_set statuses,
		    double older_than_s, const char *actor, long long *id,
		    long long *total);
/* Running job id (0: the oldest running one): DB_NOTFOUND when none. */
enum db_rc	 db_job_work(struct db *db, long long id, struct db_job_work *w);
/* Stamps started_at when it is not yet. */
enum db_rc	 db_job_started(struct db *db, long long id);
/*
 * Finishes job id when none of its integrations is due any more; *finished
 * tells whether it is finished (now or before).
 */
enum db_rc	 db_job_finish(struct db *db, long long id, bool *finished);
/* Job id: DB_NOTFOUND when there is none. */
enum db_rc	 db_job_get(struct db *db, long long id, struct db_job *job);

#endif

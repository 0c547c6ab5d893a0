/*
 * The token lifecycle: single-flight refreshes under the org's row lock,
 * outcome handling (connected / degraded / invalid), bulk and periodic
 * checks. A refresh locks the org's row, re-reads it (another process may
 * have refreshed meanwhile), calls Salesforce and writes the result with
 * the next token_generation before it commits.
 */
#ifndef SFC_LIFECYCLE_H
#define SFC_LIFECYCLE_H

#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "db.h"
#include "sf.h"

enum lc_rc {
	LC_OK = 0,
	LC_NOT_CONNECTED,	/* disconnected: nothing stored */
	LC_INVALID,		/* the customer must reconnect */
	LC_SF_UNAVAILABLE,	/* transient Salesforce failure and no usable token */
	LC_SF_CONFIG,		/* our app's configuration is rejected */
	LC_DB_UNAVAILABLE,	/* database down or the row lock timed out */
	LC_INTERNAL,
};

struct lc_token {
	char		*access_token;	/* owned; lc_token_clear cleanses it */
	char		 instance_url[256];
	long long	 issued_at_ms;
	char		 sf_org_id[19];
	long long	 generation;
	int		 retry_after_s;	/* on LC_SF_UNAVAILABLE / LC_DB_UNAVAILABLE */
};

/* What the periodic and the CLI's "check all" refresh. */
#define LC_ROUTINE_CHECK \
	(INTEG_SET(INTEG_CONNECTED) | INTEG_SET(INTEG_DEGRADED))

/*
 * How long a process keeps trying to store a rotated refresh token whose
 * write failed (the stop grace of sfconnectd covers it).
 */
#define LC_SAVE_BUDGET_MS	8000

/*
 * The looks after a write whose outcome is unknown: lc_look_wait() sleeps
 * (100 ms, doubling to 1.6 s) and answers false once LC_SAVE_BUDGET_MS has
 * passed since lc_look_start().
 */
struct lc_look {
	struct timespec	 start;
	useconds_t	 pause;
};
void	lc_look_start(struct lc_look *look);
bool	lc_look_wait(struct lc_look *look);

/* Seconds a caller should wait after LC_DB_UNAVAILABLE. */
#define LC_DB_RETRY_AFTER_S	2

struct lc_counts {
	int	 checked, connected, degraded, invalid;
};

void	lc_token_clear(struct lc_token *t);

/*
 * The access token of org, refreshed first when older than
 * access_token_max_age_s, or when force is set: then only if the stored
 * generation still equals generation (>= 0), or without a generation
 * (-1) only if the last refresh is older than 5 s. On failure err says
 * why when Salesforce was involved. row: org's integration as just read
 * (without a lock), or NULL to read it here.
 */
enum lc_rc	lc_token(struct app *app, long long org_id,
		    const struct integration *row, const char *actor,
		    bool force, long long generation, struct lc_token *out,
		    struct sf_error *err);
/* Refreshes org now (the admin's check). */
enum lc_rc	lc_check(struct app *app, long long org_id, const char *actor);
/*
 * Checks, batch by batch (check_concurrency at once), every integration
 * whose status is in statuses and whose last
 * check is older than older_than_s; with due_retries also degraded ones
 * whose backoff has passed. Adds to *counts. Stops early, between two
 * batches, when a SIGTERM is pending. A db_rc.
 */
int		lc_check_due(struct app *app, integ_status_set statuses,
		    long older_than_s, bool due_retries, const char *actor,
		    struct lc_counts *counts);

/*
 * Re-checks, batch by batch, the invalid integrations whose last error may
 * heal (IP or login-hours restrictions) and whose re-check is due (every
 * invalid_recheck_interval_s; 0: none). Success makes them connected again
 * (audited and sent as integration.recovered). Adds to *counts. A db_rc.
 */
int		lc_recheck_invalid(struct app *app, const char *actor,
		    struct lc_counts *counts);

/*
 * Called by lc_job_work after each batch it checked (arg: the caller's).
 */
typedef void	lc_progress_fn(void *arg);

/*
 * Works on the running check job id (0: the oldest running one), batch by
 * batch, until none of its integrations is left to claim here (or a
 * SIGTERM is pending), then finishes it when none is due any more
 * anywhere. *batches gets the batches checked here, *finished whether the
 * job is finished (also when it was already). DB_NOTFOUND for id 0 when
 * no job runs. progress may be NULL. A db_rc.
 */
int		lc_job_work(struct app *app, long long id,
		    lc_progress_fn *progress, void *arg, int *batches,
		    bool *finished);

/* How a connect ended (lc_connect); the handler maps it to HTTP. */
enum lc_connect_rc {
	LCC_OK = 0,
	LCC_STATE_UNREADABLE,	/* the state's verifier cannot be opened */
	LCC_SALESFORCE,		/* a Salesforce call failed: err says why */
	LCC_NO_REFRESH_TOKEN,	/* the app's scopes lack refresh_token */
	LCC_INACTIVE_USER,	/* the Salesforce user is not active */
	LCC_ORG_MISMATCH,	/* another Salesforce org than the connected one */
	LCC_INSUFFICIENT_SCOPE,	/* granted less than salesforce_scope asked for */
	LCC_DB_UNAVAILABLE,
	LCC_INTERNAL,
};

/*
 * The callback's work: exchanges code with the state's PKCE verifier,
 * checks the identity, and stores the sealed tokens with their audit in
 * one transaction under the row lock; the replaced refresh token is then
 * revoked, and so are new tokens that are not stored. On LCC_OK sf_org_id
 * gets the OrgID; on LCC_SALESFORCE err says why.
 */
enum lc_connect_rc lc_connect(struct app *app, const struct oauth_state *st,
		    const char *code, char sf_org_id[19], struct sf_error *err);
/*
 * Audits a callback event (action, with an optional reason, OrgID and the
 * OrgID it replaced). A db_rc.
 */
int		lc_audit_connect(struct app *app, const struct oauth_state *st,
		    const char *action, const char *reason, const char *sf_org_id,
		    const char *previous);
/*
 * Removes org_id's connection under its row lock: revokes the refresh token
 * (best effort: *revoked says), clears the tokens, audits. Idempotent.
 */
enum lc_rc	lc_disconnect(struct app *app, long long org_id,
		    const char *actor, bool *revoked);

#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "events.h"
#include "keyring.h"
#include "lifecycle.h"
#include "lifecycle_internal.h"
#include "log.h"
#include "metrics.h"
#include "secret.h"
#include "util.h"

#define FORCE_MIN_AGE_S		5
#define BACKOFF_BASE_S		30.0
#define BACKOFF_MAX_S		3600.0
#define ROTATED_WRITE_TRIES	8

void
lc_token_clear(struct lc_token *t)
{
	secret_free(t->access_token);
	t->access_token = NULL;
}

char *
lci_open_column(struct app *app, long long org_id, const char *column,
    const char *sealed)
{
	char	 aad[128];

	if (sealed == NULL)
		return NULL;
	sealed_aad(aad, sizeof(aad), org_id, column);
	return keyring_open(app->keyring, aad, sealed);
}

static bool
needs_refresh(const struct app *app, const struct integration *integ,
    bool force, long long generation)
{
	time_t	 age = integ->db_now - integ->last_refreshed_at;

	if (integ->access_token_enc == NULL || integ->last_refreshed_at == 0)
		return true;
	if (!force && integ->status == INTEG_DEGRADED &&
	    integ->next_retry_at > integ->db_now)
		return false;	/* backing off: the stored token is the best we have */
	if (!force)
		return age >= app->cfg->access_token_max_age_s;
	if (generation >= 0)
		return integ->token_generation == generation;
	return age >= FORCE_MIN_AGE_S;
}

/* Exponential backoff with jitter for the n-th consecutive failure. */
static double
backoff_s(int failures)
{
	double	 d = BACKOFF_BASE_S;
	unsigned char r;

	for (int i = 0; i < failures && d < BACKOFF_MAX_S; i++)
		d *= 2;
	if (d > BACKOFF_MAX_S)
		d = BACKOFF_MAX_S;
	if (crypto_random(&r, 1) == -1)
		r = 128;
	return d * (0.5 + r / 510.0);
}

/* The audit action of a change from before to after (they differ). */
static const char *
transition_type(enum integ_status before, enum integ_status after)
{
	switch (after) {
	case INTEG_CONNECTED:
		return before == INTEG_DEGRADED || before == INTEG_INVALID ?
		    "integration.recovered" : "integration.connected";
	case INTEG_DEGRADED:
		return "integration.degraded";
	case INTEG_INVALID:
		return "integration.invalid";
	case INTEG_DISCONNECTED:
	case INTEG__MAX:
		break;
	}
	return "integration.disconnected";
}

/*
 * Audits a status change, and queues its webhook event, inside the
 * caller's transaction. A db_rc.
 */
static int
record_transition(struct app *app, const struct integration *before,
    enum integ_status after, const char *actor, const struct sf_error *err)
{
	const char	*type;
	char		*detail;
	cJSON		*o;
	int		 rc = DB_ERROR;

	if (before->status == after)
		return DB_OK;
	type = transition_type(before->status, after);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "from", integ_status_name(before->status));
	cJSON_AddStringToObject(o, "to", integ_status_name(after));
	cJSON_AddStringToObject(o, "salesforce_org_id", before->sf_org_id);
	if (err != NULL)
		cJSON_AddStringToObject(o, "error", err->code);
	if ((detail = cJSON_PrintUnformatted(o)) != NULL)
		rc = db_audit_add(app->db, before->org_id, actor, type, detail);
	/* "recovered" covers invalid -> connected too (a re-check that healed). */
	if (rc == DB_OK)
		rc = events_emit(app, before->org_id, type);
	free(detail);
	cJSON_Delete(o);
	log_info(type, "org %s: %s -> %s%s%s", before->org_slug,
	    integ_status_name(before->status), integ_status_name(after),
	    err ? ": " : "", err ? err->code : "");
	return rc;
}

/* Seals the refresh token of org_id (caller frees); NULL on failure. */
static char *
seal_refresh(struct app *app, long long org_id, const char *refresh_token)
{
	char	 aad[128];

	sealed_aad(aad, sizeof(aad), org_id, "refresh_token");
	return keyring_seal(app->keyring, aad, refresh_token);
}

/*
 * Writes a successful refresh of integ, if its stored generation is still
 * integ->token_generation (DB_NOTFOUND otherwise). *generation gets the new
 * generation. A db_rc.
 */
static int
write_refreshed(struct app *app, const struct integration *integ,
    const struct sf_token *tok, long long *generation)
{
	struct db_refreshed	 w;
	char			 fp[17];
	int			 rc = DB_ERROR;

	if (lci_seal_refreshed(app, integ, tok, &w, fp) == 0) {
		rc = db_integration_refreshed(app->db, w.org_id, w.access_enc,
		    w.refresh_enc, w.refresh_fp, w.instance_url,
		    w.issued_at_ms, &w.generation);
		*generation = w.generation;
	}
	lci_sealed_free(&w);
	return rc;
}

int
lci_seal_refreshed(struct app *app, const struct integration *integ,
    const struct sf_token *tok, struct db_refreshed *w, char fp[17])
{
	char	 aad[128], *access_enc, *refresh_enc = NULL;

	memset(w, 0, sizeof(*w));
	w->org_id = integ->org_id;
	w->instance_url = tok->instance_url;
	w->issued_at_ms = tok->issued_at_ms;
	w->generation = integ->token_generation;
	sealed_aad(aad, sizeof(aad), integ->org_id, "access_token");
	if ((access_enc = keyring_seal(app->keyring, aad, tok->access_token)) == NULL)
		return -1;
	w->access_enc = access_enc;
	if (tok->refresh_token != NULL) {
		if ((refresh_enc = seal_refresh(app, integ->org_id,
		    tok->refresh_token)) == NULL)
			return -1;
		crypto_fingerprint(tok->refresh_token, fp);
		w->refresh_enc = refresh_enc;
		w->refresh_fp = fp;
	}
	return 0;
}

void
lci_sealed_free(struct db_refreshed *w)
{
	free((char *)w->access_enc);
	free((char *)w->refresh_enc);
	w->access_enc = w->refresh_enc = NULL;
}

/*
 * A refresh answer that Salesforce sent with a rotated refresh token but
 * that we refused (a bad signature, a host not allowed): the old token is
 * dead all the same, so the new one is stored. A db_rc.
 */
int
lci_write_rotated_only(struct app *app, const struct integration *integ,
    const char *refresh_token)
{
	char	 fp[17], *refresh_enc;
	int	 rc;

	if ((refresh_enc = seal_refresh(app, integ->org_id, refresh_token)) == NULL)
		return DB_ERROR;
	crypto_fingerprint(refresh_token, fp);
	rc = db_integration_rotated(app->db, integ->org_id, refresh_enc, fp,
	    integ->token_generation);
	free(refresh_enc);
	if (rc == DB_OK)
		log_warn("rotated_token_kept", "org %s: kept the rotated refresh "
		    "token of a refused answer", integ->org_slug);
	return rc;
}

/* The stored status and last_error.kind of a failed refresh. */
static enum integ_status
failure_status(const struct sf_error *err, const char **kind)
{
	switch (err->kind) {
	case SF_INVALID:
		*kind = "invalid";
		return INTEG_INVALID;
	case SF_CONFIG:
		*kind = "config";
		return INTEG_DEGRADED;
	default:
		*kind = "transient";
		return INTEG_DEGRADED;
	}
}

/*
 * When integ, in status, should be tried again (seconds; -1: not by
 * itself): degraded after its backoff; invalid only when its last error
 * may heal (IP or login-hours restrictions), on the slow re-check schedule
 * -- a token Salesforce reported revoked or expired is never re-presented.
 */
double
lci_retry_in_s(const struct app *app, enum integ_status status,
    const char *code, const char *message, int failures)
{
	if (status == INTEG_DEGRADED)
		return backoff_s(failures);
	if (status == INTEG_INVALID && app->cfg->invalid_recheck_interval_s > 0 &&
	    sf_error_may_heal(code, message))
		return (double)app->cfg->invalid_recheck_interval_s;
	return -1;
}

/*
 * Writes the outcome of one refresh of integ inside the caller's
 * transaction. *status gets the stored status afterwards. A db_rc.
 */
int
lci_apply_outcome(struct app *app, const struct integration *integ,
    const struct sf_refresh_job *job, const char *actor,
    enum integ_status *status, long long *generation)
{
	enum integ_status next;
	const char	*kind;
	int		 rc;

	if (job->rc == 0) {
		if ((rc = write_refreshed(app, integ, &job->token, generation)) != DB_OK ||
		    (rc = record_transition(app, integ, INTEG_CONNECTED, actor,
		    NULL)) != DB_OK)
			return rc;
		*status = INTEG_CONNECTED;
		return DB_OK;
	}
	next = failure_status(&job->err, &kind);
	if (job->token.refresh_token != NULL) {
		/* A refused answer rotated the token: never invalid by our doing. */
		next = INTEG_DEGRADED;
		kind = "transient";
		if ((rc = lci_write_rotated_only(app, integ,
		    job->token.refresh_token)) != DB_OK)
			return rc;
	} else if (integ->status == INTEG_INVALID && next != INTEG_INVALID) {
		/* A re-check that proved nothing: still invalid, for the same cause. */
		*status = INTEG_INVALID;
		return db_integration_stamp(app->db, integ->org_id,
		    lci_retry_in_s(app, INTEG_INVALID, integ->last_error_code,
		    integ->last_error_message, integ->failure_count));
	}
	if ((rc = db_integration_failed(app->db, integ->org_id, next, kind,
	    job->err.code, job->err.message, lci_retry_in_s(app, next,
	    job->err.code, job->err.message, integ->failure_count))) != DB_OK ||
	    (rc = record_transition(app, integ, next, actor, &job->err)) != DB_OK)
		return rc;
	*status = next;
	return DB_OK;
}

void
lc_look_start(struct lc_look *look)
{
	clock_gettime(CLOCK_MONOTONIC, &look->start);
	look->pause = 100 * 1000;
}

bool
lc_look_wait(struct lc_look *look)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((now.tv_sec - look->start.tv_sec) * 1000 +
	    (now.tv_nsec - look->start.tv_nsec) / 1000000 >= LC_SAVE_BUDGET_MS)
		return false;
	usleep(look->pause);
	if (look->pause < 1600 * 1000)
		look->pause *= 2;
	return true;
}

/*
 * Salesforce rotated integ's refresh token, but the transaction that wrote
 * the outcome failed, perhaps after its COMMIT reached the server. Looks
 * again under the row lock, as often as the save budget allows, until it
 * knows: the row holds the new token (its fingerprint: the write landed);
 * the row still holds integ's generation (it did not: write it again);
 * the row holds another grant (reconnected or removed meanwhile: the new
 * token is provably not stored, so it is revoked); or the same grant was
 * refreshed again since (the new token was stored, then superseded).
 * A db_rc; DB_NOTFOUND when the token was not ours to keep.
 */
int
lci_save_rotated(struct app *app, const struct integration *integ,
    const struct sf_refresh_job *job, const char *actor,
    enum integ_status *status, long long *generation)
{
	struct integration	 now = { .org_id = 0 };
	struct sf_error		 err;
	struct lc_look		 look;
	char			 fp[17];
	int			 rc = DB_ERROR, attempt = 0;

	crypto_fingerprint(job->token.refresh_token, fp);
	lc_look_start(&look);
	for (;;) {
		db_rollback(app->db);
		db_integration_clear(&now);
		if (!lc_look_wait(&look))
			break;
		attempt++;
		if (db_ensure(app->db) != DB_OK || db_begin(app->db) != DB_OK ||
		    (rc = db_integration_lock(app->db, integ->org_id,
		    app->cfg->refresh_lock_timeout_ms, &now)) != DB_OK)
			continue;
		if (strcmp(now.refresh_fp, fp) == 0) {
			*status = now.status;
			*generation = now.token_generation;
			log_warn("rotated_token_saved", "org %s: the rotated "
			    "refresh token is stored (seen on look %d)",
			    integ->org_slug, attempt);
			rc = DB_OK;
			goto out;
		}
		if (now.status == INTEG_DISCONNECTED ||
		    now.connected_at != integ->connected_at) {
			log_warn("rotated_token_orphaned", "org %s: reconnected "
			    "or removed meanwhile; revoking the rotated token",
			    integ->org_slug);
			db_rollback(app->db);
			(void)sf_revoke(app->sf, integ->login_host,
			    job->token.refresh_token, &err);
			rc = DB_NOTFOUND;
			goto out;
		}
		if (now.token_generation != integ->token_generation) {
			rc = DB_OK;	/* stored, then rotated again by another */
			goto out;
		}
		if ((rc = lci_apply_outcome(app, integ, job, actor, status,
		    generation)) == DB_OK && (rc = db_commit(app->db)) == DB_OK) {
			log_warn("rotated_token_saved", "org %s: rotated refresh "
			    "token stored on attempt %d", integ->org_slug, attempt);
			goto out;
		}
	}
	log_error("rotated_token_unsaved", "org %s: could not store the "
	    "rotated refresh token within %d ms", integ->org_slug,
	    LC_SAVE_BUDGET_MS);
	rc = DB_UNAVAILABLE;
out:
	db_rollback(app->db);
	db_integration_clear(&now);
	return rc;
}
/* "token request is already being processed": the one transient invalid_grant. */
bool
lci_already_processing(const struct sf_refresh_job *job)
{
	return job->rc != 0 && job->err.kind == SF_TRANSIENT &&
	    strcmp(job->err.code, "invalid_grant") == 0;
}

/* Runs the refresh of job, retrying once after "already being processed". */
static void
refresh_one(struct app *app, struct sf_refresh_job *job)
{
	job->rc = sf_refresh(app->sf, job->login_base, job->refresh_token,
	    &job->token, &job->err);
	if (lci_already_processing(job)) {
		sf_token_clear(&job->token);
		usleep(500 * 1000);
		job->rc = sf_refresh(app->sf, job->login_base,
		    job->refresh_token, &job->token, &job->err);
	}
}

/*
 * A refresh answer whose id names another Salesforce org than the stored
 * one is refused: the integration is degraded (org_mismatch). A rotated
 * refresh token in it is kept all the same, as for any refused answer.
 */
void
lci_refuse_foreign_org(const struct integration *integ,
    struct sf_refresh_job *job)
{
	char	 named[sizeof(job->token.org_id)], *rotated;

	if (job->rc != 0 || integ->sf_org_id[0] == '\0' ||
	    strcmp(job->token.org_id, integ->sf_org_id) == 0)
		return;
	snprintf(named, sizeof(named), "%s", job->token.org_id);
	rotated = job->token.refresh_token;
	job->token.refresh_token = NULL;
	sf_token_clear(&job->token);
	job->token.refresh_token = rotated;
	job->rc = -1;
	memset(&job->err, 0, sizeof(job->err));
	job->err.kind = SF_TRANSIENT;
	snprintf(job->err.code, sizeof(job->err.code), "org_mismatch");
	snprintf(job->err.message, sizeof(job->err.message), "the refresh "
	    "answer names the Salesforce org %s, not the connected %s", named,
	    integ->sf_org_id);
	log_warn("org_mismatch", "org %s: a refresh answer named another "
	    "Salesforce org; refused", integ->org_slug);
}

void
lci_job_failed(struct sf_refresh_job *job, const char *code,
    const char *message)
{
	job->rc = -1;
	job->err.kind = SF_CONFIG;
	snprintf(job->err.code, sizeof(job->err.code), "%s", code);
	snprintf(job->err.message, sizeof(job->err.message), "%s", message);
}

/* DB_NOTFOUND here: the row changed under a retried write; a retry sees it. */
static enum lc_rc
lc_from_db(int rc)
{
	return rc == DB_UNAVAILABLE || rc == DB_LOCK_TIMEOUT ||
	    rc == DB_NOTFOUND ? LC_DB_UNAVAILABLE : LC_INTERNAL;
}

/* Fills out from a stored integration (decrypting its access token). */
static enum lc_rc
token_from_row(struct app *app, const struct integration *integ,
    struct lc_token *out)
{
	out->access_token = lci_open_column(app, integ->org_id, "access_token",
	    integ->access_token_enc);
	if (out->access_token == NULL)
		return LC_INTERNAL;
	snprintf(out->instance_url, sizeof(out->instance_url), "%s",
	    integ->instance_url);
	snprintf(out->sf_org_id, sizeof(out->sf_org_id), "%s", integ->sf_org_id);
	out->issued_at_ms = (long long)integ->issued_at * 1000;
	out->generation = integ->token_generation;
	return LC_OK;
}

/*
 * With integ's row locked: refreshes, writes the outcome and commits.
 * job is filled (caller clears job->token). *status and *generation get
 * the outcome. An lc_rc for the database side only.
 */
static enum lc_rc
refresh_locked(struct app *app, const struct integration *integ,
    const char *actor, struct sf_refresh_job *job, enum integ_status *status,
    long long *generation)
{
	char	*refresh = NULL;
	int	 rc;

	memset(job, 0, sizeof(*job));
	job->login_base = integ->login_host;
	refresh = lci_open_column(app, integ->org_id, "refresh_token",
	    integ->refresh_token_enc);
	if (refresh == NULL)
		lci_job_failed(job, "token_key", "the stored refresh token cannot be "
		    "decrypted with the configured keys");
	else {
		job->refresh_token = refresh;
		refresh_one(app, job);
		lci_refuse_foreign_org(integ, job);
	}
	metrics_refresh(job->rc == 0 ? SF_OK : job->err.kind);
	rc = lci_apply_outcome(app, integ, job, actor, status, generation);
	if (rc == DB_OK)
		rc = db_commit(app->db);
	if (rc != DB_OK && job->token.refresh_token != NULL)
		rc = lci_save_rotated(app, integ, job, actor, status, generation);
	db_rollback(app->db);
	secret_free(refresh);
	job->refresh_token = NULL;
	return rc == DB_OK ? LC_OK : lc_from_db(rc);
}

/* The stored last error of integ, as an sf_error. */
static void
stored_error(const struct integration *integ, struct sf_error *err)
{
	err->kind = strcmp(integ->last_error_kind, "config") == 0 ? SF_CONFIG :
	    SF_TRANSIENT;
	snprintf(err->code, sizeof(err->code), "%s", integ->last_error_code);
	snprintf(err->message, sizeof(err->message), "%s",
	    integ->last_error_message);
}

/*
 * When a forced refresh may be tried again after integ's last failed one:
 * the end of the crowd rule's window, 1 to 10 s.
 */
static int
crowd_retry_after(const struct integration *integ)
{
	time_t	 left = FORCE_MIN_AGE_S - (integ->db_now - integ->last_checked_at);

	return left < 1 ? 1 : left > 10 ? 10 : (int)left;
}

/*
 * true, with *lrc set, when integ can be answered without a refresh: not
 * connected, invalid, a fresh enough token, or a forced refresh right after
 * a failed attempt (a crowd holding the same dead token makes one attempt,
 * and all get its error).
 */
static bool
answer_from_row(struct app *app, const struct integration *integ, bool force,
    long long generation, struct lc_token *out, struct sf_error *err,
    enum lc_rc *lrc)
{
	if (integ->status == INTEG_DISCONNECTED)
		*lrc = LC_NOT_CONNECTED;
	else if (integ->status == INTEG_INVALID)
		*lrc = LC_INVALID;
	else if (force && integ->status == INTEG_DEGRADED &&
	    integ->db_now - integ->last_checked_at < FORCE_MIN_AGE_S) {
		stored_error(integ, err);
		*lrc = err->kind == SF_CONFIG ? LC_SF_CONFIG : LC_SF_UNAVAILABLE;
		out->retry_after_s = crowd_retry_after(integ);
	} else if (!needs_refresh(app, integ, force, generation))
		*lrc = token_from_row(app, integ, out);
	else
		return false;
	return true;
}

enum lc_rc
lc_token(struct app *app, long long org_id, const struct integration *row,
    const char *actor, bool force, long long generation, struct lc_token *out,
    struct sf_error *err)
{
	struct integration	 integ = { .org_id = 0 };
	struct sf_refresh_job	 job = { .rc = 0 };
	enum integ_status	 status = INTEG_DISCONNECTED;
	enum lc_rc		 lrc;
	int			 rc;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (row == NULL &&
	    (rc = db_integration_get(app->db, org_id, &integ)) != DB_OK)
		return lc_from_db(rc);
	if (answer_from_row(app, row != NULL ? row : &integ, force, generation,
	    out, err, &lrc))
		goto out;
	db_integration_clear(&integ);

	/* Single flight: whoever holds the row refreshes; the others re-read. */
	if ((rc = db_begin(app->db)) != DB_OK ||
	    (rc = db_integration_lock(app->db, org_id,
	    app->cfg->refresh_lock_timeout_ms, &integ)) != DB_OK) {
		db_rollback(app->db);
		lrc = lc_from_db(rc);
		goto out;
	}
	if (answer_from_row(app, &integ, force, generation, out, err, &lrc)) {
		db_rollback(app->db);
		goto out;
	}
	if ((lrc = refresh_locked(app, &integ, actor, &job, &status,
	    &out->generation)) != LC_OK)
		goto out;
	if (job.rc == 0) {
		out->access_token = job.token.access_token;
		job.token.access_token = NULL;
		snprintf(out->instance_url, sizeof(out->instance_url), "%s",
		    job.token.instance_url);
		snprintf(out->sf_org_id, sizeof(out->sf_org_id), "%s",
		    integ.sf_org_id);
		out->issued_at_ms = job.token.issued_at_ms;
		goto out;
	}
	*err = job.err;
	if (status == INTEG_INVALID)
		lrc = LC_INVALID;
	else if (!force && integ.access_token_enc != NULL)
		lrc = token_from_row(app, &integ, out);	/* still usable, likely */
	else
		lrc = job.err.kind == SF_CONFIG ? LC_SF_CONFIG : LC_SF_UNAVAILABLE;
	out->retry_after_s = FORCE_MIN_AGE_S;
out:
	sf_token_clear(&job.token);
	db_integration_clear(&integ);
	if (lrc == LC_DB_UNAVAILABLE)
		out->retry_after_s = LC_DB_RETRY_AFTER_S;
	if (lrc != LC_OK)
		lc_token_clear(out);
	return lrc;
}

enum lc_rc
lc_check(struct app *app, long long org_id, const char *actor)
{
	struct integration	 integ = { .org_id = 0 };
	struct sf_refresh_job	 job = { .rc = 0 };
	enum integ_status	 status;
	long long		 generation;
	enum lc_rc		 lrc;
	int			 rc;

	if ((rc = db_begin(app->db)) != DB_OK ||
	    (rc = db_integration_lock(app->db, org_id,
	    app->cfg->refresh_lock_timeout_ms, &integ)) != DB_OK) {
		db_rollback(app->db);
		return lc_from_db(rc);
	}
	if (integ.status == INTEG_DISCONNECTED) {
		db_rollback(app->db);
		db_integration_clear(&integ);
		return LC_NOT_CONNECTED;
	}
	lrc = refresh_locked(app, &integ, actor, &job, &status, &generation);
	sf_token_clear(&job.token);
	db_integration_clear(&integ);
	return lrc;
}

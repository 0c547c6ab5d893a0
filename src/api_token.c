/* Tokens for sync workers, and checks: single org and bulk. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "db_jobs.h"
#include "lifecycle.h"
#include "status.h"
#include "util.h"

#define SYNC_WAIT_TRIES	200
#define SYNC_WAIT_MS	50

/*
 * Answers a failed lifecycle call; retry_after_s (> 0) goes out as
 * Retry-After on the answers a retry may cure.
 */
static void
lc_error(struct ctx *c, enum lc_rc rc, const struct sf_error *err,
    int retry_after_s)
{
	char	 secs[16];

	if ((rc == LC_SF_UNAVAILABLE || rc == LC_DB_UNAVAILABLE) &&
	    retry_after_s > 0) {
		snprintf(secs, sizeof(secs), "%d", retry_after_s);
		http_add_header(c->res, "Retry-After", secs);
	}
	switch (rc) {
	case LC_NOT_CONNECTED:
		api_error(c, 409, "not_connected",
		    "Salesforce is not connected for org %s", c->org.slug);
		break;
	case LC_INVALID:
		api_error(c, 409, "integration_invalid", "the Salesforce "
		    "connection of org %s is no longer valid: an admin must "
		    "reconnect", c->org.slug);
		break;
	case LC_SF_UNAVAILABLE:
		api_error(c, 502, "salesforce_unavailable",
		    "Salesforce could not refresh the token (%s): retry later",
		    err && err->code[0] ? err->code : "error");
		break;
	case LC_SF_CONFIG:
		api_error(c, 502, "salesforce_error", "Salesforce "
		    "rejected this app's credentials (%s): an operator must "
		    "fix the configuration", err && err->code[0] ? err->code : "");
		break;
	case LC_DB_UNAVAILABLE:
		api_error(c, 503, "service_unavailable",
		    "the database is busy or unavailable; retry shortly");
		break;
	default:
		api_error(c, 500, "internal", "internal error");
		break;
	}
}

void
h_token(struct ctx *c)
{
	struct lc_token	 tok;
	struct sf_error	 err;
	char		 force[8], actor[160], issued[21];
	long		 generation;
	enum lc_rc	 rc;
	int		 has_force;
	cJSON		*o;

	has_force = http_query_param(c->req->query, "force_refresh", force,
	    sizeof(force));
	if (has_force == -1 || (has_force == 1 && strcmp(force, "1") != 0 &&
	    strcmp(force, "0") != 0 && strcmp(force, "true") != 0 &&
	    strcmp(force, "false") != 0)) {
		api_error(c, 400, "bad_request",
		    "force_refresh must be 1 or 0");
		return;
	}
	if (api_query_long(c, "generation", 0, 0x7fffffffL, -1, &generation) == -1)
		return;
	rc = lc_token(c->app, c->org.id, c->has_integ ? &c->integ : NULL,
	    api_actor(c, actor, sizeof(actor)),
	    has_force == 1 && (force[0] == '1' || force[0] == 't'), generation,
	    &tok, &err);
	http_add_header(c->res, "Cache-Control", "no-store");
	if (rc != LC_OK) {
		lc_error(c, rc, &err, tok.retry_after_s);
		return;
	}
	o = cJSON_CreateObject();
	/* A reference: the only copies are ours (cleansed) and the response's. */
	cJSON_AddItemToObject(o, "access_token",
	    cJSON_CreateStringReference(tok.access_token));
	cJSON_AddStringToObject(o, "instance_url", tok.instance_url);
	time_rfc3339((time_t)(tok.issued_at_ms / 1000), issued);
	cJSON_AddStringToObject(o, "issued_at", issued);
	cJSON_AddStringToObject(o, "salesforce_org_id", tok.sf_org_id);
	cJSON_AddNumberToObject(o, "token_generation", (double)tok.generation);
	api_json(c, 200, o);
	lc_token_clear(&tok);
}

void
h_check(struct ctx *c)
{
	char			 actor[160];
	enum lc_rc		 lrc;

	lrc = lc_check(c->app, c->org.id, api_actor(c, actor, sizeof(actor)));
	if (lrc != LC_OK) {
		lc_error(c, lrc, NULL, LC_DB_RETRY_AFTER_S);
		return;
	}
	api_status_reply(c);
}

/*
 * Works on the small job id in this request until it is finished: rows
 * another process holds (a background check) are waited for, at most
 * SYNC_WAIT_TRIES times SYNC_WAIT_MS, so the answer counts every org of
 * the job. *job gets its counts. A db_rc.
 */
static int
run_job_here(struct app *app, long long id, struct db_job *job)
{
	bool	 finished = false;
	int	 rc, batches;

	for (int tries = 0; tries < SYNC_WAIT_TRIES; tries++) {
		if ((rc = lc_job_work(app, id, NULL, NULL, &batches,
		    &finished)) != DB_OK)
			return rc;
		if (finished)
			break;
		if (batches == 0)
			usleep(SYNC_WAIT_MS * 1000);
	}
	return db_job_get(app->db, id, job);
}

void
h_admin_check(struct ctx *c)
{
	const char		*status;
	const struct api_field	 fields[] = { { "status", 16, &status },
		{ "older_than_s", 0, NULL }, { NULL, 0, NULL } };
	struct db_job		 job;
	struct timespec		 t0, t1;
	long long		 id, total;
	bool			 async;
	enum integ_status	 one;
	integ_status_set	 statuses;
	const cJSON		*older;
	double			 older_than_s = 0;
	char			 actor[160];
	cJSON			*body, *o;
	int			 rc;

	if (api_body(c, fields, &body) == -1)
		return;
	older = cJSON_GetObjectItemCaseSensitive(body, "older_than_s");
	if (older != NULL && (!cJSON_IsNumber(older) || older->valuedouble < 0 ||
	    older->valuedouble > 365.0 * 86400)) {
		api_error(c, 400, "bad_request", "older_than_s must be a number "
		    "of seconds from 0 to one year");
		goto out;
	}
	if (older != NULL)
		older_than_s = older->valuedouble;
	statuses = INTEG_SET_ALL & ~INTEG_SET(INTEG_DISCONNECTED);
	if (status != NULL && (integ_status_parse(status, &one) == -1 ||
	    one == INTEG_DISCONNECTED)) {
		api_error(c, 400, "bad_request",
		    "status must be connected, degraded or invalid");
		goto out;
	}
	if (status != NULL)
		statuses = INTEG_SET(one);
	async = api_prefer_async(c->req->prefer);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = db_job_create(c->app->db, statuses, older_than_s,
	    api_actor(c, actor, sizeof(actor)), &id, &total);
	if (rc == DB_OK && (async || total > c->app->cfg->bulk_check_sync_max)) {
		api_job_accepted(c, id, async);
		goto out;
	}
	if (rc == DB_OK)
		rc = run_job_here(c->app, id, &job);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc != DB_OK) {
		api_db_error(c, rc);
		goto out;
	}
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "checked", (double)job.checked);
	cJSON_AddNumberToObject(o, "connected", (double)job.connected);
	cJSON_AddNumberToObject(o, "degraded", (double)job.degraded);
	cJSON_AddNumberToObject(o, "invalid", (double)job.invalid);
	cJSON_AddNumberToObject(o, "duration_ms",
	    (double)((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000));
	api_json(c, 200, o);
out:
	cJSON_Delete(body);
}

/*
 * Check jobs over HTTP (docs/API.md, "Check jobs"): the job object, the 202
 * of an asynchronous bulk check, and GET /api/v1/admin/check-jobs/{id}.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "db_jobs.h"
#include "util.h"

bool
api_prefer_async(const char *prefer)
{
	const char	*p = prefer;
	size_t		 len;

	/* Preferences are comma-separated; each may carry ";" parameters. */
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		len = strcspn(p, " \t;,=");
		if (len == 13 && strncasecmp(p, "respond-async", 13) == 0) {
			const char *q = p + len;

			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '\0' || *q == ',' || *q == ';')
				return true;
		}
		p += strcspn(p, ",");
	}
	return false;
}

static void
add_time(cJSON *o, const char *name, double t)
{
	char	 s[21];

	if (t <= 0) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	time_rfc3339((time_t)t, s);
	cJSON_AddStringToObject(o, name, s);
}

/* The job object of docs/API.md; NULL when out of memory. */
static cJSON *
job_json(const struct db_job *j)
{
	cJSON	*o = cJSON_CreateObject();
	double	 end = j->finished ? j->finished_at : j->now, elapsed = 0;

	if (o == NULL)
		return NULL;
	if (j->started_at > 0 && end > j->started_at)
		elapsed = end - j->started_at;
	cJSON_AddNumberToObject(o, "id", (double)j->id);
	cJSON_AddStringToObject(o, "state", j->finished ? "finished" : "running");
	cJSON_AddNumberToObject(o, "total", (double)j->total);
	cJSON_AddNumberToObject(o, "checked", (double)j->checked);
	cJSON_AddNumberToObject(o, "connected", (double)j->connected);
	cJSON_AddNumberToObject(o, "degraded", (double)j->degraded);
	cJSON_AddNumberToObject(o, "invalid", (double)j->invalid);
	/* Due when the job began, then disconnected (or gone) before a check. */
	cJSON_AddNumberToObject(o, "skipped", j->finished && j->total > j->checked ?
	    (double)(j->total - j->checked) : 0);
	add_time(o, "created_at", j->created_at);
	add_time(o, "started_at", j->started_at);
	add_time(o, "finished_at", j->finished_at);
	cJSON_AddNumberToObject(o, "elapsed_ms", (double)(long long)(elapsed * 1000));
	if (j->finished)
		cJSON_AddNumberToObject(o, "estimated_seconds_left", 0);
	else if (j->checked > 0 && elapsed > 0 && j->total > j->checked)
		cJSON_AddNumberToObject(o, "estimated_seconds_left",
		    (double)(long long)((double)(j->total - j->checked) *
		    elapsed / (double)j->checked + 0.5));
	else
		cJSON_AddNullToObject(o, "estimated_seconds_left");
	cJSON_AddStringToObject(o, "actor", j->actor);
	return o;
}

void
api_job_accepted(struct ctx *c, long long id, bool preferred)
{
	struct db_job	 j;
	char		 location[64];
	int		 rc;

	if ((rc = db_job_get(c->app->db, id, &j)) != DB_OK) {
		api_db_error(c, rc);
		return;
	}
	snprintf(location, sizeof(location), "/api/v1/admin/check-jobs/%lld", id);
	http_add_header(c->res, "Location", location);
	if (preferred)
		http_add_header(c->res, "Preference-Applied", "respond-async");
	api_json(c, 202, job_json(&j));
}

void
h_admin_check_job(struct ctx *c)
{
	struct db_job	 j;
	char		*end;
	long long	 id;
	int		 rc;

	id = strtoll(c->param_id, &end, 10);
	if (!isdigit((unsigned char)c->param_id[0]) || *end != '\0' || id <= 0) {
		api_error(c, 404, "not_found", "no check job %s", c->param_id);
		return;
	}
	rc = db_job_get(c->app->db, id, &j);
	if (api_found(c, rc, 404, "not_found", "no check job %s",
	    c->param_id) == -1)
		return;
	if (!j.finished)
		http_add_header(c->res, "Retry-After", "1");
	api_json(c, 200, job_json(&j));
}

/* Reading an org's integration: status, banners, audit; the operator's list. */
#include <string.h>

#include "api.h"
#include "db.h"
#include "events.h"
#include "metrics.h"
#include "status.h"

/*
 * Points *integ at the integration of c->org: the row read with the key
 * when the route preloaded it, else one read now into own (the caller
 * clears own). A db_rc.
 */
static int
org_integration(struct ctx *c, struct integration *own,
    const struct integration **integ)
{
	if (c->has_integ) {
		*integ = &c->integ;
		return DB_OK;
	}
	*integ = own;
	return db_integration_get(c->app->db, c->org.id, own);
}

void
api_status_reply(struct ctx *c)
{
	struct integration	 own = { .org_id = 0 };
	const struct integration *integ;
	int			 rc;

	if ((rc = org_integration(c, &own, &integ)) != DB_OK) {
		api_db_error(c, rc);
		return;
	}
	api_json(c, 200, status_object(integ));
	db_integration_clear(&own);
}

void
h_status_get(struct ctx *c)
{
	api_status_reply(c);
}

void
h_banners(struct ctx *c)
{
	struct integration	 own = { .org_id = 0 };
	const struct integration *integ;
	cJSON			*root, *list, *banner;
	int			 rc;

	if ((rc = org_integration(c, &own, &integ)) != DB_OK) {
		api_db_error(c, rc);
		return;
	}
	root = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(root, "banners");
	if ((banner = status_banner(integ)) != NULL)
		cJSON_AddItemToArray(list, banner);
	db_integration_clear(&own);
	api_json(c, 200, root);
}

void
h_audit(struct ctx *c)
{
	cJSON	*root, *events;
	long	 limit;
	int	 rc;

	if (api_query_long(c, "limit", 1, 500, 50, &limit) == -1)
		return;
	root = cJSON_CreateObject();
	events = cJSON_AddArrayToObject(root, "events");
	if ((rc = db_audit_list(c->app->db, c->org.id, (int)limit, events)) != DB_OK) {
		cJSON_Delete(root);
		api_db_error(c, rc);
		return;
	}
	api_json(c, 200, root);
}

static void
add_status(const struct integration *integ, void *arg)
{
	cJSON_AddItemToArray(arg, status_object(integ));
}

void
h_admin_integrations(struct ctx *c)
{
	enum integ_status status;
	char	 status_text[16], cursor[64];
	cJSON	*root, *list;
	long	 limit;
	int	 rc, n, has_status, has_cursor;

	if (api_query_long(c, "limit", 1, 500, 100, &limit) == -1)
		return;
	has_status = http_query_param(c->req->query, "status", status_text,
	    sizeof(status_text));
	if (has_status == 1 && integ_status_parse(status_text, &status) == -1)
		has_status = -1;
	has_cursor = api_query_cursor(c, cursor, sizeof(cursor));
	if (has_status == -1 || has_cursor == -1) {
		api_error(c, 400, "bad_request", "status must be one of "
		    "disconnected, connected, degraded, invalid; cursor must be "
		    "a next_cursor value");
		return;
	}
	root = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(root, "integrations");
	rc = db_integration_list(c->app->db, has_status == 1 ? &status : NULL,
	    has_cursor == 1 ? cursor : NULL, (int)limit, add_status, list, &n);
	api_page_reply(c, rc, root, list, limit, "org");
}

void
h_healthz(struct ctx *c)
{
	cJSON	*root = cJSON_CreateObject();
	int	 up;

	up = db_ensure(c->app->db) == DB_OK && db_ping(c->app->db) == DB_OK;
	cJSON_AddStringToObject(root, "status", up ? "ok" : "unavailable");
	cJSON_AddStringToObject(root, "database", up ? "ok" : "unavailable");
	api_json(c, up ? 200 : 503, root);
}

static void
put_count(enum integ_status status, long long n, void *arg)
{
	buf_printf(arg, "sfconnect_integrations{status=\"%s\"} %lld\n",
	    integ_status_name(status), n);
}

/* The gauges read from the database; a db_rc. */
static int
put_db_gauges(struct ctx *c, struct buf *out)
{
	double	 lag;
	int	 rc;

	buf_puts(out, "# HELP sfconnect_integrations Salesforce integrations "
	    "by status.\n# TYPE sfconnect_integrations gauge\n");
	if ((rc = db_status_counts(c->app->db, put_count, out)) != DB_OK ||
	    (rc = db_check_lag(c->app->db, &lag)) != DB_OK)
		return rc;
	buf_printf(out, "# HELP sfconnect_check_lag_seconds Age of the oldest "
	    "last check of a connected or degraded integration (0: none).\n"
	    "# TYPE sfconnect_check_lag_seconds gauge\n"
	    "sfconnect_check_lag_seconds %.3f\n", lag);
	return events_metrics(c->app, out);
}

/*
 * Prometheus text format; nginx lets only local callers reach it. The
 * process counters are answered with the database down too: then the
 * database gauges are left out and sfconnect_database_up is 0.
 */
void
h_metrics(struct ctx *c)
{
	struct buf	*out = &c->res->body;
	size_t		 mark;
	int		 up;

	buf_reset(out);
	metrics_write(out);
	mark = out->len;
	up = db_ensure(c->app->db) == DB_OK && put_db_gauges(c, out) == DB_OK;
	if (!up && out->data != NULL) {
		out->len = mark;	/* no family half written */
		out->data[mark] = '\0';
	}
	buf_printf(out, "# HELP sfconnect_database_up 1 when this scrape read "
	    "the database gauges.\n# TYPE sfconnect_database_up gauge\n"
	    "sfconnect_database_up %d\n", up);
	c->res->status = 200;
	c->res->content_type = "text/plain; version=0.0.4";
}

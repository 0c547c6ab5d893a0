/* Reading an org's integration: status, banners, audit; the operator's list. */
#include <string.h>

#include "api.h"
#include "db.h"
#include "status.h"

int
h_status_get(struct ctx *c)
{
	struct integration	 integ;
	int			 rc;

	if ((rc = db_integration_get(c->app->db, c->org.id, &integ)) != DB_OK)
		return api_db_error(c, rc);
	api_json(c, 200, status_object(&integ));
	db_integration_clear(&integ);
	return 0;
}

int
h_banners(struct ctx *c)
{
	struct integration	 integ;
	cJSON			*root, *list, *banner;
	int			 rc;

	if ((rc = db_integration_get(c->app->db, c->org.id, &integ)) != DB_OK)
		return api_db_error(c, rc);
	root = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(root, "banners");
	if ((banner = status_banner(&integ)) != NULL)
		cJSON_AddItemToArray(list, banner);
	db_integration_clear(&integ);
	return api_json(c, 200, root);
}

int
h_audit(struct ctx *c)
{
	cJSON	*root, *events;
	long	 limit;
	int	 rc;

	if (api_query_long(c, "limit", 1, 500, 50, &limit) == -1)
		return 0;
	root = cJSON_CreateObject();
	events = cJSON_AddArrayToObject(root, "events");
	if ((rc = db_audit_list(c->app->db, c->org.id, (int)limit, events)) != DB_OK) {
		cJSON_Delete(root);
		return api_db_error(c, rc);
	}
	return api_json(c, 200, root);
}

static void
add_status(const struct integration *integ, void *arg)
{
	cJSON_AddItemToArray(arg, status_object(integ));
}

int
h_admin_integrations(struct ctx *c)
{
	enum integ_status status;
	char	 status_text[16], cursor[64];
	cJSON	*root, *list;
	long	 limit;
	int	 rc, n, has_status, has_cursor;

	if (api_query_long(c, "limit", 1, 500, 100, &limit) == -1)
		return 0;
	has_status = http_query_param(c->req->query, "status", status_text,
	    sizeof(status_text));
	if (has_status == 1 && integ_status_parse(status_text, &status) == -1)
		has_status = -1;
	has_cursor = http_query_param(c->req->query, "cursor", cursor,
	    sizeof(cursor));
	if (has_status == -1 || has_cursor == -1 ||
	    (has_cursor == 1 && !slug_ok(cursor)))
		return api_error(c, 400, "bad_request", "status must be one of "
		    "disconnected, connected, degraded, invalid; cursor must be "
		    "a next_cursor value");
	root = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(root, "integrations");
	rc = db_integration_list(c->app->db, has_status == 1 ? &status : NULL,
	    has_cursor == 1 ? cursor : NULL, (int)limit, add_status, list, &n);
	if (rc != DB_OK) {
		cJSON_Delete(root);
		return api_db_error(c, rc);
	}
	if (n == limit) {
		cJSON *last = cJSON_GetArrayItem(list, n - 1);

		cJSON_AddStringToObject(root, "next_cursor",
		    cJSON_GetObjectItem(last, "org")->valuestring);
	} else
		cJSON_AddNullToObject(root, "next_cursor");
	return api_json(c, 200, root);
}

int
h_healthz(struct ctx *c)
{
	cJSON	*root = cJSON_CreateObject();
	int	 up;

	up = db_ensure(c->app->db) == DB_OK && db_ping(c->app->db) == DB_OK;
	cJSON_AddStringToObject(root, "status", up ? "ok" : "unavailable");
	cJSON_AddStringToObject(root, "database", up ? "ok" : "unavailable");
	return api_json(c, up ? 200 : 503, root);
}

static void
put_count(enum integ_status status, long long n, void *arg)
{
	buf_printf(arg, "sfconnect_integrations{status=\"%s\"} %lld\n",
	    integ_status_name(status), n);
}

/* Prometheus text format; nginx lets only local callers reach it. */
int
h_metrics(struct ctx *c)
{
	struct buf	*out = &c->res->body;
	int		 rc;

	buf_reset(out);
	buf_puts(out, "# HELP sfconnect_integrations Salesforce integrations "
	    "by status.\n# TYPE sfconnect_integrations gauge\n");
	if ((rc = db_status_counts(c->app->db, put_count, out)) != DB_OK)
		return api_db_error(c, rc);
	c->res->status = 200;
	c->res->content_type = "text/plain; version=0.0.4";
	return 0;
}

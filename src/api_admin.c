/* The operator's administration over HTTP: orgs and API keys. */
#include <string.h>

#include "api.h"
#include "db.h"
#include "keys.h"
#include "util.h"

static cJSON *
org_object(const struct org *org)
{
	cJSON	*o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "slug", org->slug);
	cJSON_AddStringToObject(o, "name", org->name);
	api_add_time_or_null(o, "created_at", org->created_at);
	return o;
}

void
h_admin_org_create(struct ctx *c)
{
	const char	*slug, *name;
	const struct api_field fields[] = { { "slug", 63, &slug },
		{ "name", 200, &name }, { NULL, 0, NULL } };
	cJSON		*body;
	struct org	 org;
	int		 rc;

	if (api_body(c, fields, &body) == -1)
		return;
	if (slug == NULL || !slug_ok(slug)) {
		api_error(c, 400, "bad_request",
		    "slug is required: 1 to 63 of a-z, 0-9 and -");
		goto out;
	}
	rc = db_org_create(c->app->db, slug, name != NULL ? name : slug, &org);
	if (rc == DB_CONFLICT)
		api_error(c, 409, "conflict", "org %s already exists", slug);
	else if (rc != DB_OK)
		api_db_error(c, rc);
	else
		api_json(c, 201, org_object(&org));
out:
	cJSON_Delete(body);
}

void
h_admin_org_list(struct ctx *c)
{
	char	 cursor[64];
	cJSON	*root, *list;
	long	 limit;
	int	 has_cursor, rc;

	if (api_query_long(c, "limit", 1, 500, 100, &limit) == -1)
		return;
	if ((has_cursor = api_query_cursor(c, cursor, sizeof(cursor))) == -1) {
		api_error(c, 400, "bad_request", "bad cursor");
		return;
	}
	root = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(root, "orgs");
	rc = db_org_list(c->app->db, has_cursor == 1 ? cursor : NULL,
	    (int)limit, list);
	api_page_reply(c, rc, root, list, limit, "slug");
}

void
h_admin_key_create(struct ctx *c)
{
	const char	*role_text, *label;
	const struct api_field fields[] = { { "role", 16, &role_text },
		{ "label", 120, &label }, { NULL, 0, NULL } };
	cJSON		*body, *o;
	enum role	 role;
	struct new_key	 key;
	int		 rc;

	if (api_body(c, fields, &body) == -1)
		return;
	if (role_text == NULL || role_parse(role_text, &role) == -1 ||
	    role == ROLE_OPERATOR) {
		api_error(c, 400, "bad_request",
		    "role must be viewer, admin or service");
		goto out;
	}
	rc = keys_mint(c->app->db, c->org.id, role, label ? label : "", &key);
	if (rc != DB_OK) {
		api_db_error(c, rc);
		goto out;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", key.id);
	cJSON_AddItemToObject(o, "key", cJSON_CreateStringReference(key.key));
	cJSON_AddStringToObject(o, "role", role_name(role));
	cJSON_AddStringToObject(o, "org", c->org.slug);
	cJSON_AddStringToObject(o, "label", label ? label : "");
	api_add_time_or_null(o, "created_at", key.created_at);
	http_add_header(c->res, "Cache-Control", "no-store");
	api_json(c, 201, o);
	keys_wipe(&key);
out:
	cJSON_Delete(body);
}

void
h_admin_key_list(struct ctx *c)
{
	char	 org[64], cursor[64];
	cJSON	*root, *list;
	long	 limit;
	int	 has_org, has_cursor, rc;

	has_org = http_query_param(c->req->query, "org", org, sizeof(org));
	if (has_org == -1 || (has_org == 1 && !slug_ok(org))) {
		api_error(c, 400, "bad_request", "bad org");
		return;
	}
	if (api_query_long(c, "limit", 1, 500, 100, &limit) == -1)
		return;
	has_cursor = api_query_cursor_as(c, keys_id_ok, cursor, sizeof(cursor));
	if (has_cursor == -1) {
		api_error(c, 400, "bad_request", "bad cursor");
		return;
	}
	root = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(root, "keys");
	rc = db_key_list(c->app->db, has_org == 1 ? org : NULL,
	    has_cursor == 1 ? cursor : NULL, (int)limit, list);
	api_page_reply(c, rc, root, list, limit, "id");
}

void
h_admin_key_revoke(struct ctx *c)
{
	cJSON	*o;
	int	 rc;

	rc = db_key_revoke(c->app->db, c->param_id);
	if (api_found(c, rc, 404, "not_found", "no key %s", c->param_id) == -1)
		return;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", c->param_id);
	cJSON_AddBoolToObject(o, "revoked", 1);
	api_json(c, 200, o);
}

/* The operator's view of webhook deliveries. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "db.h"

/* A delivery id cursor ("42"): 0 and *after set, or -1. */
static int
parse_cursor(const char *text, long long *after)
{
	char	*end;

	if (text[0] == '\0' || strspn(text, "0123456789") != strlen(text) ||
	    strlen(text) > 18)
		return -1;
	*after = strtoll(text, &end, 10);
	return 0;
}

void
h_admin_webhook_deliveries(struct ctx *c)
{
	static const char *const statuses[] = { "pending", "delivered", "failed",
	    NULL };
	char		 status[16], cursor[64];
	const char	*filter = NULL;
	cJSON		*root, *list;
	long long	 after = 0;
	long		 limit;
	int		 has_status, has_cursor, rc;

	if (api_query_long(c, "limit", 1, 500, 100, &limit) == -1)
		return;
	has_status = http_query_param(c->req->query, "status", status,
	    sizeof(status));
	for (int i = 0; has_status == 1 && statuses[i] != NULL; i++)
		if (strcmp(status, statuses[i]) == 0)
			filter = statuses[i];
	has_cursor = api_query_cursor(c, cursor, sizeof(cursor));
	if (has_status == -1 || (has_status == 1 && filter == NULL) ||
	    has_cursor == -1 ||
	    (has_cursor == 1 && parse_cursor(cursor, &after) == -1)) {
		api_error(c, 400, "bad_request", "status must be one of pending, "
		    "delivered, failed; cursor must be a next_cursor value");
		return;
	}
	root = cJSON_CreateObject();
	list = cJSON_AddArrayToObject(root, "deliveries");
	rc = db_outbox_list(c->app->db, filter, after, (int)limit, list);
	api_page_reply(c, rc, root, list, limit, "id");
}

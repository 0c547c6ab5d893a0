/*
 * The request layer: routing table, authentication, CORS, error JSON.
 * Handlers receive a ctx with the caller and the org already checked.
 *
 * Return conventions, one per kind of function, across src/:
 * - store calls (db_*) return an enum db_rc; lifecycle calls (lc_*) an
 *   enum lc_rc; Salesforce calls (sf_*) 0 or -1 with a struct sf_error;
 * - handlers (h_*) and the writers api_json / api_error / api_db_error
 *   return nothing: they always fill c->res;
 * - request-parsing helpers (api_body, api_str, api_query_*) return 0 (or
 *   1 for "present"), or -1 after they have written a 400;
 * - predicates return bool; constructors return an owned pointer or NULL,
 *   freed by the matching _free / _clear / cJSON_Delete.
 */
#ifndef SFC_API_H
#define SFC_API_H

#include <cjson/cJSON.h>

#include "app.h"
#include "http.h"
#include "integ.h"

struct ctx {
	struct app			*app;
	const struct http_request	*req;
	struct http_response		*res;
	struct principal		 who;
	struct org			 org;		/* when the path has {org} */
	char				 param_id[64];	/* when the path has {id} */
	int				 route;		/* metrics slot: 1 + route index, 0 none */
	/* The org's integration as read with the key (ROUTE_INTEG routes). */
	bool				 has_integ;
	struct integration		 integ;
};

/*
 * Route slot slot of the metrics (0: no route matched, else 1 + the index in
 * the route table): its method and path pattern. 0, or -1 past the last.
 */
int	api_route_label(int slot, const char **method, const char **pattern);

/*
 * While no request is waiting: the fd to watch too (-1: none), and what to
 * do when it is readable (take the database's notifications).
 */
int	api_idle_fd(struct app *app);
void	api_idle(struct app *app);
/* Handles one request completely, filling res. */
void	api_handle(struct app *app, const struct http_request *req,
	    struct http_response *res);

/* Writes body (ownership taken; NULL means out of memory) with status. */
void	api_json(struct ctx *c, int status, cJSON *body);
/*
 * Writes the error JSON of docs/API.md:
 * {"error":{"code","message"},"request_id"} with status.
 */
void	api_error(struct ctx *c, int status, const char *code,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Maps a db_rc failure to 503/500. */
void	api_db_error(struct ctx *c, int rc);
/*
 * 0 when a lookup's db_rc is DB_OK; else -1 after answering: status with
 * code and the message when nothing was found, api_db_error otherwise.
 */
int	api_found(struct ctx *c, int rc, int status, const char *code,
	    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Answers 200 with the status object of c->org (or the db error). */
void	api_status_reply(struct ctx *c);
/*
 * One accepted member of a JSON body. With str, a string of at most maxlen
 * characters that api_body reads into *str (NULL when absent or null);
 * without, the handler reads it.
 */
struct api_field {
	const char	 *name;
	size_t		  maxlen;
	const char	**str;
};
/*
 * Parses the JSON object body into *out (NULL when there is no body) and
 * reads its string members. fields lists the accepted members, up to one
 * with a NULL name. Returns 0, or -1 after writing a 400 (*out NULL).
 */
int	api_body(struct ctx *c, const struct api_field *fields, cJSON **out);
/*
 * Optional string member of obj: *out stays NULL when absent or null.
 * -1 after writing a 400 when not a string or longer than maxlen.
 */
int	api_str(struct ctx *c, const cJSON *obj, const char *name,
	    size_t maxlen, const char **out);
/* Optional boolean member: -1 after writing a 400 when not a boolean. */
int	api_bool(struct ctx *c, const cJSON *obj, const char *name, bool *out);
/*
 * Integer query parameter name within [min, max], def when absent.
 * -1 after writing a 400.
 */
int	api_query_long(struct ctx *c, const char *name, long min, long max,
	    long def, long *out);
/*
 * The paging cursor (an org slug) of the query into cursor: 1 when given,
 * 0 when absent, -1 when not a slug (nothing is written: the caller answers).
 */
int	api_query_cursor(struct ctx *c, char *cursor, size_t cursorlen);
/* Like api_query_cursor, for a cursor that ok() accepts (e.g. keys_id_ok). */
int	api_query_cursor_as(struct ctx *c, int (*ok)(const char *),
	    char *cursor, size_t cursorlen);
/*
 * Answers one page: with rc DB_OK, 200 with root (ownership taken) plus
 * "next_cursor" (member of list's last item when list holds limit items,
 * else null); otherwise the database error, and root is freed.
 */
void	api_page_reply(struct ctx *c, int rc, cJSON *root, const cJSON *list,
	    long limit, const char *member);
/* The audit actor of the caller: its key label, or "key:<id>". */
const char *api_actor(const struct ctx *c, char *out, size_t outlen);
/* Adds a string member, or null when s is NULL or empty. */
void	api_add_str_or_null(cJSON *obj, const char *name, const char *s);
/* Adds an RFC 3339 time member, or null when t is 0. */
void	api_add_time_or_null(cJSON *obj, const char *name, time_t t);

/* Handlers (api_*.c). Each fills c->res. */
void	h_healthz(struct ctx *c);
void	h_metrics(struct ctx *c);
void	h_status_get(struct ctx *c);
void	h_banners(struct ctx *c);
void	h_audit(struct ctx *c);
void	h_admin_integrations(struct ctx *c);
void	h_admin_org_create(struct ctx *c);
void	h_admin_org_list(struct ctx *c);
void	h_admin_key_create(struct ctx *c);
void	h_admin_key_list(struct ctx *c);
void	h_admin_key_revoke(struct ctx *c);
void	h_connect(struct ctx *c);
void	h_callback(struct ctx *c);
void	h_oauth_start(struct ctx *c);
/*
 * Whether the browser-binding cookie is Secure: always, but for a plain
 * http public_base_url on loopback (localhost, *.localhost, 127/8, [::1]).
 */
bool	api_connect_cookie_secure(const char *public_base_url);
void	h_disconnect(struct ctx *c);
void	h_token(struct ctx *c);
void	h_check(struct ctx *c);
void	h_admin_check(struct ctx *c);
void	h_admin_webhook_deliveries(struct ctx *c);
void	h_admin_check_job(struct ctx *c);
/* true when an RFC 7240 Prefer header value asks for respond-async. */
bool	api_prefer_async(const char *prefer);
/* Answers 202 with the job object and its Location (api_jobs.c). */
void	api_job_accepted(struct ctx *c, long long id, bool preferred);

#endif

/*
 * The request layer: routing table, authentication, CORS, error JSON.
 * Handlers receive a ctx with the caller and the org already checked.
 */
#ifndef SFC_API_H
#define SFC_API_H

#include <cjson/cJSON.h>

#include "app.h"
#include "http.h"

struct ctx {
	struct app			*app;
	const struct http_request	*req;
	struct http_response		*res;
	struct principal		 who;
	struct org			 org;		/* when the path has {org} */
	char				 param_id[64];	/* when the path has {id} */
};

/* Handles one request completely, filling res. */
void	api_handle(struct app *app, const struct http_request *req,
	    struct http_response *res);

/* Writes body (ownership taken; NULL means out of memory) with status. Returns 0. */
int	api_json(struct ctx *c, int status, cJSON *body);
/* Writes the error JSON of DESIGN.md. Returns 0. */
int	api_error(struct ctx *c, int status, const char *code,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Maps a db_rc failure to 503/500. Returns 0. */
int	api_db_error(struct ctx *c, int rc);
/*
 * Parses the JSON object body into *out (NULL when there is no body).
 * allowed lists the accepted member names (NULL-terminated). Returns 0, or
 * -1 after writing a 400.
 */
int	api_body(struct ctx *c, const char *const *allowed, cJSON **out);
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
/* The audit actor of the caller: its key label, or "key:<id>". */
const char *api_actor(const struct ctx *c, char *out, size_t outlen);
/* Adds a string member, or null when s is NULL or empty. */
void	api_add_str_or_null(cJSON *obj, const char *name, const char *s);
/* Adds an RFC 3339 time member, or null when t is 0. */
void	api_add_time_or_null(cJSON *obj, const char *name, time_t t);

/* Handlers (api_*.c). Each returns 0 after filling c->res. */
int	h_healthz(struct ctx *c);
int	h_metrics(struct ctx *c);
int	h_status_get(struct ctx *c);
int	h_banners(struct ctx *c);
int	h_audit(struct ctx *c);
int	h_admin_integrations(struct ctx *c);
int	h_admin_org_create(struct ctx *c);
int	h_admin_org_list(struct ctx *c);
int	h_admin_key_create(struct ctx *c);
int	h_admin_key_list(struct ctx *c);
int	h_admin_key_revoke(struct ctx *c);
int	h_connect(struct ctx *c);
int	h_callback(struct ctx *c);
int	h_disconnect(struct ctx *c);
int	h_token(struct ctx *c);
int	h_check(struct ctx *c);
int	h_admin_check(struct ctx *c);

#endif

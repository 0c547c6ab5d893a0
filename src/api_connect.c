/*
 * Connecting and disconnecting: POST .../connect makes a one-time state,
 * the callback exchanges the code and stores the tokens, DELETE removes.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "crypto.h"
#include "db.h"
#include "events.h"
#include "log.h"
#include "sf.h"
#include "status.h"
#include "util.h"

#define STATE_TTL_S		600
#define DEFAULT_RETURN_TO	"/admin/integrations"
#define MAX_RETURN_TO		512

/*
 * true when return_to is a local path ("/x", never "//x" or "/\x") or a URL
 * on an origin of allowed_return_origins.
 */
static bool
return_to_ok(const char *return_to, const char *allowed_origins)
{
	const char	*p, *slash;
	char		 origin[512];
	size_t		 n;

	for (p = return_to; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p) || *p == '\\' || *p == ' ')
			return false;
	if (return_to[0] == '/')
		return return_to[1] != '/';
	if (strncmp(return_to, "https://", 8) != 0 &&
	    strncmp(return_to, "http://", 7) != 0)
		return false;
	p = strstr(return_to, "://") + 3;
	slash = p + strcspn(p, "/?#");
	n = (size_t)(slash - return_to);
	if (n >= sizeof(origin) || strchr(p, '@') != NULL)
		return false;
	memcpy(origin, return_to, n);
	origin[n] = '\0';
	return cfg_word_in_list(allowed_origins, origin);
}

static int
connect_body(struct ctx *c, const char **environment, const char **my_domain,
    const char **return_to, bool *allow_change, cJSON **body)
{
	static const char *const fields[] = { "environment", "my_domain",
	    "return_to", "allow_org_change", NULL };

	if (api_body(c, fields, body) == -1)
		return -1;
	if (api_str(c, *body, "environment", 16, environment) == -1 ||
	    api_str(c, *body, "my_domain", 260, my_domain) == -1 ||
	    api_str(c, *body, "return_to", MAX_RETURN_TO, return_to) == -1 ||
	    api_bool(c, *body, "allow_org_change", allow_change) == -1)
		return -1;
	if (*environment == NULL)
		*environment = "production";
	if (strcmp(*environment, "production") != 0 &&
	    strcmp(*environment, "sandbox") != 0) {
		api_error(c, 400, "bad_request",
		    "environment must be production or sandbox");
		return -1;
	}
	if (*return_to == NULL)
		*return_to = DEFAULT_RETURN_TO;
	if (!return_to_ok(*return_to, c->app->cfg->allowed_return_origins)) {
		api_error(c, 400, "bad_request", "return_to must be a path on "
		    "this site (\"/...\") or a URL on an allowed origin");
		return -1;
	}
	return 0;
}

void
h_connect(struct ctx *c)
{
	const char	*environment, *my_domain, *return_to;
	bool		 allow_change = false;
	cJSON		*body = NULL, *o;
	char		 login_base[256], err[300], state_hash[65], actor[160];
	char		 aad[128], *state = NULL, *verifier = NULL;
	char		*challenge = NULL, *verifier_enc = NULL, *url = NULL;
	char		 detail[512];
	time_t		 expires_at;
	int		 rc;

	if (connect_body(c, &environment, &my_domain, &return_to,
	    &allow_change, &body) == -1)
		goto out;
	if (sf_login_base(c->app->cfg, environment, my_domain, login_base,
	    sizeof(login_base), err, sizeof(err)) == -1) {
		api_error(c, 400, "bad_request", "%s", err);
		goto out;
	}
	if ((state = crypto_random_token(32)) == NULL ||
	    (verifier = crypto_random_token(48)) == NULL ||
	    (challenge = crypto_pkce_challenge(verifier)) == NULL) {
		api_error(c, 500, "internal", "could not make a state");
		goto out;
	}
	crypto_sha256_hex(state, strlen(state), state_hash);
	snprintf(aad, sizeof(aad), "state:%s:verifier", state_hash);
	if ((verifier_enc = crypto_seal(c->app->keyring, aad, verifier)) == NULL ||
	    (url = sf_authorize_url(c->app->sf, login_base, state,
	    challenge)) == NULL) {
		api_error(c, 500, "internal", "could not seal the verifier");
		goto out;
	}
	api_actor(c, actor, sizeof(actor));
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "environment", environment);
	cJSON_AddStringToObject(o, "login_host", login_base);
	cJSON_AddBoolToObject(o, "allow_org_change", allow_change);
	rc = cJSON_PrintPreallocated(o, detail, sizeof(detail), 0) ? DB_OK :
	    DB_ERROR;
	cJSON_Delete(o);
	if (rc != DB_OK || (rc = db_begin(c->app->db)) != DB_OK ||
	    (rc = db_state_create(c->app->db, state_hash, c->org.id,
	    verifier_enc, environment, login_base, return_to, allow_change,
	    actor, STATE_TTL_S, &expires_at)) != DB_OK ||
	    (rc = db_audit_add(c->app->db, c->org.id, actor, "connect_started",
	    detail)) != DB_OK || (rc = db_commit(c->app->db)) != DB_OK) {
		db_rollback(c->app->db);
		api_db_error(c, rc);
		goto out;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "authorize_url", url);
	api_add_time_or_null(o, "expires_at", expires_at);
	http_add_header(c->res, "Cache-Control", "no-store");
	api_json(c, 200, o);
out:
	cJSON_Delete(body);
	crypto_free_secret(state);
	crypto_free_secret(verifier);
	free(challenge);
	free(verifier_enc);
	free(url);
}

/* The outcome of a callback, for the redirect or the JSON answer. */
struct outcome {
	bool		 ok;
	char		 reason[64];	/* snake_case, when !ok: for return_to */
	char		 message[256];
	int		 json_status;	/* when !ok */
	const char	*json_code;	/* when !ok: an error code of docs/API.md */
	char		 org_id[19];	/* when ok */
};

static void
fail(struct outcome *out, int json_status, const char *json_code,
    const char *reason, const char *message)
{
	size_t	 n = 0;

	out->ok = false;
	out->json_status = json_status;
	out->json_code = json_code;
	/* reason goes into a URL: keep only [a-z0-9_]. */
	for (const char *p = reason; *p != '\0' && n + 1 < sizeof(out->reason); p++)
		if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '_')
			out->reason[n++] = *p;
	out->reason[n] = '\0';
	if (n == 0)
		snprintf(out->reason, sizeof(out->reason), "error");
	snprintf(out->message, sizeof(out->message), "%s", message);
}

/* A failed Salesforce call: 502, unavailable when transient. */
static void
fail_sf(struct outcome *out, const struct sf_error *err)
{
	fail(out, 502, err->kind == SF_TRANSIENT ? "salesforce_unavailable" :
	    "salesforce_error", err->code, err->message);
}

static bool
wants_json(const struct ctx *c)
{
	return strstr(c->req->accept, "application/json") != NULL;
}

/* The error JSON of docs/API.md, plus error.reason: the return_to reason. */
static void
callback_error(struct ctx *c, const struct outcome *out)
{
	cJSON	*root = cJSON_CreateObject(), *err;

	err = cJSON_AddObjectToObject(root, "error");
	cJSON_AddStringToObject(err, "code", out->json_code);
	cJSON_AddStringToObject(err, "message", out->message);
	cJSON_AddStringToObject(err, "reason", out->reason);
	cJSON_AddStringToObject(root, "request_id", c->req->request_id);
	api_json(c, out->json_status, root);
}

/* Answers the callback: a 303 to return_to, or JSON. */
static void
answer_callback(struct ctx *c, const struct oauth_state *st,
    const struct outcome *out)
{
	struct integration	 integ;
	struct buf		 loc;
	size_t			 before_fragment;
	int			 rc;

	if (wants_json(c)) {
		if (!out->ok) {
			callback_error(c, out);
			return;
		}
		if ((rc = db_integration_get(c->app->db, st->org_id, &integ)) != DB_OK) {
			api_db_error(c, rc);
			return;
		}
		api_json(c, 200, status_object(&integ));
		db_integration_clear(&integ);
		return;
	}
	/* The outcome goes into the query, before any fragment. */
	before_fragment = strcspn(st->return_to, "#");
	buf_init(&loc, 2048);
	buf_append(&loc, st->return_to, before_fragment);
	buf_puts(&loc, memchr(st->return_to, '?', before_fragment) ? "&" : "?");
	if (out->ok)
		buf_printf(&loc, "salesforce=connected&org_id=%s", out->org_id);
	else
		buf_printf(&loc, "salesforce=error&reason=%s", out->reason);
	buf_puts(&loc, st->return_to + before_fragment);
	c->res->status = 303;
	buf_reset(&c->res->body);
	http_add_header(c->res, "Location", loc.data ? loc.data : "/");
	http_add_header(c->res, "Cache-Control", "no-store");
	buf_free(&loc);
}

/* Records a callback event; returns the db_rc of the insert. */
static int
audit_callback(struct ctx *c, const struct oauth_state *st, const char *action,
    const char *reason, const char *sf_org_id, const char *previous)
{
	cJSON	*o = cJSON_CreateObject();
	char	 detail[512];
	int	 rc = DB_ERROR;

	if (reason != NULL)
		cJSON_AddStringToObject(o, "reason", reason);
	if (sf_org_id != NULL && *sf_org_id != '\0')
		cJSON_AddStringToObject(o, "salesforce_org_id", sf_org_id);
	if (previous != NULL && *previous != '\0' &&
	    (sf_org_id == NULL || strcmp(previous, sf_org_id) != 0))
		cJSON_AddStringToObject(o, "replaced_salesforce_org_id", previous);
	cJSON_AddStringToObject(o, "login_host", st->login_host);
	if (cJSON_PrintPreallocated(o, detail, sizeof(detail), 0))
		rc = db_audit_add(c->app->db, st->org_id, st->actor, action,
		    detail);
	cJSON_Delete(o);
	log_info(action, "org %lld: %s", st->org_id, reason ? reason :
	    sf_org_id ? sf_org_id : "");
	return rc;
}

/* Best-effort revoke of a sealed refresh token; true when it is dead now. */
static bool
revoke_sealed(struct ctx *c, long long org_id, const char *login_host,
    const char *sealed)
{
	struct sf_error	 err;
	char		 aad[128], *token;
	bool		 revoked;

	if (sealed == NULL)
		return false;
	sealed_aad(aad, sizeof(aad), org_id, "refresh_token");
	if ((token = crypto_open(c->app->keyring, aad, sealed)) == NULL)
		return false;
	revoked = sf_revoke(c->app->sf, login_host, token, &err) == 0;
	if (!revoked)
		log_warn("revoke_failed", "org %lld: %s", org_id, err.code);
	crypto_free_secret(token);
	return revoked;
}

/*
 * Stores the new connection if the org rules allow it. On success
 * *old_refresh gets the replaced sealed refresh token (caller frees) and
 * *old_login_host its host.
 */
static void
store_connection(struct ctx *c, const struct oauth_state *st,
    const struct sf_token *tok, const struct sf_identity *id,
    struct outcome *out, char **old_refresh, char *old_host, size_t old_hostlen)
{
	struct integration	 integ = { .org_id = 0 };
	struct connection	 conn;
	char			 aad[128], *access_enc = NULL, *refresh_enc = NULL;
	int			 rc, locked = 0;

	sealed_aad(aad, sizeof(aad), st->org_id, "access_token");
	access_enc = crypto_seal(c->app->keyring, aad, tok->access_token);
	sealed_aad(aad, sizeof(aad), st->org_id, "refresh_token");
	refresh_enc = crypto_seal(c->app->keyring, aad, tok->refresh_token);
	if (access_enc == NULL || refresh_enc == NULL) {
		fail(out, 500, "internal", "internal", "could not seal the tokens");
		goto out;
	}
	locked = 1;
	if ((rc = db_begin(c->app->db)) != DB_OK ||
	    (rc = db_integration_lock(c->app->db, st->org_id,
	    c->app->cfg->refresh_lock_timeout_ms, &integ)) != DB_OK) {
		fail(out, 503, "service_unavailable", "service_unavailable",
		    "the database is unavailable");
		goto out;
	}
	if (integ.status != INTEG_DISCONNECTED &&
	    strcmp(integ.sf_org_id, id->org_id) != 0 && !st->allow_org_change) {
		fail(out, 409, "conflict", "org_mismatch", "this Salesforce org "
		    "is not the "
		    "connected one; connect again with allow_org_change to "
		    "switch orgs, or remove the integration first");
		goto out;
	}
	conn = (struct connection){
		.sf_org_id = id->org_id, .sf_user_id = id->user_id,
		.username = id->username, .display_name = id->display_name,
		.instance_url = tok->instance_url,
		.environment = st->environment, .login_host = st->login_host,
		.access_enc = access_enc, .refresh_enc = refresh_enc,
		.connected_by = st->actor, .issued_at_ms = tok->issued_at_ms,
	};
	if ((rc = db_integration_connect(c->app->db, st->org_id, &conn)) != DB_OK ||
	    audit_callback(c, st, "connected", NULL, id->org_id,
	    integ.sf_org_id) != DB_OK ||
	    events_emit(c->app, st->org_id, "integration.connected") != DB_OK ||
	    (rc = db_commit(c->app->db)) != DB_OK) {
		fail(out, 503, "service_unavailable", "service_unavailable",
		    "the database is unavailable");
		goto out;
	}
	locked = 0;
	out->ok = true;
	snprintf(out->org_id, sizeof(out->org_id), "%s", id->org_id);
	*old_refresh = integ.refresh_token_enc;
	integ.refresh_token_enc = NULL;
	snprintf(old_host, old_hostlen, "%s", integ.login_host);
out:
	if (locked)
		db_rollback(c->app->db);
	db_integration_clear(&integ);
	free(access_enc);
	free(refresh_enc);
}

/* Exchanges the code, checks the identity and stores; fills out. */
static void
complete_connect(struct ctx *c, const struct oauth_state *st, const char *code,
    struct outcome *out)
{
	struct sf_token		 tok = { .access_token = NULL };
	struct sf_identity	 id;
	struct sf_error		 err;
	char			 aad[128], *verifier = NULL;
	char			*old_refresh = NULL, old_host[256] = "";

	snprintf(aad, sizeof(aad), "state:%s:verifier", st->state_hash);
	if ((verifier = crypto_open(c->app->keyring, aad, st->verifier_enc)) == NULL) {
		fail(out, 500, "internal", "internal", "the state could not be "
		    "opened");
		goto out;
	}
	if (sf_exchange_code(c->app->sf, st->login_host, code, verifier, &tok,
	    &err) == -1) {
		fail_sf(out, &err);
		goto out;
	}
	if (tok.refresh_token == NULL) {
		fail(out, 502, "salesforce_error", "no_refresh_token",
		    "Salesforce issued no refresh "
		    "token: the app's OAuth scopes must include refresh_token "
		    "(offline_access)");
		goto revoke;
	}
	if (sf_identity(c->app->sf, &tok, &id, &err) == -1) {
		fail_sf(out, &err);
		goto revoke;
	}
	if (!id.active) {
		fail(out, 502, "salesforce_error", "inactive_user",
		    "the Salesforce user is not active");
		goto revoke;
	}
	store_connection(c, st, &tok, &id, out, &old_refresh, old_host,
	    sizeof(old_host));
	if (out->ok) {
		/* Salesforce keeps five approvals per user and app: free one. */
		revoke_sealed(c, st->org_id, old_host, old_refresh);
		goto out;
	}
revoke:
	if (sf_revoke(c->app->sf, st->login_host, tok.refresh_token ?
	    tok.refresh_token : tok.access_token, &err) == -1)
		log_warn("revoke_failed", "could not revoke the unused tokens: %s",
		    err.code);
out:
	crypto_free_secret(verifier);
	free(old_refresh);
	sf_token_clear(&tok);
}

void
h_callback(struct ctx *c)
{
	char			 state[128], code[512], error[64], desc[256];
	char			 state_hash[65];
	struct oauth_state	 st;
	struct outcome		 out = { .ok = false };
	int			 rc, has_state, has_code, has_error;

	has_state = http_query_param(c->req->query, "state", state, sizeof(state));
	has_code = http_query_param(c->req->query, "code", code, sizeof(code));
	has_error = http_query_param(c->req->query, "error", error, sizeof(error));
	if (http_query_param(c->req->query, "error_description", desc,
	    sizeof(desc)) != 1)
		desc[0] = '\0';
	if (has_state != 1 || state[0] == '\0') {
		api_error(c, 400, "invalid_state",
		    "the state is missing or unknown");
		return;
	}
	crypto_sha256_hex(state, strlen(state), state_hash);
	rc = db_state_consume(c->app->db, state_hash, &st);
	if (rc == DB_NOTFOUND) {
		api_error(c, 400, "invalid_state", "the state is unknown, "
		    "expired or already used: start the connection again");
		return;
	}
	if (rc != DB_OK) {
		api_db_error(c, rc);
		return;
	}
	snprintf(st.state_hash, sizeof(st.state_hash), "%s", state_hash);
	if (has_error == 1 || has_code != 1 || code[0] == '\0') {
		fail(&out, 400, "bad_request",
		    has_error == 1 ? error : "invalid_request",
		    desc[0] ? desc : "Salesforce did not authorize the connection");
		audit_callback(c, &st, strcmp(out.reason, "access_denied") == 0 ?
		    "connect_denied" : "connect_failed", out.reason, NULL, NULL);
	} else {
		complete_connect(c, &st, code, &out);
		if (!out.ok)
			audit_callback(c, &st, "connect_failed", out.reason,
			    NULL, NULL);
	}
	answer_callback(c, &st, &out);
	db_state_clear(&st);
}

/*
 * Under the org's row lock: revokes the refresh token (best effort), clears
 * the row and audits, in one transaction. A concurrent refresh cannot slip
 * a rotated token in between, and two removals audit once.
 */
static int
disconnect_locked(struct ctx *c, bool *revoked)
{
	struct integration	 integ = { .org_id = 0 };
	char			 actor[160], *detail = NULL;
	cJSON			*o;
	int			 rc;

	*revoked = false;
	if ((rc = db_begin(c->app->db)) != DB_OK ||
	    (rc = db_integration_lock(c->app->db, c->org.id,
	    c->app->cfg->refresh_lock_timeout_ms, &integ)) != DB_OK)
		goto out;
	if (integ.status == INTEG_DISCONNECTED) {
		rc = DB_OK;
		goto out;
	}
	*revoked = revoke_sealed(c, integ.org_id, integ.login_host,
	    integ.refresh_token_enc);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "salesforce_org_id", integ.sf_org_id);
	cJSON_AddBoolToObject(o, "revoked", *revoked);
	detail = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (detail == NULL) {
		rc = DB_ERROR;
		goto out;
	}
	if ((rc = db_integration_disconnect(c->app->db, c->org.id)) == DB_OK &&
	    (rc = db_audit_add(c->app->db, c->org.id, api_actor(c, actor,
	    sizeof(actor)), "disconnected", detail)) == DB_OK &&
	    (rc = events_emit(c->app, c->org.id,
	    "integration.disconnected")) == DB_OK)
		rc = db_commit(c->app->db);
out:
	db_rollback(c->app->db);
	db_integration_clear(&integ);
	free(detail);
	return rc;
}

void
h_disconnect(struct ctx *c)
{
	struct integration	 integ;
	bool			 revoked;
	cJSON			*o;
	int			 rc;

	if ((rc = disconnect_locked(c, &revoked)) != DB_OK ||
	    (rc = db_integration_get(c->app->db, c->org.id, &integ)) != DB_OK) {
		api_db_error(c, rc);
		return;
	}
	o = status_object(&integ);
	cJSON_AddBoolToObject(o, "revoked", revoked);
	db_integration_clear(&integ);
	api_json(c, 200, o);
}

/*
 * Connecting and disconnecting, the token writes of both: the callback's
 * code exchange and store, and the removal. Like lifecycle.c, whatever it
 * writes it writes under the org's row lock, and a COMMIT whose reply was
 * lost is resolved by reading the row again, never by guessing.
 */
#include <stdbool.h>
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
#include "log.h"
#include "secret.h"
#include "util.h"

int
lc_audit_connect(struct app *app, const struct oauth_state *st,
    const char *action, const char *reason, const char *sf_org_id,
    const char *previous)
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
		rc = db_audit_add(app->db, st->org_id, st->actor, action,
		    detail);
	cJSON_Delete(o);
	log_info(action, "org %lld: %s", st->org_id, reason ? reason :
	    sf_org_id ? sf_org_id : "");
	return rc;
}

/* Best-effort revoke of a sealed refresh token; true when it is dead now. */
static bool
revoke_sealed(struct app *app, long long org_id, const char *login_host,
    const char *sealed)
{
	struct sf_error	 err;
	char		 aad[128], *token;
	bool		 revoked;

	if (sealed == NULL)
		return false;
	sealed_aad(aad, sizeof(aad), org_id, "refresh_token");
	if ((token = keyring_open(app->keyring, aad, sealed)) == NULL)
		return false;
	revoked = sf_revoke(app->sf, login_host, token, &err) == 0;
	if (!revoked)
		log_warn("revoke_failed", "org %lld: %s", org_id, err.code);
	secret_free(token);
	return revoked;
}

static void
revoke_plain(struct app *app, const char *login_host, const char *token)
{
	struct sf_error	 err;

	if (token != NULL && sf_revoke(app->sf, login_host, token, &err) == -1)
		log_warn("revoke_failed", "could not revoke the unused tokens: %s",
		    err.code);
}

/*
 * After a COMMIT whose reply was lost: reads org_id's row again, waiting
 * for the database for at most LC_SAVE_BUDGET_MS. DB_OK with *row filled
 * (caller clears it), or DB_UNAVAILABLE.
 */
static int
read_row_again(struct app *app, long long org_id, struct integration *row)
{
	struct lc_look	 look;

	lc_look_start(&look);
	do {
		db_rollback(app->db);
		if (db_ensure(app->db) == DB_OK &&
		    db_integration_get(app->db, org_id, row) == DB_OK)
			return DB_OK;
	} while (lc_look_wait(&look));
	return DB_UNAVAILABLE;
}

/*
 * After a connect's COMMIT whose reply was lost: 1 when the row holds the
 * new refresh token (fingerprint fp: the commit landed), 0 when it
 * provably does not (its generation is still the one read under the lock
 * before), -1 when it cannot tell (the database stays away, or the row
 * moved on since): then nothing may be revoked.
 */
static int
connect_landed(struct app *app, long long org_id, long long generation_before,
    const char *fp)
{
	struct integration	 row = { .org_id = 0 };
	int			 landed = -1;

	if (read_row_again(app, org_id, &row) != DB_OK)
		return -1;
	if (strcmp(row.refresh_fp, fp) == 0)
		landed = 1;
	else if (row.token_generation == generation_before)
		landed = 0;
	db_integration_clear(&row);
	return landed;
}

/* After a disconnect's COMMIT whose reply was lost: DB_OK when it landed. */
static int
disconnect_landed(struct app *app, long long org_id)
{
	struct integration	 row = { .org_id = 0 };
	int			 rc;

	if ((rc = read_row_again(app, org_id, &row)) != DB_OK)
		return rc;
	rc = row.status == INTEG_DISCONNECTED ? DB_OK : DB_UNAVAILABLE;
	db_integration_clear(&row);
	return rc;
}

/*
 * Stores the new connection if the org rules allow it, in one transaction
 * with its audit. On LCC_OK *old_refresh gets the replaced sealed refresh
 * token (caller frees) and old_host its login host.
 */
static enum lc_connect_rc
store_connection(struct app *app, const struct oauth_state *st,
    const struct sf_token *tok, const struct sf_identity *id,
    char **old_refresh, char *old_host, size_t old_hostlen)
{
	struct integration	 integ = { .org_id = 0 };
	struct connection	 conn;
	enum lc_connect_rc	 lrc = LCC_DB_UNAVAILABLE;
	char			 aad[128], fp[17];
	char			*access_enc = NULL, *refresh_enc = NULL;
	int			 landed;

	sealed_aad(aad, sizeof(aad), st->org_id, "access_token");
	access_enc = keyring_seal(app->keyring, aad, tok->access_token);
	sealed_aad(aad, sizeof(aad), st->org_id, "refresh_token");
	refresh_enc = keyring_seal(app->keyring, aad, tok->refresh_token);
	crypto_fingerprint(tok->refresh_token, fp);
	if (access_enc == NULL || refresh_enc == NULL) {
		lrc = LCC_INTERNAL;
		goto revoke;
	}
	if (db_begin(app->db) != DB_OK ||
	    db_integration_lock(app->db, st->org_id,
	    app->cfg->refresh_lock_timeout_ms, &integ) != DB_OK)
		goto revoke;
	if (integ.status != INTEG_DISCONNECTED &&
	    strcmp(integ.sf_org_id, id->org_id) != 0 && !st->allow_org_change) {
		lrc = LCC_ORG_MISMATCH;
		goto revoke;
	}
	conn = (struct connection){
		.sf_org_id = id->org_id, .sf_user_id = id->user_id,
		.username = id->username, .display_name = id->display_name,
		.instance_url = tok->instance_url,
		.environment = st->environment, .login_host = st->login_host,
		.access_enc = access_enc, .refresh_enc = refresh_enc,
		.refresh_fp = fp, .connected_by = st->actor,
		.issued_at_ms = tok->issued_at_ms, .scope = tok->scope,
	};
	if (db_integration_connect(app->db, st->org_id, &conn) != DB_OK ||
	    lc_audit_connect(app, st, "connected", NULL, id->org_id,
	    integ.sf_org_id) != DB_OK ||
	    events_emit(app, st->org_id, "integration.connected") != DB_OK)
		goto revoke;
	if (db_commit(app->db) != DB_OK) {
		landed = connect_landed(app, st->org_id, integ.token_generation,
		    fp);
		log_warn("connect_commit_unknown", "org %lld: the commit's reply "
		    "was lost; the row says it %s", st->org_id, landed == 1 ?
		    "landed" : landed == 0 ? "did not land" : "cannot be told");
		if (landed == 0)
			goto revoke;
		if (landed == -1)
			goto out;	/* maybe stored: revoke nothing */
	}
	lrc = LCC_OK;
	*old_refresh = integ.refresh_token_enc;
	integ.refresh_token_enc = NULL;
	snprintf(old_host, old_hostlen, "%s", integ.login_host);
	goto out;
revoke:
	db_rollback(app->db);
	revoke_plain(app, st->login_host, tok->refresh_token);
out:
	db_rollback(app->db);
	db_integration_clear(&integ);
	free(access_enc);
	free(refresh_enc);
	return lrc;
}

/* true when scope (a space-separated list) has word, or what stands for it. */
static bool
scope_has(const char *scope, const char *word, size_t len)
{
	char	 w[64];

	if (len == 0 || len >= sizeof(w))
		return len == 0;
	memcpy(w, word, len);
	w[len] = '\0';
	if (cfg_word_in_list(scope, w))
		return true;
	/* Salesforce: the two names of one scope; "full" covers all but them. */
	if (strcmp(w, "refresh_token") == 0)
		return cfg_word_in_list(scope, "offline_access");
	if (strcmp(w, "offline_access") == 0)
		return cfg_word_in_list(scope, "refresh_token");
	return cfg_word_in_list(scope, "full");
}

/*
 * true when the granted scope covers every scope that salesforce_scope
 * asked for. An answer without a scope cannot be compared: it is taken.
 */
static bool
scope_granted(const struct app *app, const char *granted)
{
	const char	*p = app->cfg->salesforce_scope;
	size_t		 len;

	if (granted[0] == '\0')
		return true;
	for (; *p != '\0'; p += len) {
		while (*p == ' ' || *p == '\t')
			p++;
		len = strcspn(p, " \t");
		if (!scope_has(granted, p, len))
			return false;
	}
	return true;
}

enum lc_connect_rc
lc_connect(struct app *app, const struct oauth_state *st, const char *code,
    char sf_org_id[19], struct sf_error *err)
{
	struct sf_token		 tok = { .access_token = NULL };
	struct sf_identity	 id;
	enum lc_connect_rc	 lrc;
	char			 aad[128], *verifier = NULL;
	char			*old_refresh = NULL, old_host[256] = "";

	memset(err, 0, sizeof(*err));
	sf_org_id[0] = '\0';
	snprintf(aad, sizeof(aad), "state:%s:verifier", st->state_hash);
	if ((verifier = keyring_open(app->keyring, aad, st->verifier_enc)) == NULL) {
		lrc = LCC_STATE_UNREADABLE;
		goto out;
	}
	if (sf_exchange_code(app->sf, st->login_host, code, verifier, &tok,
	    err) == -1) {
		lrc = LCC_SALESFORCE;
		goto revoke;	/* a refused answer may have issued a grant */
	}
	if (tok.refresh_token == NULL) {
		lrc = LCC_NO_REFRESH_TOKEN;
		goto revoke;
	}
	if (!scope_granted(app, tok.scope)) {
		log_warn("insufficient_scope", "org %lld: Salesforce granted "
		    "\"%s\", less than salesforce_scope", st->org_id, tok.scope);
		lrc = LCC_INSUFFICIENT_SCOPE;
		goto revoke;
	}
	if (sf_identity(app->sf, &tok, &id, err) == -1) {
		lrc = LCC_SALESFORCE;
		goto revoke;
	}
	if (!id.active) {
		lrc = LCC_INACTIVE_USER;
		goto revoke;
	}
	lrc = store_connection(app, st, &tok, &id, &old_refresh, old_host,
	    sizeof(old_host));
	if (lrc == LCC_OK) {
		snprintf(sf_org_id, 19, "%s", id.org_id);
		/* Salesforce keeps five approvals per user and app: free one. */
		revoke_sealed(app, st->org_id, old_host, old_refresh);
	}
	goto out;
revoke:
	revoke_plain(app, st->login_host, tok.refresh_token ?
	    tok.refresh_token : tok.access_token);
out:
	secret_free(verifier);
	free(old_refresh);
	sf_token_clear(&tok);
	return lrc;
}

/*
 * Under the org's row lock: revokes the refresh token (best effort), clears
 * the row and audits, in one transaction. A concurrent refresh cannot slip
 * a rotated token in between, and two removals audit once. A db_rc.
 */
static int
disconnect_locked(struct app *app, long long org_id, const char *actor,
    bool *revoked)
{
	struct integration	 integ = { .org_id = 0 };
	char			*detail = NULL;
	cJSON			*o;
	int			 rc;

	*revoked = false;
	if ((rc = db_begin(app->db)) != DB_OK ||
	    (rc = db_integration_lock(app->db, org_id,
	    app->cfg->refresh_lock_timeout_ms, &integ)) != DB_OK)
		goto out;
	if (integ.status == INTEG_DISCONNECTED) {
		rc = DB_OK;
		goto out;
	}
	*revoked = revoke_sealed(app, integ.org_id, integ.login_host,
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
	if ((rc = db_integration_disconnect(app->db, org_id)) == DB_OK &&
	    (rc = db_audit_add(app->db, org_id, actor, "disconnected",
	    detail)) == DB_OK && (rc = events_emit(app, org_id,
	    "integration.disconnected")) == DB_OK &&
	    (rc = db_commit(app->db)) != DB_OK)
		rc = disconnect_landed(app, org_id);
out:
	db_rollback(app->db);
	db_integration_clear(&integ);
	free(detail);
	return rc;
}

enum lc_rc
lc_disconnect(struct app *app, long long org_id, const char *actor,
    bool *revoked)
{
	int	 rc = disconnect_locked(app, org_id, actor, revoked);

	if (rc == DB_OK)
		return LC_OK;
	return rc == DB_UNAVAILABLE || rc == DB_LOCK_TIMEOUT ? LC_DB_UNAVAILABLE :
	    LC_INTERNAL;
}

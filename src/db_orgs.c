/* The store: orgs, API keys, audit events, OAuth states, housekeeping. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "cache.h"
#include "crypto.h"
#include "db.h"
#include "db_internal.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* Orgs. */

/* Fills org from the four org columns of row starting at col0. */
static void
load_org_at(const PGresult *res, int row, int col0, struct org *org)
{
	org->id = dbi_ll_col(res, row, col0);
	dbi_copy_col(res, row, col0 + 1, org->slug, sizeof(org->slug));
	dbi_copy_col(res, row, col0 + 2, org->name, sizeof(org->name));
	org->created_at = (time_t)dbi_ll_col(res, row, col0 + 3);
}

static void
load_org(const PGresult *res, void *org)
{
	load_org_at(res, 0, 0, org);
}

enum db_rc
db_org_get(struct db *db, const char *slug, struct org *org)
{
	return dbi_get(db, ST_ORG_GET, 1, &slug, load_org, org);
}

enum db_rc
db_org_create(struct db *db, const char *slug, const char *name, struct org *org)
{
	const char	*params[2] = { slug, name };

	return dbi_get(db, ST_ORG_CREATE, 2, params, load_org, org);
}

enum db_rc
db_org_list(struct db *db, const char *after, int limit, cJSON *array)
{
	char		 lim[16];
	const char	*params[2] = { after ? after : "", lim };

	snprintf(lim, sizeof(lim), "%d", limit);
	return dbi_run_json_array(db, ST_ORG_LIST, 2, params, array);
}

/* API keys. */

/*
 * The key columns of ST_KEY_LOOKUP (and ST_AUTH_ORG) into who: DB_OK when
 * res holds one row whose hash equals hash_hex (in constant time).
 */
static enum db_rc
load_principal(const PGresult *res, const char *hash_hex, struct principal *who)
{
	char	 role[16];

	if (PQntuples(res) != 1 ||
	    !crypto_ct_streq(PQgetvalue(res, 0, 5), hash_hex))
		return DB_NOTFOUND;
	dbi_copy_col(res, 0, 0, who->key_id, sizeof(who->key_id));
	dbi_copy_col(res, 0, 1, role, sizeof(role));
	who->org_id = dbi_ll_col(res, 0, 2);
	dbi_copy_col(res, 0, 3, who->org_slug, sizeof(who->org_slug));
	dbi_copy_col(res, 0, 4, who->label, sizeof(who->label));
	return role_parse(role, &who->role) == 0 ? DB_OK : DB_NOTFOUND;
}

enum db_rc
db_key_lookup(struct db *db, const char *hash_hex, struct principal *who)
{
	PGresult	*res;
	enum db_rc	 rc = dbi_run(db, ST_KEY_LOOKUP, 1, &hash_hex, &res);

	if (rc != DB_OK)
		return rc;
	rc = load_principal(res, hash_hex, who);
	PQclear(res);
	return rc;
}

/* ST_AUTH_ORG's columns: the key's 6, the org's 4 at 6, INTEG_COLS at 10. */
#define AUTH_ORG_COL	6
#define AUTH_INTEG_COL	10

enum db_rc
db_auth_lookup(struct db *db, const char *hash_hex, const char *slug,
    bool want_integ, struct db_auth *out)
{
	const char	*params[3] = { hash_hex, slug != NULL ? slug : "",
			    want_integ ? "t" : "f" };
	PGresult	*res;
	enum db_rc	 rc;

	memset(out, 0, sizeof(*out));
	if ((rc = dbi_run(db, ST_AUTH_ORG, 3, params, &res)) != DB_OK)
		return rc;
	if ((rc = load_principal(res, hash_hex, &out->who)) != DB_OK)
		goto out;
	if (PQgetisnull(res, 0, AUTH_ORG_COL))
		goto out;
	load_org_at(res, 0, AUTH_ORG_COL, &out->org);
	out->has_org = true;
	if (PQgetisnull(res, 0, AUTH_INTEG_COL))
		goto out;
	/* A row that cannot be read is left to the handler's own read (a 500). */
	out->has_integ = dbi_load_integration(res, 0, AUTH_INTEG_COL,
	    &out->integ) == 0;
out:
	PQclear(res);
	return rc;
}

enum db_rc
db_auth_lookup_cached(struct db *db, const char *hash_hex, const char *slug,
    struct db_auth *out)
{
	double		 now = metrics_now();
	enum db_rc	 rc;

	if (db->cache_live && cache_get(db->cache, hash_hex, slug, now, out)) {
		metrics_read_cache(true);
		return DB_OK;
	}
	metrics_read_cache(false);
	rc = db_auth_lookup(db, hash_hex, slug, true, out);
	/* A reconnect during the read LISTENs again, or leaves it uncached. */
	if (rc == DB_OK && db->cache_live)
		cache_put(db->cache, hash_hex, slug, now, out);
	return rc;
}

void
db_auth_clear(struct db_auth *a)
{
	if (a->has_integ)
		db_integration_clear(&a->integ);
	a->has_integ = false;
}

enum db_rc
db_key_create(struct db *db, const char *id, long long org_id, enum role role,
    const char *label, const char *hash_hex, time_t *created_at)
{
	char		 org[24];
	const char	*params[5] = { id, org, role_name(role), label, hash_hex };
	PGresult	*res;
	enum db_rc	 rc;

	snprintf(org, sizeof(org), "%lld", org_id);
	if ((rc = dbi_run(db, ST_KEY_CREATE, 5, params, &res)) != DB_OK)
		return rc;
	*created_at = (time_t)dbi_ll_col(res, 0, 0);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_key_list(struct db *db, const char *org, const char *after, int limit,
    cJSON *array)
{
	char		 lim[16];
	const char	*params[3] = { after ? after : "", lim, org };

	snprintf(lim, sizeof(lim), "%d", limit);
	return dbi_run_json_array(db, org != NULL ? ST_KEY_LIST_ORG : ST_KEY_LIST,
	    org != NULL ? 3 : 2, params, array);
}

enum db_rc
db_key_revoke(struct db *db, const char *id)
{
	PGresult	*res;
	enum db_rc	 rc = dbi_run_row(db, ST_KEY_REVOKE, 1, &id, &res);

	if (rc == DB_OK)
		PQclear(res);
	return rc;
}


/* Audit. */

enum db_rc
db_audit_add(struct db *db, long long org_id, const char *actor,
    const char *action, const char *detail_json)
{
	char		 id[24];
	const char	*params[4] = { id, actor, action, detail_json };

	snprintf(id, sizeof(id), "%lld", org_id);
	return dbi_run_discard(db, ST_AUDIT_ADD, 4, params);
}

enum db_rc
db_audit_list(struct db *db, long long org_id, int limit, cJSON *array)
{
	char		 id[24], lim[16];
	const char	*params[2] = { id, lim };

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(lim, sizeof(lim), "%d", limit);
	return dbi_run_json_array(db, ST_AUDIT_LIST, 2, params, array);
}

/* OAuth states. */

/* Makes room for one more state of org (id text): at most DB_STATES_PER_ORG. */
static enum db_rc
state_cap(struct db *db, const char *org)
{
	char		 keep[16];
	const char	*params[2] = { org, keep };

	snprintf(keep, sizeof(keep), "%d", DB_STATES_PER_ORG - 1);
	return dbi_run_discard(db, ST_STATE_CAP, 2, params);
}

enum db_rc
db_state_create(struct db *db, const char *state_hash, long long org_id,
    const char *verifier_enc, const char *environment, const char *login_host,
    const char *return_to, bool allow_org_change, const char *actor,
    int ttl_s, const char *start_hash, const char *authorize_url_enc,
    time_t *expires_at)
{
	char		 org[24], ttl[16];
	const char	*params[11] = { state_hash, org, verifier_enc, environment,
			    login_host, return_to, allow_org_change ? "t" : "f",
			    actor, ttl, start_hash, authorize_url_enc };
	PGresult	*res;
	enum db_rc	 rc;

	snprintf(org, sizeof(org), "%lld", org_id);
	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	if ((rc = state_cap(db, org)) != DB_OK)
		return rc;
	if ((rc = dbi_run(db, ST_STATE_CREATE, 11, params, &res)) != DB_OK)
		return rc;
	*expires_at = (time_t)dbi_ll_col(res, 0, 0);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_state_consume(struct db *db, const char *state_hash, struct oauth_state *st)
{
	PGresult	*res;
	enum db_rc	 rc;

	memset(st, 0, sizeof(*st));
	if ((rc = dbi_run(db, ST_STATE_CONSUME, 1, &state_hash, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 7), "t") != 0) {
		PQclear(res);
		return DB_NOTFOUND;
	}
	st->org_id = dbi_ll_col(res, 0, 0);
	if ((st->verifier_enc = strdup(PQgetvalue(res, 0, 1))) == NULL)
		rc = DB_ERROR;
	dbi_copy_col(res, 0, 2, st->environment, sizeof(st->environment));
	dbi_copy_col(res, 0, 3, st->login_host, sizeof(st->login_host));
	dbi_copy_col(res, 0, 4, st->return_to, sizeof(st->return_to));
	st->allow_org_change = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
	dbi_copy_col(res, 0, 6, st->actor, sizeof(st->actor));
	dbi_copy_col(res, 0, 8, st->nonce_hash, sizeof(st->nonce_hash));
	PQclear(res);
	return rc;
}

void
db_state_clear(struct oauth_state *st)
{
	free(st->verifier_enc);
	st->verifier_enc = NULL;
}

enum db_rc
db_state_start(struct db *db, const char *start_hash, const char *nonce_hash,
    char state_hash[65], char **authorize_url_enc, long long *ttl_s)
{
	const char	*params[2] = { start_hash, nonce_hash };
	PGresult	*res;
	enum db_rc	 rc;

	*authorize_url_enc = NULL;
	if ((rc = dbi_run(db, ST_STATE_START, 2, params, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 1)) {
		PQclear(res);
		return DB_NOTFOUND;
	}
	dbi_copy_col(res, 0, 0, state_hash, 65);
	*ttl_s = dbi_ll_col(res, 0, 2);
	if ((*authorize_url_enc = strdup(PQgetvalue(res, 0, 1))) == NULL)
		rc = DB_ERROR;
	PQclear(res);
	return rc;
}


/* Housekeeping. */

/* Runs a DELETE; *n gets the number of rows it removed. */
static enum db_rc
run_delete(struct db *db, enum stmt st, int n_params,
    const char *const *params, long long *n)
{
	PGresult	*res;
	enum db_rc	 rc = dbi_run(db, st, n_params, params, &res);

	*n = 0;
	if (rc != DB_OK)
		return rc;
	*n = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_housekeeping(struct db *db, long audit_retention_days)
{
	char		 days[24], batch[16];
	const char	*params[2] = { days, batch };
	long long	 states = 0, events = 0, n;
	enum db_rc	 rc;

	if ((rc = run_delete(db, ST_STATE_PURGE, 0, NULL, &states)) != DB_OK ||
	    (rc = dbi_run_discard(db, ST_STATUS_COUNTS_COMPACT, 0, NULL)) != DB_OK)
		return rc;
	snprintf(days, sizeof(days), "%ld", audit_retention_days);
	snprintf(batch, sizeof(batch), "%d", DB_AUDIT_PRUNE_BATCH);
	for (int i = 0; audit_retention_days > 0 &&
	    i < DB_AUDIT_PRUNE_BATCHES; i++) {
		if ((rc = run_delete(db, ST_AUDIT_PRUNE, 2, params, &n)) != DB_OK)
			break;
		events += n;
		if (n < DB_AUDIT_PRUNE_BATCH)
			break;
	}
	if (states > 0 || events > 0)
		log_info("housekeeping", "%lld expired OAuth states purged, %lld "
		    "audit events older than %ld days pruned", states, events,
		    audit_retention_days);
	return rc;
}

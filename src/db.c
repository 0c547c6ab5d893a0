/* The store: all of sfconnect's SQL, as prepared statements. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "crypto.h"
#include "db.h"
#include "log.h"
#include "migrations.h"
#include "util.h"

#define TS(col)	"coalesce(extract(epoch from " col ")::bigint, 0)"
#define TXT(col) "coalesce(" col ", '')"
#define JSON_TS(col) "to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The columns read into a struct integration, in load_integration's order. */
#define INTEG_COLS \
	"i.org_id, o.slug, i.status, " TXT("i.sf_org_id") ", " \
	TXT("i.sf_user_id") ", " TXT("i.sf_username") ", " \
	TXT("i.sf_display_name") ", " TXT("i.instance_url") ", " \
	TXT("i.environment") ", " TXT("i.login_host") ", " \
	TXT("i.connected_by") ", " TXT("i.previous_sf_org_id") ", " \
	"i.access_token_enc, i.refresh_token_enc, i.token_generation, " \
	TS("i.issued_at") ", " TS("i.connected_at") ", " \
	TS("i.last_refreshed_at") ", " TS("i.last_checked_at") ", " \
	TXT("i.last_error_kind") ", " TXT("i.last_error_code") ", " \
	TXT("i.last_error_message") ", " TS("i.last_error_at") ", " \
	"i.failure_count, " TS("i.next_retry_at") ", " TS("clock_timestamp()") \
	", " TXT("i.refresh_token_fp")

/* A key as the key lists show it (never its hash); k is api_keys, o orgs. */
#define KEY_JSON \
	"json_build_object('id', k.id, 'org', o.slug, 'role', k.role, " \
	"'label', k.label, 'created_at', " JSON_TS("k.created_at") ", " \
	"'revoked_at', " JSON_TS("k.revoked_at") ")"
/*
 * Keys after the key whose id is param p in (created_at, id) order: all of
 * them when p is '', none when p names no key (a page always ends).
 */
#define KEY_AFTER(p) \
	"(k.created_at, k.id) > (CASE WHEN " p " = '' THEN " \
	"'-infinity'::timestamptz ELSE coalesce((SELECT c.created_at FROM " \
	"api_keys c WHERE c.id = " p "), 'infinity') END, " p ")"

enum stmt {
	ST_PING,
	ST_KEY_LOOKUP,
	ST_ORG_GET,
	ST_ORG_CREATE,
	ST_ORG_LIST,
	ST_KEY_CREATE,
	ST_KEY_LIST,
	ST_KEY_LIST_ORG,
	ST_KEY_REVOKE,
	ST_INTEG_GET,
	ST_INTEG_LIST,
	ST_AUDIT_ADD,
	ST_AUDIT_LIST,
	ST_STATE_CREATE,
	ST_STATE_CONSUME,
	ST_STATE_CAP,
	ST_STATE_PURGE,
	ST_AUDIT_PRUNE,
	ST_INTEG_LOCK,
	ST_INTEG_CONNECT,
	ST_INTEG_DISCONNECT,
	ST_INTEG_CLAIM,
	ST_INTEG_REFRESHED,
	ST_INTEG_FAILED,
	ST_INTEG_ROTATED,
	ST_INTEG_STAMP,
	ST_NOW,
	ST_STATUS_COUNTS,
	ST_SEALED_ORGS,
	ST_INTEG_RESEAL,
	ST_OUTBOX_ADD,
	ST_OUTBOX_CLAIM,
	ST_OUTBOX_RECORD,
	ST_OUTBOX_LIST,
	ST_OUTBOX_RETRY,
	ST_OUTBOX_GAUGES,
	ST_OUTBOX_COUNTS,
	ST_OUTBOX_NEXT_DUE,
	ST__MAX
};

static const char *const stmt_sql[ST__MAX] = {
	[ST_PING] = "SELECT 1",
	[ST_KEY_LOOKUP] =
	    "SELECT k.id, k.role, coalesce(k.org_id, 0), " TXT("o.slug") ", "
	    "k.label, k.key_hash FROM api_keys k "
	    "LEFT JOIN orgs o ON o.id = k.org_id "
	    "WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
	[ST_ORG_GET] =
	    "SELECT id, slug, name, " TS("created_at") " FROM orgs "
	    "WHERE slug = $1",
	[ST_ORG_CREATE] =
	    "WITH o AS (INSERT INTO orgs (slug, name) VALUES ($1, $2) "
	    "  RETURNING id, slug, name, created_at), "
	    "i AS (INSERT INTO integrations (org_id) SELECT id FROM o) "
	    "SELECT id, slug, name, " TS("created_at") " FROM o",
	[ST_ORG_LIST] =
	    "SELECT coalesce(json_agg(json_build_object('slug', slug, "
	    "'name', name, 'created_at', " JSON_TS("created_at") ") "
	    "ORDER BY slug), '[]') FROM (SELECT * FROM orgs "
	    "WHERE slug > $1 ORDER BY slug LIMIT $2) s",
	[ST_KEY_CREATE] =
	    "INSERT INTO api_keys (id, org_id, role, label, key_hash) "
	    "VALUES ($1, nullif($2::bigint, 0), $3, $4, $5) "
	    "RETURNING " TS("created_at"),
	/* Keyset pages in creation order; the cursor is the last key's id. */
	[ST_KEY_LIST] =
	    "SELECT coalesce(json_agg(" KEY_JSON " ORDER BY k.created_at, k.id), "
	    "'[]') FROM (SELECT * FROM api_keys k WHERE " KEY_AFTER("$1")
	    " ORDER BY k.created_at, k.id LIMIT $2) k "
	    "LEFT JOIN orgs o ON o.id = k.org_id",
	[ST_KEY_LIST_ORG] =
	    "SELECT coalesce(json_agg(" KEY_JSON " ORDER BY k.created_at, k.id), "
	    "'[]') FROM (SELECT * FROM api_keys k "
	    "WHERE k.org_id = (SELECT id FROM orgs WHERE slug = $3) AND "
	    KEY_AFTER("$1") " ORDER BY k.created_at, k.id LIMIT $2) k "
	    "LEFT JOIN orgs o ON o.id = k.org_id",
	[ST_KEY_REVOKE] =
	    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
	    "WHERE id = $1 RETURNING id",
	[ST_INTEG_GET] =
	    "SELECT " INTEG_COLS " FROM integrations i "
	    "JOIN orgs o ON o.id = i.org_id WHERE i.org_id = $1",
	[ST_INTEG_LIST] =
	    "SELECT " INTEG_COLS " FROM integrations i "
	    "JOIN orgs o ON o.id = i.org_id "
	    "WHERE o.slug > $1 AND ($2 = '' OR i.status = $2) "
	    "ORDER BY o.slug LIMIT $3",
	[ST_AUDIT_ADD] =
	    "INSERT INTO audit_events (org_id, actor, action, detail) "
	    "VALUES ($1, $2, $3, $4::jsonb)",
	[ST_AUDIT_LIST] =
	    "SELECT coalesce(json_agg(json_build_object('at', " JSON_TS("at")
	    ", 'actor', actor, 'action', action, 'detail', detail) "
	    "ORDER BY id DESC), '[]') FROM (SELECT * FROM audit_events "
	    "WHERE org_id = $1 ORDER BY id DESC LIMIT $2) e",
	[ST_STATE_CREATE] =
	    "INSERT INTO oauth_states (state_hash, org_id, verifier_enc, "
	    "environment, login_host, return_to, allow_org_change, actor, "
	    "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
	    "now() + make_interval(secs => $9)) RETURNING " TS("expires_at"),
	/* Atomic single use: a replay finds nothing to delete. */
	[ST_STATE_CONSUME] =
	    "DELETE FROM oauth_states WHERE state_hash = $1 "
	    "RETURNING org_id, verifier_enc, environment, login_host, "
	    "return_to, allow_org_change, actor, expires_at > now()",
	/* Before a create: the org's expired states, and all but its newest $2. */
	[ST_STATE_CAP] =
	    "DELETE FROM oauth_states WHERE org_id = $1 AND (expires_at < now() "
	    "OR state_hash IN (SELECT state_hash FROM oauth_states "
	    "WHERE org_id = $1 ORDER BY created_at DESC, state_hash OFFSET $2))",
	[ST_STATE_PURGE] =
	    "DELETE FROM oauth_states WHERE expires_at < now()",
	/* One small batch, oldest first, so no statement holds locks for long. */
	[ST_AUDIT_PRUNE] =
	    "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events "
	    "WHERE at < now() - make_interval(days => $1::int) ORDER BY at "
	    "LIMIT $2)",
	[ST_INTEG_LOCK] =
	    "SELECT " INTEG_COLS " FROM integrations i "
	    "JOIN orgs o ON o.id = i.org_id WHERE i.org_id = $1 "
	    "FOR UPDATE OF i",
	[ST_INTEG_CONNECT] =
	    "UPDATE integrations SET status = 'connected', "
	    "previous_sf_org_id = CASE WHEN sf_org_id IS DISTINCT FROM $2 "
	    "  THEN nullif(coalesce(sf_org_id, previous_sf_org_id), $2) "
	    "  ELSE previous_sf_org_id END, "
	    "sf_org_id = $2, sf_user_id = $3, sf_username = $4, "
	    "sf_display_name = $5, instance_url = $6, environment = $7, "
	    "login_host = $8, access_token_enc = $9, refresh_token_enc = $10, "
	    "refresh_token_fp = $13, token_generation = token_generation + 1, "
	    "issued_at = to_timestamp($11::double precision / 1000), "
	    "connected_at = now(), connected_by = $12, "
	    "last_refreshed_at = now(), last_checked_at = now(), "
	    "last_error_kind = NULL, last_error_code = NULL, "
	    "last_error_message = NULL, last_error_at = NULL, "
	    "failure_count = 0, next_retry_at = NULL, updated_at = now() "
	    "WHERE org_id = $1",
	[ST_INTEG_DISCONNECT] =
	    "UPDATE integrations SET status = 'disconnected', "
	    "previous_sf_org_id = coalesce(sf_org_id, previous_sf_org_id), "
	    "sf_org_id = NULL, sf_user_id = NULL, sf_username = NULL, "
	    "sf_display_name = NULL, instance_url = NULL, environment = NULL, "
	    "login_host = NULL, access_token_enc = NULL, "
	    "refresh_token_enc = NULL, refresh_token_fp = NULL, "
	    "issued_at = NULL, connected_at = NULL, "
	    "connected_by = NULL, last_refreshed_at = NULL, "
	    "last_checked_at = NULL, last_error_kind = NULL, "
	    "last_error_code = NULL, last_error_message = NULL, "
	    "last_error_at = NULL, failure_count = 0, next_retry_at = NULL, "
	    "updated_at = now() WHERE org_id = $1",
	/*
 * Orgs due for a check, locked; rows another process holds are skipped.
 * A check stamps last_checked_at with clock_timestamp(), not the start of
 * its (batch) transaction, so a slow batch cannot look older than it is.
 */
	[ST_INTEG_CLAIM] =
	    "SELECT " INTEG_COLS " FROM integrations i "
	    "JOIN orgs o ON o.id = i.org_id "
	    "WHERE i.status = ANY($1::text[]) "
	    "AND (i.last_checked_at IS NULL "
	    "  OR i.last_checked_at < to_timestamp($2::double precision) "
	    "  OR ($4 = 't' AND i.status = 'degraded' "
	    "      AND i.next_retry_at <= now())) "
	    "ORDER BY i.last_checked_at NULLS FIRST, i.org_id LIMIT $3 "
	    "FOR UPDATE OF i SKIP LOCKED",
	[ST_INTEG_REFRESHED] =
	    "UPDATE integrations SET status = 'connected', "
	    "access_token_enc = $2, "
	    "refresh_token_enc = coalesce($3, refresh_token_enc), "
	    "refresh_token_fp = CASE WHEN $3 IS NULL THEN refresh_token_fp "
	    "  ELSE $7 END, "
	    "instance_url = $4, "
	    "issued_at = to_timestamp($5::double precision / 1000), "
	    "token_generation = token_generation + 1, "
	    "last_refreshed_at = clock_timestamp(), "
	    "last_checked_at = clock_timestamp(), "
	    "last_error_kind = NULL, last_error_code = NULL, "
	    "last_error_message = NULL, last_error_at = NULL, "
	    "failure_count = 0, next_retry_at = NULL, updated_at = now() "
	    "WHERE org_id = $1 AND status <> 'disconnected' "
	    "AND token_generation = $6 RETURNING token_generation",
	[ST_INTEG_FAILED] =
	    "UPDATE integrations SET status = $2, last_error_kind = $3, "
	    "last_error_code = $4, last_error_message = $5, "
	    "last_error_at = clock_timestamp(), "
	    "last_checked_at = clock_timestamp(), "
	    "failure_count = failure_count + 1, "
	    "next_retry_at = CASE WHEN $2 = 'degraded' THEN clock_timestamp() "
	    "  + make_interval(secs => $6::double precision) END, "
	    "updated_at = now() WHERE org_id = $1 AND status <> 'disconnected'",
	/* A rotated refresh token kept from an answer refused otherwise. */
	[ST_INTEG_ROTATED] =
	    "UPDATE integrations SET refresh_token_enc = $2, "
	    "refresh_token_fp = $3, updated_at = now() "
	    "WHERE org_id = $1 AND status <> 'disconnected' "
	    "AND token_generation = $4 RETURNING org_id",
	/* The last resort when an outcome cannot be written: try again later. */
	[ST_INTEG_STAMP] =
	    "UPDATE integrations SET last_checked_at = clock_timestamp(), "
	    "next_retry_at = clock_timestamp() + make_interval(secs => "
	    "$2::double precision), updated_at = now() "
	    "WHERE org_id = $1 AND status <> 'disconnected'",
	[ST_NOW] = "SELECT extract(epoch from clock_timestamp())::text",
	[ST_SEALED_ORGS] =
	    "SELECT org_id FROM integrations WHERE access_token_enc IS NOT NULL "
	    "OR refresh_token_enc IS NOT NULL ORDER BY org_id",
	[ST_INTEG_RESEAL] =
	    "UPDATE integrations SET access_token_enc = $2, "
	    "refresh_token_enc = $3, updated_at = now() WHERE org_id = $1",
	[ST_STATUS_COUNTS] =
	    "SELECT s.status, count(i.org_id) FROM unnest(ARRAY['disconnected', "
	    "'connected', 'degraded', 'invalid']) AS s(status) "
	    "LEFT JOIN integrations i ON i.status = s.status GROUP BY s.status "
	    "ORDER BY s.status",
	/* The NOTIFY is sent at commit: a delivering sfconnectd wakes up. */
	[ST_OUTBOX_ADD] =
	    "WITH e AS (INSERT INTO webhook_outbox (event_id, org_id, type, body) "
	    "VALUES ($1, $2, $3, $4) RETURNING id) "
	    "SELECT pg_notify('" DB_WEBHOOK_CHANNEL "', '') FROM e",
	/*
	 * Claims due events, at most one per org (the oldest pending one, so
	 * an org's events arrive in order), and leases them: another host
	 * skips them until next_attempt_at, the lease's end, has passed.
	 */
	[ST_OUTBOX_CLAIM] =
	    "UPDATE webhook_outbox w SET attempts = w.attempts + 1, "
	    "last_attempt_at = clock_timestamp(), next_attempt_at = "
	    "clock_timestamp() + make_interval(secs => $2::double precision) "
	    "WHERE w.id IN (SELECT o.id FROM webhook_outbox o "
	    "  WHERE o.status = 'pending' AND o.next_attempt_at <= clock_timestamp() "
	    "  AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE "
	    "    p.org_id = o.org_id AND p.status = 'pending' AND p.id < o.id) "
	    "  ORDER BY o.id LIMIT $1 FOR UPDATE SKIP LOCKED) "
	    "RETURNING w.id, w.event_id, w.org_id, w.type, w.body, w.attempts, "
	    "extract(epoch from clock_timestamp() - w.created_at)::text",
	/*
	 * The outcome of a claimed attempt ($2: the attempts value of that
	 * claim; a row claimed again since, by another host, is left alone).
	 */
	[ST_OUTBOX_RECORD] =
	    "WITH u AS (UPDATE webhook_outbox SET "
	    "status = CASE WHEN $3 = 'delivered' THEN 'delivered' "
	    "  WHEN clock_timestamp() + make_interval(secs => $6::double precision) "
	    "  > window_start + make_interval(secs => $7::double precision) "
	    "  THEN 'failed' ELSE 'pending' END, "
	    "delivered_at = CASE WHEN $3 = 'delivered' THEN clock_timestamp() END, "
	    "next_attempt_at = CASE WHEN $3 = 'delivered' THEN next_attempt_at "
	    "  ELSE clock_timestamp() + make_interval(secs => $6::double precision) END, "
	    "last_http_status = nullif($4::integer, 0), last_error = nullif($5, '') "
	    "WHERE id = $1 AND attempts = $2 AND status = 'pending' "
	    "RETURNING status), "
	    "c AS (INSERT INTO webhook_attempt_counts (outcome, n) "
	    "  SELECT x.outcome, 1 FROM u, unnest(CASE WHEN u.status = 'failed' "
	    "  THEN ARRAY[$3::text, 'failed'] ELSE ARRAY[$3::text] END) AS x(outcome) "
	    "  ON CONFLICT (outcome) DO UPDATE SET n = webhook_attempt_counts.n + 1) "
	    "SELECT status FROM u",
	[ST_OUTBOX_LIST] =
	    "SELECT coalesce(json_agg(json_build_object('id', w.id::text, "
	    "'event_id', w.event_id, 'type', w.type, 'org', o.slug, "
	    "'status', w.status, 'attempts', w.attempts, "
	    "'created_at', " JSON_TS("w.created_at") ", "
	    "'last_attempt_at', " JSON_TS("w.last_attempt_at") ", "
	    "'next_attempt_at', CASE WHEN w.status = 'pending' THEN "
	    JSON_TS("w.next_attempt_at") " END, "
	    "'delivered_at', " JSON_TS("w.delivered_at") ", "
	    "'last_http_status', w.last_http_status, 'last_error', w.last_error) "
	    "ORDER BY w.id), '[]') FROM (SELECT * FROM webhook_outbox "
	    "WHERE id > $1 AND ($2 = '' OR status = $2) ORDER BY id LIMIT $3) w "
	    "JOIN orgs o ON o.id = w.org_id",
	/* $1 '': every failed event; else one event by id or event id. */
	[ST_OUTBOX_RETRY] =
	    "UPDATE webhook_outbox SET status = 'pending', "
	    "next_attempt_at = now(), window_start = now(), delivered_at = NULL "
	    "WHERE status <> 'pending' AND (($1 = '' AND status = 'failed') "
	    "OR ($1 <> '' AND (event_id = $1 OR id::text = $1))) RETURNING id",
	[ST_OUTBOX_GAUGES] =
	    "SELECT (SELECT count(*) FROM webhook_outbox WHERE status = 'pending'), "
	    "(SELECT count(*) FROM webhook_outbox WHERE status = 'failed'), "
	    "coalesce((SELECT extract(epoch from now() - created_at) "
	    "  FROM webhook_outbox WHERE status = 'pending' ORDER BY id LIMIT 1), "
	    "  0)::text",
	/* Seconds until the next claimable event is due (NULL: none). */
	[ST_OUTBOX_NEXT_DUE] =
	    "SELECT extract(epoch from min(o.next_attempt_at) - clock_timestamp())"
	    "::text FROM webhook_outbox o WHERE o.status = 'pending' "
	    "AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE "
	    "p.org_id = o.org_id AND p.status = 'pending' AND p.id < o.id)",
	[ST_OUTBOX_COUNTS] =
	    "SELECT s.outcome, coalesce(c.n, 0) FROM unnest(ARRAY['delivered', "
	    "'rejected', 'error', 'failed']) AS s(outcome) "
	    "LEFT JOIN webhook_attempt_counts c ON c.outcome = s.outcome "
	    "ORDER BY s.outcome",
};

/*
 * Reads that may be retried once on a fresh connection when the old one
 * turns out to be dead (e.g. the server restarted while we were idle).
 */
static const bool stmt_is_read[ST__MAX] = {
	[ST_PING] = true, [ST_KEY_LOOKUP] = true,
	[ST_ORG_GET] = true, [ST_ORG_LIST] = true, [ST_KEY_LIST] = true,
	[ST_KEY_LIST_ORG] = true,
	[ST_INTEG_GET] = true, [ST_INTEG_LIST] = true, [ST_AUDIT_LIST] = true,
	[ST_NOW] = true, [ST_STATUS_COUNTS] = true,
	[ST_OUTBOX_LIST] = true, [ST_OUTBOX_GAUGES] = true,
	[ST_OUTBOX_COUNTS] = true, [ST_OUTBOX_NEXT_DUE] = true,
};

/* How the integrations.status column spells each status. */
static const char *const pg_status[INTEG__MAX] = {
	[INTEG_DISCONNECTED] = "disconnected",
	[INTEG_CONNECTED] = "connected",
	[INTEG_DEGRADED] = "degraded",
	[INTEG_INVALID] = "invalid",
};

struct db {
	PGconn	*conn;
	char	*conninfo;
	bool	 prepared[ST__MAX];
	bool	 listening;	/* LISTEN again after a reconnect */
};

static enum db_rc	 exec_simple(struct db *db, const char *sql);

static PGconn *
connect_db(const char *conninfo)
{
	/* Later keywords win: the caller's conninfo may override these. */
	const char *const keys[] = { "connect_timeout", "application_name",
	    "options", "dbname", NULL };
	const char *const values[] = { "3", "sfconnect",
	    "-c statement_timeout=30000", conninfo, NULL };

	return PQconnectdbParams(keys, values, 1);
}

struct db *
db_new(const char *conninfo)
{
	struct db	*db;

	if ((db = calloc(1, sizeof(*db))) == NULL)
		return NULL;
	if ((db->conninfo = strdup(conninfo)) == NULL) {
		free(db);
		return NULL;
	}
	db->conn = connect_db(conninfo);
	return db;
}

struct db *
db_open(const char *conninfo, char *err, size_t errlen)
{
	struct db	*db;

	if ((db = db_new(conninfo)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (PQstatus(db->conn) != CONNECTION_OK) {
		snprintf(err, errlen, "database: %s", PQerrorMessage(db->conn));
		err[strcspn(err, "\n")] = '\0';
		db_close(db);
		return NULL;
	}
	return db;
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	PQfinish(db->conn);
	free(db->conninfo);
	free(db);
}

enum db_rc
db_ensure(struct db *db)
{
	if (PQstatus(db->conn) == CONNECTION_OK &&
	    PQtransactionStatus(db->conn) == PQTRANS_IDLE &&
	    !PQconsumeInput(db->conn))
		log_warn("db_lost", "database connection lost; reconnecting");
	if (PQstatus(db->conn) == CONNECTION_OK)
		return DB_OK;
	memset(db->prepared, 0, sizeof(db->prepared));
	PQfinish(db->conn);
	db->conn = connect_db(db->conninfo);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		log_warn("db_unavailable", "cannot reach the database");
		return DB_UNAVAILABLE;
	}
	log_info("db_reconnected", "database connection re-established");
	if (db->listening &&
	    exec_simple(db, "LISTEN " DB_WEBHOOK_CHANNEL) != DB_OK)
		return DB_UNAVAILABLE;
	return DB_OK;
}

/* Classifies a failed result. */
static enum db_rc
result_rc(struct db *db, const PGresult *res)
{
	const char	*state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(db->conn) != CONNECTION_OK ||
	    (state != NULL && (strncmp(state, "08", 2) == 0 ||
	    strncmp(state, "57P", 3) == 0)))
		return DB_UNAVAILABLE;
	if (state != NULL && strcmp(state, "23505") == 0)
		return DB_CONFLICT;
	if (state != NULL && strcmp(state, "55P03") == 0)
		return DB_LOCK_TIMEOUT;
	log_error("db_error", "%s: %s", state ? state : "-",
	    res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
	return DB_ERROR;
}

/*
 * Runs prepared statement st (preparing it on first use). On success
 * *out holds the result (caller clears). Returns a db_rc.
 */
static enum db_rc
run_once(struct db *db, enum stmt st, int n, const char *const *params,
    PGresult **out)
{
	char		 name[16];
	PGresult	*res;
	enum db_rc	 rc;

	*out = NULL;
	snprintf(name, sizeof(name), "s%d", (int)st);
	if (!db->prepared[st]) {
		res = PQprepare(db->conn, name, stmt_sql[st], 0, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			rc = result_rc(db, res);
			PQclear(res);
			return rc;
		}
		PQclear(res);
		db->prepared[st] = true;
	}
	res = PQexecPrepared(db->conn, name, n, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK &&
	    PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = result_rc(db, res);
		PQclear(res);
		return rc;
	}
	*out = res;
	return DB_OK;
}

static enum db_rc
run(struct db *db, enum stmt st, int n, const char *const *params,
    PGresult **out)
{
	bool		 idle = PQtransactionStatus(db->conn) == PQTRANS_IDLE;
	enum db_rc	 rc = run_once(db, st, n, params, out);

	if (rc == DB_UNAVAILABLE && idle && stmt_is_read[st] &&
	    db_ensure(db) == DB_OK)
		rc = run_once(db, st, n, params, out);
	return rc;
}

/* Runs a statement whose rows, if any, nobody reads. */
static enum db_rc
run_discard(struct db *db, enum stmt st, int n, const char *const *params)
{
	PGresult	*res;
	enum db_rc	 rc = run(db, st, n, params, &res);

	PQclear(res);
	return rc;
}

static enum db_rc
exec_simple(struct db *db, const char *sql)
{
	PGresult	*res = PQexec(db->conn, sql);
	enum db_rc	 rc = DB_OK;

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = result_rc(db, res);
	PQclear(res);
	return rc;
}

enum db_rc
db_begin(struct db *db)
{
	return exec_simple(db, "BEGIN");
}

/* A COMMIT of a failed transaction "succeeds" with the tag ROLLBACK. */
enum db_rc
db_commit(struct db *db)
{
	PGresult	*res = PQexec(db->conn, "COMMIT");
	enum db_rc	 rc = DB_OK;

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = result_rc(db, res);
	else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		log_error("db_error", "the transaction was rolled back");
		rc = DB_ERROR;
	}
	PQclear(res);
	return rc;
}

enum db_rc
db_end_request(struct db *db)
{
	if (PQtransactionStatus(db->conn) == PQTRANS_IDLE ||
	    PQtransactionStatus(db->conn) == PQTRANS_UNKNOWN)
		return DB_OK;
	log_error("db_error", "a transaction was left open: rolled back");
	db_rollback(db);
	return DB_ERROR;
}

void
db_rollback(struct db *db)
{
	if (PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		(void)exec_simple(db, "ROLLBACK");
}

enum db_rc
db_ping(struct db *db)
{
	PGresult	*res;
	enum db_rc	 rc = run(db, ST_PING, 0, NULL, &res);

	PQclear(res);
	return rc;
}

static void
copy_col(const PGresult *res, int row, int col, char *dst, size_t dstlen)
{
	snprintf(dst, dstlen, "%s", PQgetvalue(res, row, col));
}

static long long
ll_col(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Parses the one-row, one-column JSON array result into array's items. */
static enum db_rc
append_json_array(const PGresult *res, cJSON *array)
{
	cJSON	*parsed, *item;

	if (PQntuples(res) != 1 ||
	    (parsed = cJSON_Parse(PQgetvalue(res, 0, 0))) == NULL)
		return DB_ERROR;
	while ((item = cJSON_DetachItemFromArray(parsed, 0)) != NULL)
		cJSON_AddItemToArray(array, item);
	cJSON_Delete(parsed);
	return DB_OK;
}

/*
 * Runs st, whose single row holds a JSON array, and appends that array's
 * items to array.
 */
static enum db_rc
run_json_array(struct db *db, enum stmt st, int n, const char *const *params,
    cJSON *array)
{
	PGresult	*res;
	enum db_rc	 rc;

	if ((rc = run(db, st, n, params, &res)) != DB_OK)
		return rc;
	rc = append_json_array(res, array);
	PQclear(res);
	return rc;
}

/* Migrations. */

static enum db_rc
apply_migration(struct db *db, const struct migration *m, char *err,
    size_t errlen)
{
	PGresult	*res = NULL;
	char		 version[16];
	const char	*params[2] = { version, m->name };
	enum db_rc	 rc;

	snprintf(version, sizeof(version), "%d", m->version);
	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	if ((rc = exec_simple(db, "LOCK TABLE schema_migrations IN EXCLUSIVE MODE")) != DB_OK)
		goto out;
	res = PQexecParams(db->conn, "SELECT 1 FROM schema_migrations "
	    "WHERE version = $1", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = result_rc(db, res);
		goto out;
	}
	if (PQntuples(res) == 1) {
		rc = DB_OK;	/* applied meanwhile by another process */
		goto out;
	}
	if ((rc = exec_simple(db, m->sql)) != DB_OK) {
		snprintf(err, errlen, "migration %s failed", m->name);
		goto out;
	}
	PQclear(res);
	res = PQexecParams(db->conn, "INSERT INTO schema_migrations "
	    "(version, name) VALUES ($1, $2)", 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = result_rc(db, res);
		goto out;
	}
	rc = db_commit(db);
	if (rc == DB_OK)
		printf("applied %s\n", m->name);
out:
	PQclear(res);
	if (rc != DB_OK)
		db_rollback(db);
	return rc;
}

static enum db_rc
schema_version(struct db *db, int *version)
{
	PGresult	*res;
	enum db_rc	 rc;

	res = PQexec(db->conn, "SELECT coalesce(max(version), 0) FROM "
	    "schema_migrations");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* 42P01: no migrations table yet, an empty database. */
		rc = state != NULL && strcmp(state, "42P01") == 0 ? DB_NOTFOUND :
		    result_rc(db, res);
		PQclear(res);
		*version = 0;
		return rc;
	}
	*version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_migrate(struct db *db, char *err, size_t errlen)
{
	int		 current, latest = migrations[n_migrations - 1].version;
	enum db_rc	 rc;

	rc = exec_simple(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    "version integer PRIMARY KEY, name text NOT NULL, "
	    "applied_at timestamptz NOT NULL DEFAULT now())");
	if (rc != DB_OK && rc != DB_CONFLICT) {
		snprintf(err, errlen, "cannot create schema_migrations");
		return rc;
	}
	if ((rc = schema_version(db, &current)) != DB_OK) {
		snprintf(err, errlen, "cannot read the schema version");
		return rc;
	}
	if (current > latest) {
		snprintf(err, errlen, "the database schema (version %d) is newer "
		    "than this binary (version %d): refusing to migrate",
		    current, latest);
		return DB_ERROR;
	}
	for (int i = 0; i < n_migrations; i++) {
		if (migrations[i].version <= current)
			continue;
		if ((rc = apply_migration(db, &migrations[i], err, errlen)) != DB_OK) {
			if (err[0] == '\0')
				snprintf(err, errlen, "migration %s failed",
				    migrations[i].name);
			return rc;
		}
	}
	printf("schema at version %d\n", latest);
	return DB_OK;
}

enum db_rc
db_schema_check(struct db *db, char *err, size_t errlen)
{
	int		 current, latest = migrations[n_migrations - 1].version;
	enum db_rc	 rc;

	if ((rc = schema_version(db, &current)) == DB_UNAVAILABLE) {
		snprintf(err, errlen, "database unavailable");
		return rc;
	}
	if (current != latest) {
		snprintf(err, errlen, "database schema is version %d, this binary "
		    "needs %d: %s", current, latest, current < latest ?
		    "run sfconnect-admin migrate" : "upgrade sfconnect");
		return DB_ERROR;
	}
	return DB_OK;
}

/* Orgs. */

static void
load_org(const PGresult *res, int row, struct org *org)
{
	org->id = ll_col(res, row, 0);
	copy_col(res, row, 1, org->slug, sizeof(org->slug));
	copy_col(res, row, 2, org->name, sizeof(org->name));
	org->created_at = (time_t)ll_col(res, row, 3);
}

enum db_rc
db_org_get(struct db *db, const char *slug, struct org *org)
{
	PGresult	*res;
	enum db_rc	 rc = run(db, ST_ORG_GET, 1, &slug, &res);

	if (rc != DB_OK)
		return rc;
	if (PQntuples(res) == 1)
		load_org(res, 0, org);
	else
		rc = DB_NOTFOUND;
	PQclear(res);
	return rc;
}

enum db_rc
db_org_create(struct db *db, const char *slug, const char *name, struct org *org)
{
	const char	*params[2] = { slug, name };
	PGresult	*res;
	enum db_rc	 rc = run(db, ST_ORG_CREATE, 2, params, &res);

	if (rc != DB_OK)
		return rc;
	load_org(res, 0, org);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_org_list(struct db *db, const char *after, int limit, cJSON *array)
{
	char		 lim[16];
	const char	*params[2] = { after ? after : "", lim };

	snprintf(lim, sizeof(lim), "%d", limit);
	return run_json_array(db, ST_ORG_LIST, 2, params, array);
}

/* API keys. */

enum db_rc
db_key_lookup(struct db *db, const char *hash_hex, struct principal *who)
{
	PGresult	*res;
	char		 role[16];
	enum db_rc	 rc = run(db, ST_KEY_LOOKUP, 1, &hash_hex, &res);

	if (rc != DB_OK)
		return rc;
	rc = DB_NOTFOUND;
	if (PQntuples(res) == 1 &&
	    crypto_ct_streq(PQgetvalue(res, 0, 5), hash_hex)) {
		copy_col(res, 0, 0, who->key_id, sizeof(who->key_id));
		copy_col(res, 0, 1, role, sizeof(role));
		who->org_id = ll_col(res, 0, 2);
		copy_col(res, 0, 3, who->org_slug, sizeof(who->org_slug));
		copy_col(res, 0, 4, who->label, sizeof(who->label));
		if (role_parse(role, &who->role) == 0)
			rc = DB_OK;
	}
	PQclear(res);
	return rc;
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
	if ((rc = run(db, ST_KEY_CREATE, 5, params, &res)) != DB_OK)
		return rc;
	*created_at = (time_t)ll_col(res, 0, 0);
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
	return run_json_array(db, org != NULL ? ST_KEY_LIST_ORG : ST_KEY_LIST,
	    org != NULL ? 3 : 2, params, array);
}

enum db_rc
db_key_revoke(struct db *db, const char *id)
{
	PGresult	*res;
	enum db_rc	 rc = run(db, ST_KEY_REVOKE, 1, &id, &res);

	if (rc != DB_OK)
		return rc;
	rc = PQntuples(res) == 1 ? DB_OK : DB_NOTFOUND;
	PQclear(res);
	return rc;
}

/* Integrations. */

/* 0 and *status set when text is a stored status; -1 otherwise. */
static int
pg_status_parse(const char *text, enum integ_status *status)
{
	for (int st = 0; st < INTEG__MAX; st++)
		if (strcmp(text, pg_status[st]) == 0) {
			*status = (enum integ_status)st;
			return 0;
		}
	return -1;
}

/* The PostgreSQL array literal of set ("{connected,degraded}") into out. */
static void
pg_status_array(integ_status_set set, char *out, size_t outlen)
{
	size_t	 len;

	snprintf(out, outlen, "{");
	for (int st = 0; st < INTEG__MAX; st++) {
		if ((set & INTEG_SET(st)) == 0)
			continue;
		len = strlen(out);
		snprintf(out + len, outlen - len, "%s%s", len > 1 ? "," : "",
		    pg_status[st]);
	}
	len = strlen(out);
	snprintf(out + len, outlen - len, "}");
}

static char *
dup_nullable(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL :
	    strdup(PQgetvalue(res, row, col));
}

/* Fills integ from row of a result with INTEG_COLS; -1 on out of memory. */
static int
load_integration(const PGresult *res, int row, struct integration *integ)
{
	int	 c = 0, status_ok;

	memset(integ, 0, sizeof(*integ));
	integ->org_id = ll_col(res, row, c++);
	copy_col(res, row, c++, integ->org_slug, sizeof(integ->org_slug));
	status_ok = pg_status_parse(PQgetvalue(res, row, c++), &integ->status);
	copy_col(res, row, c++, integ->sf_org_id, sizeof(integ->sf_org_id));
	copy_col(res, row, c++, integ->sf_user_id, sizeof(integ->sf_user_id));
	copy_col(res, row, c++, integ->sf_username, sizeof(integ->sf_username));
	copy_col(res, row, c++, integ->sf_display_name,
	    sizeof(integ->sf_display_name));
	copy_col(res, row, c++, integ->instance_url, sizeof(integ->instance_url));
	copy_col(res, row, c++, integ->environment, sizeof(integ->environment));
	copy_col(res, row, c++, integ->login_host, sizeof(integ->login_host));
	copy_col(res, row, c++, integ->connected_by, sizeof(integ->connected_by));
	copy_col(res, row, c++, integ->previous_sf_org_id,
	    sizeof(integ->previous_sf_org_id));
	integ->access_token_enc = dup_nullable(res, row, c++);
	integ->refresh_token_enc = dup_nullable(res, row, c++);
	integ->token_generation = ll_col(res, row, c++);
	integ->issued_at = (time_t)ll_col(res, row, c++);
	integ->connected_at = (time_t)ll_col(res, row, c++);
	integ->last_refreshed_at = (time_t)ll_col(res, row, c++);
	integ->last_checked_at = (time_t)ll_col(res, row, c++);
	copy_col(res, row, c++, integ->last_error_kind,
	    sizeof(integ->last_error_kind));
	copy_col(res, row, c++, integ->last_error_code,
	    sizeof(integ->last_error_code));
	copy_col(res, row, c++, integ->last_error_message,
	    sizeof(integ->last_error_message));
	integ->last_error_at = (time_t)ll_col(res, row, c++);
	integ->failure_count = (int)ll_col(res, row, c++);
	integ->next_retry_at = (time_t)ll_col(res, row, c++);
	integ->db_now = (time_t)ll_col(res, row, c++);
	copy_col(res, row, c++, integ->refresh_fp, sizeof(integ->refresh_fp));
	if (status_ok == -1) {
		log_error("db_bad_status", "org %lld: unknown integration status",
		    integ->org_id);
		db_integration_clear(integ);
		return -1;
	}
	if ((!PQgetisnull(res, row, 12) && integ->access_token_enc == NULL) ||
	    (!PQgetisnull(res, row, 13) && integ->refresh_token_enc == NULL)) {
		db_integration_clear(integ);
		return -1;
	}
	return 0;
}

void
db_integration_clear(struct integration *integ)
{
	free(integ->access_token_enc);
	free(integ->refresh_token_enc);
	integ->access_token_enc = integ->refresh_token_enc = NULL;
}

/*
 * Fills integ from the single row of res: DB_NOTFOUND without one,
 * DB_ERROR on a bad row or out of memory.
 */
static enum db_rc
load_single_integration(const PGresult *res, struct integration *integ)
{
	if (PQntuples(res) != 1)
		return DB_NOTFOUND;
	if (load_integration(res, 0, integ) == -1)
		return DB_ERROR;
	return DB_OK;
}

enum db_rc
db_integration_get(struct db *db, long long org_id, struct integration *integ)
{
	char		 id[24];
	const char	*param = id;
	PGresult	*res;
	enum db_rc	 rc;

	snprintf(id, sizeof(id), "%lld", org_id);
	if ((rc = run(db, ST_INTEG_GET, 1, &param, &res)) != DB_OK)
		return rc;
	rc = load_single_integration(res, integ);
	PQclear(res);
	return rc;
}

enum db_rc
db_integration_list(struct db *db, const enum integ_status *status,
    const char *after, int limit,
    void (*fn)(const struct integration *, void *), void *arg, int *n)
{
	char			 lim[16];
	const char		*params[3] = { after ? after : "",
				    status ? pg_status[*status] : "", lim };
	struct integration	 integ;
	PGresult		*res;
	enum db_rc		 rc;

	snprintf(lim, sizeof(lim), "%d", limit);
	*n = 0;
	if ((rc = run(db, ST_INTEG_LIST, 3, params, &res)) != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res); row++) {
		if (load_integration(res, row, &integ) == -1) {
			rc = DB_ERROR;
			break;
		}
		fn(&integ, arg);
		db_integration_clear(&integ);
		(*n)++;
	}
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
	return run_discard(db, ST_AUDIT_ADD, 4, params);
}

enum db_rc
db_audit_list(struct db *db, long long org_id, int limit, cJSON *array)
{
	char		 id[24], lim[16];
	const char	*params[2] = { id, lim };

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(lim, sizeof(lim), "%d", limit);
	return run_json_array(db, ST_AUDIT_LIST, 2, params, array);
}

/* OAuth states. */

/* Makes room for one more state of org (id text): at most DB_STATES_PER_ORG. */
static enum db_rc
state_cap(struct db *db, const char *org)
{
	char		 keep[16];
	const char	*params[2] = { org, keep };

	snprintf(keep, sizeof(keep), "%d", DB_STATES_PER_ORG - 1);
	return run_discard(db, ST_STATE_CAP, 2, params);
}

enum db_rc
db_state_create(struct db *db, const char *state_hash, long long org_id,
    const char *verifier_enc, const char *environment, const char *login_host,
    const char *return_to, bool allow_org_change, const char *actor,
    int ttl_s, time_t *expires_at)
{
	char		 org[24], ttl[16];
	const char	*params[9] = { state_hash, org, verifier_enc, environment,
			    login_host, return_to, allow_org_change ? "t" : "f",
			    actor, ttl };
	PGresult	*res;
	enum db_rc	 rc;

	snprintf(org, sizeof(org), "%lld", org_id);
	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	if ((rc = state_cap(db, org)) != DB_OK)
		return rc;
	if ((rc = run(db, ST_STATE_CREATE, 9, params, &res)) != DB_OK)
		return rc;
	*expires_at = (time_t)ll_col(res, 0, 0);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_state_consume(struct db *db, const char *state_hash, struct oauth_state *st)
{
	PGresult	*res;
	enum db_rc	 rc;

	memset(st, 0, sizeof(*st));
	if ((rc = run(db, ST_STATE_CONSUME, 1, &state_hash, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 7), "t") != 0) {
		PQclear(res);
		return DB_NOTFOUND;
	}
	st->org_id = ll_col(res, 0, 0);
	if ((st->verifier_enc = strdup(PQgetvalue(res, 0, 1))) == NULL)
		rc = DB_ERROR;
	copy_col(res, 0, 2, st->environment, sizeof(st->environment));
	copy_col(res, 0, 3, st->login_host, sizeof(st->login_host));
	copy_col(res, 0, 4, st->return_to, sizeof(st->return_to));
	st->allow_org_change = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
	copy_col(res, 0, 6, st->actor, sizeof(st->actor));
	PQclear(res);
	return rc;
}

void
db_state_clear(struct oauth_state *st)
{
	free(st->verifier_enc);
	st->verifier_enc = NULL;
}

/* Integration writes. */

enum db_rc
db_integration_lock(struct db *db, long long org_id, long lock_timeout_ms,
    struct integration *integ)
{
	char		 id[24], sql[128];
	const char	*param = id;
	PGresult	*res;
	enum db_rc	 rc;

	/* The statement timeout must not cut a lock wait short (a 500, not a 503). */
	snprintf(sql, sizeof(sql), "SET LOCAL lock_timeout = %ld; "
	    "SET LOCAL statement_timeout = %ld", lock_timeout_ms,
	    lock_timeout_ms + 30000);
	if ((rc = exec_simple(db, sql)) != DB_OK)
		return rc;
	snprintf(id, sizeof(id), "%lld", org_id);
	if ((rc = run(db, ST_INTEG_LOCK, 1, &param, &res)) != DB_OK)
		return rc;
	rc = load_single_integration(res, integ);
	PQclear(res);
	return rc;
}

enum db_rc
db_integration_connect(struct db *db, long long org_id,
    const struct connection *c)
{
	char		 id[24], issued[24];
	const char	*params[13] = { id, c->sf_org_id, c->sf_user_id,
			    c->username, c->display_name, c->instance_url,
			    c->environment, c->login_host, c->access_enc,
			    c->refresh_enc, issued, c->connected_by,
			    c->refresh_fp };

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(issued, sizeof(issued), "%lld", c->issued_at_ms);
	return run_discard(db, ST_INTEG_CONNECT, 13, params);
}

enum db_rc
db_integration_disconnect(struct db *db, long long org_id)
{
	char		 id[24];
	const char	*param = id;

	snprintf(id, sizeof(id), "%lld", org_id);
	return run_discard(db, ST_INTEG_DISCONNECT, 1, &param);
}

/* Token lifecycle. */

enum db_rc
db_now(struct db *db, char out[32])
{
	PGresult	*res;
	enum db_rc	 rc = run(db, ST_NOW, 0, NULL, &res);

	if (rc != DB_OK)
		return rc;
	copy_col(res, 0, 0, out, 32);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_integration_claim(struct db *db, integ_status_set statuses,
    const char *cutoff, bool due_retries, int limit, struct integration *out,
    int *n)
{
	char		 lim[16], array[64];
	const char	*params[4] = { array, cutoff, lim,
			    due_retries ? "t" : "f" };
	PGresult	*res;
	enum db_rc	 rc;

	*n = 0;
	pg_status_array(statuses, array, sizeof(array));
	snprintf(lim, sizeof(lim), "%d", limit);
	if ((rc = run(db, ST_INTEG_CLAIM, 4, params, &res)) != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res) && row < limit; row++) {
		if (load_integration(res, row, &out[row]) == -1) {
			rc = DB_ERROR;
			break;
		}
		(*n)++;
	}
	PQclear(res);
	if (rc != DB_OK) {
		for (int i = 0; i < *n; i++)
			db_integration_clear(&out[i]);
		*n = 0;
	}
	return rc;
}

enum db_rc
db_integration_refreshed(struct db *db, long long org_id,
    const char *access_enc, const char *refresh_enc, const char *refresh_fp,
    const char *instance_url, long long issued_at_ms, long long *generation)
{
	char		 id[24], issued[24], expected[24];
	const char	*params[7] = { id, access_enc, refresh_enc, instance_url,
			    issued, expected, refresh_fp };
	PGresult	*res;
	enum db_rc	 rc;

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(issued, sizeof(issued), "%lld", issued_at_ms);
	snprintf(expected, sizeof(expected), "%lld", *generation);
	if ((rc = run(db, ST_INTEG_REFRESHED, 7, params, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) != 1)
		rc = DB_NOTFOUND;
	else
		*generation = ll_col(res, 0, 0);
	PQclear(res);
	return rc;
}

enum db_rc
db_integration_failed(struct db *db, long long org_id,
    enum integ_status status, const char *kind, const char *code,
    const char *message, double retry_s)
{
	char		 id[24], retry[32];
	const char	*params[6] = { id, pg_status[status], kind, code, message,
			    retry };

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(retry, sizeof(retry), "%.3f", retry_s);
	return run_discard(db, ST_INTEG_FAILED, 6, params);
}

enum db_rc
db_integration_rotated(struct db *db, long long org_id, const char *refresh_enc,
    const char *refresh_fp, long long generation)
{
	char		 id[24], expected[24];
	const char	*params[4] = { id, refresh_enc, refresh_fp, expected };
	PGresult	*res;
	enum db_rc	 rc;

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(expected, sizeof(expected), "%lld", generation);
	if ((rc = run(db, ST_INTEG_ROTATED, 4, params, &res)) != DB_OK)
		return rc;
	rc = PQntuples(res) == 1 ? DB_OK : DB_NOTFOUND;
	PQclear(res);
	return rc;
}

enum db_rc
db_integration_stamp(struct db *db, long long org_id, double retry_s)
{
	char		 id[24], retry[32];
	const char	*params[2] = { id, retry };

	snprintf(id, sizeof(id), "%lld", org_id);
	snprintf(retry, sizeof(retry), "%.3f", retry_s);
	return run_discard(db, ST_INTEG_STAMP, 2, params);
}

enum db_rc
db_savepoint(struct db *db)
{
	return exec_simple(db, "SAVEPOINT sfc_row");
}

enum db_rc
db_rollback_savepoint(struct db *db)
{
	return exec_simple(db, "ROLLBACK TO SAVEPOINT sfc_row");
}

enum db_rc
db_status_counts(struct db *db, void (*fn)(enum integ_status status,
    long long n, void *arg), void *arg)
{
	enum integ_status status;
	PGresult	*res;
	enum db_rc	 rc = run(db, ST_STATUS_COUNTS, 0, NULL, &res);

	if (rc != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res); row++)
		if (pg_status_parse(PQgetvalue(res, row, 0), &status) == 0)
			fn(status, ll_col(res, row, 1), arg);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_sealed_orgs(struct db *db, void (*fn)(long long org_id, void *arg),
    void *arg)
{
	PGresult	*res;
	enum db_rc	 rc = run(db, ST_SEALED_ORGS, 0, NULL, &res);

	if (rc != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res); row++)
		fn(ll_col(res, row, 0), arg);
	PQclear(res);
	return DB_OK;
}

enum db_rc
db_integration_reseal(struct db *db, long long org_id, const char *access_enc,
    const char *refresh_enc)
{
	char		 id[24];
	const char	*params[3] = { id, access_enc, refresh_enc };

	snprintf(id, sizeof(id), "%lld", org_id);
	return run_discard(db, ST_INTEG_RESEAL, 3, params);
}

/* Housekeeping. */

/* Runs a DELETE; *n gets the number of rows it removed. */
static enum db_rc
run_delete(struct db *db, enum stmt st, int n_params,
    const char *const *params, long long *n)
{
	PGresult	*res;
	enum db_rc	 rc = run(db, st, n_params, params, &res);

	*n = 0;
	if (rc != DB_OK)
		return rc;
	*n = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return DB_OK;
}

/* The webhook outbox. */

enum db_rc
db_outbox_add(struct db *db, const char *event_id, long long org_id,
    const char *type, const char *body)
{
	char		 org[24];
	const char	*params[4] = { event_id, org, type, body };

	snprintf(org, sizeof(org), "%lld", org_id);
	return run_discard(db, ST_OUTBOX_ADD, 4, params);
}

void
db_delivery_clear(struct db_delivery *d)
{
	free(d->body);
	d->body = NULL;
}

enum db_rc
db_outbox_claim(struct db *db, int limit, long lease_ms,
    struct db_delivery *out, int *n)
{
	char		 lim[16], lease[32];
	const char	*params[2] = { lim, lease };
	PGresult	*res;
	enum db_rc	 rc;

	*n = 0;
	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(lease, sizeof(lease), "%.3f", (double)lease_ms / 1000.0);
	if ((rc = run(db, ST_OUTBOX_CLAIM, 2, params, &res)) != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res) && row < limit; row++) {
		struct db_delivery *d = &out[row];

		memset(d, 0, sizeof(*d));
		d->id = ll_col(res, row, 0);
		copy_col(res, row, 1, d->event_id, sizeof(d->event_id));
		d->org_id = ll_col(res, row, 2);
		copy_col(res, row, 3, d->type, sizeof(d->type));
		d->attempts = (int)ll_col(res, row, 5);
		d->age_s = atof(PQgetvalue(res, row, 6));
		if ((d->body = strdup(PQgetvalue(res, row, 4))) == NULL) {
			rc = DB_ERROR;
			break;
		}
		(*n)++;
	}
	PQclear(res);
	return rc;
}

enum db_rc
db_outbox_record(struct db *db, const struct db_delivery *d,
    const char *outcome, long http_status, const char *error, double retry_s,
    long max_age_s, bool *failed)
{
	char		 id[24], attempts[16], status[16], retry[32], age[24];
	const char	*params[7] = { id, attempts, outcome, status,
			    error ? error : "", retry, age };
	PGresult	*res;
	enum db_rc	 rc;

	*failed = false;
	snprintf(id, sizeof(id), "%lld", d->id);
	snprintf(attempts, sizeof(attempts), "%d", d->attempts);
	snprintf(status, sizeof(status), "%ld", http_status);
	snprintf(retry, sizeof(retry), "%.3f", retry_s);
	snprintf(age, sizeof(age), "%ld", max_age_s);
	if ((rc = run(db, ST_OUTBOX_RECORD, 7, params, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) != 1)
		rc = DB_NOTFOUND;	/* claimed again elsewhere meanwhile */
	else
		*failed = strcmp(PQgetvalue(res, 0, 0), "failed") == 0;
	PQclear(res);
	return rc;
}

enum db_rc
db_outbox_list(struct db *db, const char *status, long long after, int limit,
    cJSON *array)
{
	char		 from[24], lim[16];
	const char	*params[3] = { from, status ? status : "", lim };

	snprintf(from, sizeof(from), "%lld", after);
	snprintf(lim, sizeof(lim), "%d", limit);
	return run_json_array(db, ST_OUTBOX_LIST, 3, params, array);
}

enum db_rc
db_outbox_retry(struct db *db, const char *id, long long *n)
{
	const char	*param = id ? id : "";
	PGresult	*res;
	enum db_rc	 rc;

	*n = 0;
	if ((rc = run(db, ST_OUTBOX_RETRY, 1, &param, &res)) != DB_OK)
		return rc;
	*n = PQntuples(res);
	PQclear(res);
	return id != NULL && *n == 0 ? DB_NOTFOUND : DB_OK;
}

enum db_rc
db_outbox_stats(struct db *db, struct db_outbox_stats *st)
{
	PGresult	*res;
	enum db_rc	 rc;

	memset(st, 0, sizeof(*st));
	if ((rc = run(db, ST_OUTBOX_GAUGES, 0, NULL, &res)) != DB_OK)
		return rc;
	st->pending = ll_col(res, 0, 0);
	st->failed = ll_col(res, 0, 1);
	st->oldest_pending_s = atof(PQgetvalue(res, 0, 2));
	PQclear(res);
	if ((rc = run(db, ST_OUTBOX_COUNTS, 0, NULL, &res)) != DB_OK)
		return rc;
	for (int row = 0; row < PQntuples(res) && row < DB_OUTCOMES; row++) {
		copy_col(res, row, 0, st->outcome[row], sizeof(st->outcome[row]));
		st->attempts[row] = ll_col(res, row, 1);
	}
	st->noutcomes = PQntuples(res) < DB_OUTCOMES ? PQntuples(res) :
	    DB_OUTCOMES;
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

	if ((rc = run_delete(db, ST_STATE_PURGE, 0, NULL, &states)) != DB_OK)
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

enum db_rc
db_outbox_next_due(struct db *db, double *in_s)
{
	PGresult	*res;
	enum db_rc	 rc;

	if ((rc = run(db, ST_OUTBOX_NEXT_DUE, 0, NULL, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		rc = DB_NOTFOUND;
	else
		*in_s = atof(PQgetvalue(res, 0, 0));
	PQclear(res);
	return rc;
}

enum db_rc
db_listen_webhooks(struct db *db)
{
	enum db_rc	 rc;

	if ((rc = exec_simple(db, "LISTEN " DB_WEBHOOK_CHANNEL)) == DB_OK)
		db->listening = true;
	return rc;
}

/* true when a notification was queued (all of them are drained). */
static bool
drain_notifies(struct db *db)
{
	PGnotify	*n;
	bool		 any = false;

	while ((n = PQnotifies(db->conn)) != NULL) {
		any = true;
		PQfreemem(n);
	}
	return any;
}

enum db_rc
db_wait_notify(struct db *db, int timeout_ms)
{
	struct pollfd	 pfd;
	int		 r;

	if (drain_notifies(db))
		return DB_OK;
	if ((pfd.fd = PQsocket(db->conn)) < 0)
		return DB_UNAVAILABLE;
	pfd.events = POLLIN;
	pfd.revents = 0;
	r = poll(&pfd, 1, timeout_ms);
	if (r == -1)
		return errno == EINTR ? DB_NOTFOUND : DB_ERROR;
	if (r == 0)
		return DB_NOTFOUND;
	if (!PQconsumeInput(db->conn))
		return DB_UNAVAILABLE;
	return drain_notifies(db) ? DB_OK : DB_NOTFOUND;
}

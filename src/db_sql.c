/*
 * Every SQL statement of sfconnect, in one table: prepared by db.c on first
 * use, always with parameters.
 */
#include <stdbool.h>

#include "db.h"
#include "db_internal.h"

#define TS(col)	"coalesce(extract(epoch from " col ")::bigint, 0)"
#define TXT(col) "coalesce(" col ", '')"
/* When the row is due, in integrations_due's order (sql/009). */
#define DUE(t)	"coalesce(" t ".last_checked_at, '-infinity'::timestamptz)"
#define JSON_TS(col) "to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* How long ago an integration was checked, by integrations_check_age. */
#define CHECK_AGE "coalesce(last_checked_at, connected_at, updated_at)"

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
	", " TXT("i.refresh_token_fp") ", " TXT("i.scope")

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



const char *const db_stmt_sql[ST__MAX] = {
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
	    "i AS (INSERT INTO integrations (org_id, org_slug) "
	    "  SELECT id, slug FROM o) "
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
	    "WHERE o.slug > $1 ORDER BY o.slug LIMIT $2",
	/* One status's page, by integrations_status_slug (sql/009). */
	[ST_INTEG_LIST_STATUS] =
	    "SELECT " INTEG_COLS " FROM integrations i "
	    "JOIN orgs o ON o.id = i.org_id "
	    "WHERE i.status = $2 AND i.org_slug > $1 "
	    "ORDER BY i.org_slug LIMIT $3",
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
	    "expires_at, start_hash, authorize_url_enc) VALUES ($1, $2, $3, $4, "
	    "$5, $6, $7, $8, now() + make_interval(secs => $9), $10, $11) "
	    "RETURNING " TS("expires_at"),
	/* Atomic single use: a replay finds nothing to delete. */
	[ST_STATE_CONSUME] =
	    "DELETE FROM oauth_states WHERE state_hash = $1 "
	    "RETURNING org_id, verifier_enc, environment, login_host, "
	    "return_to, allow_org_change, actor, expires_at > now(), "
	    TXT("nonce_hash"),
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
	    "scope = nullif($14, ''), "
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
 * Due: last checked before the cutoff $2 (or never), oldest first, or
 * with $4 = 't' a degraded or invalid one whose retry is due (checked
 * after the cutoff, so after all of the first kind). The ids are locked
 * first, walking integrations_due per status and integrations_retry
 * (sql/009), at most $3 of each; the $3 first of them are read whole.
 * The others stay locked until the batch ends: another checker skips
 * them meanwhile and claims them after.
 */
	[ST_INTEG_CLAIM] =
	    "WITH aged AS MATERIALIZED (SELECT d.org_id, d.due "
	    "  FROM unnest($1::text[]) AS s(status) CROSS JOIN LATERAL ("
	    "    SELECT i.org_id, " DUE("i") " AS due FROM integrations i "
	    "    WHERE i.status = s.status AND i.status <> 'disconnected' "
	    "    AND " DUE("i") " < to_timestamp($2::double precision) "
	    "    ORDER BY " DUE("i") ", i.org_id LIMIT $3 "
	    "    FOR UPDATE OF i SKIP LOCKED) d), "
	    "retry AS MATERIALIZED (SELECT r.org_id, " DUE("r") " AS due "
	    "  FROM integrations r WHERE $4 = 't' "
	    "  AND r.status IN ('degraded', 'invalid') "
	    "  AND r.status = ANY($1::text[]) AND r.next_retry_at <= now() "
	    "  AND " DUE("r") " >= to_timestamp($2::double precision) "
	    "  ORDER BY " DUE("r") ", r.org_id LIMIT $3 "
	    "  FOR UPDATE OF r SKIP LOCKED), "
	    "pick AS (SELECT org_id, due FROM aged UNION ALL "
	    "  SELECT org_id, due FROM retry ORDER BY due, org_id LIMIT $3) "
	    "SELECT " INTEG_COLS " FROM pick p "
	    "JOIN integrations i ON i.org_id = p.org_id "
	    "JOIN orgs o ON o.id = i.org_id ORDER BY p.due, p.org_id "
	    "FOR UPDATE OF i",
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
	/*
	 * ST_INTEG_REFRESHED for many rows at once (a check batch): $1..$7 are
	 * arrays of its parameters, row by row. Answers the rows written.
	 */
	[ST_INTEG_REFRESHED_MANY] =
	    "UPDATE integrations i SET status = 'connected', "
	    "access_token_enc = u.access_enc, "
	    "refresh_token_enc = coalesce(u.refresh_enc, i.refresh_token_enc), "
	    "refresh_token_fp = CASE WHEN u.refresh_enc IS NULL "
	    "  THEN i.refresh_token_fp ELSE u.fp END, "
	    "instance_url = u.instance_url, "
	    "issued_at = to_timestamp(u.issued_ms::double precision / 1000), "
	    "token_generation = i.token_generation + 1, "
	    "last_refreshed_at = clock_timestamp(), "
	    "last_checked_at = clock_timestamp(), "
	    "last_error_kind = NULL, last_error_code = NULL, "
	    "last_error_message = NULL, last_error_at = NULL, "
	    "failure_count = 0, next_retry_at = NULL, updated_at = now() "
	    "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], "
	    "  $5::bigint[], $6::bigint[], $7::text[]) "
	    "  AS u(org_id, access_enc, refresh_enc, instance_url, issued_ms, "
	    "  generation, fp) "
	    "WHERE i.org_id = u.org_id AND i.status <> 'disconnected' "
	    "AND i.token_generation = u.generation "
	    "RETURNING i.org_id, i.token_generation",
	[ST_INTEG_FAILED] =
	    "UPDATE integrations SET status = $2, last_error_kind = $3, "
	    "last_error_code = $4, last_error_message = $5, "
	    "last_error_at = clock_timestamp(), "
	    "last_checked_at = clock_timestamp(), "
	    "failure_count = failure_count + 1, "
	    "next_retry_at = CASE WHEN $6::double precision >= 0 THEN "
	    "  clock_timestamp() + make_interval(secs => $6::double precision) "
	    "  END, "
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
	    "next_retry_at = CASE WHEN $2::double precision >= 0 THEN "
	    "  clock_timestamp() + make_interval(secs => $2::double precision) "
	    "  END, updated_at = now() "
	    "WHERE org_id = $1 AND status <> 'disconnected'",
	[ST_NOW] = "SELECT extract(epoch from clock_timestamp())::text",
	[ST_SEALED_ORGS] =
	    "SELECT org_id FROM integrations WHERE access_token_enc IS NOT NULL "
	    "OR refresh_token_enc IS NOT NULL ORDER BY org_id",
	[ST_INTEG_RESEAL] =
	    "UPDATE integrations SET access_token_enc = $2, "
	    "refresh_token_enc = $3, updated_at = now() WHERE org_id = $1",
	/* Kept by triggers (sql/009): the sum of each status's deltas. */
	[ST_STATUS_COUNTS] =
	    "SELECT s.status, coalesce(sum(c.n), 0) FROM unnest(ARRAY["
	    "'disconnected', 'connected', 'degraded', 'invalid']) AS s(status) "
	    "LEFT JOIN integration_status_counts c ON c.status = s.status "
	    "GROUP BY s.status ORDER BY s.status",
	/* Folds the deltas into one row per status (housekeeping). */
	[ST_STATUS_COUNTS_COMPACT] =
	    "WITH d AS (DELETE FROM integration_status_counts "
	    "RETURNING status, n) INSERT INTO integration_status_counts "
	    "(status, n) SELECT status, sum(n) FROM d GROUP BY status "
	    "HAVING sum(n) <> 0",
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
	/*
	 * Seconds since the least recent check of a checked status (0: none),
	 * from the first entry of integrations_check_age per status (sql/009).
	 */
	[ST_CHECK_LAG] =
	    "SELECT coalesce(extract(epoch from now() - least("
	    "(SELECT min(" CHECK_AGE ") FROM integrations "
	    "  WHERE status = 'connected'), "
	    "(SELECT min(" CHECK_AGE ") FROM integrations "
	    "  WHERE status = 'degraded'))), 0)::text",
	/* The start link, once: binds the state to the nonce of one browser. */
	[ST_STATE_START] =
	    "UPDATE oauth_states SET nonce_hash = $2 WHERE start_hash = $1 "
	    "AND nonce_hash IS NULL AND expires_at > now() "
	    "RETURNING state_hash, authorize_url_enc, "
	    "greatest(ceil(extract(epoch from expires_at - now())), 1)::bigint",
	/*
	 * One authenticated request in one round trip: the key ($1: its hash),
	 * the org of the path ($2, '' for none) when the key may see it (its
	 * own org, or any for an operator), and with $3 = 't' its integration.
	 * Columns: the key as ST_KEY_LOOKUP's, the org as ST_ORG_GET's, then
	 * INTEG_COLS (NULL without an org or without $3).
	 */
	[ST_AUTH_ORG] =
	    "SELECT k.id, k.role, coalesce(k.org_id, 0), " TXT("ko.slug") ", "
	    "k.label, k.key_hash, o.id, o.slug, o.name, " TS("o.created_at")
	    ", " INTEG_COLS " FROM api_keys k "
	    "LEFT JOIN orgs ko ON ko.id = k.org_id "
	    "LEFT JOIN orgs o ON o.slug = $2 "
	    "  AND (k.role = 'operator' OR o.id = k.org_id) "
	    "LEFT JOIN integrations i ON $3 = 't' AND i.org_id = o.id "
	    "WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
	/*
	 * Check jobs (sql/008). A new job ($1 statuses array, $2 its integer
	 * set, $3 older_than_s, $4 actor) with the snapshot of its due
	 * integrations (the claim's predicate, without due retries).
	 */
	[ST_JOB_CREATE] =
	    "WITH j AS (SELECT nextval('check_jobs_id_seq') AS id, "
	    "  now() - make_interval(secs => $3::double precision) AS cutoff), "
	    "items AS (INSERT INTO check_job_items (job_id, org_id) "
	    "  SELECT j.id, i.org_id FROM j, integrations i "
	    "  WHERE i.status = ANY($1::text[]) AND (i.last_checked_at IS NULL "
	    "    OR i.last_checked_at < j.cutoff) RETURNING 1) "
	    "INSERT INTO check_jobs (id, status_set, statuses, cutoff, actor, total) "
	    "SELECT j.id, $2::integer, $1::text[], j.cutoff, $4, "
	    "  (SELECT count(*) FROM items) FROM j RETURNING id, total",
	/* A running job to work on: $1, or the oldest when $1 is 0. */
	[ST_JOB_WORK] =
	    "SELECT id, status_set, to_char(extract(epoch from cutoff), "
	    "'FM9999999999990.000000'), actor FROM check_jobs "
	    "WHERE state = 'running' AND ($1::bigint = 0 OR id = $1::bigint) "
	    "ORDER BY id LIMIT 1",
	[ST_JOB_STARTED] =
	    "UPDATE check_jobs SET started_at = clock_timestamp() "
	    "WHERE id = $1 AND started_at IS NULL",
	/*
	 * Finishes job $1 when none of its items is due any more (rows another
	 * process holds still look due until it commits): the counts are
	 * frozen, the items deleted. One row: whether the job is finished.
	 */
	[ST_JOB_FINISH] =
	    "WITH f AS (UPDATE check_jobs j SET state = 'finished', "
	    "  finished_at = clock_timestamp(), "
	    "  started_at = coalesce(started_at, clock_timestamp()), "
	    "  checked = c.checked, connected = c.connected, "
	    "  degraded = c.degraded, invalid = c.invalid "
	    "  FROM (SELECT count(*) AS checked, "
	    "    count(*) FILTER (WHERE i.status = 'connected') AS connected, "
	    "    count(*) FILTER (WHERE i.status = 'degraded') AS degraded, "
	    "    count(*) FILTER (WHERE i.status IN ('invalid', 'disconnected')) "
	    "      AS invalid "
	    "    FROM check_job_items ji JOIN check_jobs jj ON jj.id = ji.job_id "
	    "    JOIN integrations i ON i.org_id = ji.org_id "
	    "    WHERE ji.job_id = $1 AND i.last_checked_at >= jj.created_at) c "
	    "  WHERE j.id = $1 AND j.state = 'running' AND NOT EXISTS ("
	    "    SELECT 1 FROM check_job_items ji "
	    "    JOIN integrations i ON i.org_id = ji.org_id "
	    "    WHERE ji.job_id = $1 AND i.status = ANY(j.statuses) "
	    "    AND (i.last_checked_at IS NULL OR i.last_checked_at < j.cutoff)) "
	    "  RETURNING j.id), "
	    "d AS (DELETE FROM check_job_items "
	    "  WHERE job_id IN (SELECT id FROM f)) "
	    "SELECT EXISTS (SELECT 1 FROM f) OR EXISTS (SELECT 1 FROM check_jobs "
	    "  WHERE id = $1 AND state = 'finished')",
	/*
	 * Job $1: state, total, checked and the outcome counts (counted from
	 * its items while it runs), then created, started, finished and now as
	 * epoch seconds with a fraction ('' for none).
	 */
	[ST_JOB_GET] =
	    "SELECT j.id, j.state, j.total, "
	    "CASE WHEN j.state = 'running' THEN c.checked ELSE j.checked END, "
	    "CASE WHEN j.state = 'running' THEN c.connected ELSE j.connected END, "
	    "CASE WHEN j.state = 'running' THEN c.degraded ELSE j.degraded END, "
	    "CASE WHEN j.state = 'running' THEN c.invalid ELSE j.invalid END, "
	    "coalesce(extract(epoch from j.created_at)::text, ''), "
	    "coalesce(extract(epoch from j.started_at)::text, ''), "
	    "coalesce(extract(epoch from j.finished_at)::text, ''), "
	    "extract(epoch from clock_timestamp())::text, j.actor "
	    "FROM check_jobs j LEFT JOIN LATERAL (SELECT count(*) AS checked, "
	    "  count(*) FILTER (WHERE i.status = 'connected') AS connected, "
	    "  count(*) FILTER (WHERE i.status = 'degraded') AS degraded, "
	    "  count(*) FILTER (WHERE i.status IN ('invalid', 'disconnected')) "
	    "    AS invalid "
	    "  FROM check_job_items ji JOIN integrations i ON i.org_id = ji.org_id "
	    "  WHERE j.state = 'running' AND ji.job_id = j.id "
	    "  AND i.last_checked_at >= j.created_at) c ON true "
	    "WHERE j.id = $1",
};


/*
 * Reads that may be retried once on a fresh connection when the old one
 * turns out to be dead (e.g. the server restarted while we were idle).
 */
const bool db_stmt_is_read[ST__MAX] = {
	[ST_PING] = true, [ST_KEY_LOOKUP] = true,
	[ST_ORG_GET] = true, [ST_ORG_LIST] = true, [ST_KEY_LIST] = true,
	[ST_KEY_LIST_ORG] = true,
	[ST_INTEG_GET] = true, [ST_INTEG_LIST] = true,
	[ST_INTEG_LIST_STATUS] = true, [ST_AUDIT_LIST] = true,
	[ST_NOW] = true, [ST_STATUS_COUNTS] = true,
	[ST_OUTBOX_LIST] = true, [ST_OUTBOX_GAUGES] = true,
	[ST_OUTBOX_COUNTS] = true, [ST_OUTBOX_NEXT_DUE] = true,
	[ST_CHECK_LAG] = true,
	[ST_AUTH_ORG] = true,
	[ST_JOB_WORK] = true, [ST_JOB_GET] = true,
};


/* How the integrations.status column spells each status. */
const char *const db_pg_status[INTEG__MAX] = {
	[INTEG_DISCONNECTED] = "disconnected",
	[INTEG_CONNECTED] = "connected",
	[INTEG_DEGRADED] = "degraded",
	[INTEG_INVALID] = "invalid",
};


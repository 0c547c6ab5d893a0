/*
 * The store: every SQL statement of sfconnect lives in db_sql.c, as a
 * prepared statement with parameters (db.c runs them; db_orgs.c,
 * db_integ.c and db_outbox.c read and write their tables). One
 * connection per process, reconnected on demand. Functions return a db_rc; DB_UNAVAILABLE means the connection
 * is gone (the caller answers 503), DB_ERROR anything else unexpected.
 */
#ifndef SFC_DB_H
#define SFC_DB_H

#include <stdbool.h>
#include <time.h>

#include "app.h"
#include "integ.h"

struct cJSON;

/* The channel a new webhook event is announced on (at commit). */
#define DB_WEBHOOK_CHANNEL	"sfconnect_webhooks"
/* The channel every change of a cached row is announced on (sql/010). */
#define DB_CACHE_CHANNEL	"sfconnect_cache"

enum db_rc {
	DB_OK = 0,
	DB_NOTFOUND = 1,
	DB_CONFLICT = 2,
	DB_ERROR = -1,
	DB_UNAVAILABLE = -2,
	DB_LOCK_TIMEOUT = -3,
};


struct db;

/* Connects, or returns NULL with err. Caller owns the db (db_close). */
struct db	*db_open(const char *conninfo, char *err, size_t errlen);
/* Like db_open, but keeps the db when the server is down (db_ensure retries); NULL only on out of memory. */
struct db	*db_new(const char *conninfo);
void		 db_close(struct db *db);
/*
 * Takes what the server sent (notifications: the cache's are applied) and
 * reconnects when the connection was lost. DB_OK or DB_UNAVAILABLE.
 */
enum db_rc	 db_ensure(struct db *db);
/*
 * The socket to watch while waiting for work, when its notifications keep
 * a cache true (-1: none); db_idle takes what arrived. A worker that waits
 * long would otherwise leave its backend blocked, sending, and
 * PostgreSQL's notification queue growing.
 */
int		 db_notify_fd(struct db *db);
void		 db_idle(struct db *db);
enum db_rc	 db_ping(struct db *db);
enum db_rc	 db_begin(struct db *db);
enum db_rc	 db_commit(struct db *db);
void		 db_rollback(struct db *db);
/* Rolls back (and logs) a transaction a request left open. DB_OK when none was. */
enum db_rc	 db_end_request(struct db *db);

/* Migrations (sfconnect-admin migrate). Prints progress to stdout. */
enum db_rc	 db_migrate(struct db *db, char *err, size_t errlen);
/* DB_OK when the schema is exactly this binary's. */
enum db_rc	 db_schema_check(struct db *db, char *err, size_t errlen);

/* Orgs. */
enum db_rc	 db_org_get(struct db *db, const char *slug, struct org *org);
/* DB_CONFLICT when the slug exists. Also makes the integration row. */
enum db_rc	 db_org_create(struct db *db, const char *slug, const char *name,
		    struct org *org);
/* Appends org objects to array (slug > after, ordered by slug). */
enum db_rc	 db_org_list(struct db *db, const char *after, int limit,
		    struct cJSON *array);

/* API keys. hash_hex is the SHA-256 hex of the key. */
enum db_rc	 db_key_lookup(struct db *db, const char *hash_hex,
		    struct principal *who);
/*
 * What an authenticated request needs, read in one round trip: the key's
 * principal, the org the path names (has_org: it exists and the key may see
 * it, i.e. it is the key's own org or the key is an operator's) and, when
 * asked for, that org's integration (has_integ; db_auth_clear frees it;
 * false when the row could not be read: the caller reads it itself).
 */
struct db_auth {
	struct principal	 who;
	bool			 has_org;
	struct org		 org;
	bool			 has_integ;
	struct integration	 integ;
};
/*
 * DB_NOTFOUND when no live key has hash_hex (compared in constant time);
 * slug NULL when the path names no org.
 */
enum db_rc	 db_auth_lookup(struct db *db, const char *hash_hex,
		    const char *slug, bool want_integ, struct db_auth *out);
void		 db_auth_clear(struct db_auth *a);
/*
 * Turns on the cache of db_auth_lookup_cached (a worker's): LISTENs on
 * DB_CACHE_CHANNEL now or at the next connect. DB_OK, or DB_ERROR on out
 * of memory.
 */
enum db_rc	 db_cache_enable(struct db *db);
/*
 * db_auth_lookup with want_integ, answered from the cache when it holds
 * the key and org (then out->integ has the sealed access token but no
 * refresh token: never for a handler that refreshes from it). Only
 * complete answers (org and integration found) are kept.
 */
enum db_rc	 db_auth_lookup_cached(struct db *db, const char *hash_hex,
		    const char *slug, struct db_auth *out);
/* Stores a key with the given id; org_id 0 for an operator key. */
enum db_rc	 db_key_create(struct db *db, const char *id, long long org_id,
		    enum role role, const char *label, const char *hash_hex,
		    time_t *created_at);
/*
 * Appends up to limit key objects (no hashes) to array, in creation order,
 * after the key whose id is after (NULL: from the start); org NULL: every
 * org's keys.
 */
enum db_rc	 db_key_list(struct db *db, const char *org, const char *after,
		    int limit, struct cJSON *array);
/* DB_NOTFOUND when no such key; revoking twice is DB_OK. */
enum db_rc	 db_key_revoke(struct db *db, const char *id);

/* Integrations. */
enum db_rc	 db_integration_get(struct db *db, long long org_id,
		    struct integration *integ);
/* Frees the owned strings of integ (not integ itself). */
void		 db_integration_clear(struct integration *integ);
/*
 * Lists integrations ordered by org slug after cursor (NULL: from the
 * start), status filter NULL for all. Calls fn for each; *n gets the count.
 */
enum db_rc	 db_integration_list(struct db *db,
		    const enum integ_status *status, const char *after, int limit,
		    void (*fn)(const struct integration *, void *), void *arg,
		    int *n);

/* Must run inside db_begin(): locks the row (waiting at most lock_timeout_ms: then DB_LOCK_TIMEOUT). */
enum db_rc	 db_integration_lock(struct db *db, long long org_id,
		    long lock_timeout_ms, struct integration *integ);

/* What a successful connect stores (tokens already sealed). */
struct connection {
	const char	*sf_org_id, *sf_user_id, *username, *display_name;
	const char	*instance_url, *environment, *login_host;
	const char	*access_enc, *refresh_enc, *refresh_fp, *connected_by;
	long long	 issued_at_ms;
	const char	*scope;		/* granted; "" when the answer had none */
};
/* Status connected with c; keeps the replaced OrgID as previous when it changes. */
enum db_rc	 db_integration_connect(struct db *db, long long org_id,
		    const struct connection *c);
/* Status disconnected: tokens and connection fields cleared, OrgID kept as previous. */
enum db_rc	 db_integration_disconnect(struct db *db, long long org_id);

/* The database's clock, as epoch seconds with a fraction (text). */
enum db_rc	 db_now(struct db *db, char out[32]);
/*
 * Inside db_begin(): locks up to limit integrations whose status is in
 * statuses and
 * whose last check is before cutoff (epoch text) -- or, with due_retries,
 * degraded or invalid ones whose next_retry_at has come -- skipping rows locked
 * elsewhere. Fills out[0..*n-1] (caller clears each).
 */
enum db_rc	 db_integration_claim(struct db *db, integ_status_set statuses,
		    const char *cutoff, bool due_retries, int limit,
		    struct integration *out, int *n);
/*
 * A successful refresh: refresh_enc NULL keeps the stored one. Writes only
 * while the stored generation is still *generation (else DB_NOTFOUND: the
 * row was reconnected meanwhile); then *generation gets the new one.
 */
enum db_rc	 db_integration_refreshed(struct db *db, long long org_id,
		    const char *access_enc, const char *refresh_enc,
		    const char *refresh_fp,
		    const char *instance_url, long long issued_at_ms,
		    long long *generation);
/* One row of db_integration_refreshed_many(): its arguments. */
struct db_refreshed {
	long long	 org_id;
	const char	*access_enc;
	const char	*refresh_enc;	/* NULL: not rotated */
	const char	*refresh_fp;
	const char	*instance_url;
	long long	 issued_at_ms;
	long long	 generation;	/* in: expected; out: the new one */
	bool		 stored;	/* out */
};
/*
 * db_integration_refreshed() for n rows in one statement: each written
 * row gets stored and its new generation; the others (generation changed,
 * disconnected) are left as they were. A db_rc: on an error, nothing was
 * written and the transaction is aborted.
 */
enum db_rc	 db_integration_refreshed_many(struct db *db,
		    struct db_refreshed *rows, size_t n);
/*
 * A failed refresh: status degraded or invalid, tried again by itself after
 * retry_s (< 0: not).
 */
enum db_rc	 db_integration_failed(struct db *db, long long org_id,
		    enum integ_status status, const char *kind, const char *code,
		    const char *message, double retry_s);

/*
 * One-time OAuth states: only the SHA-256 of a state is stored. An org has
 * at most DB_STATES_PER_ORG pending: creating one drops its oldest.
 */
#define DB_STATES_PER_ORG	20
struct oauth_state {
	long long	 org_id;
	char		*verifier_enc;	/* owned */
	char		 environment[16];
	char		 login_host[256];
	char		 return_to[1024];
	bool		 allow_org_change;
	char		 actor[128];
	char		 state_hash[65];	/* set by the caller */
	char		 nonce_hash[65];	/* "" until its start link was opened */
};
/*
 * start_hash is the SHA-256 of the start link's id, authorize_url_enc the
 * sealed authorize URL the link redirects to.
 */
enum db_rc	 db_state_create(struct db *db, const char *state_hash,
		    long long org_id, const char *verifier_enc,
		    const char *environment, const char *login_host,
		    const char *return_to, bool allow_org_change,
		    const char *actor, int ttl_s, const char *start_hash,
		    const char *authorize_url_enc, time_t *expires_at);
/* Deletes and returns the state; DB_NOTFOUND when unknown or expired. */
enum db_rc	 db_state_consume(struct db *db, const char *state_hash,
		    struct oauth_state *st);
void		 db_state_clear(struct oauth_state *st);
/*
 * The start link, usable once: stores nonce_hash with the unexpired state
 * of start_hash whose link was not opened yet, and answers its state_hash,
 * its sealed authorize URL (*authorize_url_enc, caller frees) and the
 * seconds it has left. DB_NOTFOUND when unknown, expired or already opened.
 */
enum db_rc	 db_state_start(struct db *db, const char *start_hash,
		    const char *nonce_hash, char state_hash[65],
		    char **authorize_url_enc, long long *ttl_s);

/* Calls fn with each org that has sealed tokens (for key rotation). */
enum db_rc	 db_sealed_orgs(struct db *db,
		    void (*fn)(long long org_id, void *arg), void *arg);
/* Replaces the sealed tokens (same plaintexts, new key); row locked by the caller. */
enum db_rc	 db_integration_reseal(struct db *db, long long org_id,
		    const char *access_enc, const char *refresh_enc);

/*
 * Inside the row lock: stores a rotated refresh token (sealed, with its
 * fingerprint) while the stored generation is still generation (else
 * DB_NOTFOUND); the access token stays.
 */
enum db_rc	 db_integration_rotated(struct db *db, long long org_id,
		    const char *refresh_enc, const char *refresh_fp,
		    long long generation);
/* Marks integ checked now, due again after retry_s (< 0: not), changing nothing else. */
enum db_rc	 db_integration_stamp(struct db *db, long long org_id,
		    double retry_s);
/* One savepoint inside a transaction, so one row's failed write spares the rest. */
enum db_rc	 db_savepoint(struct db *db);
enum db_rc	 db_rollback_savepoint(struct db *db);

/* Calls fn with the number of integrations in each status. */
enum db_rc	 db_status_counts(struct db *db,
		    void (*fn)(enum integ_status status, long long n, void *arg),
		    void *arg);
/* Seconds since the least recent check of a connected or degraded integration. */
enum db_rc	 db_check_lag(struct db *db, double *seconds);

/* Audit log. detail is a JSON object text (never a secret). */
enum db_rc	 db_audit_add(struct db *db, long long org_id, const char *actor,
		    const char *action, const char *detail_json);
/* Appends {"at","actor","action","detail"} newest first. */
enum db_rc	 db_audit_list(struct db *db, long long org_id, int limit,
		    struct cJSON *array);

/*
 * The background checker's upkeep, once per tick: deletes expired OAuth
 * states, and audit events older than audit_retention_days (0: none) in
 * statements of DB_AUDIT_PRUNE_BATCH rows, at most DB_AUDIT_PRUNE_BATCHES.
 */
#define DB_AUDIT_PRUNE_BATCH	1000
#define DB_AUDIT_PRUNE_BATCHES	5
enum db_rc	 db_housekeeping(struct db *db, long audit_retention_days);

/*
 * The webhook outbox. db_outbox_add inserts an event inside the caller's
 * transaction (body: the JSON to send, never a token).
 */
enum db_rc	 db_outbox_add(struct db *db, const char *event_id,
		    long long org_id, const char *type, const char *body);
/* A claimed event. */
struct db_delivery {
	long long	 id;
	char		 event_id[32];
	long long	 org_id;
	char		 type[48];
	char		*body;		/* owned: db_delivery_clear */
	int		 attempts;	/* including this one */
	double		 age_s;		/* since the event was written */
};
void		 db_delivery_clear(struct db_delivery *d);
/*
 * Claims (and commits) up to limit due events, the oldest pending one of
 * each org, leasing each for lease_ms. Fills out[0..*n-1] (caller clears).
 */
enum db_rc	 db_outbox_claim(struct db *db, int limit, long lease_ms,
		    struct db_delivery *out, int *n);
/*
 * Records the outcome ("delivered", "rejected", "error") of a claimed
 * attempt; otherwise the next try is in retry_s, or the event is failed
 * (*failed) when that passes max_age_s since its window started.
 * DB_NOTFOUND when the claim was lost (the row was claimed again).
 */
enum db_rc	 db_outbox_record(struct db *db, const struct db_delivery *d,
		    const char *outcome, long http_status, const char *error,
		    double retry_s, long max_age_s, bool *failed);
/* Appends delivery objects with id > after (status NULL: all). */
enum db_rc	 db_outbox_list(struct db *db, const char *status,
		    long long after, int limit, struct cJSON *array);
/*
 * Makes events pending again now: id (a delivery id or an event id) that is
 * delivered or failed, or with id NULL every failed one. *n gets the count;
 * DB_NOTFOUND when id matched nothing retryable.
 */
enum db_rc	 db_outbox_retry(struct db *db, const char *id, long long *n);
#define DB_OUTCOMES	4
struct db_outbox_stats {
	long long	 pending, failed;
	double		 oldest_pending_s;
	int		 noutcomes;
	char		 outcome[DB_OUTCOMES][16];
	long long	 attempts[DB_OUTCOMES];
};
enum db_rc	 db_outbox_stats(struct db *db, struct db_outbox_stats *st);
/* Seconds until the next event is due (<= 0: now); DB_NOTFOUND when none is pending. */
enum db_rc	 db_outbox_next_due(struct db *db, double *in_s);
/* LISTENs on DB_WEBHOOK_CHANNEL (again after each reconnect). */
enum db_rc	 db_listen_webhooks(struct db *db);
/*
 * Waits up to timeout_ms for a notification: DB_OK when one came,
 * DB_NOTFOUND on timeout or a signal, DB_UNAVAILABLE when the connection died.
 */
enum db_rc	 db_wait_notify(struct db *db, int timeout_ms);

#endif

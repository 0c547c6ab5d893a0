/* The store: the connection, statements run, transactions, migrations. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "cache.h"
#include "cache_ring.h"
#include "crypto.h"
#include "db.h"
#include "db_internal.h"
#include "log.h"
#include "metrics.h"
#include "migrations.h"
#include "util.h"



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

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	PQfinish(db->conn);
	cache_free(db->cache);
	free(db->conninfo);
	free(db);
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

/*
 * Reads what the server sent an idle connection: a terminated backend
 * sends its FATAL notice, then closes, and only reading both marks the
 * connection bad (else the next statement, maybe a write, fails on it).
 * What libpq already holds is parsed first; the socket is read only when
 * poll says there is something (one syscall when there is not). false when
 * the connection is lost.
 */
static bool
drain_idle(struct db *db)
{
	struct pollfd	 p;

	(void)PQisBusy(db->conn);	/* parses notices and notifies held */
	for (int i = 0; i < 4; i++) {
		p.fd = PQsocket(db->conn);
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, 0) != 1)
			break;
		if (!PQconsumeInput(db->conn))
			return false;
		(void)PQisBusy(db->conn);
	}
	return PQstatus(db->conn) == CONNECTION_OK;
}

/*
 * The cache's notifications are applied; those of this session's own
 * writes are published to the host's workers too (cache_ring.h).
 */
void
dbi_take_notifies(struct db *db)
{
	PGnotify	*n;

	while ((n = PQnotifies(db->conn)) != NULL) {
		if (db->cache != NULL && strcmp(n->relname, DB_CACHE_CHANNEL) == 0) {
			cache_apply(db->cache, n->extra);
			if (n->be_pid == PQbackendPID(db->conn))
				cache_ring_publish(n->extra);
		} else
			db->notified = true;
		PQfreemem(n);
	}
}

/* LISTENs for the cache on a new connection; without it, no cache. */
static void
listen_cache(struct db *db)
{
	db->cache_live = db->cache != NULL &&
	    dbi_exec_simple(db, "LISTEN " DB_CACHE_CHANNEL) == DB_OK;
	if (db->cache != NULL && !db->cache_live)
		log_warn("db_cache_off", "cannot LISTEN: reads are not cached");
}

/*
 * Reads an idle connection and takes its notifications (a webhook one is
 * kept for db_wait_notify). false when the connection is lost.
 */
static bool
take_idle(struct db *db)
{
	if (PQstatus(db->conn) == CONNECTION_OK &&
	    PQtransactionStatus(db->conn) == PQTRANS_IDLE &&
	    !drain_idle(db))
		log_warn("db_lost", "database connection lost; reconnecting");
	if (db->cache != NULL)
		cache_ring_apply(&db->ring_seen, db->cache);
	if (PQstatus(db->conn) != CONNECTION_OK)
		return false;
	dbi_take_notifies(db);
	return true;
}

int
db_notify_fd(struct db *db)
{
	if (!db->cache_live || PQstatus(db->conn) != CONNECTION_OK ||
	    PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		return -1;
	return PQsocket(db->conn);
}

void
db_idle(struct db *db)
{
	(void)take_idle(db);
}

enum db_rc
db_ensure(struct db *db)
{
	if (take_idle(db))
		return DB_OK;
	/* What the cache holds may have changed unannounced: forget it. */
	if (db->cache != NULL)
		cache_clear(db->cache);
	db->cache_live = false;
	memset(db->prepared, 0, sizeof(db->prepared));
	PQfinish(db->conn);
	db->conn = connect_db(db->conninfo);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		log_warn("db_unavailable", "cannot reach the database");
		metrics_db_error(METRICS_DB_UNAVAILABLE);
		return DB_UNAVAILABLE;
	}
	log_info("db_reconnected", "database connection re-established");
	metrics_db_reconnect();
	if (db->listening &&
	    dbi_exec_simple(db, "LISTEN " DB_WEBHOOK_CHANNEL) != DB_OK)
		return DB_UNAVAILABLE;
	listen_cache(db);
	return DB_OK;
}

enum db_rc
db_cache_enable(struct db *db)
{
	if (db->cache != NULL)
		return DB_OK;
	if ((db->cache = cache_new(CACHE_TTL_S)) == NULL)
		return DB_ERROR;
	db->ring_seen = cache_ring_head();
	if (PQstatus(db->conn) == CONNECTION_OK)
		listen_cache(db);
	return DB_OK;
}

/* Classifies a failed result. */
static enum db_rc
result_rc(struct db *db, const PGresult *res)
{
	const char	*state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(db->conn) != CONNECTION_OK ||
	    (state != NULL && (strncmp(state, "08", 2) == 0 ||
	    strncmp(state, "57P", 3) == 0))) {
		metrics_db_error(METRICS_DB_UNAVAILABLE);
		return DB_UNAVAILABLE;
	}
	if (state != NULL && strcmp(state, "23505") == 0)
		return DB_CONFLICT;
	if (state != NULL && strcmp(state, "55P03") == 0) {
		metrics_db_error(METRICS_DB_LOCK_TIMEOUT);
		return DB_LOCK_TIMEOUT;
	}
	metrics_db_error(METRICS_DB_ERROR);
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
		res = PQprepare(db->conn, name, db_stmt_sql[st], 0, NULL);
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

enum db_rc
dbi_run(struct db *db, enum stmt st, int n, const char *const *params,
    PGresult **out)
{
	bool		 idle = PQtransactionStatus(db->conn) == PQTRANS_IDLE;
	enum db_rc	 rc = run_once(db, st, n, params, out);

	if (rc == DB_UNAVAILABLE && idle && db_stmt_is_read[st] &&
	    db_ensure(db) == DB_OK)
		rc = run_once(db, st, n, params, out);
	return rc;
}

/* Runs a statement whose rows, if any, nobody reads. */
enum db_rc
dbi_run_discard(struct db *db, enum stmt st, int n, const char *const *params)
{
	PGresult	*res;
	enum db_rc	 rc = dbi_run(db, st, n, params, &res);

	PQclear(res);
	return rc;
}

enum db_rc
dbi_exec_simple(struct db *db, const char *sql)
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
	bool		 idle = PQtransactionStatus(db->conn) == PQTRANS_IDLE;
	enum db_rc	 rc = dbi_exec_simple(db, "BEGIN");

	/* BEGIN changes nothing: on a dead idle connection, once more anew. */
	if (rc == DB_UNAVAILABLE && idle && db_ensure(db) == DB_OK)
		rc = dbi_exec_simple(db, "BEGIN");
	return rc;
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
	/* The request's own writes reach the host's workers before its answer. */
	if (db->cache != NULL && PQstatus(db->conn) == CONNECTION_OK)
		dbi_take_notifies(db);
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
		(void)dbi_exec_simple(db, "ROLLBACK");
}

enum db_rc
db_ping(struct db *db)
{
	PGresult	*res;
	enum db_rc	 rc = dbi_run(db, ST_PING, 0, NULL, &res);

	PQclear(res);
	return rc;
}

void
dbi_copy_col(const PGresult *res, int row, int col, char *dst, size_t dstlen)
{
	snprintf(dst, dstlen, "%s", PQgetvalue(res, row, col));
}

long long
dbi_ll_col(const PGresult *res, int row, int col)
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
enum db_rc
dbi_run_json_array(struct db *db, enum stmt st, int n, const char *const *params,
    cJSON *array)
{
	PGresult	*res;
	enum db_rc	 rc;

	if ((rc = dbi_run(db, st, n, params, &res)) != DB_OK)
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
	if ((rc = dbi_exec_simple(db, "LOCK TABLE schema_migrations IN EXCLUSIVE MODE")) != DB_OK)
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
	if ((rc = dbi_exec_simple(db, m->sql)) != DB_OK) {
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

	rc = dbi_exec_simple(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
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

enum db_rc
dbi_run_id(struct db *db, enum stmt st, long long id, PGresult **res)
{
	char		 ids[24];
	const char	*params[1] = { ids };

	snprintf(ids, sizeof(ids), "%lld", id);
	return dbi_run(db, st, 1, params, res);
}

/* rc, or DB_NOTFOUND with *res cleared when it holds not exactly one row. */
static enum db_rc
one_row(enum db_rc rc, PGresult **res)
{
	if (rc == DB_OK && PQntuples(*res) != 1) {
		PQclear(*res);
		*res = NULL;
		rc = DB_NOTFOUND;
	}
	return rc;
}

enum db_rc
dbi_run_row(struct db *db, enum stmt st, int n, const char *const *params,
    PGresult **res)
{
	return one_row(dbi_run(db, st, n, params, res), res);
}

enum db_rc
dbi_run_id_row(struct db *db, enum stmt st, long long id, PGresult **res)
{
	return one_row(dbi_run_id(db, st, id, res), res);
}

static enum db_rc
load_one(enum db_rc rc, PGresult *res, dbi_load_fn load, void *out)
{
	if (rc == DB_OK) {
		load(res, out);
		PQclear(res);
	}
	return rc;
}

enum db_rc
dbi_get(struct db *db, enum stmt st, int n, const char *const *params,
    dbi_load_fn load, void *out)
{
	PGresult	*res = NULL;
	enum db_rc	 rc = dbi_run_row(db, st, n, params, &res);

	return load_one(rc, res, load, out);
}

enum db_rc
dbi_get_id(struct db *db, enum stmt st, long long id, dbi_load_fn load,
    void *out)
{
	PGresult	*res = NULL;
	enum db_rc	 rc = dbi_run_id_row(db, st, id, &res);

	return load_one(rc, res, load, out);
}

/*
 * What the store's files (db*.c) share and nothing else sees: the
 * statement ids and their SQL (db_sql.c), the connection, and the helpers
 * that run statements and read results (db.c).
 */
#ifndef SFC_DB_INTERNAL_H
#define SFC_DB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include <libpq-fe.h>

#include "db.h"

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
	ST_CHECK_LAG,
	ST_STATE_START,
	ST_AUTH_ORG,
	ST_JOB_CREATE,
	ST_JOB_WORK,
	ST_JOB_STARTED,
	ST_JOB_FINISH,
	ST_JOB_GET,
	/* sql/009 */
	ST_INTEG_LIST_STATUS,
	ST_STATUS_COUNTS_COMPACT,
	ST_INTEG_REFRESHED_MANY,
	ST__MAX
};

/* The SQL of each statement, and whether it may be retried once as a read. */
extern const char *const db_stmt_sql[ST__MAX];
extern const bool db_stmt_is_read[ST__MAX];
/* How the integrations.status column spells each status. */
extern const char *const db_pg_status[INTEG__MAX];

struct db {
	PGconn	*conn;
	char	*conninfo;
	bool	 prepared[ST__MAX];
	bool	 listening;	/* LISTEN again after a reconnect */
	struct cache *cache;	/* NULL: reads are not cached */
	bool	 cache_live;	/* LISTENing for the cache on this connection */
	bool	 notified;	/* a webhook notification was taken, not yet waited for */
	unsigned long long ring_seen;	/* the host's announcements applied */
};

/*
 * Takes the notifications libpq has read: applies the cache's, and sets
 * db->notified for any other (a webhook's, for db_wait_notify).
 */
void		 dbi_take_notifies(struct db *db);

/*
 * Runs prepared statement st with n text parameters; *res (caller clears)
 * holds its rows. A read is retried once on a fresh connection when the
 * old one turns out to be dead. A db_rc.
 */
enum db_rc	 dbi_run(struct db *db, enum stmt st, int n,
		    const char *const *params, PGresult **res);
/* dbi_run with one parameter, the id. */
enum db_rc	 dbi_run_id(struct db *db, enum stmt st, long long id,
		    PGresult **res);
/*
 * dbi_run and dbi_run_id for a statement that gives one row: DB_NOTFOUND
 * (nothing to clear) when it gave none or several.
 */
enum db_rc	 dbi_run_row(struct db *db, enum stmt st, int n,
		    const char *const *params, PGresult **res);
enum db_rc	 dbi_run_id_row(struct db *db, enum stmt st, long long id,
		    PGresult **res);
/* Fills out from the one row of res. */
typedef void	(*dbi_load_fn)(const PGresult *res, void *out);
/* dbi_run_row and dbi_run_id_row, then load into out. A db_rc. */
enum db_rc	 dbi_get(struct db *db, enum stmt st, int n,
		    const char *const *params, dbi_load_fn load, void *out);
enum db_rc	 dbi_get_id(struct db *db, enum stmt st, long long id,
		    dbi_load_fn load, void *out);
/* The PostgreSQL array literal of set ("{connected,degraded}") into out. */
void		 dbi_status_array(integ_status_set set, char *out,
		    size_t outlen);
/* Runs a statement whose rows, if any, nobody reads. A db_rc. */
enum db_rc	 dbi_run_discard(struct db *db, enum stmt st, int n,
		    const char *const *params);
/* Runs st, whose one row holds a JSON array, appending its items to array. */
enum db_rc	 dbi_run_json_array(struct db *db, enum stmt st, int n,
		    const char *const *params, cJSON *array);
/* Runs sql (no parameters) outside the statement table. A db_rc. */
enum db_rc	 dbi_exec_simple(struct db *db, const char *sql);
/* Column col of row as text into dst (cut to dstlen), or as a number. */
/*
 * Fills integ from the INTEG_COLS of row starting at column col0; -1 on a
 * bad row or out of memory (integ is then cleared).
 */
int		 dbi_load_integration(const PGresult *res, int row, int col0,
		    struct integration *integ);
void		 dbi_copy_col(const PGresult *res, int row, int col, char *dst,
		    size_t dstlen);
long long	 dbi_ll_col(const PGresult *res, int row, int col);

#endif

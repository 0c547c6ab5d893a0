/*
 * Process counters for /metrics, shared by the supervisor and every child:
 * metrics_init() maps one anonymous shared region before the first fork, and
 * each event adds to fixed arrays of atomic counters there (no allocation,
 * no lock). metrics_write() sums nothing: there is one copy of each counter,
 * so what it prints is already the total of all workers (and of workers that
 * died since). Before metrics_init(), or when it failed, every call is a
 * no-op and metrics_write() prints only the build info.
 */
#ifndef SFC_METRICS_H
#define SFC_METRICS_H

#include <stdbool.h>

#include "buf.h"
#include "sf.h"

/* Route slots: 0 for a request no route matched, 1 + the route table index. */
#define METRICS_ROUTES_MAX	32

enum metrics_sf_endpoint {
	METRICS_SF_TOKEN_CODE,		/* token endpoint, authorization_code grant */
	METRICS_SF_TOKEN_REFRESH,	/* token endpoint, refresh_token grant */
	METRICS_SF_IDENTITY,
	METRICS_SF_REVOKE,
	METRICS_SF__MAX
};

enum metrics_db_error {
	METRICS_DB_UNAVAILABLE,		/* connection lost or refused */
	METRICS_DB_LOCK_TIMEOUT,
	METRICS_DB_ERROR,		/* any other failed statement */
	METRICS_DB__MAX
};

/* In the supervisor, before forking: 0, or -1 (metrics then stay off). */
int	metrics_init(void);
/* A monotonic clock in seconds, for the durations passed below. */
double	metrics_now(void);
/* One answered request: route slot, HTTP status, duration. */
void	metrics_request(int route, int status, double seconds);
/* One Salesforce call: outcome SF_OK or the failure's kind. */
void	metrics_sf_call(enum metrics_sf_endpoint endpoint, enum sf_kind outcome,
	    double seconds);
/* One refresh whose outcome was judged (SF_OK or the failure's kind). */
void	metrics_refresh(enum sf_kind outcome);
void	metrics_db_error(enum metrics_db_error kind);
void	metrics_db_reconnect(void);
/* A read of db_auth_lookup_cached, answered from the cache or not. */
void	metrics_read_cache(bool hit);
void	metrics_worker_restart(void);
/* Appends the counters in the Prometheus text format (0.0.4). */
void	metrics_write(struct buf *out);
/*
 * Appends label value s escaped for the text format (\\, \" and \n).
 * 0, or -1 when out is full.
 */
int	metrics_put_label(struct buf *out, const char *s);

#endif

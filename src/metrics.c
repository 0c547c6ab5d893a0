/* Counters in one shared anonymous mapping; see metrics.h. */
#ifdef HAVE_CONFIG_H
#include "config.h"		/* PACKAGE_VERSION, from configure.ac */
#endif

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "api.h"
#include "metrics.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION	"unknown"	/* built outside configure (the fuzz smoke) */
#endif

#if ATOMIC_LLONG_LOCK_FREE != 2
#error "the shared counters need lock-free 64-bit atomics"
#endif

#define STATUS_MIN	100
#define STATUS_MAX	599
#define NSTATUS		(STATUS_MAX - STATUS_MIN + 2)	/* slot 0: out of range */
#define NOUTCOMES	4				/* enum sf_kind */

typedef atomic_ullong	counter;

/* Upper bounds (seconds, inclusive) of the latency buckets; +Inf is last. */
static const double	 bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
#define NBUCKETS	(ARRAY_LEN(bounds) + 1)

/* Per bucket, not cumulative: _count is their sum, so it always equals +Inf. */
struct histogram {
	counter		 bucket[NBUCKETS];
	counter		 sum_us;
};

struct shared {
	counter		 requests[METRICS_ROUTES_MAX][NSTATUS];
	struct histogram request_seconds[METRICS_ROUTES_MAX];
	counter		 sf_calls[METRICS_SF__MAX][NOUTCOMES];
	struct histogram sf_seconds[METRICS_SF__MAX];
	counter		 refreshes[NOUTCOMES];
	counter		 db_errors[METRICS_DB__MAX];
	counter		 db_reconnects;
	counter		 read_cache[2];	/* [0] misses, [1] hits */
	counter		 worker_restarts;
};

static struct shared	*shm;

static const char *const outcome_names[NOUTCOMES] = {
	[SF_OK] = "ok", [SF_INVALID] = "invalid",
	[SF_TRANSIENT] = "transient", [SF_CONFIG] = "config",
};
static const char *const endpoint_names[METRICS_SF__MAX] = {
	[METRICS_SF_TOKEN_CODE] = "token_authorization_code",
	[METRICS_SF_TOKEN_REFRESH] = "token_refresh",
	[METRICS_SF_IDENTITY] = "identity",
	[METRICS_SF_REVOKE] = "revoke",
};
static const char *const db_error_names[METRICS_DB__MAX] = {
	[METRICS_DB_UNAVAILABLE] = "unavailable",
	[METRICS_DB_LOCK_TIMEOUT] = "lock_timeout",
	[METRICS_DB_ERROR] = "error",
};

int
metrics_init(void)
{
	void	*p;

	if (shm != NULL)
		return 0;
	p = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	shm = p;	/* zero-filled: every counter starts at 0 */
	return 0;
}

double
metrics_now(void)
{
	struct timespec	 t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void
add(counter *c, unsigned long long n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static unsigned long long
get(counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static void
observe(struct histogram *h, double seconds)
{
	size_t	 i;

	if (!(seconds >= 0))
		seconds = 0;	/* also NaN */
	for (i = 0; i < ARRAY_LEN(bounds) && seconds > bounds[i]; i++)
		;
	add(&h->bucket[i], 1);
	add(&h->sum_us, (unsigned long long)(seconds * 1e6 + 0.5));
}

static size_t
outcome_slot(enum sf_kind outcome)
{
	return (unsigned)outcome < NOUTCOMES ? (size_t)outcome : SF_TRANSIENT;
}

void
metrics_request(int route, int status, double seconds)
{
	if (shm == NULL)
		return;
	if (route < 0 || route >= METRICS_ROUTES_MAX)
		route = 0;
	add(&shm->requests[route][status >= STATUS_MIN && status <= STATUS_MAX ?
	    status - STATUS_MIN + 1 : 0], 1);
	observe(&shm->request_seconds[route], seconds);
}

void
metrics_sf_call(enum metrics_sf_endpoint endpoint, enum sf_kind outcome,
    double seconds)
{
	if (shm == NULL || (unsigned)endpoint >= METRICS_SF__MAX)
		return;
	add(&shm->sf_calls[endpoint][outcome_slot(outcome)], 1);
	observe(&shm->sf_seconds[endpoint], seconds);
}

void
metrics_refresh(enum sf_kind outcome)
{
	if (shm != NULL)
		add(&shm->refreshes[outcome_slot(outcome)], 1);
}

void
metrics_db_error(enum metrics_db_error kind)
{
	if (shm != NULL && (unsigned)kind < METRICS_DB__MAX)
		add(&shm->db_errors[kind], 1);
}

void
metrics_db_reconnect(void)
{
	if (shm != NULL)
		add(&shm->db_reconnects, 1);
}

void
metrics_read_cache(bool hit)
{
	if (shm != NULL)
		add(&shm->read_cache[hit ? 1 : 0], 1);
}

void
metrics_worker_restart(void)
{
	if (shm != NULL)
		add(&shm->worker_restarts, 1);
}

/* ---------------------------------------------------------------- output */

int
metrics_put_label(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		const char	*esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" :
			    *s == '\n' ? "\\n" : NULL;

		if (esc != NULL ? buf_puts(out, esc) == -1 :
		    buf_append(out, s, 1) == -1)
			return -1;
	}
	return 0;
}

static void
header(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{labels,le="..."} for each bucket, then _sum and _count; labels may be "". */
static void
put_histogram(struct buf *out, const char *name, const char *labels,
    struct histogram *h)
{
	unsigned long long	 cum = 0;
	const char		*sep = labels[0] != '\0' ? "," : "";

	for (size_t i = 0; i < NBUCKETS; i++) {
		cum += get(&h->bucket[i]);
		if (i < ARRAY_LEN(bounds))
			buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name,
			    labels, sep, bounds[i], cum);
		else
			buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name,
			    labels, sep, cum);
	}
	buf_printf(out, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "",
	    labels, labels[0] ? "}" : "", (double)get(&h->sum_us) / 1e6);
	buf_printf(out, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "",
	    labels, labels[0] ? "}" : "", cum);
}

/* method="GET",route="/healthz" of a route slot into b (reset first); -1 past the last. */
static int
route_labels(struct buf *b, int slot)
{
	const char	*method, *pattern;

	if (api_route_label(slot, &method, &pattern) == -1)
		return -1;
	buf_reset(b);
	buf_puts(b, "method=\"");
	metrics_put_label(b, method);
	buf_puts(b, "\",route=\"");
	metrics_put_label(b, pattern);
	buf_puts(b, "\"");
	return 0;
}

static void
write_requests(struct buf *out)
{
	struct buf	 labels;
	char		 code[8];

	buf_init(&labels, 512);
	header(out, "sfconnect_http_requests_total", "counter",
	    "Requests answered, by route and status.");
	for (int r = 0; r < METRICS_ROUTES_MAX && route_labels(&labels, r) == 0;
	    r++)
		for (size_t s = 0; s < NSTATUS; s++) {
			unsigned long long n = get(&shm->requests[r][s]);

			if (n == 0)
				continue;
			if (s == 0)
				snprintf(code, sizeof(code), "other");
			else
				snprintf(code, sizeof(code), "%zu",
				    s - 1 + STATUS_MIN);
			buf_printf(out, "sfconnect_http_requests_total{%s,"
			    "code=\"%s\"} %llu\n", labels.data, code, n);
		}
	header(out, "sfconnect_http_request_duration_seconds", "histogram",
	    "Time to answer a request, by route.");
	for (int r = 0; r < METRICS_ROUTES_MAX && route_labels(&labels, r) == 0;
	    r++)
		put_histogram(out, "sfconnect_http_request_duration_seconds",
		    labels.data, &shm->request_seconds[r]);
	buf_free(&labels);
}

static void
write_salesforce(struct buf *out)
{
	char	 labels[96];

	header(out, "sfconnect_salesforce_calls_total", "counter",
	    "Salesforce calls by endpoint and outcome.");
	for (size_t e = 0; e < METRICS_SF__MAX; e++)
		for (size_t o = 0; o < NOUTCOMES; o++)
			buf_printf(out, "sfconnect_salesforce_calls_total"
			    "{endpoint=\"%s\",outcome=\"%s\"} %llu\n",
			    endpoint_names[e], outcome_names[o],
			    get(&shm->sf_calls[e][o]));
	header(out, "sfconnect_salesforce_call_duration_seconds", "histogram",
	    "Duration of Salesforce calls, by endpoint.");
	for (size_t e = 0; e < METRICS_SF__MAX; e++) {
		snprintf(labels, sizeof(labels), "endpoint=\"%s\"",
		    endpoint_names[e]);
		put_histogram(out, "sfconnect_salesforce_call_duration_seconds",
		    labels, &shm->sf_seconds[e]);
	}
	header(out, "sfconnect_refreshes_total", "counter",
	    "Token refreshes by outcome (ok, or the failure's kind).");
	for (size_t o = 0; o < NOUTCOMES; o++)
		buf_printf(out, "sfconnect_refreshes_total{outcome=\"%s\"} %llu\n",
		    outcome_names[o], get(&shm->refreshes[o]));
}

static void
write_process(struct buf *out)
{
	header(out, "sfconnect_db_errors_total", "counter",
	    "Failed database statements and connection attempts, by kind.");
	for (size_t k = 0; k < METRICS_DB__MAX; k++)
		buf_printf(out, "sfconnect_db_errors_total{kind=\"%s\"} %llu\n",
		    db_error_names[k], get(&shm->db_errors[k]));
	header(out, "sfconnect_db_reconnects_total", "counter",
	    "Database connections re-established after a loss.");
	buf_printf(out, "sfconnect_db_reconnects_total %llu\n",
	    get(&shm->db_reconnects));
	header(out, "sfconnect_read_cache_total", "counter",
	    "Authenticated reads answered from a worker's cache (hit) or the database (miss).");
	buf_printf(out, "sfconnect_read_cache_total{result=\"hit\"} %llu\n"
	    "sfconnect_read_cache_total{result=\"miss\"} %llu\n",
	    get(&shm->read_cache[1]), get(&shm->read_cache[0]));
	header(out, "sfconnect_worker_restarts_total", "counter",
	    "Children (workers, checker, deliverer) restarted after they died.");
	buf_printf(out, "sfconnect_worker_restarts_total %llu\n",
	    get(&shm->worker_restarts));
}

void
metrics_write(struct buf *out)
{
	header(out, "sfconnect_build_info", "gauge",
	    "Always 1; the version of this sfconnectd.");
	buf_puts(out, "sfconnect_build_info{version=\"");
	metrics_put_label(out, PACKAGE_VERSION);
	buf_puts(out, "\"} 1\n");
	if (shm == NULL)
		return;
	write_requests(out);
	write_salesforce(out);
	write_process(out);
}

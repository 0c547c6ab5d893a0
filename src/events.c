#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "db.h"
#include "events.h"
#include "log.h"
#include "status.h"
#include "util.h"
#include "webhook.h"

#define CLAIM_BATCH		8
#define LEASE_MARGIN_MS		5000
#define BACKOFF_MAX_S		3600.0

/* "evt_" and 24 random hex digits into out[29]; -1 when no randomness. */
static int
new_event_id(char out[29])
{
	unsigned char	 r[12];

	if (crypto_random(r, sizeof(r)) == -1)
		return -1;
	memcpy(out, "evt_", 4);
	crypto_hex(r, sizeof(r), out + 4);
	return 0;
}

/* The event's JSON text (caller frees), NULL on out of memory. */
static char *
event_body(const char *event_id, const char *type,
    const struct integration *integ)
{
	cJSON	*root, *status;
	char	 now[21], *text = NULL;

	if ((root = cJSON_CreateObject()) == NULL)
		return NULL;
	time_rfc3339(time(NULL), now);
	cJSON_AddStringToObject(root, "id", event_id);
	cJSON_AddStringToObject(root, "type", type);
	cJSON_AddStringToObject(root, "created_at", now);
	cJSON_AddStringToObject(root, "org", integ->org_slug);
	if ((status = status_object(integ)) != NULL) {
		cJSON_AddItemToObject(root, "integration", status);
		text = cJSON_PrintUnformatted(root);
	}
	cJSON_Delete(root);
	return text;
}

int
events_emit(struct app *app, long long org_id, const char *type)
{
	struct integration	 integ = { .org_id = 0 };
	char			 event_id[29], *body = NULL;
	int			 rc;

	if (app->cfg->webhook_url == NULL || app->cfg->webhook_url[0] == '\0')
		return DB_OK;
	if ((rc = db_integration_get(app->db, org_id, &integ)) != DB_OK)
		return rc;
	rc = DB_ERROR;
	if (new_event_id(event_id) == -1 ||
	    (body = event_body(event_id, type, &integ)) == NULL)
		goto out;
	rc = db_outbox_add(app->db, event_id, org_id, type, body);
	if (rc == DB_OK)
		log_debug("webhook_queued", "org %s: %s %s", integ.org_slug, type,
		    event_id);
out:
	free(body);
	db_integration_clear(&integ);
	return rc;
}

double
events_backoff_s(long base_ms, int attempts, unsigned char r)
{
	double	 d = (double)base_ms / 1000.0;

	for (int i = 1; i < attempts && d < BACKOFF_MAX_S; i++)
		d *= 2;
	d *= 0.8 + 0.4 * (double)r / 256.0;
	return d > BACKOFF_MAX_S ? BACKOFF_MAX_S : d;
}

static const char *
outcome_name(enum webhook_outcome o)
{
	return o == WEBHOOK_DELIVERED ? "delivered" :
	    o == WEBHOOK_REJECTED ? "rejected" : "error";
}

/* Sends one claimed event and records the outcome. A db_rc. */
static int
deliver_one(struct app *app, struct webhook *wh, const struct db_delivery *d)
{
	struct webhook_result	 res;
	enum webhook_outcome	 o;
	unsigned char		 r;
	double			 retry_s;
	bool			 failed;
	int			 rc;

	o = webhook_post(wh, app->webhook_secret, d->event_id, d->body,
	    (long long)time(NULL), &res);
	if (crypto_random(&r, 1) == -1)
		r = 128;
	retry_s = events_backoff_s(app->cfg->webhook_retry_base_ms, d->attempts, r);
	rc = db_outbox_record(app->db, d, outcome_name(o), res.http_status,
	    res.error, retry_s, app->cfg->webhook_max_age_s, &failed);
	if (o == WEBHOOK_DELIVERED)
		log_info("webhook_delivered", "%s %s (org %lld): HTTP %ld after "
		    "%.3fs, attempt %d", d->type, d->event_id, d->org_id,
		    res.http_status, d->age_s, d->attempts);
	else
		log_warn(failed ? "webhook_failed" : "webhook_retry",
		    "%s %s (org %lld): attempt %d: %s%s%s%s", d->type,
		    d->event_id, d->org_id, d->attempts, res.error,
		    res.body[0] ? ": \"" : "", res.body, res.body[0] ? "\"" : "");
	if (rc == DB_NOTFOUND) {
		log_warn("webhook_lease_lost", "%s: claimed again elsewhere "
		    "while being sent", d->event_id);
		rc = DB_OK;
	}
	return rc;
}

int
events_deliver_due(struct app *app, struct webhook *wh,
    volatile sig_atomic_t *stop)
{
	struct db_delivery	 batch[CLAIM_BATCH];
	long			 lease_ms = app->cfg->webhook_timeout_ms +
				    LEASE_MARGIN_MS;
	int			 n, rc = DB_OK;

	do {
		if ((rc = db_outbox_claim(app->db, CLAIM_BATCH, lease_ms, batch,
		    &n)) != DB_OK)
			break;
		for (int i = 0; i < n; i++) {
			if (rc == DB_OK && !*stop)
				rc = deliver_one(app, wh, &batch[i]);
			db_delivery_clear(&batch[i]);
		}
	} while (rc == DB_OK && n > 0 && !*stop);
	return rc;
}

int
events_metrics(struct app *app, struct buf *out)
{
	struct db_outbox_stats	 st;
	int			 rc;

	if ((rc = db_outbox_stats(app->db, &st)) != DB_OK)
		return rc;
	buf_printf(out, "# HELP sfconnect_webhook_outbox Webhook events by "
	    "delivery state.\n# TYPE sfconnect_webhook_outbox gauge\n"
	    "sfconnect_webhook_outbox{status=\"pending\"} %lld\n"
	    "sfconnect_webhook_outbox{status=\"failed\"} %lld\n",
	    st.pending, st.failed);
	buf_printf(out, "# HELP sfconnect_webhook_oldest_pending_seconds Age "
	    "of the oldest undelivered event.\n"
	    "# TYPE sfconnect_webhook_oldest_pending_seconds gauge\n"
	    "sfconnect_webhook_oldest_pending_seconds %.3f\n",
	    st.oldest_pending_s);
	buf_puts(out, "# HELP sfconnect_webhook_deliveries_total Delivery "
	    "attempts by outcome (failed: events given up).\n"
	    "# TYPE sfconnect_webhook_deliveries_total counter\n");
	for (int i = 0; i < st.noutcomes; i++)
		buf_printf(out, "sfconnect_webhook_deliveries_total"
		    "{outcome=\"%s\"} %lld\n", st.outcome[i], st.attempts[i]);
	return DB_OK;
}

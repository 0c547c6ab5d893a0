/*
 * Webhook events: the outbox write of each integration state change (inside
 * the caller's transaction), and their delivery by sfconnectd. Delivery is
 * at least once; receivers dedupe by event id (docs/API.md, "Webhooks").
 */
#ifndef SFC_EVENTS_H
#define SFC_EVENTS_H

#include <signal.h>

#include "app.h"
#include "buf.h"

struct webhook;

/*
 * Inside the caller's transaction, after the change is written: adds the
 * event type ("integration.invalid") with org_id's status object as it is
 * now. Nothing when no webhook_url is configured. A db_rc.
 */
int	events_emit(struct app *app, long long org_id, const char *type);
/*
 * The delay before attempt attempts + 1: base_ms doubled per attempt made
 * (attempts >= 1), times a jitter in [0.8, 1.2) from r, capped at one hour.
 */
double	events_backoff_s(long base_ms, int attempts, unsigned char r);
/*
 * Delivers due events (claimed, then sent with no lock held, then
 * recorded) until none is due or *stop is set. A db_rc.
 */
int	events_deliver_due(struct app *app, struct webhook *wh,
	    volatile sig_atomic_t *stop);
/* Appends the outbox's Prometheus metrics to out. A db_rc. */
int	events_metrics(struct app *app, struct buf *out);

#endif

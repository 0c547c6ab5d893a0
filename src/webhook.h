/*
 * Webhook HTTP: one POST of a signed event to webhook_url, and nothing
 * else (no redirect, TLS verified against tls_ca_file when set). The only
 * module that sends webhooks; the outbox is events.c's.
 */
#ifndef SFC_WEBHOOK_H
#define SFC_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

#define WEBHOOK_BODY_LOG_MAX	200	/* of the receiver's answer */

enum webhook_outcome {
	WEBHOOK_DELIVERED,	/* 2xx */
	WEBHOOK_REJECTED,	/* any other HTTP status */
	WEBHOOK_ERROR,		/* no answer: connect, TLS, timeout */
};

struct webhook_result {
	long	 http_status;			/* 0 without an answer */
	char	 error[128];			/* why, when not delivered */
	char	 body[WEBHOOK_BODY_LOG_MAX + 1];	/* start of the answer */
};

struct webhook;

/* true for an https:// URL, or http:// to 127.0.0.1, [::1] or localhost. */
bool		 webhook_url_ok(const char *url);
/*
 * The Sfconnect-Signature value "t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">"
 * into out. 0, or -1 on bad arguments or a short out.
 */
int		 webhook_signature(const char *secret, long long t,
		    const char *body, char *out, size_t outlen);
/* A sender for cfg's webhook_url (checked by the caller). NULL on out of memory. */
struct webhook	*webhook_new(const struct cfg *cfg);
void		 webhook_free(struct webhook *wh);
/* POSTs body signed with secret at time t, with Sfconnect-Event-Id event_id. */
enum webhook_outcome webhook_post(struct webhook *wh, const char *secret,
		    const char *event_id, const char *body, long long t,
		    struct webhook_result *res);

#endif

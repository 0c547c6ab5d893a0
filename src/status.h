/* The status object of docs/API.md, built from a stored integration. */
#ifndef SFC_STATUS_H
#define SFC_STATUS_H

#include <cjson/cJSON.h>

#include "db.h"

/* A new status object (caller owns it), NULL on out of memory. */
cJSON	*status_object(const struct integration *integ);
/*
 * degraded_alert_after_s: a degraded integration that has not refreshed
 * for that long gets a warning banner. Set once, before any status object.
 */
void	 status_set_alert_after(long seconds);
/* The banner of an integration, or NULL when it needs none. Caller owns it. */
cJSON	*status_banner(const struct integration *integ);
/* The banner action's href (config banner_action_url; copied, at most 511 bytes). */
void	 status_set_banner_href(const char *href);

#endif

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"

#include "api.h"
#include "sf.h"
#include "status.h"
#include "util.h"

#define BANNER_HREF	"/admin/integrations"
#define ALERT_AFTER_DEFAULT_S	21600

/* degraded_alert_after_s, set once per process (status_set_alert_after). */
static long	alert_after_s = ALERT_AFTER_DEFAULT_S;

/*
 * What the banner says for each hint_code (sf_hint_code; docs/API.md lists
 * them). what: the cause, for the message; hint: what to do. "{user}"
 * stands for the Salesforce user of the connection. heals: an invalid
 * integration with this cause comes back by itself once it is fixed.
 */
static const struct hint {
	const char	*code;
	const char	*what;
	const char	*hint;
	bool		 heals;
} hints[] = {
	{ "refresh_token_policy", "the connection's refresh token was revoked or expired",
	  "The likely causes, in order: the app's Refresh Token Policy ended it "
	  "(in Salesforce Setup, set the Refresh Token Policy of the app "
	  "(connected app or external client app) to \"Refresh token is valid "
	  "until revoked\"); a user or an admin revoked the app's access; it was "
	  "not used for 30 days; a sixth approval by the same user replaced it. "
	  "Then reconnect.", false },
	{ "user_inactive", "{user} was deactivated",
	  "{User} was deactivated (or frozen): reconnect as an active user.", false },
	{ "app_not_approved", "{user} may not use the app",
	  "{User} is not pre-authorized for the app: assign the app to the "
	  "user's profile or permission set in Salesforce, then reconnect.", false },
	{ "ip_or_hours_restricted", "Salesforce refuses {user} (IP restrictions or login hours)",
	  "Relax the IP restrictions or login hours for the integration user "
	  "(its profile, or the app's IP Relaxation policy). sfconnect checks "
	  "again by itself and reconnects once they allow it.", true },
	{ "org_inactive", "the Salesforce org is locked, closed or suspended",
	  "The Salesforce org must be reactivated; then reconnect.", false },
	{ "app_blocked", "an admin blocked the app in Salesforce",
	  "In Salesforce Setup, Connected Apps OAuth Usage, unblock the app, then "
	  "reconnect.", false },
	{ "app_access_denied", "Salesforce denied the app access for {user}",
	  "An admin removed the app's access, or an IP restriction applies: "
	  "restore the access in Salesforce, then reconnect.", false },
	{ "app_not_found", "Salesforce does not find the app",
	  "Make sure the app (external client app) is installed and enabled in "
	  "the Salesforce org, then reconnect; if it is, the operator checks the "
	  "app's consumer key.", false },
	{ "connect_again", "the connection was not completed",
	  "Start the connection again.", false },
	{ "org_changed", "Salesforce answered for another org",
	  "A refreshed sandbox is a new org with a new OrgID: wait about 30 "
	  "minutes after the refresh, then reconnect (allowing the org change).",
	  false },
	{ "refresh_outcome_unknown", "the answer to a refresh was lost",
	  "The next try uses the stored refresh token. If Salesforce rotates "
	  "refresh tokens, the lost answer may have replaced it: reconnect if "
	  "the next try fails.", false },
	{ "salesforce_busy", "Salesforce was busy with another refresh",
	  "None: sfconnect retries.", false },
	{ "rate_limited", "Salesforce's login rate limit was reached",
	  "None: sfconnect backs off and retries.", false },
	{ "salesforce_unavailable", "Salesforce could not be reached or answered unexpectedly",
	  "sfconnect retries with backoff; if it lasts, the operator checks the "
	  "network and Salesforce's status.", false },
	{ "operator_credentials", "Salesforce refused sfconnect's app credentials",
	  "The operator must fix the consumer key or secret "
	  "(salesforce_client_id, salesforce_client_secret_file); no reconnect "
	  "is needed.", false },
	{ "operator_config", "Salesforce refused a request of sfconnect's configuration",
	  "The operator must check sfconnect's configuration (allowed hosts, "
	  "scope, callback URL).", false },
	{ "operator_token_key", "the stored token cannot be decrypted",
	  "The operator must restore the token key (token_key_file, "
	  "token_previous_key_files); no reconnect is needed.", false },
	{ "unknown_error", "Salesforce answered an error sfconnect does not know",
	  "sfconnect keeps retrying; if it lasts, reconnect, or ask the operator "
	  "to look at the logs.", false },
};

void
status_set_alert_after(long seconds)
{
	alert_after_s = seconds;
}

static const struct hint *
hint_find(const char *code)
{
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
		if (strcmp(hints[i].code, code) == 0)
			return &hints[i];
	return &hints[0];	/* an invalid integration without a known cause */
}

/* text with "{user}" / "{User}" replaced by the Salesforce user, into b. */
static void
render(struct buf *b, const char *text, const struct integration *integ)
{
	const char	*p, *mark;
	char		 user[320];

	if (integ->sf_username[0] != '\0')
		snprintf(user, sizeof(user), "the Salesforce user %s",
		    integ->sf_username);
	else
		snprintf(user, sizeof(user), "the Salesforce user of the "
		    "connection");
	for (p = text; (mark = strchr(p, '{')) != NULL; p = mark + 6) {
		buf_append(b, p, (size_t)(mark - p));
		if (strncmp(mark, "{user}", 6) == 0)
			buf_puts(b, user);
		else if (strncmp(mark, "{User}", 6) == 0) {
			buf_puts(b, "T");
			buf_puts(b, user + 1);
		} else {
			buf_append(b, mark, 1);
			mark -= 5;
		}
	}
	buf_puts(b, p);
}

/* Adds name: text rendered for integ to o. */
static void
add_text(cJSON *o, const char *name, const struct integration *integ,
    const char *fmt_before, const char *text, const char *after)
{
	struct buf	 b;

	buf_init(&b, 4096);
	buf_puts(&b, fmt_before);
	render(&b, text, integ);
	buf_puts(&b, after);
	cJSON_AddStringToObject(o, name, b.data != NULL ? b.data : "");
	buf_free(&b);
}

/*
 * true when integ is degraded and has not refreshed successfully for
 * degraded_alert_after_s, whatever the cause; *hours gets how long.
 */
static bool
degraded_too_long(const struct integration *integ, long *hours)
{
	time_t	 since = integ->last_refreshed_at != 0 ?
	    integ->last_refreshed_at : integ->connected_at;

	if (integ->status != INTEG_DEGRADED || since == 0 ||
	    integ->db_now - since < alert_after_s)
		return false;
	*hours = (long)((integ->db_now - since) / 3600);
	return true;
}

/* Set at start-up (before the workers fork); a copy, so a reload may free the cfg. */
static char banner_href[512] = BANNER_HREF;

void
status_set_banner_href(const char *href)
{
	if (href == NULL || href[0] == '\0' || strlen(href) >= sizeof(banner_href))
		href = BANNER_HREF;
	memcpy(banner_href, href, strlen(href) + 1);
}

cJSON *
status_banner(const struct integration *integ)
{
	const struct hint	*h;
	const char		*hint_code;
	cJSON			*banner, *action;
	char			 head[128];
	long			 hours = 0;
	bool			 warning;

	warning = degraded_too_long(integ, &hours);
	if (integ->status != INTEG_INVALID && !warning)
		return NULL;
	hint_code = sf_hint_code(integ->last_error_code,
	    integ->last_error_message);
	h = hint_find(hint_code);
	banner = cJSON_CreateObject();
	cJSON_AddStringToObject(banner, "level", warning ? "warning" : "error");
	cJSON_AddStringToObject(banner, "code", warning ?
	    "salesforce_degraded" : "salesforce_token_invalid");
	if (warning) {
		snprintf(head, sizeof(head), "Salesforce has not refreshed for "
		    "%ld hours: ", hours);
		add_text(banner, "message", integ, head, h->what, ". sfconnect "
		    "keeps retrying.");
	} else
		add_text(banner, "message", integ, "Salesforce is disconnected: ",
		    h->what, h->heals ? ". It reconnects by itself once that is "
		    "fixed; an admin may also reconnect Salesforce." :
		    ". An admin must reconnect Salesforce.");
	add_text(banner, "hint", integ, "", h->hint, "");
	cJSON_AddStringToObject(banner, "hint_code", h->code);
	action = cJSON_AddObjectToObject(banner, "action");
	cJSON_AddStringToObject(action, "label", "Reconnect");
	cJSON_AddStringToObject(action, "href", banner_href);
	return banner;
}

/*
 * The members of the status object are added under their names as
 * constants (cJSON_AddItemToObjectCS: not copied, not freed); their
 * values are copied, as the object may outlive integ.
 */
static void
add_item(cJSON *obj, const char *name, cJSON *item)
{
	if (!cJSON_AddItemToObjectCS(obj, name, item))
		cJSON_Delete(item);
}

/* obj[name]: s, or null when s is empty (api_add_str_or_null). */
static void
add_str_or_null(cJSON *obj, const char *name, const char *s)
{
	add_item(obj, name, s == NULL || *s == '\0' ? cJSON_CreateNull() :
	    cJSON_CreateString(s));
}

/* obj[name]: t in RFC 3339, or null when 0 (api_add_time_or_null). */
static void
add_time_or_null(cJSON *obj, const char *name, time_t t)
{
	char	 ts[21];

	if (t == 0) {
		add_item(obj, name, cJSON_CreateNull());
		return;
	}
	time_rfc3339(t, ts);
	add_item(obj, name, cJSON_CreateString(ts));
}

/* root[name]: a new object when present, else null (and NULL returned). */
static cJSON *
add_object_or_null(cJSON *root, const char *name, bool present)
{
	cJSON	*o;

	if (!present) {
		add_item(root, name, cJSON_CreateNull());
		return NULL;
	}
	if ((o = cJSON_CreateObject()) == NULL ||
	    !cJSON_AddItemToObjectCS(root, name, o)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static void
add_user(cJSON *root, const struct integration *integ)
{
	cJSON	*user = add_object_or_null(root, "salesforce_user",
		    integ->sf_user_id[0] != '\0');

	if (user == NULL)
		return;
	add_item(user, "id", cJSON_CreateString(integ->sf_user_id));
	add_str_or_null(user, "username", integ->sf_username);
	add_str_or_null(user, "display_name", integ->sf_display_name);
}

static void
add_last_error(cJSON *root, const struct integration *integ)
{
	cJSON	*err = add_object_or_null(root, "last_error",
		    integ->last_error_kind[0] != '\0');

	if (err == NULL)
		return;
	add_item(err, "kind", cJSON_CreateString(integ->last_error_kind));
	add_item(err, "code", cJSON_CreateString(integ->last_error_code));
	add_item(err, "message",
	    cJSON_CreateString(integ->last_error_message));
	add_time_or_null(err, "at", integ->last_error_at);
}

cJSON *
status_object(const struct integration *integ)
{
	cJSON	*root, *banner;

	if ((root = cJSON_CreateObject()) == NULL)
		return NULL;
	add_item(root, "org", cJSON_CreateString(integ->org_slug));
	add_item(root, "provider", cJSON_CreateString("salesforce"));
	add_item(root, "status",
	    cJSON_CreateString(integ_status_name(integ->status)));
	add_str_or_null(root, "salesforce_org_id", integ->sf_org_id);
	add_user(root, integ);
	add_str_or_null(root, "instance_url", integ->instance_url);
	add_str_or_null(root, "environment", integ->environment);
	add_str_or_null(root, "login_host", integ->login_host);
	add_time_or_null(root, "connected_at", integ->connected_at);
	add_str_or_null(root, "connected_by", integ->connected_by);
	add_time_or_null(root, "last_refreshed_at", integ->last_refreshed_at);
	add_time_or_null(root, "last_checked_at", integ->last_checked_at);
	add_last_error(root, integ);
	add_str_or_null(root, "previous_salesforce_org_id",
	    integ->previous_sf_org_id);
	add_str_or_null(root, "scope", integ->scope);
	if ((banner = status_banner(integ)) == NULL)
		banner = cJSON_CreateNull();
	add_item(root, "banner", banner);
	return root;
}

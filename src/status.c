#include <string.h>

#include "api.h"
#include "status.h"

#define BANNER_MESSAGE \
	"Salesforce is disconnected: the connection's token stopped working. " \
	"An admin must reconnect Salesforce."
#define BANNER_HINT \
	"In Salesforce Setup, set the Refresh Token Policy of the app " \
	"(connected app or external client app) to \"Refresh token is valid " \
	"until revoked\", then reconnect."
#define BANNER_HREF	"/admin/integrations"

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
	cJSON	*banner, *action;

	if (integ->status != INTEG_INVALID)
		return NULL;
	banner = cJSON_CreateObject();
	cJSON_AddStringToObject(banner, "level", "error");
	cJSON_AddStringToObject(banner, "code", "salesforce_token_invalid");
	cJSON_AddStringToObject(banner, "message", BANNER_MESSAGE);
	cJSON_AddStringToObject(banner, "hint", BANNER_HINT);
	action = cJSON_AddObjectToObject(banner, "action");
	cJSON_AddStringToObject(action, "label", "Reconnect");
	cJSON_AddStringToObject(action, "href", banner_href);
	return banner;
}

static void
add_user(cJSON *root, const struct integration *integ)
{
	cJSON	*user;

	if (integ->sf_user_id[0] == '\0') {
		cJSON_AddNullToObject(root, "salesforce_user");
		return;
	}
	user = cJSON_AddObjectToObject(root, "salesforce_user");
	cJSON_AddStringToObject(user, "id", integ->sf_user_id);
	api_add_str_or_null(user, "username", integ->sf_username);
	api_add_str_or_null(user, "display_name", integ->sf_display_name);
}

static void
add_last_error(cJSON *root, const struct integration *integ)
{
	cJSON	*err;

	if (integ->last_error_kind[0] == '\0') {
		cJSON_AddNullToObject(root, "last_error");
		return;
	}
	err = cJSON_AddObjectToObject(root, "last_error");
	cJSON_AddStringToObject(err, "kind", integ->last_error_kind);
	cJSON_AddStringToObject(err, "code", integ->last_error_code);
	cJSON_AddStringToObject(err, "message", integ->last_error_message);
	api_add_time_or_null(err, "at", integ->last_error_at);
}

cJSON *
status_object(const struct integration *integ)
{
	cJSON	*root, *banner;

	if ((root = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddStringToObject(root, "org", integ->org_slug);
	cJSON_AddStringToObject(root, "provider", "salesforce");
	cJSON_AddStringToObject(root, "status", integ_status_name(integ->status));
	api_add_str_or_null(root, "salesforce_org_id", integ->sf_org_id);
	add_user(root, integ);
	api_add_str_or_null(root, "instance_url", integ->instance_url);
	api_add_str_or_null(root, "environment", integ->environment);
	api_add_str_or_null(root, "login_host", integ->login_host);
	api_add_time_or_null(root, "connected_at", integ->connected_at);
	api_add_str_or_null(root, "connected_by", integ->connected_by);
	api_add_time_or_null(root, "last_refreshed_at", integ->last_refreshed_at);
	api_add_time_or_null(root, "last_checked_at", integ->last_checked_at);
	add_last_error(root, integ);
	api_add_str_or_null(root, "previous_salesforce_org_id",
	    integ->previous_sf_org_id);
	if ((banner = status_banner(integ)) != NULL)
		cJSON_AddItemToObject(root, "banner", banner);
	else
		cJSON_AddNullToObject(root, "banner");
	return root;
}

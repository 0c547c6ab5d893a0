/*
 * Configuration: one "key = value" file, each key overridable by the
 * environment as SFCONNECT_<KEY>. Every key is declared once in cfg.c.
 */
#ifndef SFC_CFG_H
#define SFC_CFG_H

#include <stddef.h>

struct cfg {
	char	*database_url;
	char	*listen;
	long	 workers;
	char	*public_base_url;
	char	*salesforce_client_id;
	char	*salesforce_client_secret_file;
	char	*salesforce_login_url;
	char	*salesforce_sandbox_login_url;
	char	*salesforce_allowed_hosts;
	char	*salesforce_scope;
	char	*tls_ca_file;
	char	*token_key_file;
	char	*token_previous_key_files;
	long	 http_timeout_ms;
	long	 access_token_max_age_s;
	long	 check_interval_s;
	long	 check_concurrency;
	long	 refresh_lock_timeout_ms;
	long	 audit_retention_days;	/* 0: audit events are kept forever */
	char	*allowed_return_origins;
	char	*webhook_url;
	char	*webhook_secret_file;
	long	 webhook_timeout_ms;	/* one delivery attempt, connect included */
	long	 webhook_retry_base_ms;	/* the first retry's delay (then doubling) */
	long	 webhook_max_age_s;	/* retries stop, the event is failed */
	char	*cors_allowed_origins;
	char	*log_level;
	long	 connect_bind_browser;	/* 1: the callback needs start_url's cookie */
	char	*banner_action_url;	/* the invalid-token banner's action href */
	long	 refresh_timeout_ms;	/* a refresh grant's whole call (longer than http_timeout_ms) */
	long	 degraded_alert_after_s;	/* no successful refresh for this long: a warning banner */
	long	 invalid_recheck_interval_s;	/* 0: invalid integrations are never re-checked */
	char	*connect_prompt;	/* the authorize URL's prompt; "": none */
	char	*fastcgi_allowed_peers;	/* TCP listen: "" means loopback only */
	long	 bulk_check_sync_max;	/* more due orgs: the bulk check is a job (202) */
};

/*
 * Loads path (NULL: environment only) into *cfg. Returns 0, or -1 with one
 * line in err naming the missing or bad key. On failure *cfg holds nothing
 * that needs freeing beyond cfg_free().
 */
int	cfg_load(struct cfg *cfg, const char *path, char *err, size_t errlen);
void	cfg_free(struct cfg *cfg);

/* true when host (no port) matches a space-separated list of names and "*.suffix" patterns. */
int	cfg_host_in_list(const char *list, const char *host);
/* true when word appears in the space-separated list (exact match). */
int	cfg_word_in_list(const char *list, const char *word);

#endif

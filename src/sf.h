/*
 * The Salesforce client: every HTTP call to Salesforce lives in sf_xfer.c
 * (libcurl, TLS always verified, a timeout on every call, responses capped,
 * only hosts from salesforce_allowed_hosts). Tokens pass through here in
 * memory only; nothing here logs a token or a response body.
 */
#ifndef SFC_SF_H
#define SFC_SF_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

struct sf;

enum sf_kind {
	SF_OK = 0,
	SF_INVALID,	/* the customer must reconnect: invalid_grant, inactive_user, inactive_org */
	SF_TRANSIENT,	/* timeout, TLS/connection failure, 5xx, malformed answer, rate limit, "already being processed" */
	SF_CONFIG,	/* our configuration: invalid_client, invalid_client_id, host not allowed */
};

struct sf_error {
	enum sf_kind	 kind;
	char		 code[64];	/* Salesforce's "error", or ours: timeout, tls, http_500, malformed, bad_signature, host_not_allowed, ... */
	char		 message[256];	/* human text: Salesforce's error_description or ours; never a token */
	long		 http_status;	/* 0 when no HTTP answer */
};

struct sf_token {
	char		*access_token;	/* owned; cleansed by sf_token_clear */
	char		*refresh_token;	/* owned; NULL when the answer had none */
	char		 instance_url[256];
	char		 id_url[512];
	char		 org_id[19];	/* 18-char, from the id URL */
	char		 user_id[19];
	long long	 issued_at_ms;
	char		 scope[256];
};

struct sf_identity {
	char		 org_id[19];	/* 18-char */
	char		 user_id[19];
	char		 username[256];
	char		 display_name[256];
	bool		 active;
};

/*
 * The stable hint code (docs/API.md) of a stored error: Salesforce's code
 * and description (case-insensitive), or one of sfconnect's own codes;
 * "unknown_error" for a code nobody knows, "none" for no code.
 */
const char	*sf_hint_code(const char *code, const char *message);
/*
 * true when an integration made invalid by this error may heal by itself
 * (IP restrictions, login hours): its refresh token may still live, so it
 * is worth re-checking. A token reported revoked or expired is not.
 */
bool		 sf_error_may_heal(const char *code, const char *message);

/* A client for one process (one curl handle reused). NULL on out of memory. */
struct sf	*sf_new(const struct cfg *cfg, const char *client_secret);
void		 sf_free(struct sf *sf);
void		 sf_token_clear(struct sf_token *t);

/*
 * The login base URL ("https://host[:port]", no trailing slash) for a
 * connect: my_domain (a host name, optionally with "https://" and/or a
 * port) when given, else the sandbox or production login URL of the config.
 * environment is "production" or "sandbox". Returns 0, or -1 with a
 * message for the user in err (e.g. a *.lightning.force.com domain: use the
 * My Domain URL NAME.my.salesforce.com; a host not allowed).
 */
int	sf_login_base(const struct cfg *cfg, const char *environment,
	    const char *my_domain, char *out, size_t outlen, char *err,
	    size_t errlen);

/* The authorize URL (malloc'd; caller frees), NULL on out of memory. */
char	*sf_authorize_url(struct sf *sf, const char *login_base,
	    const char *state, const char *code_challenge);

/*
 * Code grant with the PKCE verifier; checks the signature (constant time)
 * and parses the id URL into org_id/user_id. 0 with *out filled, or -1 with
 * *err and *out empty -- except for out->refresh_token when a 200 answer
 * that was refused (bad signature, a host not allowed, malformed) carried
 * one: Salesforce issued or rotated it, so the caller must store or revoke
 * it, never drop it.
 */
int	sf_exchange_code(struct sf *sf, const char *login_base,
	    const char *code, const char *verifier, struct sf_token *out,
	    struct sf_error *err);
/* Refresh grant; like sf_exchange_code. out->refresh_token set only on rotation. */
int	sf_refresh(struct sf *sf, const char *login_base,
	    const char *refresh_token, struct sf_token *out,
	    struct sf_error *err);
/*
 * GET the identity URL (only when its host is allowed) with the access
 * token; checks organization_id matches the id URL's OrgID. 0 or -1.
 */
int	sf_identity(struct sf *sf, const struct sf_token *token,
	    struct sf_identity *out, struct sf_error *err);
/*
 * Revokes token (refresh or access) at login_base. 0 when revoked or
 * already dead (400 invalid_token / unsupported_token_type), -1 otherwise.
 */
int	sf_revoke(struct sf *sf, const char *login_base, const char *token,
	    struct sf_error *err);

/* One refresh of a batch (sf_refresh_many). */
struct sf_refresh_job {
	const char	*login_base;	/* in */
	const char	*refresh_token;	/* in */
	int		 rc;		/* out: 0 ok (token filled), -1 (err filled) */
	struct sf_token	 token;		/* out; caller clears */
	struct sf_error	 err;		/* out */
};
/*
 * Runs the refresh grants of jobs concurrently (curl multi), at most
 * max_parallel at once, each with the usual timeout and checks. A job
 * whose refresh_token is NULL is skipped: its rc and err stay as they are.
 */
void	sf_refresh_many(struct sf *sf, struct sf_refresh_job *jobs, size_t n,
	    int max_parallel);

/*
 * The same, in steps, so that a caller works meanwhile (writes the previous
 * batch): sf_many_start() begins the jobs, sf_many_pump() moves them on
 * without waiting, sf_many_wait() returns once all ended. jobs must stay
 * put until then. One struct sf_many keeps its handles (and so libcurl's
 * caches) from batch to batch; sf_many_free() waits for what runs.
 */
struct sf_many;
struct sf_many	*sf_many_new(struct sf *sf, int max_parallel);
void	sf_many_start(struct sf_many *mm, struct sf_refresh_job *jobs,
	    size_t n);
void	sf_many_pump(struct sf_many *mm);
void	sf_many_wait(struct sf_many *mm);
void	sf_many_free(struct sf_many *mm);

#endif

/* What a worker holds for its whole life, and what a request handler sees. */
#ifndef SFC_APP_H
#define SFC_APP_H

#include <time.h>

#include "cfg.h"
#include "http.h"

struct db;
struct sf;
struct keyring;

struct app {
	const struct cfg	*cfg;
	struct db		*db;
	struct sf		*sf;
	struct keyring		*keyring;
	char			*client_secret;
	char			*webhook_secret;
};

enum role { ROLE_NONE, ROLE_VIEWER, ROLE_SERVICE, ROLE_ADMIN, ROLE_OPERATOR };

struct principal {
	char		 key_id[40];
	enum role	 role;
	long long	 org_id;	/* 0 for an operator */
	char		 org_slug[64];
	char		 label[128];
};

struct org {
	long long	 id;
	char		 slug[64];
	char		 name[201];
	time_t		 created_at;
};

/* 0 and *role set when name is viewer|admin|service|operator. */
int		 role_parse(const char *name, enum role *role);
const char	*role_name(enum role role);
/* true when slug matches [a-z0-9-]{1,63}. */
int		 slug_ok(const char *slug);
/*
 * The additional authenticated data that binds a sealed token to its org
 * and column ("org:42:refresh_token"): a ciphertext cannot be moved to
 * another row or column. Changing it makes stored tokens unreadable.
 */
void		 sealed_aad(char *out, size_t outlen, long long org_id,
		    const char *column);
/* RFC 3339 UTC ("2026-11-28T22:00:00Z") into out[21]. */
void		 time_rfc3339(time_t t, char out[21]);

#endif

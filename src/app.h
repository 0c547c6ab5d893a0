/* What a worker holds for its whole life, and what a request handler sees. */
#ifndef SFC_APP_H
#define SFC_APP_H

#include <time.h>

#include "cfg.h"

struct db;
struct sf;
struct keyring;

struct app {
	const struct cfg	*cfg;
	struct db		*db;
	struct db		*db_pipe;	/* the checker's second one, or NULL */
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

#endif

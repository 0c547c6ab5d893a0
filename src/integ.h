/*
 * An org's Salesforce integration as stored, and its status: a type with
 * one names table (integ.c). How PostgreSQL spells a status is db.c's.
 */
#ifndef SFC_INTEG_H
#define SFC_INTEG_H

#include <stdbool.h>
#include <time.h>

enum integ_status {
	INTEG_DISCONNECTED,
	INTEG_CONNECTED,
	INTEG_DEGRADED,
	INTEG_INVALID,
	INTEG__MAX
};

/* A set of statuses: INTEG_SET(INTEG_CONNECTED) | INTEG_SET(INTEG_DEGRADED). */
typedef unsigned int integ_status_set;
#define INTEG_SET(s)	(1u << (unsigned int)(s))
#define INTEG_SET_ALL	((1u << INTEG__MAX) - 1)

/* The status's name in the API ("connected"); never NULL. */
const char	*integ_status_name(enum integ_status status);
/* 0 and *status set when name is a status's name; -1 otherwise. */
int		 integ_status_parse(const char *name, enum integ_status *status);

struct integration {
	long long	 org_id;
	char		 org_slug[64];
	enum integ_status status;
	char		 sf_org_id[19];
	char		 sf_user_id[19];
	char		 sf_username[256];
	char		 sf_display_name[256];
	char		 instance_url[256];
	char		 environment[16];
	char		 login_host[256];
	char		 connected_by[128];
	char		 previous_sf_org_id[19];
	char		*access_token_enc;	/* owned, NULL when none */
	char		*refresh_token_enc;	/* owned, NULL when none */
	long long	 token_generation;
	time_t		 issued_at;		/* 0 = null, as for every time_t here */
	time_t		 connected_at;
	time_t		 last_refreshed_at;
	time_t		 last_checked_at;
	char		 last_error_kind[16];	/* "" = no last error */
	char		 last_error_code[64];
	char		 last_error_message[256];
	time_t		 last_error_at;
	int		 failure_count;
	time_t		 next_retry_at;
	time_t		 db_now;	/* the database's clock when read */
	char		 refresh_fp[17];	/* crypto_fingerprint; "" = unknown */
	char		 scope[256];	/* granted at the last connect; "" = unknown */
};

#endif

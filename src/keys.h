/* API keys: minted here, stored as SHA-256 hashes only. */
#ifndef SFC_KEYS_H
#define SFC_KEYS_H

#include "db.h"

struct new_key {
	char	 id[40];
	char	 key[64];	/* shown once, never stored */
	time_t	 created_at;
};

/* Mints and stores a key; org_id 0 for an operator key. A db_rc. */
int	keys_mint(struct db *db, long long org_id, enum role role,
	    const char *label, struct new_key *out);
/* true when id is a key id as keys_mint makes them (key_ and 16 hex digits). */
int	keys_id_ok(const char *id);
/* Wipes the key text. */
void	keys_wipe(struct new_key *k);

#endif

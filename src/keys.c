#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "keys.h"
#include "secret.h"

int
keys_mint(struct db *db, long long org_id, enum role role, const char *label,
    struct new_key *out)
{
	unsigned char	 idbytes[8];
	char		*secret = NULL, hash[65];
	int		 rc = DB_ERROR;

	memset(out, 0, sizeof(*out));
	if (crypto_random(idbytes, sizeof(idbytes)) == -1 ||
	    (secret = crypto_random_token(32)) == NULL)
		goto out;
	memcpy(out->id, "key_", 4);
	crypto_hex(idbytes, sizeof(idbytes), out->id + 4);
	snprintf(out->key, sizeof(out->key), "sfk_%s", secret);
	crypto_sha256_hex(out->key, strlen(out->key), hash);
	rc = db_key_create(db, out->id, org_id, role, label, hash,
	    &out->created_at);
out:
	secret_free(secret);
	if (rc != DB_OK)
		keys_wipe(out);
	return rc;
}

int
keys_id_ok(const char *id)
{
	if (strncmp(id, "key_", 4) != 0 || strlen(id) != 4 + 16)
		return 0;
	for (id += 4; *id != '\0'; id++)
		if (!((*id >= '0' && *id <= '9') || (*id >= 'a' && *id <= 'f')))
			return 0;
	return 1;
}

void
keys_wipe(struct new_key *k)
{
	OPENSSL_cleanse(k->key, sizeof(k->key));
}

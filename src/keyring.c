/*
 * keyring: see keyring.h. AES-256-GCM through the EVP APIs.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "keyring.h"
#include "secret.h"

#define KEY_ID_LEN	8
#define NONCE_LEN	12
#define TAG_LEN		16
#define SEAL_PREFIX	"v1:"
#define SEAL_PREFIX_LEN	3
/* "v1:xxxxxxxx:" */
#define SEAL_HEADER_LEN	(SEAL_PREFIX_LEN + KEY_ID_LEN + 1)
/* The configuration keys the paths come from, named in error lines. */
#define KEYRING_CURRENT_SETTING		"token_key_file"
#define KEYRING_PREVIOUS_SETTING	"token_previous_key_files"

struct keyring_key {
	unsigned char	 key[SECRET_KEY_LEN];
	char		 id[KEY_ID_LEN + 1];
};

struct keyring {
	size_t			 n;	/* keys[0] is the current key */
	struct keyring_key	 keys[KEYRING_MAX_KEYS];
};

/*
 * Loads the key file at path into *k, with its id: the first 8 hex digits
 * of SHA-256 of the raw key. 0 ok; -1 with a reason in err.
 */
static int
load_key(const char *path, struct keyring_key *k, char *err, size_t errlen)
{
	unsigned char	 md[32];

	if (secret_read_key(path, k->key, err, errlen) != 0)
		return -1;
	crypto_sha256(k->key, SECRET_KEY_LEN, md);
	crypto_hex(md, KEY_ID_LEN / 2, k->id);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

/*
 * Puts "<setting>: " in front of the reason in err, so the line names the
 * configuration key as well as the file.
 */
static void
name_setting(char *err, size_t errlen, const char *setting)
{
	char	 reason[512];

	if (err == NULL || errlen == 0)
		return;
	snprintf(reason, sizeof(reason), "%s", err);
	snprintf(err, errlen, "%s: %s", setting, reason);
}

/*
 * Adds the key in path to kr unless the same key is already there.
 * setting names the configuration key the path came from. 0 ok; -1 with
 * a reason in err.
 */
static int
keyring_add(struct keyring *kr, const char *setting, const char *path,
    char *err, size_t errlen)
{
	struct keyring_key	 k;
	size_t			 i;
	int			 rc = -1;

	if (load_key(path, &k, err, errlen) != 0) {
		name_setting(err, errlen, setting);
		goto out;
	}
	for (i = 0; i < kr->n; i++) {
		if (strcmp(kr->keys[i].id, k.id) != 0)
			continue;
		if (CRYPTO_memcmp(kr->keys[i].key, k.key, SECRET_KEY_LEN) == 0) {
			rc = 0; /* the same key listed twice */
			goto out;
		}
		secret_file_error(err, errlen, "key file", path,
		    "key id %s collides with another key; generate a new key",
		    k.id);
		name_setting(err, errlen, setting);
		goto out;
	}
	if (kr->n == KEYRING_MAX_KEYS) {
		secret_file_error(err, errlen, "key file", path,
		    "too many keys (max %d)", KEYRING_MAX_KEYS);
		name_setting(err, errlen, setting);
		goto out;
	}
	kr->keys[kr->n++] = k;
	rc = 0;
out:
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

int
keyring_load(struct keyring **out, const char *current_path,
    const char *previous_paths, char *err, size_t errlen)
{
	struct keyring	*kr = NULL;
	char		 path[PATH_MAX];
	const char	*p;
	int		 rc = -1;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (out == NULL) {
		secret_file_error(err, errlen, "key ring", NULL, "no output");
		goto out;
	}
	if ((kr = calloc(1, sizeof(*kr))) == NULL) {
		secret_file_error(err, errlen, "key ring", NULL,
		    "out of memory");
		goto out;
	}
	if (keyring_add(kr, KEYRING_CURRENT_SETTING, current_path, err,
	    errlen) != 0)
		goto out;
	for (p = previous_paths; p != NULL && *p != '\0';) {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, " \t");
		if (n == 0)
			break;
		if (n >= sizeof(path)) {
			secret_file_error(err, errlen, "previous key files",
			    NULL, "a path is too long");
			goto out;
		}
		memcpy(path, p, n);
		path[n] = '\0';
		if (keyring_add(kr, KEYRING_PREVIOUS_SETTING, path, err,
		    errlen) != 0)
			goto out;
		p += n;
	}
	*out = kr;
	kr = NULL;
	rc = 0;
out:
	keyring_free(kr);
	return rc;
}

void
keyring_free(struct keyring *kr)
{
	if (kr == NULL)
		return;
	OPENSSL_cleanse(kr, sizeof(*kr));
	free(kr);
}

const char *
keyring_current_id(const struct keyring *kr)
{
	if (kr == NULL || kr->n == 0)
		return NULL;
	return kr->keys[0].id;
}

/* The ring's key with this id (8 chars, not NUL-terminated), or NULL. */
static const struct keyring_key *
keyring_find(const struct keyring *kr, const char *id)
{
	size_t	 i;

	for (i = 0; i < kr->n; i++)
		if (memcmp(kr->keys[i].id, id, KEY_ID_LEN) == 0)
			return &kr->keys[i];
	return NULL;
}

/*
 * Checks the "v1:<8 lower hex>:" header of sealed text and its length.
 * Returns the length of sealed, or 0 when malformed or too long.
 */
static size_t
sealed_check_header(const char *sealed)
{
	size_t	 len, i;

	if (sealed == NULL)
		return 0;
	len = strnlen(sealed, KEYRING_SEALED_MAX + 1);
	if (len > KEYRING_SEALED_MAX || len <= SEAL_HEADER_LEN)
		return 0;
	if (memcmp(sealed, SEAL_PREFIX, SEAL_PREFIX_LEN) != 0)
		return 0;
	for (i = SEAL_PREFIX_LEN; i < SEAL_PREFIX_LEN + KEY_ID_LEN; i++) {
		char c = sealed[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	if (sealed[SEAL_HEADER_LEN - 1] != ':')
		return 0;
	return len;
}

/*
 * A new AES-256-GCM context, for encrypting (enc 1) or decrypting (enc
 * 0) with key and a NONCE_LEN-byte nonce, aad already fed in. NULL on
 * error; the caller owns the context (EVP_CIPHER_CTX_free).
 */
static EVP_CIPHER_CTX *
gcm_start(int enc, const unsigned char *key, const unsigned char *nonce,
    const char *aad, size_t aadlen)
{
	EVP_CIPHER_CTX	*ctx;
	int		 outl = 0;

	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return NULL;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL,
	    enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
	    NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1 ||
	    (aadlen > 0 && EVP_CipherUpdate(ctx, NULL, &outl,
	    (const unsigned char *)aad, (int)aadlen) != 1)) {
		EVP_CIPHER_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

char *
keyring_seal(const struct keyring *kr, const char *aad, const char *plaintext)
{
	EVP_CIPHER_CTX	*ctx = NULL;
	unsigned char	*raw = NULL;
	char		*b64 = NULL, *sealed = NULL;
	size_t		 ptlen, aadlen, rawlen = 0, total;
	int		 outl = 0, finl = 0;

	if (kr == NULL || kr->n == 0 || aad == NULL || plaintext == NULL)
		goto out;
	aadlen = strnlen(aad, KEYRING_AAD_MAX + 1);
	ptlen = strnlen(plaintext, KEYRING_SEALED_MAX + 1);
	if (aadlen > KEYRING_AAD_MAX || ptlen > KEYRING_SEALED_MAX)
		goto out;
	rawlen = NONCE_LEN + ptlen + TAG_LEN;
	total = SEAL_HEADER_LEN + 4 * ((rawlen + 2) / 3);
	if (total > KEYRING_SEALED_MAX)
		goto out;
	if ((raw = malloc(rawlen)) == NULL)
		goto out;
	if (crypto_random(raw, NONCE_LEN) != 0)
		goto out;
	if ((ctx = gcm_start(1, kr->keys[0].key, raw, aad, aadlen)) == NULL)
		goto out;
	if (ptlen > 0 &&
	    EVP_EncryptUpdate(ctx, raw + NONCE_LEN, &outl,
	    (const unsigned char *)plaintext, (int)ptlen) != 1)
		goto out;
	if (EVP_EncryptFinal_ex(ctx, raw + NONCE_LEN + outl, &finl) != 1)
		goto out;
	if ((size_t)outl + (size_t)finl != ptlen)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
	    raw + NONCE_LEN + ptlen) != 1)
		goto out;
	if ((b64 = crypto_base64(raw, rawlen)) == NULL)
		goto out;
	if ((sealed = malloc(total + 1)) == NULL)
		goto out;
	memcpy(sealed, SEAL_PREFIX, SEAL_PREFIX_LEN);
	memcpy(sealed + SEAL_PREFIX_LEN, kr->keys[0].id, KEY_ID_LEN);
	sealed[SEAL_HEADER_LEN - 1] = ':';
	memcpy(sealed + SEAL_HEADER_LEN, b64, total - SEAL_HEADER_LEN + 1);
out:
	EVP_CIPHER_CTX_free(ctx);
	free(b64);
	free(raw);
	return sealed;
}

char *
keyring_open(const struct keyring *kr, const char *aad, const char *sealed)
{
	const struct keyring_key	*k;
	EVP_CIPHER_CTX			*ctx = NULL;
	unsigned char			*raw = NULL, *pt = NULL;
	char				*result = NULL;
	size_t				 len, aadlen, rawcap = 0, ctlen = 0;
	long				 rawlen;
	int				 outl = 0, finl = 0;

	if (kr == NULL || aad == NULL)
		goto out;
	if ((len = sealed_check_header(sealed)) == 0)
		goto out;
	aadlen = strnlen(aad, KEYRING_AAD_MAX + 1);
	if (aadlen > KEYRING_AAD_MAX)
		goto out;
	if ((k = keyring_find(kr, sealed + SEAL_PREFIX_LEN)) == NULL)
		goto out;
	rawcap = (len - SEAL_HEADER_LEN) / 4 * 3;
	if ((raw = malloc(rawcap + 1)) == NULL)
		goto out;
	rawlen = crypto_base64_decode(sealed + SEAL_HEADER_LEN, raw, rawcap);
	if (rawlen < NONCE_LEN + TAG_LEN)
		goto out;
	ctlen = (size_t)rawlen - NONCE_LEN - TAG_LEN;
	if ((pt = malloc(ctlen + 1)) == NULL)
		goto out;
	if ((ctx = gcm_start(0, k->key, raw, aad, aadlen)) == NULL)
		goto out;
	if (ctlen > 0 &&
	    EVP_DecryptUpdate(ctx, pt, &outl, raw + NONCE_LEN, (int)ctlen) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
	    raw + NONCE_LEN + ctlen) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, pt + outl, &finl) != 1)
		goto out;
	if ((size_t)outl + (size_t)finl != ctlen)
		goto out;
	if (memchr(pt, '\0', ctlen) != NULL)
		goto out; /* keyring_seal never makes this */
	pt[ctlen] = '\0';
	result = (char *)pt;
	pt = NULL;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ctlen + 1);
		free(pt);
	}
	free(raw);
	return result;
}

bool
keyring_needs_rotation(const struct keyring *kr, const char *sealed)
{
	if (kr == NULL || kr->n == 0 || sealed_check_header(sealed) == 0)
		return false;
	return memcmp(sealed + SEAL_PREFIX_LEN, kr->keys[0].id,
	    KEY_ID_LEN) != 0;
}

/*
 * The keyring that protects tokens at rest: AES-256-GCM with the current
 * key for new ciphertexts and up to KEYRING_MAX_KEYS - 1 previous keys
 * still accepted for reading, so keys can be rotated without downtime.
 * A key is read from its own file (secret_read_key); its id is the first
 * 8 hex digits of SHA-256 of the 32 raw key bytes. Nothing in this module
 * logs; an error text names the file, never the key.
 */
#ifndef SFC_KEYRING_H
#define SFC_KEYRING_H

#include <stdbool.h>
#include <stddef.h>

/* Longest sealed text accepted by keyring_open (bytes, without the NUL). */
#define KEYRING_SEALED_MAX	65536
/* Longest additional authenticated data accepted by keyring_seal/open. */
#define KEYRING_AAD_MAX		1024
/* Most keys in a ring: the current one plus up to 15 previous ones. */
#define KEYRING_MAX_KEYS	16

struct keyring;

/*
 * Loads the ring. current_path: the key used for new ciphertexts;
 * previous_paths: NULL or space-separated paths of older keys still
 * accepted for reading (a key repeated is ignored). Returns 0 with *out
 * owned by the caller (keyring_free), or -1 with a one-line reason in err
 * naming the configuration key (token_key_file or token_previous_key_files)
 * and the file (never the key) and *out untouched.
 */
int	keyring_load(struct keyring **out, const char *current_path,
	    const char *previous_paths, char *err, size_t errlen);
/* Cleanses and frees the ring; accepts NULL. */
void	keyring_free(struct keyring *kr);
/*
 * The current key's id (8 lower-case hex digits), owned by the ring and
 * valid until keyring_free; NULL for a NULL ring.
 */
const char *keyring_current_id(const struct keyring *kr);

/*
 * Encrypts plaintext (NUL-terminated) with the current key, a fresh
 * random 12-byte nonce, and aad (NUL-terminated, at most KEYRING_AAD_MAX
 * bytes, e.g. "org:42:refresh_token") as additional authenticated data.
 * Returns the malloc'd text "v1:<keyid>:<base64(nonce || ciphertext ||
 * 16-byte tag)>" (at most KEYRING_SEALED_MAX chars) owned by the caller
 * (free()), or NULL on failure.
 */
char	*keyring_seal(const struct keyring *kr, const char *aad,
	    const char *plaintext);
/*
 * Decrypts text made by keyring_seal with the ring's key named by its key
 * id and the same aad. Returns the malloc'd NUL-terminated plaintext owned
 * by the caller (release it with secret_free), or NULL on any failure
 * (unknown key id, tampering, wrong aad, bad format, too long).
 */
char	*keyring_open(const struct keyring *kr, const char *aad,
	    const char *sealed);
/*
 * true when sealed is well-formed v1 text whose key id is not the current
 * key's (it should be sealed again); false when it uses the current key or
 * is malformed (keyring_open would fail on it anyway).
 */
bool	keyring_needs_rotation(const struct keyring *kr, const char *sealed);

#endif

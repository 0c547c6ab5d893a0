/*
 * crypto: hashing, HMAC, base64, constant-time comparison, random tokens,
 * PKCE, Salesforce and webhook signatures, and the AES-256-GCM keyring that
 * protects tokens at rest.  OpenSSL 3 libcrypto only, EVP APIs only.
 *
 * Nothing in this module logs.  Error texts name files and reasons, never
 * the content of a key or a secret.
 */
#ifndef SFCONNECT_CRYPTO_H
#define SFCONNECT_CRYPTO_H

#include <stddef.h>
#include <stdbool.h>

/* Longest sealed text accepted by crypto_open (bytes, without the NUL). */
#define CRYPTO_SEALED_MAX 65536
/* Longest additional authenticated data accepted by crypto_seal/open. */
#define CRYPTO_AAD_MAX 1024
/* Most keys in a ring: the current one plus up to 15 previous ones. */
#define CRYPTO_KEYRING_MAX 16
/* Longest secret accepted by crypto_read_secret_file. */
#define CRYPTO_SECRET_FILE_MAX 4096
/* Bounds of crypto_random_token's nbytes. */
#define CRYPTO_TOKEN_MAX_BYTES 4096

/* Fills out with n bytes from RAND_bytes.  0 on success, -1 on failure. */
int crypto_random(void *out, size_t n);

/* SHA-256 of data into out.  data may be NULL when len is 0.  Aborts the
 * process if libcrypto cannot compute a digest (a broken installation). */
void crypto_sha256(const void *data, size_t len, unsigned char out[32]);

/* Lower-case hex of SHA-256; out gets 64 chars + NUL. */
void crypto_sha256_hex(const void *data, size_t len, char out[65]);

/* HMAC-SHA256 of data keyed with key into out.  key may be empty (keylen 0),
 * data may be NULL when len is 0.  0 ok, -1 error. */
int crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
                       size_t len, unsigned char out[32]);

/* Lower-case hex of n bytes into out, which must hold 2n+1 bytes. */
void crypto_hex(const unsigned char *in, size_t n, char *out);

/* Constant-time equality of n bytes: true when equal (n == 0 is equal). */
bool crypto_ct_equal(const void *a, const void *b, size_t n);

/* Constant-time string equality (time depends only on the lengths): true
 * when equal.  NULLs are never equal. */
bool crypto_ct_streq(const char *a, const char *b);

/* Standard base64 with padding.  Returns a malloc'd NUL-terminated string
 * owned by the caller (free()), or NULL on OOM / oversized input. */
char *crypto_base64(const void *in, size_t n);

/* base64url without padding (RFC 4648 section 5).  Returns a malloc'd string
 * owned by the caller (free()), or NULL on OOM. */
char *crypto_base64url(const void *in, size_t n);

/* Strict decode of standard base64: length a multiple of 4, padding required,
 * '=' only at the end, no whitespace or newline anywhere, unused bits zero.
 * Writes at most outcap bytes to out.  Returns the decoded length, or -1 on
 * bad input or when outcap is too small (out is then cleansed). */
long crypto_base64_decode(const char *in, unsigned char *out, size_t outcap);

/* A random URL-safe token: base64url of nbytes (1..CRYPTO_TOKEN_MAX_BYTES)
 * random bytes.  Returns a malloc'd string owned by the caller (a secret:
 * release it with crypto_free_secret), or NULL on failure. */
char *crypto_random_token(size_t nbytes);

/* PKCE S256: base64url(SHA-256(verifier)) without padding.  The verifier
 * must be 43..128 characters of [A-Za-z0-9-._~] (RFC 7636 section 4.1).
 * Returns a malloc'd string owned by the caller, NULL on bad verifier/OOM. */
char *crypto_pkce_challenge(const char *verifier);

/* Salesforce token response signature check: base64(HMAC-SHA256(key=secret,
 * id || issued_at)) compared in constant time with sig_b64.  true when
 * valid; false on any NULL argument, mismatch or error. */
bool crypto_sf_signature_ok(const char *secret, const char *id,
                            const char *issued_at, const char *sig_b64);

/* Webhook signature: lower-case hex HMAC-SHA256 of "<t>.<body>" keyed with
 * secret, into out (65 bytes).  body may be NULL when body_len is 0.
 * 0 ok, -1 on bad arguments (NULL secret, t < 0) or error. */
int crypto_webhook_sig(const char *secret, long long t, const char *body,
                       size_t body_len, char out[65]);

/*
 * Keyring for tokens at rest: AES-256-GCM.  A key file holds the standard
 * base64 of exactly 32 random bytes, with an optional single trailing "\n"
 * or "\r\n"; anything else is an error.  The key id is the first 8 hex
 * digits of SHA-256 of the 32 raw key bytes.  Key files readable or writable
 * by group/other are refused.
 */
struct crypto_keyring;

/* current_path: the key used for new ciphertexts; previous_paths: NULL or
 * space-separated paths of older keys still accepted for reading (a key
 * repeated is ignored).  0 ok, *out owned by the caller (free with
 * crypto_keyring_free); -1 with a one-line reason in err naming the file
 * (never the key), *out untouched. */
int crypto_keyring_load(struct crypto_keyring **out, const char *current_path,
                        const char *previous_paths, char *err, size_t errlen);

/* Cleanses and frees the ring; accepts NULL. */
void crypto_keyring_free(struct crypto_keyring *kr);

/* The current key's id (8 lower-case hex digits); owned by the ring, valid
 * until crypto_keyring_free. */
const char *crypto_keyring_current_id(const struct crypto_keyring *kr);

/* Encrypts plaintext (NUL-terminated) with the current key, a fresh random
 * 12-byte nonce, and aad (NUL-terminated, at most CRYPTO_AAD_MAX bytes, e.g.
 * "org:42:refresh_token") as additional authenticated data.  Returns the
 * malloc'd text "v1:<keyid>:<base64(nonce || ciphertext || 16-byte tag)>"
 * (at most CRYPTO_SEALED_MAX chars) owned by the caller, or NULL on failure. */
char *crypto_seal(const struct crypto_keyring *kr, const char *aad,
                  const char *plaintext);

/* Decrypts text made by crypto_seal with the ring's key named by its key id
 * and the same aad.  Returns the malloc'd NUL-terminated plaintext owned by
 * the caller (release with crypto_free_secret), or NULL on any failure
 * (unknown key id, tampering, wrong aad, bad format, too long). */
char *crypto_open(const struct crypto_keyring *kr, const char *aad,
                  const char *sealed);

/* true when sealed is well-formed v1 text whose key id is not the current
 * key's (it should be re-sealed); false when it uses the current key or is
 * malformed (crypto_open would fail on it anyway). */
bool crypto_sealed_needs_rotation(const struct crypto_keyring *kr,
                                  const char *sealed);

/* Overwrites the string, then frees it; accepts NULL. */
void crypto_free_secret(char *s);

/* Reads a secret file (e.g. the Salesforce client secret): the whole
 * content with one trailing "\n" or "\r\n" removed; at most
 * CRYPTO_SECRET_FILE_MAX bytes, not empty, no NUL byte, a regular file not
 * readable or writable by group/other.  Returns a malloc'd string owned by
 * the caller (release with crypto_free_secret), or NULL with a one-line
 * reason naming the file (never the content) in err. */
char *crypto_read_secret_file(const char *path, char *err, size_t errlen);

#endif /* SFCONNECT_CRYPTO_H */

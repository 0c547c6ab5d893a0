/*
 * crypto: the primitives. Hashing, HMAC, hex and base64, constant-time
 * comparison, random bytes and tokens, PKCE, and the Salesforce and
 * webhook signatures. OpenSSL 3 libcrypto only, EVP APIs only. The
 * keyring that seals tokens is keyring.h; secrets on disk are secret.h.
 * Nothing in this module logs.
 */
#ifndef SFC_CRYPTO_H
#define SFC_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

/* Bounds of crypto_random_token's nbytes. */
#define CRYPTO_TOKEN_MAX_BYTES	4096

/* Fills out with n bytes from RAND_bytes. 0 on success, -1 on failure. */
int	crypto_random(void *out, size_t n);

/*
 * SHA-256 of data into out. data may be NULL when len is 0. Aborts the
 * process if libcrypto cannot compute a digest (a broken installation).
 */
void	crypto_sha256(const void *data, size_t len, unsigned char out[32]);
/* Lower-case hex of SHA-256; out gets 64 chars + NUL. */
void	crypto_sha256_hex(const void *data, size_t len, char out[65]);
/*
 * HMAC-SHA256 of data keyed with key into out. key may be empty (keylen
 * 0), data may be NULL when len is 0. 0 ok, -1 error (out cleansed).
 */
int	crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
	    size_t len, unsigned char out[32]);
/* Lower-case hex of n bytes into out, which must hold 2n+1 bytes. */
/*
 * The fingerprint of a secret: the first 16 hex digits of its SHA-256, into
 * out[17]. It identifies a stored token without revealing it.
 */
void	crypto_fingerprint(const char *secret, char out[17]);
void	crypto_hex(const unsigned char *in, size_t n, char *out);

/* Constant-time equality of n bytes: true when equal (n == 0 is equal). */
bool	crypto_ct_equal(const void *a, const void *b, size_t n);
/*
 * Constant-time string equality (time depends only on the lengths): true
 * when equal. NULLs are never equal.
 */
bool	crypto_ct_streq(const char *a, const char *b);

/*
 * Standard base64 with padding. Returns a malloc'd NUL-terminated string
 * owned by the caller (free()), or NULL on OOM / oversized input.
 */
char	*crypto_base64(const void *in, size_t n);
/*
 * base64url without padding (RFC 4648 section 5). Returns a malloc'd
 * string owned by the caller (free()), or NULL on OOM.
 */
char	*crypto_base64url(const void *in, size_t n);
/*
 * Strict decode of standard base64: length a multiple of 4, padding
 * required, '=' only at the end, no whitespace or newline anywhere, unused
 * bits zero. Writes at most outcap bytes to out. Returns the decoded
 * length, or -1 on bad input or when outcap is too small (out is then
 * cleansed).
 */
long	crypto_base64_decode(const char *in, unsigned char *out,
	    size_t outcap);

/*
 * A random URL-safe token: base64url of nbytes (1..CRYPTO_TOKEN_MAX_BYTES)
 * random bytes. Returns a malloc'd string owned by the caller (a secret:
 * release it with secret_free), or NULL on failure.
 */
char	*crypto_random_token(size_t nbytes);
/*
 * PKCE S256: base64url(SHA-256(verifier)) without padding. The verifier
 * must be 43..128 characters of [A-Za-z0-9-._~] (RFC 7636 section 4.1).
 * Returns a malloc'd string owned by the caller (free()), NULL on a bad
 * verifier or OOM.
 */
char	*crypto_pkce_challenge(const char *verifier);

/*
 * Salesforce token response signature check: base64(HMAC-SHA256(key =
 * secret, id || issued_at)) compared in constant time with sig_b64. true
 * when valid; false on any NULL argument, mismatch or error.
 */
bool	crypto_sf_signature_ok(const char *secret, const char *id,
	    const char *issued_at, const char *sig_b64);
/*
 * Webhook signature: lower-case hex HMAC-SHA256 of "<t>.<body>" keyed with
 * secret, into out (65 bytes). body may be NULL when body_len is 0. 0 ok,
 * -1 on bad arguments (NULL secret, t < 0) or error.
 */
int	crypto_webhook_sig(const char *secret, long long t, const char *body,
	    size_t body_len, char out[65]);

#endif

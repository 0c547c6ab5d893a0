/*
 * crypto: see crypto.h. OpenSSL 3 libcrypto, EVP APIs only.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "crypto.h"

/* One piece of a message fed to HMAC. */
struct part {
	const void	*p;
	size_t		 n;
};

static const char hexdigits[] = "0123456789abcdef";
static const char b64std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---------------------------------------------------------------- basics */

int
crypto_random(void *out, size_t n)
{
	unsigned char	*p = out;

	while (n > 0) {
		int chunk = n > INT_MAX ? INT_MAX : (int)n;

		if (RAND_bytes(p, chunk) != 1)
			return -1;
		p += chunk;
		n -= (size_t)chunk;
	}
	return 0;
}

/*
 * SHA-256 fetched once and one context kept (the daemon's processes have
 * one thread each): EVP_Digest(EVP_sha256()) fetches the implementation
 * from the provider and allocates a context on every call, a tenth of an
 * API key check. What the context keeps between calls is the last digest.
 */
static EVP_MD		*sha256_md;
static EVP_MD_CTX	*sha256_ctx;

void
crypto_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int	 outlen = 0;

	if (data == NULL)
		data = "";
	if (sha256_md == NULL &&
	    (sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		abort(); /* no SHA-256 in libcrypto: nothing sane to return */
	if (sha256_ctx == NULL && (sha256_ctx = EVP_MD_CTX_new()) == NULL)
		abort();
	if (EVP_DigestInit_ex2(sha256_ctx, sha256_md, NULL) != 1 ||
	    EVP_DigestUpdate(sha256_ctx, data, len) != 1 ||
	    EVP_DigestFinal_ex(sha256_ctx, out, &outlen) != 1 || outlen != 32)
		abort();
}

void
crypto_hex(const unsigned char *in, size_t n, char *out)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hexdigits[in[i] >> 4];
		out[2 * i + 1] = hexdigits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

void
crypto_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char	 md[32];

	crypto_sha256(data, len, md);
	crypto_hex(md, sizeof(md), out);
}

/* HMAC-SHA256 over the concatenation of parts. 0 ok, -1 error. */
static int
hmac_sha256_parts(const void *key, size_t keylen, const struct part *parts,
    size_t nparts, unsigned char out[32])
{
	static const unsigned char	 zero = 0;
	EVP_MAC				*mac = NULL;
	EVP_MAC_CTX			*ctx = NULL;
	OSSL_PARAM			 params[2];
	size_t				 outlen = 0, i;
	int				 rc = -1;

	/*
	 * HMAC zero-pads short keys, so an empty key equals the key "\0";
	 * this avoids libcrypto's handling of a zero-length key.
	 */
	if (keylen == 0) {
		key = &zero;
		keylen = 1;
	}
	if (key == NULL)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		goto out;
	if ((ctx = EVP_MAC_CTX_new(mac)) == NULL)
		goto out;
	if (EVP_MAC_init(ctx, key, keylen, params) != 1)
		goto out;
	for (i = 0; i < nparts; i++) {
		if (parts[i].n == 0)
			continue;
		if (parts[i].p == NULL)
			goto out;
		if (EVP_MAC_update(ctx, parts[i].p, parts[i].n) != 1)
			goto out;
	}
	if (EVP_MAC_final(ctx, out, &outlen, 32) != 1 || outlen != 32)
		goto out;
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	if (rc != 0)
		OPENSSL_cleanse(out, 32);
	return rc;
}

int
crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
    size_t len, unsigned char out[32])
{
	struct part	 p = { data, len };

	return hmac_sha256_parts(key, keylen, &p, 1, out);
}

bool
crypto_ct_equal(const void *a, const void *b, size_t n)
{
	if (n == 0)
		return true;
	if (a == NULL || b == NULL)
		return false;
	return CRYPTO_memcmp(a, b, n) == 0;
}

bool
crypto_ct_streq(const char *a, const char *b)
{
	size_t	 la, lb;

	if (a == NULL || b == NULL)
		return false;
	la = strlen(a);
	lb = strlen(b);
	if (la != lb) {
		/* same work as a comparison, result ignored */
		(void)CRYPTO_memcmp(a, a, la);
		return false;
	}
	return la == 0 || CRYPTO_memcmp(a, b, la) == 0;
}

/* ---------------------------------------------------------------- base64 */

/* Encodes n bytes with alphabet; pad adds '='. malloc'd, NULL on OOM. */
static char *
b64_encode(const unsigned char *in, size_t n, const char *alphabet, bool pad)
{
	char	*out, *o;
	size_t	 i;

	if (in == NULL && n > 0)
		return NULL;
	if (n / 3 >= (SIZE_MAX - 8) / 4)
		return NULL;
	if ((out = malloc(4 * (n / 3 + 1) + 1)) == NULL)
		return NULL;
	o = out;
	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 0x3f];
		*o++ = alphabet[(v >> 6) & 0x3f];
		*o++ = alphabet[v & 0x3f];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 0x3f];
		if (pad) {
			*o++ = '=';
			*o++ = '=';
		}
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 0x3f];
		*o++ = alphabet[(v >> 6) & 0x3f];
		if (pad)
			*o++ = '=';
	}
	*o = '\0';
	return out;
}

char *
crypto_base64(const void *in, size_t n)
{
	return b64_encode(in, n, b64std, true);
}

char *
crypto_base64url(const void *in, size_t n)
{
	return b64_encode(in, n, b64url, false);
}

/* Value of a standard base64 character, -1 for anything else. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
crypto_base64_decode(const char *in, unsigned char *out, size_t outcap)
{
	size_t	 len, pad = 0, outlen, i, o = 0;
	long	 rc = -1;

	if (in == NULL)
		return -1;
	len = strlen(in);
	if (len % 4 != 0 || len / 4 > (size_t)LONG_MAX / 3)
		return -1;
	if (len == 0)
		return 0;
	if (in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	outlen = len / 4 * 3 - pad;
	if (outlen > outcap || out == NULL)
		return -1;
	for (i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int v[4], j;
		uint32_t w;

		for (j = 0; j < 4; j++) {
			if (last && (size_t)j >= 4 - pad) {
				v[j] = 0; /* '=' checked by the pad count */
				continue;
			}
			if ((v[j] = b64_value((unsigned char)in[i + j])) < 0)
				goto out;
		}
		/* canonical form: the bits dropped by the padding are zero */
		if (last && pad == 1 && (v[2] & 0x03) != 0)
			goto out;
		if (last && pad == 2 && (v[1] & 0x0f) != 0)
			goto out;
		w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
		    (uint32_t)v[2] << 6 | (uint32_t)v[3];
		out[o++] = (unsigned char)(w >> 16);
		if (!last || pad < 2)
			out[o++] = (unsigned char)(w >> 8);
		if (!last || pad < 1)
			out[o++] = (unsigned char)w;
	}
	rc = (long)o;
out:
	if (rc < 0 && o > 0)
		OPENSSL_cleanse(out, o);
	return rc;
}

/* ------------------------------------------------- tokens and signatures */

char *
crypto_random_token(size_t nbytes)
{
	unsigned char	*buf = NULL;
	char		*tok = NULL;

	if (nbytes == 0 || nbytes > CRYPTO_TOKEN_MAX_BYTES)
		goto out;
	if ((buf = malloc(nbytes)) == NULL)
		goto out;
	if (crypto_random(buf, nbytes) != 0)
		goto out;
	tok = crypto_base64url(buf, nbytes);
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, nbytes);
		free(buf);
	}
	return tok;
}

/* RFC 7636 unreserved characters. */
static bool
pkce_char_ok(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

char *
crypto_pkce_challenge(const char *verifier)
{
	unsigned char	 md[32];
	size_t		 len, i;

	if (verifier == NULL)
		return NULL;
	len = strnlen(verifier, 129);
	if (len < 43 || len > 128)
		return NULL;
	for (i = 0; i < len; i++)
		if (!pkce_char_ok((unsigned char)verifier[i]))
			return NULL;
	crypto_sha256(verifier, len, md);
	return crypto_base64url(md, sizeof(md));
}

bool
crypto_sf_signature_ok(const char *secret, const char *id,
    const char *issued_at, const char *sig_b64)
{
	unsigned char	 mac[32];
	struct part	 parts[2];
	char		*expect = NULL;
	bool		 ok = false;

	if (secret == NULL || id == NULL || issued_at == NULL ||
	    sig_b64 == NULL)
		goto out;
	parts[0].p = id;
	parts[0].n = strlen(id);
	parts[1].p = issued_at;
	parts[1].n = strlen(issued_at);
	if (hmac_sha256_parts(secret, strlen(secret), parts, 2, mac) != 0)
		goto out;
	if ((expect = crypto_base64(mac, sizeof(mac))) == NULL)
		goto out;
	ok = crypto_ct_streq(expect, sig_b64);
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	free(expect);
	return ok;
}

int
crypto_webhook_sig(const char *secret, long long t, const char *body,
    size_t body_len, char out[65])
{
	unsigned char	 mac[32];
	char		 prefix[32];
	struct part	 parts[2];
	int		 n, rc = -1;

	out[0] = '\0';
	if (secret == NULL || t < 0 || (body == NULL && body_len > 0))
		goto out;
	n = snprintf(prefix, sizeof(prefix), "%lld.", t);
	if (n < 0 || (size_t)n >= sizeof(prefix))
		goto out;
	parts[0].p = prefix;
	parts[0].n = (size_t)n;
	parts[1].p = body;
	parts[1].n = body_len;
	if (hmac_sha256_parts(secret, strlen(secret), parts, 2, mac) != 0)
		goto out;
	crypto_hex(mac, sizeof(mac), out);
	rc = 0;
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

void
crypto_fingerprint(const char *secret, char out[17])
{
	char	 hex[65];

	crypto_sha256_hex(secret, strlen(secret), hex);
	memcpy(out, hex, 16);
	out[16] = '\0';
	OPENSSL_cleanse(hex, sizeof(hex));
}

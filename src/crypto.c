/*
 * crypto: see crypto.h.  OpenSSL 3 libcrypto, EVP APIs only.
 */
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define KEY_LEN 32
#define KEY_B64_LEN 44          /* base64 of 32 bytes, with one '=' */
#define KEY_ID_LEN 8
#define NONCE_LEN 12
#define TAG_LEN 16
#define SEAL_PREFIX "v1:"
#define SEAL_PREFIX_LEN 3
#define SEAL_HEADER_LEN (SEAL_PREFIX_LEN + KEY_ID_LEN + 1) /* "v1:xxxxxxxx:" */
#define PATH_SHOWN_MAX 256

struct crypto_key {
	unsigned char key[KEY_LEN];
	char id[KEY_ID_LEN + 1];
};

struct crypto_keyring {
	size_t n;                              /* keys[0] is the current key */
	struct crypto_key keys[CRYPTO_KEYRING_MAX];
};

/* One piece of a message fed to HMAC. */
struct part {
	const void *p;
	size_t n;
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
	unsigned char *p = out;

	while (n > 0) {
		int chunk = n > INT_MAX ? INT_MAX : (int)n;

		if (RAND_bytes(p, chunk) != 1)
			return -1;
		p += chunk;
		n -= (size_t)chunk;
	}
	return 0;
}

void
crypto_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int outlen = 0;

	if (data == NULL)
		data = "";
	if (EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) != 1 ||
	    outlen != 32)
		abort(); /* no SHA-256 in libcrypto: nothing sane to return */
}

void
crypto_hex(const unsigned char *in, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hexdigits[in[i] >> 4];
		out[2 * i + 1] = hexdigits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

void
crypto_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];

	crypto_sha256(data, len, md);
	crypto_hex(md, sizeof(md), out);
}

/* HMAC-SHA256 over the concatenation of parts.  0 ok, -1 error. */
static int
hmac_sha256_parts(const void *key, size_t keylen, const struct part *parts,
                  size_t nparts, unsigned char out[32])
{
	static const unsigned char zero = 0;
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	size_t outlen = 0, i;
	int rc = -1;

	/* HMAC zero-pads short keys, so an empty key equals the key "\0";
	 * this avoids libcrypto's handling of a zero-length key. */
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
	struct part p = { data, len };

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
	size_t la, lb;

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

/* Encodes n bytes with alphabet; pad adds '='.  malloc'd, NULL on OOM. */
static char *
b64_encode(const unsigned char *in, size_t n, const char *alphabet, bool pad)
{
	char *out, *o;
	size_t i;

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
	size_t len, pad = 0, outlen, i, o = 0;
	long rc = -1;

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
	unsigned char *buf = NULL;
	char *tok = NULL;

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
	unsigned char md[32];
	size_t len, i;

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
	unsigned char mac[32];
	struct part parts[2];
	char *expect = NULL;
	bool ok = false;

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
	unsigned char mac[32];
	char prefix[32];
	struct part parts[2];
	int n, rc = -1;

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
crypto_free_secret(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* ------------------------------------------------------------ files */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Copies path for an error message: control bytes become '?', long paths
 * are cut, so the message stays one line. */
static void
shown_path(const char *path, char out[PATH_SHOWN_MAX])
{
	size_t i;

	if (path == NULL)
		path = "(null)";
	for (i = 0; path[i] != '\0' && i < PATH_SHOWN_MAX - 1; i++) {
		unsigned char c = (unsigned char)path[i];
		out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[i] = '\0';
}

/* Reads all of a private regular file into buf (at most cap bytes), then
 * removes one trailing "\n" or "\r\n".  what names the file's role in the
 * message.  0 ok with *lenp set; -1 with a reason in err (buf cleansed). */
static int
read_private_file(const char *path, const char *what, unsigned char *buf,
                  size_t cap, size_t *lenp, char *err, size_t errlen)
{
	char shown[PATH_SHOWN_MAX];
	struct stat st;
	size_t len = 0;
	int fd = -1, rc = -1;

	shown_path(path, shown);
	if (path == NULL || *path == '\0') {
		set_err(err, errlen, "%s: no path given", what);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		set_err(err, errlen, "%s %s: %s", what, shown,
		        strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		set_err(err, errlen, "%s %s: %s", what, shown,
		        strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, "%s %s: not a regular file", what, shown);
		goto out;
	}
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
		set_err(err, errlen,
		        "%s %s: mode %04o lets group/other read or write it "
		        "(chmod 600)",
		        what, shown, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	for (;;) {
		unsigned char extra;
		ssize_t r;

		if (len == cap)
			r = read(fd, &extra, 1);
		else
			r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			set_err(err, errlen, "%s %s: %s", what, shown,
			        strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		if (len == cap) {
			OPENSSL_cleanse(&extra, 1);
			set_err(err, errlen, "%s %s: too large", what, shown);
			goto out;
		}
		len += (size_t)r;
	}
	if (len > 0 && buf[len - 1] == '\n') {
		len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
	}
	*lenp = len;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		OPENSSL_cleanse(buf, cap);
	return rc;
}

char *
crypto_read_secret_file(const char *path, char *err, size_t errlen)
{
	enum { CAP = CRYPTO_SECRET_FILE_MAX + 2 }; /* + "\r\n" */
	char shown[PATH_SHOWN_MAX];
	unsigned char *buf = NULL;
	char *secret = NULL;
	size_t len = 0;

	shown_path(path, shown);
	if ((buf = malloc(CAP + 1)) == NULL) {
		set_err(err, errlen, "secret file %s: out of memory", shown);
		goto out;
	}
	if (read_private_file(path, "secret file", buf, CAP, &len, err,
	                      errlen) != 0)
		goto out;
	if (len == 0) {
		set_err(err, errlen, "secret file %s: empty", shown);
		goto out;
	}
	if (len > CRYPTO_SECRET_FILE_MAX) {
		set_err(err, errlen, "secret file %s: too large (max %d bytes)",
		        shown, CRYPTO_SECRET_FILE_MAX);
		goto out;
	}
	if (memchr(buf, '\0', len) != NULL) {
		set_err(err, errlen, "secret file %s: contains a NUL byte",
		        shown);
		goto out;
	}
	buf[len] = '\0';
	secret = (char *)buf;
	buf = NULL;
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, CAP + 1);
		free(buf);
	}
	return secret;
}

/* ------------------------------------------------------------ keyring */

/* Loads one key file into *k.  0 ok; -1 with a reason in err. */
static int
load_key_file(const char *path, struct crypto_key *k, char *err,
              size_t errlen)
{
	unsigned char buf[KEY_B64_LEN + 3], md[32];
	char text[KEY_B64_LEN + 1], shown[PATH_SHOWN_MAX];
	unsigned char raw[KEY_LEN + 1];
	size_t len = 0;
	int rc = -1;

	shown_path(path, shown);
	if (read_private_file(path, "key file", buf, sizeof(buf), &len, err,
	                      errlen) != 0)
		goto out;
	if (len != KEY_B64_LEN) {
		set_err(err, errlen,
		        "key file %s: expected the base64 of exactly 32 bytes "
		        "(44 characters)",
		        shown);
		goto out;
	}
	memcpy(text, buf, len);
	text[len] = '\0';
	if (crypto_base64_decode(text, raw, sizeof(raw)) != KEY_LEN) {
		set_err(err, errlen,
		        "key file %s: not valid base64 of exactly 32 bytes",
		        shown);
		goto out;
	}
	memcpy(k->key, raw, KEY_LEN);
	crypto_sha256(raw, KEY_LEN, md);
	crypto_hex(md, KEY_ID_LEN / 2, k->id);
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(text, sizeof(text));
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(md, sizeof(md));
	return rc;
}

/* Adds the key in path to kr unless the same key is already there.
 * 0 ok; -1 with a reason in err. */
static int
keyring_add(struct crypto_keyring *kr, const char *path, char *err,
            size_t errlen)
{
	struct crypto_key k;
	char shown[PATH_SHOWN_MAX];
	size_t i;
	int rc = -1;

	shown_path(path, shown);
	if (load_key_file(path, &k, err, errlen) != 0)
		goto out;
	for (i = 0; i < kr->n; i++) {
		if (strcmp(kr->keys[i].id, k.id) != 0)
			continue;
		if (CRYPTO_memcmp(kr->keys[i].key, k.key, KEY_LEN) == 0) {
			rc = 0; /* the same key listed twice */
			goto out;
		}
		set_err(err, errlen,
		        "key file %s: key id %s collides with another key; "
		        "generate a new key",
		        shown, k.id);
		goto out;
	}
	if (kr->n == CRYPTO_KEYRING_MAX) {
		set_err(err, errlen, "key file %s: too many keys (max %d)",
		        shown, CRYPTO_KEYRING_MAX);
		goto out;
	}
	kr->keys[kr->n++] = k;
	rc = 0;
out:
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

int
crypto_keyring_load(struct crypto_keyring **out, const char *current_path,
                    const char *previous_paths, char *err, size_t errlen)
{
	struct crypto_keyring *kr = NULL;
	char path[PATH_MAX];
	const char *p;
	int rc = -1;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (out == NULL) {
		set_err(err, errlen, "key ring: no output");
		goto out;
	}
	if ((kr = calloc(1, sizeof(*kr))) == NULL) {
		set_err(err, errlen, "key ring: out of memory");
		goto out;
	}
	if (keyring_add(kr, current_path, err, errlen) != 0)
		goto out;
	for (p = previous_paths; p != NULL && *p != '\0';) {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, " \t");
		if (n == 0)
			break;
		if (n >= sizeof(path)) {
			set_err(err, errlen, "previous key files: a path is "
			                     "too long");
			goto out;
		}
		memcpy(path, p, n);
		path[n] = '\0';
		if (keyring_add(kr, path, err, errlen) != 0)
			goto out;
		p += n;
	}
	*out = kr;
	kr = NULL;
	rc = 0;
out:
	crypto_keyring_free(kr);
	return rc;
}

void
crypto_keyring_free(struct crypto_keyring *kr)
{
	if (kr == NULL)
		return;
	OPENSSL_cleanse(kr, sizeof(*kr));
	free(kr);
}

const char *
crypto_keyring_current_id(const struct crypto_keyring *kr)
{
	if (kr == NULL || kr->n == 0)
		return NULL;
	return kr->keys[0].id;
}

/* The ring's key with this id (8 chars, not NUL-terminated), or NULL. */
static const struct crypto_key *
keyring_find(const struct crypto_keyring *kr, const char *id)
{
	size_t i;

	for (i = 0; i < kr->n; i++)
		if (memcmp(kr->keys[i].id, id, KEY_ID_LEN) == 0)
			return &kr->keys[i];
	return NULL;
}

/* Checks the "v1:<8 lower hex>:" header of sealed text and its length.
 * Returns the length of sealed, or 0 when malformed or too long. */
static size_t
sealed_check_header(const char *sealed)
{
	size_t len, i;

	if (sealed == NULL)
		return 0;
	len = strnlen(sealed, CRYPTO_SEALED_MAX + 1);
	if (len > CRYPTO_SEALED_MAX || len <= SEAL_HEADER_LEN)
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

char *
crypto_seal(const struct crypto_keyring *kr, const char *aad,
            const char *plaintext)
{
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char *raw = NULL;
	char *b64 = NULL, *sealed = NULL;
	size_t ptlen, aadlen, rawlen = 0, total;
	int outl = 0, finl = 0;

	if (kr == NULL || kr->n == 0 || aad == NULL || plaintext == NULL)
		goto out;
	aadlen = strnlen(aad, CRYPTO_AAD_MAX + 1);
	ptlen = strnlen(plaintext, CRYPTO_SEALED_MAX + 1);
	if (aadlen > CRYPTO_AAD_MAX || ptlen > CRYPTO_SEALED_MAX)
		goto out;
	rawlen = NONCE_LEN + ptlen + TAG_LEN;
	total = SEAL_HEADER_LEN + 4 * ((rawlen + 2) / 3);
	if (total > CRYPTO_SEALED_MAX)
		goto out;
	if ((raw = malloc(rawlen)) == NULL)
		goto out;
	if (crypto_random(raw, NONCE_LEN) != 0)
		goto out;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
	                        NULL) != 1)
		goto out;
	if (EVP_EncryptInit_ex(ctx, NULL, NULL, kr->keys[0].key, raw) != 1)
		goto out;
	if (aadlen > 0 &&
	    EVP_EncryptUpdate(ctx, NULL, &outl, (const unsigned char *)aad,
	                      (int)aadlen) != 1)
		goto out;
	outl = 0;
	if (ptlen > 0 &&
	    EVP_EncryptUpdate(ctx, raw + NONCE_LEN, &outl,
	                      (const unsigned char *)plaintext,
	                      (int)ptlen) != 1)
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
crypto_open(const struct crypto_keyring *kr, const char *aad,
            const char *sealed)
{
	const struct crypto_key *k;
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char *raw = NULL, *pt = NULL;
	char *result = NULL;
	size_t len, aadlen, rawcap = 0, ctlen = 0;
	long rawlen;
	int outl = 0, finl = 0;

	if (kr == NULL || aad == NULL)
		goto out;
	if ((len = sealed_check_header(sealed)) == 0)
		goto out;
	aadlen = strnlen(aad, CRYPTO_AAD_MAX + 1);
	if (aadlen > CRYPTO_AAD_MAX)
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
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN,
	                        NULL) != 1)
		goto out;
	if (EVP_DecryptInit_ex(ctx, NULL, NULL, k->key, raw) != 1)
		goto out;
	if (aadlen > 0 &&
	    EVP_DecryptUpdate(ctx, NULL, &outl, (const unsigned char *)aad,
	                      (int)aadlen) != 1)
		goto out;
	outl = 0;
	if (ctlen > 0 &&
	    EVP_DecryptUpdate(ctx, pt, &outl, raw + NONCE_LEN,
	                      (int)ctlen) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
	                        raw + NONCE_LEN + ctlen) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, pt + outl, &finl) != 1)
		goto out;
	if ((size_t)outl + (size_t)finl != ctlen)
		goto out;
	if (memchr(pt, '\0', ctlen) != NULL)
		goto out; /* crypto_seal never makes this */
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
crypto_sealed_needs_rotation(const struct crypto_keyring *kr,
                             const char *sealed)
{
	if (kr == NULL || kr->n == 0 || sealed_check_header(sealed) == 0)
		return false;
	return memcmp(sealed + SEAL_PREFIX_LEN, kr->keys[0].id,
	              KEY_ID_LEN) != 0;
}

/*
 * Unit tests for src/crypto.c, src/keyring.c and src/secret.c (cmocka).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "keyring.h"
#include "secret.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ temp files */

static char tmpdir[64];
static char *created[64];
static size_t ncreated;

static int
group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_crypto.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ncreated; i++) {
		unlink(created[i]);
		free(created[i]);
	}
	ncreated = 0;
	rmdir(tmpdir);
	return 0;
}

/* Writes len bytes to tmpdir/name with exactly this mode; returns the path
 * (owned by the test file list, valid until teardown). */
static const char *
write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
	assert_true(ncreated < ARRAY_LEN(created));
	created[ncreated] = strdup(path);
	assert_non_null(created[ncreated]);
	return created[ncreated++];
}

/* Writes a key file holding base64 of the n bytes key, plus nl. */
static const char *
write_key(const char *name, const unsigned char *key, size_t n,
          const char *nl)
{
	char buf[256];
	char *b64 = crypto_base64(key, n);

	assert_non_null(b64);
	snprintf(buf, sizeof(buf), "%s%s", b64, nl);
	free(b64);
	return write_file(name, buf, strlen(buf), 0600);
}

static const char *
write_random_key(const char *name)
{
	unsigned char key[32];

	assert_int_equal(crypto_random(key, sizeof(key)), 0);
	return write_key(name, key, sizeof(key), "\n");
}

static struct keyring *
load_ring(const char *cur, const char *prev)
{
	struct keyring *kr = NULL;
	char err[512] = "";

	if (keyring_load(&kr, cur, prev, err, sizeof(err)) != 0)
		fail_msg("keyring load failed: %s", err);
	assert_non_null(kr);
	return kr;
}

/* -------------------------------------------------------- hash and HMAC */

static void
test_sha256_known_answers(void **state)
{
	static const struct {
		const char *in;
		const char *hex;
	} t[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	};
	unsigned char raw[32];
	char hex[65];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		crypto_sha256_hex(t[i].in, strlen(t[i].in), hex);
		assert_string_equal(hex, t[i].hex);
		crypto_sha256(t[i].in, strlen(t[i].in), raw);
		crypto_hex(raw, sizeof(raw), hex);
		assert_string_equal(hex, t[i].hex);
	}
	crypto_sha256_hex(NULL, 0, hex);
	assert_string_equal(hex, t[0].hex);
}

static void
test_hmac_known_answers(void **state)
{
	static const struct {
		const char *key;
		const char *data;
		const char *hex;
	} t[] = {
		/* RFC 4231 test case 2 */
		{ "Jefe", "what do ya want for nothing?",
		  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
		/* empty key: openssl dgst -sha256 -hmac "" */
		{ "", "x",
		  "4cbc96099a6467ce002461f10549b4898265ebe6188b45efacc44293516e62c4" },
	};
	unsigned char mac[32];
	char hex[65];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		assert_int_equal(crypto_hmac_sha256(t[i].key, strlen(t[i].key),
		                                    t[i].data,
		                                    strlen(t[i].data), mac),
		                 0);
		crypto_hex(mac, sizeof(mac), hex);
		assert_string_equal(hex, t[i].hex);
	}
}

static void
test_hex(void **state)
{
	static const unsigned char in[] = { 0x00, 0x01, 0xab, 0xff };
	char out[9];

	(void)state;
	crypto_hex(in, sizeof(in), out);
	assert_string_equal(out, "0001abff");
	crypto_hex(in, 0, out);
	assert_string_equal(out, "");
}

/* -------------------------------------------------------- comparisons */

static void
test_ct_equal(void **state)
{
	(void)state;
	assert_true(crypto_ct_equal("abcd", "abcd", 4));
	assert_false(crypto_ct_equal("abcd", "abce", 4));
	assert_true(crypto_ct_equal("x", "y", 0));
}

static void
test_ct_streq(void **state)
{
	static const struct {
		const char *a, *b;
		bool eq;
	} t[] = {
		{ "", "", true },
		{ "abc", "abc", true },
		{ "abc", "abd", false },
		{ "abc", "ab", false },
		{ "ab", "abc", false },
		{ "", "a", false },
		{ NULL, "a", false },
		{ "a", NULL, false },
		{ NULL, NULL, false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		assert_int_equal(crypto_ct_streq(t[i].a, t[i].b), t[i].eq);
}

/* ---------------------------------------------------------------- base64 */

static void
test_base64_known_answers(void **state)
{
	/* RFC 4648 section 10, plus bytes using the last two characters */
	static const struct {
		const char *in;
		size_t n;
		const char *std, *url;
	} t[] = {
		{ "", 0, "", "" },
		{ "f", 1, "Zg==", "Zg" },
		{ "fo", 2, "Zm8=", "Zm8" },
		{ "foo", 3, "Zm9v", "Zm9v" },
		{ "foob", 4, "Zm9vYg==", "Zm9vYg" },
		{ "fooba", 5, "Zm9vYmE=", "Zm9vYmE" },
		{ "foobar", 6, "Zm9vYmFy", "Zm9vYmFy" },
		{ "\xfb\xff", 2, "+/8=", "-_8" },
		{ "\xff\xff\xfe", 3, "///+", "___-" },
	};
	unsigned char dec[16];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		char *s = crypto_base64(t[i].in, t[i].n);
		char *u = crypto_base64url(t[i].in, t[i].n);

		assert_non_null(s);
		assert_non_null(u);
		assert_string_equal(s, t[i].std);
		assert_string_equal(u, t[i].url);
		assert_int_equal(crypto_base64_decode(s, dec, sizeof(dec)),
		                 (long)t[i].n);
		assert_memory_equal(dec, t[i].in, t[i].n);
		free(s);
		free(u);
	}
}

static void
test_base64_round_trip(void **state)
{
	unsigned char in[100], out[100];
	size_t n;

	(void)state;
	assert_int_equal(crypto_random(in, sizeof(in)), 0);
	for (n = 0; n <= sizeof(in); n++) {
		char *s = crypto_base64(in, n);
		char *u = crypto_base64url(in, n);

		assert_non_null(s);
		assert_non_null(u);
		assert_int_equal(strlen(s), 4 * ((n + 2) / 3));
		assert_int_equal(strlen(u), (4 * n + 2) / 3);
		assert_null(strchr(u, '='));
		assert_null(strpbrk(u, "+/"));
		assert_int_equal(crypto_base64_decode(s, out, sizeof(out)),
		                 (long)n);
		assert_memory_equal(in, out, n);
		free(s);
		free(u);
	}
}

static void
test_base64_decode_strict(void **state)
{
	static const char *const bad[] = {
		"Zg",          /* padding required */
		"Zg=",         /* length not a multiple of 4 */
		"Zm9v\n",      /* trailing newline */
		"Zm9vYg==\n",
		"Zm9v Yg==",   /* whitespace */
		" Zm9v",
		"Zm9v\r\n",
		"Z===",        /* too much padding */
		"====",
		"Zg==Zg==",    /* padding in the middle */
		"Zm=v",
		"Zh==",        /* non-zero unused bits */
		"Zm9=",
		"Zm9v-_8=",    /* url alphabet */
		"Zm9v!A==",
		"Zm\x80v",
	};
	unsigned char out[32];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		if (crypto_base64_decode(bad[i], out, sizeof(out)) != -1)
			fail_msg("accepted bad base64 #%zu", i);
	}
	assert_int_equal(crypto_base64_decode(NULL, out, sizeof(out)), -1);
	assert_int_equal(crypto_base64_decode("", out, 0), 0);
	/* output capacity is enforced */
	assert_int_equal(crypto_base64_decode("Zm9vYmFy", out, 5), -1);
	assert_int_equal(crypto_base64_decode("Zm9vYmFy", out, 6), 6);
	assert_int_equal(crypto_base64_decode("Zm9vYg==", out, 3), -1);
	assert_int_equal(crypto_base64_decode("Zm9vYg==", out, 4), 4);
}

/* ---------------------------------------------- tokens and PKCE */

static void
test_random(void **state)
{
	unsigned char a[32], b[32];
	char *t1, *t2;
	size_t i;

	(void)state;
	assert_int_equal(crypto_random(a, sizeof(a)), 0);
	assert_int_equal(crypto_random(b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(crypto_random(a, 0), 0);

	t1 = crypto_random_token(32);
	t2 = crypto_random_token(32);
	assert_non_null(t1);
	assert_non_null(t2);
	assert_int_equal(strlen(t1), 43);
	assert_string_not_equal(t1, t2);
	for (i = 0; t1[i] != '\0'; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                       "abcdefghijklmnopqrstuvwxyz0123456789-_",
		                       t1[i]));
	secret_free(t1);
	secret_free(t2);
	secret_free(NULL);
	assert_null(crypto_random_token(0));
	assert_null(crypto_random_token(CRYPTO_TOKEN_MAX_BYTES + 1));
}

static void
test_pkce(void **state)
{
	static const char *const bad[] = {
		"",
		"short",
		/* 42 characters */
		"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX",
		/* forbidden character */
		"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk+",
		"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk=",
	};
	char *c, *tok, longv[130];
	size_t i;

	(void)state;
	/* RFC 7636 appendix B */
	c = crypto_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
	assert_non_null(c);
	assert_string_equal(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
	free(c);

	for (i = 0; i < ARRAY_LEN(bad); i++)
		assert_null(crypto_pkce_challenge(bad[i]));
	assert_null(crypto_pkce_challenge(NULL));
	memset(longv, 'a', 129);
	longv[129] = '\0';
	assert_null(crypto_pkce_challenge(longv));
	longv[128] = '\0';
	c = crypto_pkce_challenge(longv);
	assert_non_null(c);
	free(c);

	/* a 32-byte random token is a valid verifier */
	tok = crypto_random_token(32);
	assert_non_null(tok);
	c = crypto_pkce_challenge(tok);
	assert_non_null(c);
	assert_int_equal(strlen(c), 43);
	free(c);
	secret_free(tok);
}

/* ---------------------------------------------------------- signatures */

#define SF_ID "https://login.salesforce.com/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU"
#define SF_ISSUED "1278448384422"
#define SF_SECRET "EXAMPLE_CONSUMER_SECRET"
#define SF_SIG "u8FtmH6UcfueugI0YLNP3RkZX8oqm9NS9f3wnL0JY+k="

static void
test_sf_signature(void **state)
{
	unsigned char raw[32];
	char *flipped;
	size_t bit;

	(void)state;
	assert_true(crypto_sf_signature_ok(SF_SECRET, SF_ID, SF_ISSUED, SF_SIG));

	/* every single-bit change of the MAC is rejected */
	assert_int_equal(crypto_base64_decode(SF_SIG, raw, sizeof(raw)), 32);
	for (bit = 0; bit < 256; bit++) {
		raw[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		flipped = crypto_base64(raw, sizeof(raw));
		assert_non_null(flipped);
		assert_false(crypto_sf_signature_ok(SF_SECRET, SF_ID, SF_ISSUED,
		                                    flipped));
		free(flipped);
		raw[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}

	assert_false(crypto_sf_signature_ok(SF_SECRET "x", SF_ID, SF_ISSUED,
	                                    SF_SIG));
	assert_false(crypto_sf_signature_ok(SF_SECRET, SF_ID, "1278448384423",
	                                    SF_SIG));
	assert_false(crypto_sf_signature_ok(SF_SECRET, SF_ID "x", SF_ISSUED,
	                                    SF_SIG));
	assert_false(crypto_sf_signature_ok(SF_SECRET, SF_ID, SF_ISSUED,
	                                    "u8FtmH6UcfueugI0YLNP3RkZX8oqm9NS9f3wnL0JY+k"));
	assert_false(crypto_sf_signature_ok(SF_SECRET, SF_ID, SF_ISSUED,
	                                    SF_SIG "\n"));
	assert_false(crypto_sf_signature_ok(SF_SECRET, SF_ID, SF_ISSUED, ""));
	assert_false(crypto_sf_signature_ok(NULL, SF_ID, SF_ISSUED, SF_SIG));
	assert_false(crypto_sf_signature_ok(SF_SECRET, NULL, SF_ISSUED, SF_SIG));
	assert_false(crypto_sf_signature_ok(SF_SECRET, SF_ID, NULL, SF_SIG));
	assert_false(crypto_sf_signature_ok(SF_SECRET, SF_ID, SF_ISSUED, NULL));
}

static void
test_webhook_sig(void **state)
{
	/* printf '%s' '<t>.<body>' | openssl dgst -sha256 -hmac '<secret>' */
	static const struct {
		const char *secret;
		long long t;
		const char *body;
		const char *hex;
	} t[] = {
		{ "whsec_test_secret", 1700000000LL,
		  "{\"id\":\"evt_1\",\"type\":\"integration.invalid\"}",
		  "de4acf167bde711b3435e456429e56b5cccf4f9595c1f7f33a9f90d109f8bceb" },
		{ "k", 0, "",
		  "6b4a4b8b3c40f1e8f53a3d36682e5f99f7ad2ac1df1c93dfe336f329167641e7" },
	};
	char out[65];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		assert_int_equal(crypto_webhook_sig(t[i].secret, t[i].t,
		                                    t[i].body,
		                                    strlen(t[i].body), out),
		                 0);
		assert_string_equal(out, t[i].hex);
	}
	assert_int_equal(crypto_webhook_sig("k", 0, NULL, 0, out), 0);
	assert_string_equal(out, t[1].hex);
	assert_int_equal(crypto_webhook_sig(NULL, 0, "", 0, out), -1);
	assert_int_equal(crypto_webhook_sig("k", -1, "", 0, out), -1);
	assert_int_equal(crypto_webhook_sig("k", 0, NULL, 1, out), -1);
}

/* ---------------------------------------------------------------- keyring */

static void
test_keyring_key_id_and_known_vector(void **state)
{
	/* key bytes 00..1f; vector made with Python's cryptography AESGCM,
	 * nonce 64..6f, aad "org:42:refresh_token" */
	static const char sealed[] =
	    "v1:630dcd29:ZGVmZ2hpamtsbW5vOn64FByaPrNKDTSNtEgcnC63Y0T0GYxfz/"
	    "WJBEEFlwiKC8Q=";
	unsigned char key[32];
	struct keyring *kr;
	const char *path;
	char *pt;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	path = write_key("kat.key", key, sizeof(key), "");
	kr = load_ring(path, NULL);
	/* sha256(00..1f) = 630dcd2966c4... */
	assert_string_equal(keyring_current_id(kr), "630dcd29");
	pt = keyring_open(kr, "org:42:refresh_token", sealed);
	assert_non_null(pt);
	assert_string_equal(pt, "refresh-token-value");
	secret_free(pt);
	assert_null(keyring_open(kr, "org:43:refresh_token", sealed));
	assert_false(keyring_needs_rotation(kr, sealed));
	keyring_free(kr);

	/* CRLF after the key is accepted too */
	path = write_key("kat-crlf.key", key, sizeof(key), "\r\n");
	kr = load_ring(path, NULL);
	assert_string_equal(keyring_current_id(kr), "630dcd29");
	keyring_free(kr);
	keyring_free(NULL);
}

static void
test_keyring_seal_open(void **state)
{
	static const char *const plain[] = {
		"", "x", "00Dx0000000BV7z!AQ4AQ.token.value",
		"a somewhat longer refresh token value 0123456789abcdef",
	};
	struct keyring *kr;
	const char *path;
	size_t i;

	(void)state;
	path = write_random_key("seal.key");
	kr = load_ring(path, NULL);
	for (i = 0; i < ARRAY_LEN(plain); i++) {
		char *s1 = keyring_seal(kr, "org:42:refresh_token", plain[i]);
		char *s2 = keyring_seal(kr, "org:42:refresh_token", plain[i]);
		char *pt;
		char prefix[13];

		assert_non_null(s1);
		assert_non_null(s2);
		snprintf(prefix, sizeof(prefix), "v1:%s:",
		         keyring_current_id(kr));
		assert_memory_equal(s1, prefix, 12);
		if (strlen(plain[i]) >= 8) /* short ones may occur by chance */
			assert_null(strstr(s1, plain[i]));
		/* fresh nonce: the same plaintext seals differently */
		assert_string_not_equal(s1, s2);
		pt = keyring_open(kr, "org:42:refresh_token", s1);
		assert_non_null(pt);
		assert_string_equal(pt, plain[i]);
		secret_free(pt);
		pt = keyring_open(kr, "org:42:refresh_token", s2);
		assert_non_null(pt);
		assert_string_equal(pt, plain[i]);
		secret_free(pt);
		/* wrong aad */
		assert_null(keyring_open(kr, "org:42:access_token", s1));
		assert_null(keyring_open(kr, "org:4:refresh_token", s1));
		assert_null(keyring_open(kr, "", s1));
		assert_false(keyring_needs_rotation(kr, s1));
		free(s1);
		free(s2);
	}
	/* empty aad is allowed, and must match */
	{
		char *s = keyring_seal(kr, "", "v");
		char *pt;

		assert_non_null(s);
		pt = keyring_open(kr, "", s);
		assert_non_null(pt);
		assert_string_equal(pt, "v");
		secret_free(pt);
		assert_null(keyring_open(kr, "x", s));
		free(s);
	}
	assert_null(keyring_seal(kr, NULL, "x"));
	assert_null(keyring_seal(kr, "a", NULL));
	assert_null(keyring_seal(NULL, "a", "x"));
	assert_null(keyring_open(kr, NULL, "v1:00000000:AAAA"));
	assert_null(keyring_open(NULL, "a", "v1:00000000:AAAA"));
	keyring_free(kr);
}

static void
test_keyring_tamper(void **state)
{
	struct keyring *kr;
	unsigned char raw[128];
	char *sealed, *b64, *pt, buf[256];
	long rawlen;
	size_t i;

	(void)state;
	kr = load_ring(write_random_key("tamper.key"), NULL);
	sealed = keyring_seal(kr, "org:1:access_token", "secret-access-token");
	assert_non_null(sealed);
	rawlen = crypto_base64_decode(sealed + 12, raw, sizeof(raw));
	assert_int_equal(rawlen, 12 + 19 + 16);

	/* flipping any bit of nonce, ciphertext or tag is detected */
	for (i = 0; i < (size_t)rawlen * 8; i++) {
		raw[i / 8] ^= (unsigned char)(1u << (i % 8));
		b64 = crypto_base64(raw, (size_t)rawlen);
		assert_non_null(b64);
		snprintf(buf, sizeof(buf), "%.12s%s", sealed, b64);
		free(b64);
		assert_null(keyring_open(kr, "org:1:access_token", buf));
		raw[i / 8] ^= (unsigned char)(1u << (i % 8));
	}
	/* truncated or extended ciphertext */
	for (i = 0; i < (size_t)rawlen; i++) {
		b64 = crypto_base64(raw, i);
		assert_non_null(b64);
		snprintf(buf, sizeof(buf), "%.12s%s", sealed, b64);
		free(b64);
		assert_null(keyring_open(kr, "org:1:access_token", buf));
	}
	snprintf(buf, sizeof(buf), "%sAAAA", sealed);
	assert_null(keyring_open(kr, "org:1:access_token", buf));

	/* the untouched text still opens */
	pt = keyring_open(kr, "org:1:access_token", sealed);
	assert_non_null(pt);
	assert_string_equal(pt, "secret-access-token");
	secret_free(pt);
	free(sealed);
	keyring_free(kr);
}

static void
test_keyring_malformed(void **state)
{
	struct keyring *kr;
	char *sealed, *big, buf[512];
	const char *id;
	size_t i;

	(void)state;
	kr = load_ring(write_random_key("malformed.key"), NULL);
	id = keyring_current_id(kr);
	sealed = keyring_seal(kr, "a", "payload");
	assert_non_null(sealed);

	{
		const char *bad[] = {
			"", "v1", "v1:", "v1::", "v2", "x",
		};
		for (i = 0; i < ARRAY_LEN(bad); i++) {
			assert_null(keyring_open(kr, "a", bad[i]));
			assert_false(keyring_needs_rotation(kr, bad[i]));
		}
	}
	assert_null(keyring_open(kr, "a", NULL));
	assert_false(keyring_needs_rotation(kr, NULL));

	/* wrong version */
	snprintf(buf, sizeof(buf), "v2%s", sealed + 2);
	assert_null(keyring_open(kr, "a", buf));
	/* upper-case key id */
	snprintf(buf, sizeof(buf), "%s", sealed);
	for (i = 3; i < 11; i++)
		if (buf[i] >= 'a' && buf[i] <= 'f')
			buf[i] = (char)(buf[i] - 'a' + 'A');
	if (strncmp(buf, sealed, 11) != 0)
		assert_null(keyring_open(kr, "a", buf));
	/* unknown key id */
	snprintf(buf, sizeof(buf), "v1:%08x:%s",
	         (unsigned)strtoul(id, NULL, 16) ^ 1u, sealed + 12);
	assert_null(keyring_open(kr, "a", buf));
	assert_true(keyring_needs_rotation(kr, buf));
	/* missing separator, whitespace, trailing newline */
	snprintf(buf, sizeof(buf), "v1:%s%s", id, sealed + 12);
	assert_null(keyring_open(kr, "a", buf));
	snprintf(buf, sizeof(buf), "%s\n", sealed);
	assert_null(keyring_open(kr, "a", buf));
	snprintf(buf, sizeof(buf), " %s", sealed);
	assert_null(keyring_open(kr, "a", buf));

	/* oversized input is refused before any work */
	big = malloc(KEYRING_SEALED_MAX + 2);
	assert_non_null(big);
	memcpy(big, sealed, 12);
	memset(big + 12, 'A', KEYRING_SEALED_MAX + 1 - 12);
	big[KEYRING_SEALED_MAX + 1] = '\0';
	assert_null(keyring_open(kr, "a", big));
	/* oversized plaintext and aad are refused by seal */
	assert_null(keyring_seal(kr, "a", big));
	memset(big, 'p', KEYRING_AAD_MAX + 1);
	big[KEYRING_AAD_MAX + 1] = '\0';
	assert_null(keyring_seal(kr, big, "x"));
	big[KEYRING_AAD_MAX] = '\0';
	{
		char *s = keyring_seal(kr, big, "x"), *pt;

		assert_non_null(s);
		pt = keyring_open(kr, big, s);
		assert_non_null(pt);
		secret_free(pt);
		free(s);
	}
	/* the largest plaintext that fits opens again */
	{
		size_t max = (KEYRING_SEALED_MAX - 12) / 4 * 3 - 28;
		char *s, *pt;

		free(big);
		big = malloc(max + 2);
		assert_non_null(big);
		memset(big, 'q', max + 1);
		big[max + 1] = '\0';
		assert_null(keyring_seal(kr, "a", big));
		big[max] = '\0';
		s = keyring_seal(kr, "a", big);
		assert_non_null(s);
		assert_true(strlen(s) <= KEYRING_SEALED_MAX);
		pt = keyring_open(kr, "a", s);
		assert_non_null(pt);
		assert_string_equal(pt, big);
		secret_free(pt);
		free(s);
	}
	free(big);
	free(sealed);
	keyring_free(kr);
}

static void
test_keyring_rotation(void **state)
{
	struct keyring *ra, *rb, *rc;
	const char *pa, *pb, *pc;
	char prev[3 * PATH_MAX], *sa, *sb, *pt;
	char ida[9];

	(void)state;
	pa = write_random_key("rot-a.key");
	pb = write_random_key("rot-b.key");
	pc = write_random_key("rot-c.key");

	ra = load_ring(pa, NULL);
	snprintf(ida, sizeof(ida), "%s", keyring_current_id(ra));
	sa = keyring_seal(ra, "org:7:refresh_token", "token-under-a");
	assert_non_null(sa);

	/* B current, A previous (with extra spaces and a repeat of B) */
	snprintf(prev, sizeof(prev), "  %s   %s  ", pa, pb);
	rb = load_ring(pb, prev);
	assert_string_not_equal(keyring_current_id(rb), ida);
	assert_true(keyring_needs_rotation(rb, sa));
	pt = keyring_open(rb, "org:7:refresh_token", sa);
	assert_non_null(pt);
	assert_string_equal(pt, "token-under-a");

	/* re-seal under B: no longer needs rotation, A alone cannot read it */
	sb = keyring_seal(rb, "org:7:refresh_token", pt);
	secret_free(pt);
	assert_non_null(sb);
	assert_false(keyring_needs_rotation(rb, sb));
	assert_null(keyring_open(ra, "org:7:refresh_token", sb));
	assert_true(keyring_needs_rotation(ra, sb));

	/* a ring without A cannot read A's text */
	rc = load_ring(pc, pb);
	assert_null(keyring_open(rc, "org:7:refresh_token", sa));
	pt = keyring_open(rc, "org:7:refresh_token", sb);
	assert_non_null(pt);
	secret_free(pt);

	free(sa);
	free(sb);
	keyring_free(ra);
	keyring_free(rb);
	keyring_free(rc);
}

static void
test_keyring_bad_files(void **state)
{
	unsigned char key[33];
	char good_b64[64], *b64;
	const struct {
		const char *name;
		const char *content; /* NULL: use key bytes below */
		size_t keylen;
		mode_t mode;
	} t[] = {
		{ "short.key", NULL, 31, 0600 },
		{ "long.key", NULL, 33, 0600 },
		{ "bad-b64.key", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!=", 0, 0600 },
		{ "urlb64.key", "-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_8=", 0, 0600 },
		{ "nopad.key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, 0600 },
		{ "empty.key", "", 0, 0600 },
		{ "twonl.key", "GOOD\n\n", 0, 0600 },
		{ "lead.key", " GOOD", 0, 0600 },
		{ "trail.key", "GOOD ", 0, 0600 },
		{ "cr.key", "GOOD\r", 0, 0600 },
		{ "mode644.key", "GOOD\n", 0, 0644 },
		{ "mode640.key", "GOOD\n", 0, 0640 },
		{ "mode604.key", "GOOD\n", 0, 0604 },
		{ "mode620.key", "GOOD\n", 0, 0620 },
	};
	static int sentinel;
	struct keyring *kr;
	char err[512], content[128], prev[PATH_MAX + 8];
	const char *good, *path;
	size_t i;

	(void)state;
	assert_int_equal(crypto_random(key, sizeof(key)), 0);
	b64 = crypto_base64(key, 32);
	assert_non_null(b64);
	snprintf(good_b64, sizeof(good_b64), "%s", b64);
	free(b64);
	good = write_key("good.key", key, 32, "\n");

	for (i = 0; i < ARRAY_LEN(t); i++) {
		if (t[i].content == NULL) {
			b64 = crypto_base64(key, t[i].keylen);
			assert_non_null(b64);
			snprintf(content, sizeof(content), "%s\n", b64);
			free(b64);
		} else if (strncmp(t[i].content, "GOOD", 4) == 0 ||
		           strncmp(t[i].content, " GOOD", 5) == 0) {
			const char *g = strstr(t[i].content, "GOOD");
			snprintf(content, sizeof(content), "%.*s%s%s",
			         (int)(g - t[i].content), t[i].content,
			         good_b64, g + 4);
		} else {
			snprintf(content, sizeof(content), "%s", t[i].content);
		}
		path = write_file(t[i].name, content, strlen(content),
		                  t[i].mode);

		/* as the current key */
		kr = (struct keyring *)&sentinel; /* stays untouched */
		err[0] = '\0';
		assert_int_equal(keyring_load(&kr, path, NULL, err,
		                                     sizeof(err)),
		                 -1);
		assert_ptr_equal(kr, (struct keyring *)&sentinel);
		if (strstr(err, path) == NULL)
			fail_msg("%s: err does not name the file: %s",
			         t[i].name, err);
		assert_null(strchr(err, '\n'));
		assert_null(strstr(err, good_b64));
		if (t[i].mode != 0600 && strstr(err, "mode") == NULL)
			fail_msg("%s: err does not mention the mode: %s",
			         t[i].name, err);

		/* as a previous key */
		err[0] = '\0';
		snprintf(prev, sizeof(prev), "%s", path);
		assert_int_equal(keyring_load(&kr, good, prev, err,
		                                     sizeof(err)),
		                 -1);
		if (strstr(err, path) == NULL)
			fail_msg("%s (previous): err does not name the file: %s",
			         t[i].name, err);
	}

	/* missing file, directory, NULL path */
	snprintf(content, sizeof(content), "%s/missing.key", tmpdir);
	assert_int_equal(keyring_load(&kr, content, NULL, err,
	                                     sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, content));
	assert_int_equal(keyring_load(&kr, good, content, err,
	                                     sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, content));
	assert_int_equal(keyring_load(&kr, tmpdir, NULL, err,
	                                     sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, tmpdir));
	assert_int_equal(keyring_load(&kr, NULL, NULL, err,
	                                     sizeof(err)),
	                 -1);
	/* a NULL err buffer is fine */
	assert_int_equal(keyring_load(&kr, content, NULL, NULL, 0), -1);

	/* the good file itself loads, alone or with itself as previous */
	kr = load_ring(good, "");
	keyring_free(kr);
	kr = load_ring(good, good);
	keyring_free(kr);
	memset(key, 0, sizeof(key));
	memset(good_b64, 0, sizeof(good_b64));
}

/* --------------------------------------------------------- secret files */

static void
test_read_secret_file(void **state)
{
	static const struct {
		const char *name;
		const char *content;
		size_t len;
		mode_t mode;
		const char *expect; /* NULL: must fail */
	} t[] = {
		{ "s-plain", "hunter2", 7, 0600, "hunter2" },
		{ "s-nl", "hunter2\n", 8, 0600, "hunter2" },
		{ "s-crlf", "hunter2\r\n", 9, 0400, "hunter2" },
		{ "s-twonl", "hunter2\n\n", 9, 0600, "hunter2\n" },
		{ "s-cr", "hunter2\r", 8, 0600, "hunter2\r" },
		{ "s-empty", "", 0, 0600, NULL },
		{ "s-onlynl", "\n", 1, 0600, NULL },
		{ "s-onlycrlf", "\r\n", 2, 0600, NULL },
		{ "s-nul", "hun\0ter2", 8, 0600, NULL },
		{ "s-644", "hunter2\n", 8, 0644, NULL },
		{ "s-640", "hunter2\n", 8, 0640, NULL },
		{ "s-602", "hunter2\n", 8, 0602, NULL },
	};
	char err[512], *s, *big;
	const char *path;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		path = write_file(t[i].name, t[i].content, t[i].len,
		                  t[i].mode);
		err[0] = '\0';
		s = secret_read_file(path, err, sizeof(err));
		if (t[i].expect != NULL) {
			if (s == NULL)
				fail_msg("%s: %s", t[i].name, err);
			assert_string_equal(s, t[i].expect);
			secret_free(s);
		} else {
			assert_null(s);
			if (strstr(err, path) == NULL)
				fail_msg("%s: err does not name the file: %s",
				         t[i].name, err);
			assert_null(strstr(err, "hunter2"));
			assert_null(strchr(err, '\n'));
		}
	}

	/* size limit: 4096 bytes (+ newline) accepted, 4097 refused */
	big = malloc(SECRET_FILE_MAX + 3);
	assert_non_null(big);
	memset(big, 's', SECRET_FILE_MAX + 2);
	big[SECRET_FILE_MAX] = '\r';
	big[SECRET_FILE_MAX + 1] = '\n';
	path = write_file("s-max", big, SECRET_FILE_MAX + 2, 0600);
	s = secret_read_file(path, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(strlen(s), SECRET_FILE_MAX);
	secret_free(s);
	memset(big, 's', SECRET_FILE_MAX + 3);
	path = write_file("s-toobig", big, SECRET_FILE_MAX + 1, 0600);
	assert_null(secret_read_file(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	path = write_file("s-huge", big, SECRET_FILE_MAX + 3, 0600);
	assert_null(secret_read_file(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	free(big);

	assert_null(secret_read_file(tmpdir, err, sizeof(err)));
	assert_null(secret_read_file("/nonexistent/secret", err,
	                                    sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/secret"));
	assert_null(secret_read_file(NULL, err, sizeof(err)));
	/* a path with a newline stays a one-line message */
	assert_null(secret_read_file("/nonexistent/a\nb", err,
	                                    sizeof(err)));
	assert_null(strchr(err, '\n'));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_known_answers),
		cmocka_unit_test(test_hmac_known_answers),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_ct_equal),
		cmocka_unit_test(test_ct_streq),
		cmocka_unit_test(test_base64_known_answers),
		cmocka_unit_test(test_base64_round_trip),
		cmocka_unit_test(test_base64_decode_strict),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_pkce),
		cmocka_unit_test(test_sf_signature),
		cmocka_unit_test(test_webhook_sig),
		cmocka_unit_test(test_keyring_key_id_and_known_vector),
		cmocka_unit_test(test_keyring_seal_open),
		cmocka_unit_test(test_keyring_tamper),
		cmocka_unit_test(test_keyring_malformed),
		cmocka_unit_test(test_keyring_rotation),
		cmocka_unit_test(test_keyring_bad_files),
		cmocka_unit_test(test_read_secret_file),
	};

	return cmocka_run_group_tests_name("crypto", tests, group_setup,
	                                   group_teardown);
}

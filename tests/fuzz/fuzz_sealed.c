/*
 * libFuzzer target: reading tokens at rest and Salesforce ids:
 * keyring_open, keyring_needs_rotation and crypto_base64_decode
 * (src/crypto.c), sfid_to18 and sfid_parse_identity_path (src/sfid.c).
 *
 * The keyring is fixed: two keys (current and previous) of known bytes,
 * written once to 0600 files in a temp dir by LLVMFuzzerInitialize, loaded,
 * and the files removed. The keyring is only read afterwards.
 *
 * Input: a C string (cut at its first NUL). It is opened as sealed text
 * under the fixed AAD; decoded as base64 into exactly sized buffers
 * (a decode must re-encode to the same text: the decoder is strict); sealed
 * as a plaintext and opened again (round trip; a wrong AAD must fail);
 * read as a Salesforce id and as an identity URL path.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "crypto.h"
#include "keyring.h"
#include "secret.h"
#include "sfid.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

#define AAD	"org:42:refresh_token"

static struct keyring	*kr;	/* made once, read only */

static void
write_key(const char *path, unsigned char first)
{
	unsigned char	 key[32];
	char		*b64;
	int		 fd;

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(first + i);
	if ((b64 = crypto_base64(key, sizeof(key))) == NULL ||
	    (fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1 ||
	    write(fd, b64, strlen(b64)) != (ssize_t)strlen(b64) ||
	    write(fd, "\n", 1) != 1 || close(fd) == -1) {
		perror(path);
		abort();
	}
	free(b64);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char	 dir[] = "/tmp/sfc-fuzz-key.XXXXXX", cur[64], prev[64];
	char	 err[256];

	(void)argc;
	(void)argv;
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(cur, sizeof(cur), "%s/current.key", dir);
	snprintf(prev, sizeof(prev), "%s/previous.key", dir);
	write_key(cur, 0x00);
	write_key(prev, 0x80);
	if (keyring_load(&kr, cur, prev, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_sealed: %s\n", err);
		abort();
	}
	unlink(cur);
	unlink(prev);
	rmdir(dir);
	return 0;
}

static void
check_base64(const char *s, size_t len)
{
	size_t		 cap = len / 4 * 3;
	unsigned char	*out = malloc(cap);	/* exact: ASan sees one byte more */
	long		 n;

	if (out == NULL)
		return;
	n = crypto_base64_decode(s, out, cap);
	if (n >= 0) {
		char *again = crypto_base64(out, (size_t)n);

		CHECK((size_t)n <= cap);
		CHECK(again != NULL && strcmp(again, s) == 0);
		free(again);
		free(out);
		/* One byte too small must fail, without writing past the end. */
		if (n > 0) {
			out = malloc((size_t)n - 1);
			if (out != NULL)
				CHECK(crypto_base64_decode(s, out,
				    (size_t)n - 1) == -1);
			free(out);
		}
		return;
	}
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s, *pt, *sealed, org[19], user[19], id18[19];
	size_t	 len;

	if ((s = strndup((const char *)data, size)) == NULL)
		return 0;
	len = strlen(s);

	/* Sealed text from the database. */
	pt = keyring_open(kr, AAD, s);
	if (pt != NULL) {
		CHECK(strlen(pt) < len);
		CHECK(keyring_open(kr, "org:43:refresh_token", s) == NULL);
		secret_free(pt);
	}
	(void)keyring_needs_rotation(kr, s);

	/* Base64, strictly. */
	check_base64(s, len);

	/* Round trip of the input as a plaintext. */
	sealed = keyring_seal(kr, AAD, s);
	if (len <= 40000)
		CHECK(sealed != NULL);
	if (sealed != NULL) {
		CHECK(!keyring_needs_rotation(kr, sealed));
		pt = keyring_open(kr, AAD, sealed);
		CHECK(pt != NULL && strcmp(pt, s) == 0);
		secret_free(pt);
		CHECK(keyring_open(kr, "org:42:access_token", sealed) == NULL);
		free(sealed);
	}

	/* Salesforce ids. */
	if (sfid_to18(s, id18) == 0) {
		char again[19];

		CHECK(strlen(id18) == 18 && (len == 15 || len == 18));
		CHECK(strncmp(id18, s, 15) == 0);
		CHECK(sfid_to18(id18, again) == 0 && strcmp(again, id18) == 0);
	} else
		CHECK(id18[0] == '\0');
	if (sfid_parse_identity_path(s, org, user) == 0) {
		CHECK(strlen(org) == 18 && strncmp(org, "00D", 3) == 0);
		CHECK(strlen(user) == 18 && strncmp(user, "005", 3) == 0);
		CHECK(strncmp(s, "/id/", 4) == 0);
	} else
		CHECK(org[0] == '\0' && user[0] == '\0');

	free(s);
	return 0;
}

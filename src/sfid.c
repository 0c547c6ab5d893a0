/*
 * sfid: see sfid.h.
 */
#include "sfid.h"

#include <string.h>

#define SFID_LEN15 15
#define SFID_LEN18 18
#define SFID_PREFIX_LEN 3

static const char checksum_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

static bool
is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

static bool
is_alnum(char c)
{
	return is_upper(c) || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Converts n bytes of id (not necessarily NUL-terminated) to the 18-char
 * form in out.  0 ok, -1 invalid (out untouched). */
static int
to18_n(const char *id, size_t n, char out[19])
{
	char buf[SFID_LEN18 + 1];
	size_t i, chunk;

	if (n != SFID_LEN15 && n != SFID_LEN18)
		return -1;
	for (i = 0; i < n; i++)
		if (!is_alnum(id[i]))
			return -1;
	memcpy(buf, id, SFID_LEN15);
	for (chunk = 0; chunk < 3; chunk++) {
		unsigned bits = 0, j;

		for (j = 0; j < 5; j++)
			if (is_upper(id[chunk * 5 + j]))
				bits |= 1u << j;
		buf[SFID_LEN15 + chunk] = checksum_chars[bits];
	}
	buf[SFID_LEN18] = '\0';
	if (n == SFID_LEN18 &&
	    memcmp(buf + SFID_LEN15, id + SFID_LEN15, 3) != 0)
		return -1;
	memcpy(out, buf, sizeof(buf));
	return 0;
}

int
sfid_to18(const char *id, char out[19])
{
	if (id == NULL)
		goto fail;
	if (to18_n(id, strnlen(id, SFID_LEN18 + 1), out) == 0)
		return 0;
fail:
	if (out != NULL)
		out[0] = '\0';
	return -1;
}

bool
sfid_has_prefix(const char *id, const char *prefix)
{
	char tmp[SFID_LEN18 + 1];
	size_t i;

	if (id == NULL || prefix == NULL)
		return false;
	if (strnlen(prefix, SFID_PREFIX_LEN + 1) != SFID_PREFIX_LEN)
		return false;
	for (i = 0; i < SFID_PREFIX_LEN; i++)
		if (!is_alnum(prefix[i]))
			return false;
	if (sfid_to18(id, tmp) != 0)
		return false;
	return memcmp(id, prefix, SFID_PREFIX_LEN) == 0;
}

int
sfid_parse_identity_path(const char *path, char org18[19], char user18[19])
{
	static const char lead[] = "/id/";
	char org[SFID_LEN18 + 1], user[SFID_LEN18 + 1];
	const char *o, *u, *slash;
	size_t olen, ulen;

	if (path == NULL || strncmp(path, lead, sizeof(lead) - 1) != 0)
		goto fail;
	o = path + sizeof(lead) - 1;
	if ((slash = strchr(o, '/')) == NULL)
		goto fail;
	olen = (size_t)(slash - o);
	u = slash + 1;
	ulen = strlen(u); /* a further '/' is not alphanumeric: rejected */
	if (to18_n(o, olen, org) != 0 || to18_n(u, ulen, user) != 0)
		goto fail;
	if (memcmp(org, "00D", SFID_PREFIX_LEN) != 0 ||
	    memcmp(user, "005", SFID_PREFIX_LEN) != 0)
		goto fail;
	memcpy(org18, org, sizeof(org));
	memcpy(user18, user, sizeof(user));
	return 0;
fail:
	if (org18 != NULL)
		org18[0] = '\0';
	if (user18 != NULL)
		user18[0] = '\0';
	return -1;
}

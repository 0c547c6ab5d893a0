#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"

static const char *const role_names[] = {
	[ROLE_NONE] = "none", [ROLE_VIEWER] = "viewer",
	[ROLE_SERVICE] = "service", [ROLE_ADMIN] = "admin",
	[ROLE_OPERATOR] = "operator",
};

int
role_parse(const char *name, enum role *role)
{
	for (int r = ROLE_VIEWER; r <= ROLE_OPERATOR; r++)
		if (strcmp(name, role_names[r]) == 0) {
			*role = (enum role)r;
			return 0;
		}
	return -1;
}

const char *
role_name(enum role role)
{
	return role_names[role];
}

int
slug_ok(const char *slug)
{
	size_t	 n = 0;

	for (; *slug != '\0'; slug++, n++)
		if (!((*slug >= 'a' && *slug <= 'z') ||
		    (*slug >= '0' && *slug <= '9') || *slug == '-'))
			return 0;
	return n >= 1 && n <= 63;
}

void
time_rfc3339(time_t t, char out[21])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
sealed_aad(char *out, size_t outlen, long long org_id, const char *column)
{
	snprintf(out, outlen, "org:%lld:%s", org_id, column);
}

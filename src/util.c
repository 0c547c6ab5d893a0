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

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: what four digits can say. */
#define RFC3339_MIN	(-62167219200LL)
#define RFC3339_MAX	253402300799LL

void
time_rfc3339(time_t t, char out[21])
{
	struct tm	 tm;
	long long	 s = (long long)t;
	char		 text[64];

	if (s < RFC3339_MIN)
		s = RFC3339_MIN;
	else if (s > RFC3339_MAX)
		s = RFC3339_MAX;
	t = (time_t)s;
	if (gmtime_r(&t, &tm) == NULL) {
		out[0] = '\0';
		return;
	}
	if (snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec) != 20) {
		out[0] = '\0';
		return;
	}
	memcpy(out, text, 21);
}

void
sealed_aad(char *out, size_t outlen, long long org_id, const char *column)
{
	snprintf(out, outlen, "org:%lld:%s", org_id, column);
}

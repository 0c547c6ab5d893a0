#include <string.h>

#include "integ.h"

static const char *const status_names[INTEG__MAX] = {
	[INTEG_DISCONNECTED] = "disconnected",
	[INTEG_CONNECTED] = "connected",
	[INTEG_DEGRADED] = "degraded",
	[INTEG_INVALID] = "invalid",
};

const char *
integ_status_name(enum integ_status status)
{
	if ((unsigned int)status >= INTEG__MAX)
		return "unknown";
	return status_names[status];
}

int
integ_status_parse(const char *name, enum integ_status *status)
{
	for (int s = 0; s < INTEG__MAX; s++)
		if (strcmp(name, status_names[s]) == 0) {
			*status = (enum integ_status)s;
			return 0;
		}
	return -1;
}

#ifndef SFC_CONF_CHECK_H
#define SFC_CONF_CHECK_H

#include <stdbool.h>

/*
 * sfconnectd --check-config: what start-up validates (every key, the
 * secret and key files with their modes and lengths, the URLs), plus the
 * CA file and the socket's directory, and the database with with_db. One
 * line per problem on stderr; 0 when there is none, else 1.
 */
int	conf_check(const char *path, bool with_db);

#endif

/*
 * Prints the SQL of one statement of src/db_sql.c, so that bench/bench.py
 * times exactly what sfconnectd runs. Built by the bench:
 *   cc -Isrc -o bench/stmt_sql bench/stmt_sql.c src/db_sql.c
 */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "db_internal.h"

int
main(int argc, char **argv)
{
	static const struct {
		const char	*name;
		enum stmt	 st;
	} names[] = {
		{ "claim", ST_INTEG_CLAIM },
		{ "status_counts", ST_STATUS_COUNTS },
		{ "check_lag", ST_CHECK_LAG },
		{ "list_status", ST_INTEG_LIST_STATUS },
	};

	for (size_t i = 0; argc == 2 && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(argv[1], names[i].name) == 0) {
			puts(db_stmt_sql[names[i].st]);
			return 0;
		}
	fprintf(stderr, "usage: stmt_sql claim|status_counts|check_lag|list_status\n");
	return 2;
}

/* The SQL migrations of sql/, embedded at build time (migrations.c). */
#ifndef SFC_MIGRATIONS_H
#define SFC_MIGRATIONS_H

struct migration {
	int		 version;
	const char	*name;
	const char	*sql;
};

extern const struct migration	migrations[];
extern const int		n_migrations;

#endif

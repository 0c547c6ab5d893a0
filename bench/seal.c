/*
 * Seals refresh tokens as sfconnectd stores them, for benches that seed
 * many connected orgs in SQL: reads "ORG_ID<TAB>REFRESH_TOKEN" lines and
 * writes "ORG_ID<TAB>SEALED<TAB>FINGERPRINT" lines (COPY text format).
 *   bench/seal TOKEN_KEY_FILE < tokens > sealed
 * Built by bench/check_jobs.py against libsfc.a (keyring.c, crypto.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "keyring.h"
#include "util.h"

int
main(int argc, char **argv)
{
	struct keyring	*kr = NULL;
	char		 line[1024], aad[128], fp[17], err[256], *tab, *sealed;
	long long	 org_id;
	int		 rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: seal TOKEN_KEY_FILE < tokens\n");
		return 2;
	}
	if (keyring_load(&kr, argv[1], NULL, err, sizeof(err)) == -1) {
		fprintf(stderr, "seal: %s\n", err);
		return 1;
	}
	while (fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((tab = strchr(line, '\t')) == NULL)
			goto out;
		*tab++ = '\0';
		org_id = strtoll(line, NULL, 10);
		sealed_aad(aad, sizeof(aad), org_id, "refresh_token");
		if ((sealed = keyring_seal(kr, aad, tab)) == NULL)
			goto out;
		crypto_fingerprint(tab, fp);
		printf("%lld\t%s\t%s\n", org_id, sealed, fp);
		free(sealed);
	}
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "seal: a line could not be sealed\n");
	keyring_free(kr);
	return rc;
}

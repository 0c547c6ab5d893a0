/*
 * sfid: Salesforce record IDs (15-character case-sensitive and
 * 18-character checksummed forms) and identity URL paths.
 */
#ifndef SFC_SFID_H
#define SFC_SFID_H

#include <stdbool.h>

/*
 * Converts a 15- or 18-character Salesforce ID to the 18-character form
 * into out (19 bytes, the caller's buffer; may be the same buffer as id).
 * For an 18-char input, verifies the checksum suffix matches
 * (case-sensitive) the first 15. Only [A-Za-z0-9] accepted. Returns 0, or
 * -1 when invalid (out is then the empty string).
 */
int	sfid_to18(const char *id, char out[19]);
/*
 * true when id is a valid 15/18-char ID starting with the 3-char key
 * prefix (e.g. "00D" org, "005" user), compared case-sensitively.
 */
bool	sfid_has_prefix(const char *id, const char *prefix);
/*
 * Parses an identity URL path "/id/<OrgID>/<UserID>" (the part after the
 * host; no trailing slash, query or fragment). The OrgID must start with
 * "00D" and the UserID with "005". Writes their 18-char forms into the
 * caller's buffers; returns 0, or -1 when invalid (the buffers then hold
 * empty strings).
 */
int	sfid_parse_identity_path(const char *path, char org18[19],
	    char user18[19]);

#endif

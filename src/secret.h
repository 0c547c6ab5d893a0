/*
 * Secrets on disk: the Salesforce client secret, the webhook secret and
 * the token keys are files of their own, mode 0600. This module reads
 * them and wipes what it handed out. Nothing in it logs; an error text
 * names the file and the reason, never the content.
 */
#ifndef SFC_SECRET_H
#define SFC_SECRET_H

#include <stddef.h>

/* Longest secret secret_read_file accepts (bytes). */
#define SECRET_FILE_MAX	4096
/* Length of a key read by secret_read_key (AES-256). */
#define SECRET_KEY_LEN	32

/*
 * Reads a secret file: the whole content with one trailing "\n" or "\r\n"
 * removed; at most SECRET_FILE_MAX bytes, not empty, no NUL byte, a
 * regular file not readable or writable by group/other. Returns a
 * malloc'd string owned by the caller (release it with secret_free), or
 * NULL with a one-line reason naming the file in err.
 */
char	*secret_read_file(const char *path, char *err, size_t errlen);

/*
 * Reads a key file: the standard base64 of exactly SECRET_KEY_LEN bytes,
 * with an optional single trailing "\n" or "\r\n"; anything else is an
 * error, as is a file readable or writable by group/other. Returns 0 with
 * the raw key in the caller's key (which the caller cleanses), or -1 with
 * a one-line reason naming the file in err.
 */
int	secret_read_key(const char *path, unsigned char key[SECRET_KEY_LEN],
	    char *err, size_t errlen);

/*
 * secret_read_file for the file named by the configuration key setting:
 * NULL with a line in err that names the key and the file.
 */
char	*secret_read_setting(const char *setting, const char *path, char *err,
	    size_t errlen);

/* Overwrites the string, then frees it; accepts NULL. */
void	secret_free(char *s);

/*
 * Writes "<what> <path>: <reason>" into err ("<what>: <reason>" when path
 * is NULL), the reason formatted from fmt. The path is shown on one line:
 * control bytes as '?', cut at 255 bytes. Does nothing when err is NULL or
 * errlen is 0.
 */
void	secret_file_error(char *err, size_t errlen, const char *what,
	    const char *path, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

#endif

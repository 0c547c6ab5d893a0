/*
 * secret: see secret.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "secret.h"

#define KEY_B64_LEN	44	/* base64 of 32 bytes, with one '=' */
#define PATH_SHOWN_MAX	256

/*
 * Copies path for an error message: control bytes become '?', long paths
 * are cut, so the message stays one line.
 */
static void
shown_path(const char *path, char out[PATH_SHOWN_MAX])
{
	size_t	 i;

	for (i = 0; path[i] != '\0' && i < PATH_SHOWN_MAX - 1; i++) {
		unsigned char c = (unsigned char)path[i];
		out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[i] = '\0';
}

void
secret_file_error(char *err, size_t errlen, const char *what,
    const char *path, const char *fmt, ...)
{
	char	 shown[PATH_SHOWN_MAX];
	va_list	 ap;
	int	 n;

	if (err == NULL || errlen == 0)
		return;
	if (path != NULL) {
		shown_path(path, shown);
		n = snprintf(err, errlen, "%s %s: ", what, shown);
	} else
		n = snprintf(err, errlen, "%s: ", what);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/*
 * Reads all of a private regular file into buf (at most cap bytes), then
 * removes one trailing "\n" or "\r\n". what names the file's role in the
 * message. 0 ok with *lenp set; -1 with a reason in err (buf cleansed).
 */
static int
read_private_file(const char *path, const char *what, unsigned char *buf,
    size_t cap, size_t *lenp, char *err, size_t errlen)
{
	struct stat	 st;
	size_t		 len = 0;
	int		 fd = -1, rc = -1;

	if (path == NULL || *path == '\0') {
		secret_file_error(err, errlen, what, NULL, "no path given");
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) != 0) {
		secret_file_error(err, errlen, what, path, "%s",
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		secret_file_error(err, errlen, what, path,
		    "not a regular file");
		goto out;
	}
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
		secret_file_error(err, errlen, what, path,
		    "mode %04o lets group/other read or write it (chmod 600)",
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	for (;;) {
		unsigned char	 extra;
		ssize_t		 r;

		if (len == cap)
			r = read(fd, &extra, 1);
		else
			r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			secret_file_error(err, errlen, what, path, "%s",
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		if (len == cap) {
			OPENSSL_cleanse(&extra, 1);
			secret_file_error(err, errlen, what, path,
			    "too large");
			goto out;
		}
		len += (size_t)r;
	}
	if (len > 0 && buf[len - 1] == '\n') {
		len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
	}
	*lenp = len;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		OPENSSL_cleanse(buf, cap);
	return rc;
}

char *
secret_read_file(const char *path, char *err, size_t errlen)
{
	enum { CAP = SECRET_FILE_MAX + 2 };	/* + "\r\n" */
	unsigned char	*buf = NULL;
	char		*secret = NULL;
	size_t		 len = 0;

	if ((buf = malloc(CAP + 1)) == NULL) {
		secret_file_error(err, errlen, "secret file",
		    path != NULL ? path : "(null)", "out of memory");
		goto out;
	}
	if (read_private_file(path, "secret file", buf, CAP, &len, err,
	    errlen) != 0)
		goto out;
	if (len == 0) {
		secret_file_error(err, errlen, "secret file", path, "empty");
		goto out;
	}
	if (len > SECRET_FILE_MAX) {
		secret_file_error(err, errlen, "secret file", path,
		    "too large (max %d bytes)", SECRET_FILE_MAX);
		goto out;
	}
	if (memchr(buf, '\0', len) != NULL) {
		secret_file_error(err, errlen, "secret file", path,
		    "contains a NUL byte");
		goto out;
	}
	buf[len] = '\0';
	secret = (char *)buf;
	buf = NULL;
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, CAP + 1);
		free(buf);
	}
	return secret;
}

int
secret_read_key(const char *path, unsigned char key[SECRET_KEY_LEN],
    char *err, size_t errlen)
{
	unsigned char	 buf[KEY_B64_LEN + 3];
	char		 text[KEY_B64_LEN + 1];
	unsigned char	 raw[SECRET_KEY_LEN + 1];
	size_t		 len = 0;
	int		 rc = -1;

	if (read_private_file(path, "key file", buf, sizeof(buf), &len, err,
	    errlen) != 0)
		goto out;
	if (len != KEY_B64_LEN) {
		secret_file_error(err, errlen, "key file", path,
		    "expected the base64 of exactly 32 bytes (44 characters)");
		goto out;
	}
	memcpy(text, buf, len);
	text[len] = '\0';
	if (crypto_base64_decode(text, raw, sizeof(raw)) != SECRET_KEY_LEN) {
		secret_file_error(err, errlen, "key file", path,
		    "not valid base64 of exactly 32 bytes");
		goto out;
	}
	memcpy(key, raw, SECRET_KEY_LEN);
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(text, sizeof(text));
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

void
secret_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

char *
secret_read_setting(const char *setting, const char *path, char *err,
    size_t errlen)
{
	char	 reason[448];
	char	*secret;

	if ((secret = secret_read_file(path, reason, sizeof(reason))) == NULL)
		snprintf(err, errlen, "%s: %s", setting, reason);
	return secret;
}

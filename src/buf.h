/* Bounded growable byte buffers: every buffer has a hard maximum size. */
#ifndef SFC_BUF_H
#define SFC_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;	/* always NUL-terminated when non-NULL */
	size_t	 len;
	size_t	 cap;
	size_t	 max;	/* len never exceeds this */
	int	 wipe;	/* set by buf_presize: no copy is ever freed unwiped */
};

void	buf_init(struct buf *b, size_t max);
/* 0 on success, -1 when the maximum would be exceeded or memory ran out. */
int	buf_append(struct buf *b, const void *data, size_t len);
int	buf_puts(struct buf *b, const char *s);
int	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Appends s percent-encoded for a URL query component (RFC 3986 unreserved kept). */
int	buf_put_urlencoded(struct buf *b, const char *s);
void	buf_reset(struct buf *b);
/* Returns the data (caller owns it, NULL if empty) and leaves b empty. */
char	*buf_steal(struct buf *b);
void	buf_free(struct buf *b);

/*
 * For buffers that hold secrets (tokens, client secrets, forms carrying
 * them): a realloc would leave a copy of the old bytes in freed memory.
 *
 * buf_presize() makes one allocation with room for size more bytes, so that
 * appends within it never realloc; call it on an empty buffer, before the
 * secret goes in. The data (if any) is kept. 0, or -1 when len + size would
 * exceed the maximum or memory ran out. It also marks b as holding a
 * secret: an append past the presized room moves the data to a new block
 * and overwrites the old one, and buf_free() overwrites like
 * buf_cleanse_free(), for as long as b lives (buf_init clears the mark).
 */
int	buf_presize(struct buf *b, size_t size);
/* Overwrites the whole allocation of b (not only len bytes), then frees it like buf_free(). */
void	buf_cleanse_free(struct buf *b);

#endif

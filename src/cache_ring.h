/*
 * A host's ring of cache announcements, shared by its workers: what a
 * worker's own writes announced (sql/010's payloads, which PostgreSQL
 * hands back to the writing session with its statement's or COMMIT's
 * result) is published here before that request's answer goes out, and
 * every worker applies what was published before it looks in its cache.
 * So a write answered by one worker is seen by the next request on any
 * worker of the host, at once; NOTIFY alone takes a few milliseconds to
 * reach the others (and stays the path between hosts).
 *
 * cache_ring_init() maps the ring in the supervisor, before it forks;
 * without it publishing and applying do nothing.
 */
#ifndef SFC_CACHE_RING_H
#define SFC_CACHE_RING_H

#include "cache.h"

/* 0, or -1 when no shared memory could be mapped. */
int	cache_ring_init(void);
/* The position after the last published announcement (a worker's start). */
unsigned long long cache_ring_head(void);
/* Publishes one payload ("k:...", "o:...", "*"; longer ones as "*"). */
void	cache_ring_publish(const char *payload);
/*
 * Applies to cache every announcement published since *seen, and moves
 * *seen on. One the ring no longer holds, or one still being written,
 * empties the cache instead.
 */
void	cache_ring_apply(unsigned long long *seen, struct cache *cache);

#endif

/*
 * The ring: RING_SLOTS slots, each a payload and the sequence number
 * (position + 1) it was written for, 0 while being written. A publisher
 * takes a position with one atomic add; a reader checks a slot's sequence
 * before and after it copies the payload (a seqlock). The payload is
 * stored as atomic words, so no byte is ever read while written.
 */
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "cache_ring.h"

#define RING_SLOTS	1024
#define RING_WORDS	6	/* 48 bytes: "k:key_" + 16 hex, "o:" + an id */

struct ring_slot {
	atomic_ullong	 seq;
	atomic_ullong	 words[RING_WORDS];
};

struct ring {
	atomic_ullong	 head;
	struct ring_slot slots[RING_SLOTS];
};

static struct ring	*ring;

int
cache_ring_init(void)
{
	void	*p;

	if (ring != NULL)
		return 0;
	p = mmap(NULL, sizeof(*ring), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	ring = p;	/* zero-filled: empty, head 0 */
	return 0;
}

unsigned long long
cache_ring_head(void)
{
	return ring != NULL ?
	    atomic_load_explicit(&ring->head, memory_order_acquire) : 0;
}

void
cache_ring_publish(const char *payload)
{
	unsigned long long	 words[RING_WORDS] = { 0 };
	unsigned long long	 pos;
	struct ring_slot	*s;

	if (ring == NULL)
		return;
	if (strlen(payload) < sizeof(words))
		memcpy(words, payload, strlen(payload));
	else
		memcpy(words, "*", 1);
	pos = atomic_fetch_add_explicit(&ring->head, 1, memory_order_acq_rel);
	s = &ring->slots[pos % RING_SLOTS];
	atomic_store_explicit(&s->seq, 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (int i = 0; i < RING_WORDS; i++)
		atomic_store_explicit(&s->words[i], words[i],
		    memory_order_relaxed);
	atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
}

/* Copies the payload at pos into out; false when the slot does not hold it. */
static bool
read_slot(unsigned long long pos, char out[RING_WORDS * 8 + 1])
{
	struct ring_slot	*s = &ring->slots[pos % RING_SLOTS];
	unsigned long long	 words[RING_WORDS];

	if (atomic_load_explicit(&s->seq, memory_order_acquire) != pos + 1)
		return false;
	for (int i = 0; i < RING_WORDS; i++)
		words[i] = atomic_load_explicit(&s->words[i],
		    memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->seq, memory_order_relaxed) != pos + 1)
		return false;
	memcpy(out, words, sizeof(words));
	out[sizeof(words)] = '\0';
	return true;
}

void
cache_ring_apply(unsigned long long *seen, struct cache *cache)
{
	unsigned long long	 head = cache_ring_head();
	char			 payload[RING_WORDS * 8 + 1];

	if (ring == NULL || *seen == head)
		return;
	if (head - *seen > RING_SLOTS) {
		cache_clear(cache);
		*seen = head;
		return;
	}
	for (; *seen < head; (*seen)++) {
		if (!read_slot(*seen, payload)) {
			cache_clear(cache);
			*seen = head;
			return;
		}
		cache_apply(cache, payload);
	}
}

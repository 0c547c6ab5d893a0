/*
 * sf_refresh_many(): the refresh grants of a check batch, run concurrently
 * on one curl multi handle, each transfer prepared and judged exactly as a
 * single refresh is (sfx_refresh_begin, sfx_token_finish).
 */
#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "sf.h"
#include "sf_internal.h"

/* One in-flight place of sf_refresh_many(): an easy handle and its transfer. */
struct refresh_slot {
	CURL			*c;	/* owned */
	struct sf_refresh_job	*job;	/* NULL: free */
	struct sf_post		 p;
};

/* Fails job (not run) with an internal error. */
static void
job_fail(struct sf_refresh_job *job, const char *why)
{
	sf_token_clear(&job->token);
	sf_err_clear(&job->err);
	sf_err_set(&job->err, SF_TRANSIENT, "internal", "%s", why);
	job->rc = -1;
}

/*
 * Prepares job on slot s and adds it to m. 0 when it runs, or -1 when job
 * already failed (job->rc -1, job->err filled; the host check lands here).
 */
static int
slot_start(struct sf *sf, CURLM *m, struct refresh_slot *s,
    struct sf_refresh_job *job)
{
	CURLMcode	 mc;

	job->rc = -1;
	if (sfx_refresh_begin(sf, s->c, &s->p, job->login_base,
	    job->refresh_token, &job->token, &job->err) == -1)
		goto fail;
	if ((mc = curl_multi_add_handle(m, s->c)) != CURLM_OK) {
		sf_err_set(&job->err, SF_TRANSIENT, "internal", "libcurl could "
		    "not start the request (%s)", curl_multi_strerror(mc));
		goto fail;
	}
	s->job = job;
	return 0;
fail:
	metrics_sf_call(METRICS_SF_TOKEN_REFRESH, job->err.kind, 0);
	sfx_post_end(&s->p);
	return -1;
}

/* Judges the finished transfer of slot s (ended with rc) into its job and frees the slot. */
static void
slot_finish(struct sf *sf, CURLM *m, struct refresh_slot *s, CURLcode rc)
{
	struct sf_refresh_job	*job = s->job;

	job->rc = sfx_token_finish(sf, &s->p, rc, &job->token, &job->err);
	metrics_sf_call(METRICS_SF_TOKEN_REFRESH, job->rc == 0 ? SF_OK :
	    job->err.kind, s->p.r.seconds);
	curl_multi_remove_handle(m, s->c);
	sfx_post_end(&s->p);
	s->job = NULL;
}

/* Stops the transfer of slot s unfinished: its job fails with why. */
static void
slot_abort(CURLM *m, struct refresh_slot *s, const char *why)
{
	curl_multi_remove_handle(m, s->c);
	sfx_post_end(&s->p);
	job_fail(s->job, why);
	s->job = NULL;
}

/* Reads the finished transfers of m into their slots (less *busy); returns how many. */
static size_t
slots_reap(struct sf *sf, CURLM *m, struct refresh_slot *slots,
    size_t nslots, size_t *busy)
{
	CURLMsg		*msg;
	CURL		*easy;
	CURLcode	 rc;
	size_t		 done = 0, i;
	int		 left;

	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg dies with curl_multi_remove_handle(): copy it first. */
		easy = msg->easy_handle;
		rc = msg->data.result;
		for (i = 0; i < nslots; i++)
			if (slots[i].job != NULL && slots[i].c == easy)
				break;
		if (i == nslots)
			continue;
		slot_finish(sf, m, &slots[i], rc);
		(*busy)--;
		done++;
	}
	return done;
}

/* Refreshes in flight on one multi handle: see sf_many_start(). */
struct sf_many {
	struct sf		*sf;
	CURLM			*m;
	struct refresh_slot	*slots;
	size_t			 nslots;
	struct sf_refresh_job	*jobs;	/* not owned */
	size_t			 n, next, busy;
};

struct sf_many *
sf_many_new(struct sf *sf, int max_parallel)
{
	struct sf_many	*mm;
	size_t		 i;

	if ((mm = calloc(1, sizeof(*mm))) == NULL)
		return NULL;
	mm->sf = sf;
	mm->nslots = max_parallel < 1 ? 1 : (size_t)max_parallel;
	if ((mm->slots = calloc(mm->nslots, sizeof(*mm->slots))) == NULL)
		goto fail;
	for (i = 0; i < mm->nslots; i++)
		sfx_post_init(&mm->slots[i].p);
	/*
	 * libcurl keeps at most 4 idle connections per transfer still in the
	 * multi: as a batch drains it would close those of the next batch.
	 */
	if ((mm->m = curl_multi_init()) == NULL ||
	    curl_multi_setopt(mm->m, CURLMOPT_MAXCONNECTS,
	    (long)mm->nslots * 2) != CURLM_OK)
		goto fail;
	for (i = 0; i < mm->nslots; i++)
		if ((mm->slots[i].c = curl_easy_init()) == NULL)
			goto fail;
	return mm;
fail:
	sf_many_free(mm);
	return NULL;
}

/* Fails every job of mm not finished yet with why; mm is then idle. */
static void
many_fail(struct sf_many *mm, CURLMcode mc)
{
	char		 whybuf[128];
	const char	*why = whybuf;
	size_t		 i;

	snprintf(whybuf, sizeof(whybuf), "libcurl failed (%s)",
	    curl_multi_strerror(mc));
	log_warn("sf_http_failed", "token batch: %s", why);
	for (i = 0; i < mm->nslots; i++)
		if (mm->slots[i].job != NULL)
			slot_abort(mm->m, &mm->slots[i], why);
	for (; mm->next < mm->n; mm->next++)
		if (mm->jobs[mm->next].refresh_token != NULL)
			job_fail(&mm->jobs[mm->next], why);
	mm->busy = 0;
}

/* Fills the free slots of mm, in job order. */
static void
many_fill(struct sf_many *mm)
{
	size_t	 i;

	for (i = 0; i < mm->nslots && mm->next < mm->n; i++) {
		if (mm->slots[i].job != NULL)
			continue;
		while (mm->next < mm->n) {
			struct sf_refresh_job	*job = &mm->jobs[mm->next++];

			if (job->refresh_token == NULL)
				continue;
			if (slot_start(mm->sf, mm->m, &mm->slots[i], job) == 0) {
				mm->busy++;
				break;
			}
		}
	}
}

/* Moves the transfers of mm on without waiting; refills freed slots. */
static void
many_step(struct sf_many *mm)
{
	CURLMcode	 mc;
	int		 running;

	do {
		many_fill(mm);
		if (mm->busy == 0)
			return;
		if ((mc = curl_multi_perform(mm->m, &running)) != CURLM_OK) {
			many_fail(mm, mc);
			return;
		}
	} while (slots_reap(mm->sf, mm->m, mm->slots, mm->nslots,
	    &mm->busy) > 0 && mm->next < mm->n);
}

void
sf_many_start(struct sf_many *mm, struct sf_refresh_job *jobs, size_t n)
{
	mm->jobs = jobs;
	mm->n = n;
	mm->next = 0;
	mm->busy = 0;
	many_step(mm);
}

void
sf_many_pump(struct sf_many *mm)
{
	if (mm->busy > 0 || mm->next < mm->n)
		many_step(mm);
}

void
sf_many_wait(struct sf_many *mm)
{
	CURLMcode	 mc;

	for (;;) {
		many_step(mm);
		if (mm->busy == 0 && mm->next >= mm->n)
			break;
		if ((mc = curl_multi_poll(mm->m, NULL, 0, 1000, NULL)) !=
		    CURLM_OK)
			many_fail(mm, mc);
	}
	mm->jobs = NULL;
	mm->n = mm->next = 0;
}

void
sf_many_free(struct sf_many *mm)
{
	size_t	 i;

	if (mm == NULL)
		return;
	if (mm->jobs != NULL)
		sf_many_wait(mm);
	for (i = 0; mm->slots != NULL && i < mm->nslots; i++) {
		sfx_post_end(&mm->slots[i].p);
		if (mm->slots[i].c != NULL)
			curl_easy_cleanup(mm->slots[i].c);
	}
	if (mm->m != NULL)
		curl_multi_cleanup(mm->m);
	free(mm->slots);
	free(mm);
}

void
sf_refresh_many(struct sf *sf, struct sf_refresh_job *jobs, size_t n,
    int max_parallel)
{
	struct sf_many	*mm;
	size_t		 todo = 0, i;

	for (i = 0; i < n; i++)
		if (jobs[i].refresh_token != NULL)
			todo++;
	if (todo == 0)
		return;
	if ((size_t)max_parallel > todo)
		max_parallel = (int)todo;
	if ((mm = sf_many_new(sf, max_parallel)) == NULL) {
		log_warn("sf_http_failed", "token batch: out of memory");
		for (i = 0; i < n; i++)
			if (jobs[i].refresh_token != NULL)
				job_fail(&jobs[i], "out of memory");
		return;
	}
	sf_many_start(mm, jobs, n);
	sf_many_wait(mm);
	sf_many_free(mm);
}

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

/* Reads the finished transfers of m into their slots; returns how many. */
static size_t
slots_reap(struct sf *sf, CURLM *m, struct refresh_slot *slots,
    size_t nslots)
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
		done++;
	}
	return done;
}

void
sf_refresh_many(struct sf *sf, struct sf_refresh_job *jobs, size_t n,
    int max_parallel)
{
	struct refresh_slot	*slots = NULL;
	CURLM			*m = NULL;
	CURLMcode		 mc = CURLM_OK;
	const char		*why = "out of memory";
	char			 whybuf[128];
	size_t			 todo = 0, nslots = 0, busy = 0, next = 0, i;
	int			 running;

	for (i = 0; i < n; i++)
		if (jobs[i].refresh_token != NULL)
			todo++;
	if (todo == 0)
		return;
	nslots = max_parallel < 1 ? 1 : (size_t)max_parallel;
	if (nslots > todo)
		nslots = todo;
	if ((slots = calloc(nslots, sizeof(*slots))) == NULL)
		goto fail;
	for (i = 0; i < nslots; i++)
		sfx_post_init(&slots[i].p);
	if ((m = curl_multi_init()) == NULL)
		goto fail;
	for (i = 0; i < nslots; i++)
		if ((slots[i].c = curl_easy_init()) == NULL)
			goto fail;

	for (;;) {
		/* Fill the free slots, in job order. */
		for (i = 0; i < nslots && next < n; i++) {
			if (slots[i].job != NULL)
				continue;
			while (next < n) {
				struct sf_refresh_job	*job = &jobs[next++];

				if (job->refresh_token == NULL)
					continue;
				if (slot_start(sf, m, &slots[i], job) == 0) {
					busy++;
					break;
				}
			}
		}
		if (busy == 0)
			break;
		if ((mc = curl_multi_perform(m, &running)) != CURLM_OK)
			goto fail;
		busy -= slots_reap(sf, m, slots, nslots);
		/* Something finished: refill before waiting. */
		if (busy < nslots && next < n)
			continue;
		if (busy > 0 &&
		    (mc = curl_multi_poll(m, NULL, 0, 1000, NULL)) != CURLM_OK)
			goto fail;
	}
	goto out;
fail:
	if (mc != CURLM_OK) {
		snprintf(whybuf, sizeof(whybuf), "libcurl failed (%s)",
		    curl_multi_strerror(mc));
		why = whybuf;
	}
	log_warn("sf_http_failed", "token batch: %s", why);
	for (i = 0; slots != NULL && i < nslots; i++)
		if (slots[i].job != NULL)
			slot_abort(m, &slots[i], why);
	for (; next < n; next++)
		if (jobs[next].refresh_token != NULL)
			job_fail(&jobs[next], why);
out:
	for (i = 0; slots != NULL && i < nslots; i++) {
		sfx_post_end(&slots[i].p);
		if (slots[i].c != NULL)
			curl_easy_cleanup(slots[i].c);
	}
	if (m != NULL)
		curl_multi_cleanup(m);
	free(slots);
}

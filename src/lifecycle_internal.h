#ifndef SFC_LIFECYCLE_INTERNAL_H
#define SFC_LIFECYCLE_INTERNAL_H

/*
 * What lifecycle.c (one org's refresh) shares with checks.c (batches of
 * them): opening a sealed column, judging and writing one refresh outcome.
 */

#include <stdbool.h>

#include "app.h"
#include "db.h"
#include "lifecycle.h"
#include "sf.h"

char	*lci_open_column(struct app *app, long long org_id, const char *column,
	    const char *sealed);
bool	 lci_already_processing(const struct sf_refresh_job *job);
void	 lci_job_failed(struct sf_refresh_job *job, const char *code,
	    const char *message);
void	 lci_refuse_foreign_org(const struct integration *integ,
	    struct sf_refresh_job *job);
double	 lci_retry_in_s(const struct app *app, enum integ_status status,
	    const char *code, const char *message, int failures);
int	 lci_apply_outcome(struct app *app, const struct integration *integ,
	    const struct sf_refresh_job *job, const char *actor,
	    enum integ_status *status, long long *generation);
/*
 * The arguments of db_integration_refreshed for tok, a refresh of integ:
 * its tokens sealed (w->refresh_fp points into fp). 0, or -1; either way
 * lci_sealed_free() what w holds.
 */
int	 lci_seal_refreshed(struct app *app, const struct integration *integ,
	    const struct sf_token *tok, struct db_refreshed *w, char fp[17]);
void	 lci_sealed_free(struct db_refreshed *w);
int	 lci_write_rotated_only(struct app *app,
	    const struct integration *integ, const char *refresh_token);
int	 lci_save_rotated(struct app *app, const struct integration *integ,
	    const struct sf_refresh_job *job, const char *actor,
	    enum integ_status *status, long long *generation);
/*
 * Claims one batch (db_integration_claim's arguments) and refreshes it,
 * adding the outcomes to *counts. *n gets the batch size (0: nothing
 * left). A db_rc.
 */
int	 lci_check_batch(struct app *app, integ_status_set statuses,
	    const char *cutoff, bool due_retries, const char *actor,
	    struct lc_counts *counts, int *n);
/* A run of batches (lci_check_batches): what to claim, and what it did. */
struct lc_batches {
	integ_status_set	 statuses;	/* db_integration_claim's */
	const char		*cutoff;
	bool			 due_retries;
	const char		*actor;
	struct lc_counts	*counts;	/* added to */
	lc_progress_fn		*progress;	/* after each batch, or NULL */
	void			*arg;
	int			 batches;	/* out: batches checked */
	bool			 drained;	/* out: a claim found none left */
};
/*
 * Claims and checks batches until none is left to claim or a SIGTERM is
 * pending. With app->db_pipe, a batch is written while the next one
 * refreshes (checks.c, check_pipelined()). A db_rc.
 */
int	 lci_check_batches(struct app *app, struct lc_batches *run);
/*
 * true when a SIGTERM or SIGINT waits: sfconnectd blocks them while work is
 * in progress, so a long run of batches stops between two of them.
 */
bool	 lci_stop_pending(void);

#endif

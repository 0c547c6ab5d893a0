/*
 * sfconnectd: the supervisor binds the FastCGI socket, preforks the workers,
 * restarts any that die, and on SIGTERM lets in-flight requests finish. On
 * SIGHUP it re-reads the configuration and replaces the workers (the old
 * ones finish their requests); `--check-config` validates and exits.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "app.h"
#include "cache_ring.h"
#include "cfg.h"
#include "conf_check.h"
#include "db.h"
#include "events.h"
#include "fcgi.h"
#include "keyring.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "secret.h"
#include "service.h"
#include "sf.h"
#include "status.h"
#include "webhook.h"

/*
 * A child leaves with _exit(), which skips LeakSanitizer's exit-time check:
 * an ASan build runs it explicitly (a leak then fails the child and is in
 * the log).
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define child_leak_check()	__lsan_do_leak_check()
#else
#define child_leak_check()	((void)0)
#endif

#define MAX_WORKERS	256
#define STOP_GRACE_MIN_S 30
#define CHILD_CHECKER	(-1)	/* spawn_worker's listen_fd for the checker */
#define CHILD_WEBHOOKS	(-2)	/* and for the webhook deliverer */
#define WEBHOOK_POLL_MS	1000	/* a look for due retries at least this often */
#define WEBHOOK_MIN_WAIT_MS 20
#define JOB_POLL_MS	100	/* while a check job runs */	/* due but claimed elsewhere: no busy loop */

static volatile sig_atomic_t	 stop_requested;
static volatile sig_atomic_t	 child_exited;
static volatile sig_atomic_t	 reload_requested;
static const char		*config_path;	/* re-read on SIGHUP */

static void
on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void
on_child(int sig)
{
	(void)sig;
	child_exited = 1;
}

static void
on_reload(int sig)
{
	(void)sig;
	reload_requested = 1;
}

static void
set_handler(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);	/* no SA_RESTART: accept() must see EINTR */
}

/*
 * Loads the secrets a worker needs into app; -1 with one line in err
 * naming the configuration key at fault.
 */
static int
load_secrets_err(struct app *app, const struct cfg *cfg, char *err,
    size_t errlen)
{
	if (keyring_load(&app->keyring, cfg->token_key_file,
	    cfg->token_previous_key_files, err, errlen) == -1 ||
	    (app->client_secret = secret_read_setting(
	    "salesforce_client_secret_file", cfg->salesforce_client_secret_file,
	    err, errlen)) == NULL)
		return -1;
	if (cfg->webhook_url[0] != '\0' && (!webhook_url_ok(cfg->webhook_url) ||
	    cfg->webhook_secret_file[0] == '\0')) {
		snprintf(err, errlen, "webhook_url: must be an https:// URL (or "
		    "http:// on loopback), with webhook_secret_file set");
		return -1;
	}
	if (cfg->webhook_secret_file[0] != '\0' &&
	    (app->webhook_secret = secret_read_setting("webhook_secret_file",
	    cfg->webhook_secret_file, err, errlen)) == NULL)
		return -1;
	return 0;
}

/* Loads the secrets a worker needs into app; -1 after logging why. */
static int
load_secrets(struct app *app, const struct cfg *cfg)
{
	char	 err[512];

	if (load_secrets_err(app, cfg, err, sizeof(err)) == -1) {
		log_error("config", "%s", err);
		return -1;
	}
	return 0;
}

static void
free_secrets(struct app *app)
{
	keyring_free(app->keyring);
	secret_free(app->client_secret);
	secret_free(app->webhook_secret);
}

static int
worker_main(int listen_fd, struct app *app)
{
	sigset_t	 chld;
	int		 rc;

	set_handler(SIGTERM, on_stop);
	set_handler(SIGINT, on_stop);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &chld, NULL);	/* fcgi_serve handles the rest */

	if ((app->db = db_new(app->cfg->database_url)) == NULL ||
	    db_cache_enable(app->db) != DB_OK ||
	    (app->sf = sf_new(app->cfg, app->client_secret)) == NULL) {
		log_error("worker", "out of memory");
		return 1;
	}
	log_info("worker_started", "worker ready");
	rc = fcgi_serve(listen_fd, app, &stop_requested);
	sf_free(app->sf);
	db_close(app->db);
	log_info("worker_stopped", "worker stopped");
	return rc == 0 ? 0 : 1;
}

/* Seconds between two looks for due checks. */
static unsigned
checker_tick(const struct cfg *cfg)
{
	long	 tick = cfg->check_interval_s / 10;

	return (unsigned)(tick < 1 ? 1 : tick > 60 ? 60 : tick);
}

/* One round of the routine checks (every tick). */
static void
routine_checks(struct app *app)
{
	struct lc_counts	 counts;

	memset(&counts, 0, sizeof(counts));
	if (db_ensure(app->db) == DB_OK &&
	    lc_check_due(app, LC_ROUTINE_CHECK,
	    app->cfg->check_interval_s, true, "background-check",
	    &counts) == DB_OK && counts.checked > 0)
		log_info("checked", "%d checked: %d connected, %d degraded, "
		    "%d invalid", counts.checked, counts.connected,
		    counts.degraded, counts.invalid);
	memset(&counts, 0, sizeof(counts));
	if (db_ensure(app->db) == DB_OK &&
	    lc_recheck_invalid(app, "background-recheck", &counts) ==
	    DB_OK && counts.checked > 0)
		log_info("rechecked", "%d invalid re-checked: %d connected "
		    "again", counts.checked, counts.connected);
	(void)db_housekeeping(app->db, app->cfg->audit_retention_days);
}

/* true when a SIGTERM or SIGINT waits, blocked while the checker works. */
static bool
term_pending(void)
{
	sigset_t	 pending;

	return sigpending(&pending) == 0 && (sigismember(&pending, SIGTERM) == 1 ||
	    sigismember(&pending, SIGINT) == 1);
}

/*
 * Works on the running check jobs (docs/API.md, "Check jobs") while one
 * has rows to claim here. true while a job runs (its last rows may be
 * held by another process): the checker then looks again soon.
 */
static bool
work_jobs(struct app *app)
{
	bool	 finished = false;
	int	 batches, rc;

	do {
		if (db_ensure(app->db) != DB_OK)
			return false;
		rc = lc_job_work(app, 0, NULL, NULL, &batches, &finished);
	} while (rc == DB_OK && (batches > 0 || finished) && !stop_requested &&
	    !term_pending());
	return rc == DB_OK;
}

/*
 * The background checker: refreshes every connected org at least once per
 * check_interval_s, and retries degraded ones when their backoff is over.
 * SIGTERM stays blocked while it works and is seen between two batches,
 * so a rotated refresh token in flight is always written.
 */
static int
checker_main(struct app *app)
{
	sigset_t		 term, none;
	unsigned		 tick = checker_tick(app->cfg);
	time_t			 next_routine = 0;
	bool			 busy;

	set_handler(SIGTERM, on_stop);
	set_handler(SIGINT, on_stop);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigprocmask(SIG_SETMASK, &term, NULL);
	/* Two connections: a batch is written while the next refreshes. */
	if ((app->db = db_new(app->cfg->database_url)) == NULL ||
	    (app->db_pipe = db_new(app->cfg->database_url)) == NULL ||
	    (app->sf = sf_new(app->cfg, app->client_secret)) == NULL)
		return 1;
	log_info("checker_started", "background check every %lds",
	    app->cfg->check_interval_s);
	while (!stop_requested) {
		if (time(NULL) >= next_routine) {
			routine_checks(app);
			next_routine = time(NULL) + (time_t)tick;
		}
		busy = work_jobs(app);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (!stop_requested) {
			if (busy)
				usleep(JOB_POLL_MS * 1000);	/* a SIGTERM cuts it short */
			else
				sleep(1);
		}
		sigprocmask(SIG_SETMASK, &term, NULL);
	}
	sf_free(app->sf);
	db_close(app->db_pipe);
	db_close(app->db);
	return 0;
}

/* How long the deliverer may sleep: until the next retry is due, at most WEBHOOK_POLL_MS. */
static int
webhooks_wait_ms(struct app *app)
{
	double	 in_s;

	if (db_outbox_next_due(app->db, &in_s) != DB_OK || in_s * 1000 >= WEBHOOK_POLL_MS)
		return WEBHOOK_POLL_MS;
	return in_s * 1000 < WEBHOOK_MIN_WAIT_MS ? WEBHOOK_MIN_WAIT_MS :
	    (int)(in_s * 1000);
}

/*
 * The webhook deliverer: sends the outbox's due events, woken by the
 * NOTIFY of each new one and at least every WEBHOOK_POLL_MS for retries.
 * Requests never wait for it: they only write the outbox. A SIGTERM ends
 * it between two deliveries (an attempt cut short is retried: at least once).
 */
static int
webhooks_main(struct app *app)
{
	struct webhook	*wh;
	sigset_t	 none;
	bool		 listening = false;

	set_handler(SIGTERM, on_stop);
	set_handler(SIGINT, on_stop);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);	/* a SIGTERM cuts a wait short */
	if ((app->db = db_new(app->cfg->database_url)) == NULL ||
	    (wh = webhook_new(app->cfg)) == NULL)
		return 1;
	log_info("webhooks_started", "delivering webhook events");
	while (!stop_requested) {
		if (db_ensure(app->db) != DB_OK ||
		    (!listening && db_listen_webhooks(app->db) != DB_OK)) {
			sleep(1);
			continue;
		}
		listening = true;
		if (events_deliver_due(app, wh, &stop_requested) != DB_OK) {
			sleep(1);
			continue;
		}
		if (!stop_requested)
			(void)db_wait_notify(app->db, webhooks_wait_ms(app));
	}
	webhook_free(wh);
	db_close(app->db);
	return 0;
}

/*
 * Forks a worker (listen_fd >= 0), the checker (CHILD_CHECKER) or the
 * webhook deliverer (CHILD_WEBHOOKS). A child
 * is told to stop (SIGTERM, so a request in flight finishes) when the
 * supervisor dies, even by SIGKILL: no orphan keeps serving or checking
 * beside a new sfconnectd.
 */
static pid_t
spawn_worker(int listen_fd, struct app *app)
{
	pid_t	 supervisor = getpid(), pid = fork();

	if (pid == 0) {
		int rc;

		if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1 ||
		    getppid() != supervisor)
			_exit(1);	/* already orphaned */
		rc = listen_fd >= 0 ? worker_main(listen_fd, app) :
		    listen_fd == CHILD_CHECKER ? checker_main(app) :
		    webhooks_main(app);

		free_secrets(app);
		child_leak_check();
		_exit(rc);
	}
	if (pid == -1)
		log_error("fork", "%s", strerror(errno));
	return pid;
}

static int
count_alive(const pid_t *pids, int n)
{
	int	 alive = 0;

	for (int i = 0; i < n; i++)
		alive += pids[i] > 0;
	return alive;
}

/* Reaps exited children; clears their slots (a restart is logged for slots below nlog). */
static void
reap(pid_t *pids, int n, int nlog)
{
	pid_t	 pid;
	int	 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (int i = 0; i < n; i++)
			if (pids[i] == pid) {
				pids[i] = 0;
				if (!stop_requested && i < nlog) {
					metrics_worker_restart();
					log_warn("worker_exited", "worker %ld "
					    "exited (status %d); restarting",
					    (long)pid, status);
				}
			}
}

static void
signal_all(const pid_t *pids, int n, int sig)
{
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], sig);
}

/*
 * How long a stopping child may take: the longest request is a lock wait,
 * a refresh grant retried once (refresh_timeout_ms each), the OrgID check
 * (http_timeout_ms), and the save of a rotated token whose first write
 * failed (LC_SAVE_BUDGET_MS of looks, the last one a lock wait): a refresh
 * in flight must be written, a rotated token lost is a grant lost.
 */
static time_t
stop_grace_s(const struct cfg *cfg)
{
	time_t	 s = (time_t)((2 * cfg->refresh_timeout_ms +
		    cfg->http_timeout_ms + 2 * cfg->refresh_lock_timeout_ms +
		    LC_SAVE_BUDGET_MS) / 1000) + 10;

	return s > STOP_GRACE_MIN_S ? s : STOP_GRACE_MIN_S;
}

/* Stops the children: SIGTERM (repeated), then SIGKILL after the grace. */
static void
stop_workers(pid_t *pids, int n, const struct cfg *cfg)
{
	time_t	 deadline = time(NULL) + stop_grace_s(cfg);

	log_info("stopping", "stopping %d workers", count_alive(pids, n));
	while (count_alive(pids, n) > 0 && time(NULL) < deadline) {
		signal_all(pids, n, SIGTERM);
		usleep(100 * 1000);
		reap(pids, n, 0);
	}
	if (count_alive(pids, n) > 0) {
		log_warn("stopping", "killing workers still busy");
		signal_all(pids, n, SIGKILL);
		while (count_alive(pids, n) > 0 && waitpid(-1, NULL, 0) > 0)
			reap(pids, n, 0);
	}
}

/* Children of one generation: the workers, the checker, the deliverer. */
#define GEN_SLOTS	(MAX_WORKERS + 2)
/* Slots for generations still finishing their requests after a reload. */
#define OLD_SLOTS	(3 * GEN_SLOTS)

/* The current generation's size for cfg: workers, checker, deliverer. */
static int
generation_size(const struct cfg *cfg)
{
	return (int)cfg->workers + 1 + (cfg->webhook_url[0] != '\0');
}

/*
 * Moves the current generation's children to free old slots and tells
 * them to stop (a request in flight finishes). -1 when the old slots are
 * full (too many reloads while old children still finish).
 */
static int
retire_generation(pid_t *pids, int n)
{
	int	 free_slots = 0, j = GEN_SLOTS;

	for (int i = GEN_SLOTS; i < GEN_SLOTS + OLD_SLOTS; i++)
		free_slots += pids[i] == 0;
	if (free_slots < count_alive(pids, n))
		return -1;
	for (int i = 0; i < n; i++) {
		if (pids[i] <= 0)
			continue;
		while (pids[j] != 0)
			j++;
		pids[j] = pids[i];
		pids[i] = 0;
		kill(pids[j], SIGTERM);
	}
	return 0;
}

/*
 * SIGHUP: re-reads config_path and the secret files it names. When all is
 * valid the current children are replaced by new ones (the old ones finish
 * what they are doing); otherwise the running configuration stays and the
 * reason is logged. The listening socket is kept: a change of listen
 * needs a restart.
 */
static void
reload(pid_t *pids, int *n, struct app *app, struct cfg *cfg)
{
	struct cfg	 next;
	struct app	 loaded;
	char		 err[512];
	enum log_level	 level;

	service_notify("RELOADING=1");
	memset(&loaded, 0, sizeof(loaded));
	if (cfg_load(&next, config_path, err, sizeof(err)) == -1)
		goto invalid;
	if (log_parse_level(next.log_level, &level) == -1) {
		snprintf(err, sizeof(err), "%s", LOG_LEVEL_USAGE);
		goto invalid;
	}
	if (load_secrets_err(&loaded, &next, err, sizeof(err)) == -1)
		goto invalid;
	if (strcmp(next.listen, cfg->listen) != 0) {
		log_warn("reload", "listen: a change needs a restart; still "
		    "listening on %s", cfg->listen);
		free(next.listen);
		if ((next.listen = strdup(cfg->listen)) == NULL) {
			log_error("reload", "out of memory");
			goto fail;
		}
	}
	if (retire_generation(pids, *n) == -1) {
		log_error("reload", "older workers are still finishing; try "
		    "again later");
		goto fail;
	}
	free_secrets(app);
	cfg_free(cfg);
	*cfg = next;
	loaded.cfg = cfg;
	*app = loaded;
	*n = generation_size(cfg);
	log_set_level(level);
	status_set_banner_href(cfg->banner_action_url);
	status_set_alert_after(cfg->degraded_alert_after_s);
	log_info("reloaded", "configuration reloaded: %ld workers",
	    cfg->workers);
	service_notify("READY=1");
	return;
invalid:
	log_error("reload", "%s; keeping the running configuration", err);
fail:
	free_secrets(&loaded);
	cfg_free(&next);
	service_notify("READY=1");
}

/* Runs with SIGCHLD, SIGTERM, SIGINT and SIGHUP blocked but inside sigsuspend(). */
static int
supervise(int listen_fd, struct app *app, struct cfg *cfg)
{
	pid_t		 pids[GEN_SLOTS + OLD_SLOTS] = { 0 };
	/* After the workers: the checker, then the deliverer when configured. */
	int		 n = generation_size(cfg);
	time_t		 last_spawn_burst = 0;
	sigset_t	 none;
	bool		 ready = false;

	sigemptyset(&none);
	if (metrics_init() == -1)
		log_warn("metrics", "no shared memory for the counters: /metrics "
		    "shows the database gauges only");
	if (cache_ring_init() == -1)
		log_warn("cache_ring", "no shared memory for the workers' "
		    "announcements: a write is seen by the other workers when "
		    "its NOTIFY reaches them");
	while (!stop_requested) {
		int workers = (int)cfg->workers;

		for (int i = 0; i < n && !stop_requested; i++) {
			if (pids[i] > 0)
				continue;
			/* A worker crashing at once must not spin the CPU. */
			if (time(NULL) == last_spawn_burst)
				usleep(200 * 1000);
			last_spawn_burst = time(NULL);
			pids[i] = spawn_worker(i < workers ? listen_fd :
			    i == workers ? CHILD_CHECKER : CHILD_WEBHOOKS, app);
		}
		if (!ready) {
			service_notify("READY=1");
			ready = true;
		}
		if (!child_exited && !stop_requested && !reload_requested)
			sigsuspend(&none);
		child_exited = 0;
		reap(pids, GEN_SLOTS + OLD_SLOTS, n);
		if (reload_requested && !stop_requested) {
			reload_requested = 0;
			reload(pids, &n, app, cfg);
		}
	}
	service_notify("STOPPING=1");
	stop_workers(pids, GEN_SLOTS + OLD_SLOTS, cfg);
	log_info("stopped", "sfconnectd stopped");
	return 0;
}

/* Refuses to start on a database whose schema is not this binary's. */
static int
check_schema(const struct cfg *cfg)
{
	char		 err[512];
	struct db	*db = db_open(cfg->database_url, err, sizeof(err));
	int		 rc;

	if (db == NULL) {
		log_warn("schema", "%s (starting anyway; requests get 503 until "
		    "it is reachable)", err);
		return 0;
	}
	rc = db_schema_check(db, err, sizeof(err));
	db_close(db);
	if (rc == DB_ERROR) {
		log_error("schema", "%s", err);
		return -1;
	}
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: sfconnectd [--check-config [--check-database]] "
	    "-c FILE\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	struct cfg	 cfg;
	struct app	 app;
	char		 err[512];
	const char	*path = NULL;
	enum log_level	 level;
	sigset_t	 handled;
	int		 opt, fd = -1, rc = 1;
	bool		 check = false, check_db = false;
	static const struct option longopts[] = {
		{ "check-config", no_argument, NULL, 't' },
		{ "check-database", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 }
	};

	while ((opt = getopt_long(argc, argv, "c:tD", longopts, NULL)) != -1) {
		if (opt == 'c')
			path = optarg;
		else if (opt == 't')
			check = true;
		else if (opt == 'D')
			check = check_db = true;
		else
			usage();
	}
	if (path == NULL || optind != argc)
		usage();
	if (check)
		return conf_check(path, check_db);
	config_path = path;
	memset(&app, 0, sizeof(app));
	if (cfg_load(&cfg, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "sfconnectd: %s\n", err);
		cfg_free(&cfg);
		return 1;
	}
	if (log_parse_level(cfg.log_level, &level) == -1) {
		fprintf(stderr, "sfconnectd: %s\n", LOG_LEVEL_USAGE);
		goto out;
	}
	log_set_level(level);
	app.cfg = &cfg;
	status_set_banner_href(cfg.banner_action_url);
	status_set_alert_after(cfg.degraded_alert_after_s);
	if (load_secrets(&app, &cfg) == -1 || check_schema(&cfg) == -1)
		goto out;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		goto out;
	if ((fd = service_listen(&cfg)) == -1 || service_check_peers(fd, &cfg) == -1)
		goto out;
	sigemptyset(&handled);
	sigaddset(&handled, SIGCHLD);
	sigaddset(&handled, SIGTERM);
	sigaddset(&handled, SIGINT);
	sigaddset(&handled, SIGHUP);
	sigprocmask(SIG_BLOCK, &handled, NULL);
	set_handler(SIGTERM, on_stop);
	set_handler(SIGINT, on_stop);
	set_handler(SIGCHLD, on_child);
	set_handler(SIGHUP, on_reload);
	signal(SIGPIPE, SIG_IGN);
	log_info("started", "sfconnectd listening on %s with %ld workers",
	    cfg.listen, cfg.workers);
	rc = supervise(fd, &app, &cfg);
	curl_global_cleanup();
out:
	if (fd > 2)
		close(fd);
	if (fd != -1 && strncmp(cfg.listen, "unix:", 5) == 0 &&
	    getenv("LISTEN_FDS") == NULL)
		unlink(cfg.listen + 5);
	free_secrets(&app);
	cfg_free(&cfg);
	return rc;
}

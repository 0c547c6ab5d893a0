/*
 * sfconnectd: the supervisor binds the FastCGI socket, preforks the workers,
 * restarts any that die, and on SIGTERM lets in-flight requests finish.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "app.h"
#include "cfg.h"
#include "db.h"
#include "events.h"
#include "fcgi.h"
#include "fcgi_guard.h"
#include "keyring.h"
#include "lifecycle.h"
#include "log.h"
#include "secret.h"
#include "sf.h"
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
#define WEBHOOK_MIN_WAIT_MS 20	/* due but claimed elsewhere: no busy loop */

static volatile sig_atomic_t	 stop_requested;
static volatile sig_atomic_t	 child_exited;

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
set_handler(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);	/* no SA_RESTART: accept() must see EINTR */
}

static int
bind_unix(const char *path)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("listen", "%s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(path, 0660) == -1 || listen(fd, 128) == -1) {
		log_error("listen", "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int
bind_tcp(const char *spec)
{
	struct addrinfo	 hints, *ai = NULL;
	char		 host[256];
	const char	*colon = strrchr(spec, ':');
	int		 fd = -1, one = 1;

	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
		log_error("listen", "cannot resolve %s", spec);
		return -1;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen(fd, 128) == -1) {
		log_error("listen", "%s: %s", spec, strerror(errno));
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* The listening socket: systemd's (LISTEN_FDS) or bound from cfg->listen. */
static int
open_listener(const struct cfg *cfg)
{
	const char	*fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");

	if (fds != NULL && pid != NULL && atol(pid) == (long)getpid() &&
	    atoi(fds) >= 1)
		return 3;
	if (strncmp(cfg->listen, "unix:", 5) == 0)
		return bind_unix(cfg->listen + 5);
	return bind_tcp(cfg->listen);
}

/*
 * Checks fastcgi_allowed_peers, and refuses a TCP listener on an address
 * other than loopback unless the list is set explicitly: whoever reaches
 * the port speaks FastCGI, forged parameters included. -1 after logging.
 */
static int
check_peers(int fd, const struct cfg *cfg)
{
	struct fcgi_peers	 peers;
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	const char		*list = cfg->fastcgi_allowed_peers;
	char			 err[256];

	if (fcgi_peers_parse(&peers, list[0] != '\0' ? list :
	    FCGI_PEERS_DEFAULT, err, sizeof(err)) == -1) {
		log_error("config", "%s", err);
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		log_error("listen", "getsockname: %s", strerror(errno));
		return -1;
	}
	if ((ss.ss_family == AF_INET || ss.ss_family == AF_INET6) &&
	    list[0] == '\0' &&
	    !fcgi_addr_is_loopback((struct sockaddr *)&ss, len)) {
		log_error("config", "listen: %s is not a loopback address; set "
		    "fastcgi_allowed_peers to the addresses of the front ends",
		    cfg->listen);
		return -1;
	}
	return 0;
}

/* Loads the secrets a worker needs into app; -1 after logging why. */
static int
load_secrets(struct app *app, const struct cfg *cfg)
{
	char	 err[512];

	if (keyring_load(&app->keyring, cfg->token_key_file,
	    cfg->token_previous_key_files, err, sizeof(err)) == -1 ||
	    (app->client_secret = secret_read_file(
	    cfg->salesforce_client_secret_file, err, sizeof(err))) == NULL) {
		log_error("config", "%s", err);
		return -1;
	}
	if (cfg->webhook_url[0] != '\0' && (!webhook_url_ok(cfg->webhook_url) ||
	    cfg->webhook_secret_file[0] == '\0')) {
		log_error("config", "webhook_url: must be an https:// URL (or "
		    "http:// on loopback), with webhook_secret_file set");
		return -1;
	}
	if (cfg->webhook_secret_file[0] != '\0' &&
	    (app->webhook_secret = secret_read_file(
	    cfg->webhook_secret_file, err, sizeof(err))) == NULL) {
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

/*
 * The background checker: refreshes every connected org at least once per
 * check_interval_s, and retries degraded ones when their backoff is over.
 * SIGTERM stays blocked while it works and is seen between two batches,
 * so a rotated refresh token in flight is always written.
 */
static int
checker_main(struct app *app)
{
	struct lc_counts	 counts;
	sigset_t		 term, none;
	unsigned		 tick = checker_tick(app->cfg);

	set_handler(SIGTERM, on_stop);
	set_handler(SIGINT, on_stop);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigprocmask(SIG_SETMASK, &term, NULL);
	if ((app->db = db_new(app->cfg->database_url)) == NULL ||
	    (app->sf = sf_new(app->cfg, app->client_secret)) == NULL)
		return 1;
	log_info("checker_started", "background check every %lds",
	    app->cfg->check_interval_s);
	while (!stop_requested) {
		memset(&counts, 0, sizeof(counts));
		if (db_ensure(app->db) == DB_OK &&
		    lc_check_due(app, LC_ROUTINE_CHECK,
		    app->cfg->check_interval_s, true, "background-check",
		    &counts) == DB_OK && counts.checked > 0)
			log_info("checked", "%d checked: %d connected, %d degraded, "
			    "%d invalid", counts.checked, counts.connected,
			    counts.degraded, counts.invalid);
		(void)db_housekeeping(app->db, app->cfg->audit_retention_days);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (!stop_requested)
			sleep(tick);	/* a SIGTERM cuts it short */
		sigprocmask(SIG_SETMASK, &term, NULL);
	}
	sf_free(app->sf);
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

/* Reaps exited children; clears their slots. */
static void
reap(pid_t *pids, int n)
{
	pid_t	 pid;
	int	 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (int i = 0; i < n; i++)
			if (pids[i] == pid) {
				pids[i] = 0;
				if (!stop_requested)
					log_warn("worker_exited", "worker %ld "
					    "exited (status %d); restarting",
					    (long)pid, status);
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
 * a refresh retried once, and the save of a rotated token whose first
 * write failed (a lock wait and LC_SAVE_BUDGET_MS of looks): a refresh in
 * flight must be written, a rotated token lost is a grant lost.
 */
static time_t
stop_grace_s(const struct cfg *cfg)
{
	time_t	 s = (time_t)((2 * cfg->http_timeout_ms +
		    2 * cfg->refresh_lock_timeout_ms + LC_SAVE_BUDGET_MS) /
		    1000) + 10;

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
		reap(pids, n);
	}
	if (count_alive(pids, n) > 0) {
		log_warn("stopping", "killing workers still busy");
		signal_all(pids, n, SIGKILL);
		while (count_alive(pids, n) > 0 && waitpid(-1, NULL, 0) > 0)
			reap(pids, n);
	}
}

/* Runs with SIGCHLD, SIGTERM and SIGINT blocked but inside sigsuspend(). */
static int
supervise(int listen_fd, struct app *app)
{
	pid_t		 pids[MAX_WORKERS + 2] = { 0 };
	int		 workers = (int)app->cfg->workers;
	/* After the workers: the checker, then the deliverer when configured. */
	int		 n = workers + 1 + (app->cfg->webhook_url[0] != '\0');
	time_t		 last_spawn_burst = 0;
	sigset_t	 none;

	sigemptyset(&none);
	while (!stop_requested) {
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
		if (!child_exited && !stop_requested)
			sigsuspend(&none);
		child_exited = 0;
		reap(pids, n);
	}
	stop_workers(pids, n, app->cfg);
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
	fprintf(stderr, "usage: sfconnectd -c FILE\n");
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

	while ((opt = getopt(argc, argv, "c:")) != -1) {
		if (opt != 'c')
			usage();
		path = optarg;
	}
	if (path == NULL || optind != argc)
		usage();
	memset(&app, 0, sizeof(app));
	if (cfg_load(&cfg, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "sfconnectd: %s\n", err);
		cfg_free(&cfg);
		return 1;
	}
	if (log_parse_level(cfg.log_level, &level) == -1) {
		fprintf(stderr, "sfconnectd: config: log_level: must be debug, "
		    "info, warn or error\n");
		goto out;
	}
	log_set_level(level);
	app.cfg = &cfg;
	if (load_secrets(&app, &cfg) == -1 || check_schema(&cfg) == -1)
		goto out;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		goto out;
	if ((fd = open_listener(&cfg)) == -1 || check_peers(fd, &cfg) == -1)
		goto out;
	sigemptyset(&handled);
	sigaddset(&handled, SIGCHLD);
	sigaddset(&handled, SIGTERM);
	sigaddset(&handled, SIGINT);
	sigprocmask(SIG_BLOCK, &handled, NULL);
	set_handler(SIGTERM, on_stop);
	set_handler(SIGINT, on_stop);
	set_handler(SIGCHLD, on_child);
	signal(SIGPIPE, SIG_IGN);
	log_info("started", "sfconnectd listening on %s with %ld workers",
	    cfg.listen, cfg.workers);
	rc = supervise(fd, &app);
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

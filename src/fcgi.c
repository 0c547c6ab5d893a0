#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <openssl/crypto.h>

#include "api.h"
#include "app.h"
#include "cfg.h"
#include "fcgi.h"
#include "fcgi_guard.h"
#include "http_parse.h"
#include "log.h"

/* How long a new connection may take to send its parameters. */
#define HEAD_TIMEOUT_MS	10000
/* How often a connection whose parameters are incomplete is looked at again. */
#define HEAD_POLL_MS	10
/*
 * The input buffer of libfcgi 2.4.2's FCGX_Accept_r: its first read takes
 * everything that had come, up to this much.
 */
#define LIBFCGI_IN_BUF	8192

/*
 * What the accept loop waits on: an epoll instance holding the listen
 * socket with EPOLLEXCLUSIVE, so that a connection wakes one waiting
 * worker rather than all of them (which then but one find nothing to
 * accept), and the database socket while api_idle_fd names one. A socket
 * closed and another opened under the same number (a reconnect) silently
 * leaves epoll: the database socket's entry is re-armed (EPOLL_CTL_MOD, or
 * ADD when it is gone) once after each request. Without epoll (a kernel
 * before 4.5), ppoll.
 */
struct waiter {
	int	 epfd;		/* -1: ppoll */
	int	 dbfd;		/* the database socket in epfd, or -1 */
	bool	 stale;		/* dbfd may have been replaced since */
};

/* The room of libfcgi's output buffer, where every response byte goes. */
struct out_room {
	unsigned char	*start;
	unsigned char	*stop;
	size_t		 used;	/* bytes put there (more: it was refilled) */
};

/* http_param_fn over the request's FastCGI environment. */
static const char *
fcgi_param(const char *name, void *arg)
{
	FCGX_Request	*r = arg;

	return FCGX_GetParam(name, r->envp);
}

/* http_read_fn over the request's FastCGI input stream. */
static long
fcgi_read(char *dst, size_t n, void *arg)
{
	FCGX_Request	*r = arg;

	return FCGX_GetStr(dst, n > INT_MAX ? INT_MAX : (int)n, r->in);
}

/* Puts n bytes of s on out, counting them in *used. */
static void
put(FCGX_Stream *out, const char *s, size_t n, size_t *used)
{
	if (n > 0)
		FCGX_PutStr(s, n > INT_MAX ? INT_MAX : (int)n, out);
	*used += n;
}

static void
put_str(FCGX_Stream *out, const char *s, size_t *used)
{
	put(out, s, strlen(s), used);
}

/*
 * Writes the response and ends the request's streams: closing the error
 * stream (never written) first leaves the output stream the last writer,
 * so the response, its end and FCGI_END_REQUEST go out in one write.
 * room->used: the response's bytes. -1 when the connection failed.
 */
static int
write_response(FCGX_Request *r, const struct http_response *res,
    struct out_room *room)
{
	char	 num[24];
	int	 rc;

	room->used = 0;
	snprintf(num, sizeof(num), "%d", res->status);
	put_str(r->out, "Status: ", &room->used);
	put_str(r->out, num, &room->used);
	put_str(r->out, " ", &room->used);
	put_str(r->out, http_status_text(res->status), &room->used);
	put_str(r->out, "\r\n", &room->used);
	if (res->status != 204 && res->status != 303) {
		put_str(r->out, "Content-Type: ", &room->used);
		put_str(r->out, res->content_type, &room->used);
		put_str(r->out, "\r\n", &room->used);
	}
	snprintf(num, sizeof(num), "%lu", (unsigned long)res->body.len);
	put_str(r->out, "Content-Length: ", &room->used);
	put_str(r->out, num, &room->used);
	put_str(r->out, "\r\n", &room->used);
	put(r->out, res->headers.data, res->headers.len, &room->used);
	put_str(r->out, "\r\n", &room->used);
	put(r->out, res->body.data, res->body.len, &room->used);
	rc = FCGX_FClose(r->err);
	rc |= FCGX_FClose(r->out);
	return rc == 0 ? 0 : -1;
}

/*
 * Overwrites what libfcgi kept of the request and the response: the
 * parameters (the Authorization header's API key) and the output buffer
 * (a token or a new API key). Every byte written goes through that buffer
 * (FCGX_PutStr copies into it), whose room was noted when the request
 * was accepted; libfcgi frees it in FCGX_Finish_r. A response that fitted
 * in the room left nothing past its length.
 */
static void
wipe_request(FCGX_Request *r, const struct out_room *room)
{
	size_t	 size;

	if (room->start != NULL && room->stop > room->start) {
		size = (size_t)(room->stop - room->start);
		OPENSSL_cleanse(room->start,
		    room->used < size ? room->used : size);
	}
	for (char **e = r->envp; e != NULL && *e != NULL; e++)
		OPENSSL_cleanse(*e, strlen(*e));
}

static long
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits until the connection fd has sent the whole head of its request
 * (fcgi_head_check), looking at it with MSG_PEEK so that libfcgi reads it
 * all afterwards; what has come is looked at before polling, as it has
 * mostly come with the connection. buf has FCGI_HEAD_MAX bytes; it is
 * wiped before return. *seen: how many bytes had come (0: closed or
 * silent, e.g. a probe); *whole: the request had come to its end in
 * those bytes (fcgi_request_end).
 */
static enum fcgi_head
head_wait(int fd, unsigned char *buf, size_t *seen, bool *whole)
{
	enum fcgi_head	 v = FCGI_HEAD_BAD;
	long		 deadline = now_ms() + HEAD_TIMEOUT_MS, left;
	ssize_t		 n = 0, got;
	short		 revents = 0;

	*whole = false;
	for (;;) {
		struct pollfd	 pfd = { fd, POLLRDHUP, 0 };

		got = recv(fd, buf, FCGI_HEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
		if (got == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR))
			;
		else if (got <= 0)
			break;
		else if (got == n) {
			if (revents & (POLLRDHUP | POLLHUP | POLLERR))
				break;
		} else {
			n = got;
			if ((v = fcgi_head_check(buf, (size_t)n)) !=
			    FCGI_HEAD_MORE)
				break;
			if (n == FCGI_HEAD_MAX) {
				v = FCGI_HEAD_BAD;
				break;
			}
		}
		if ((left = deadline - now_ms()) <= 0)
			break;
		/* Once something has come, POLLIN stays set: poll the timeout. */
		if (n == 0)
			pfd.events |= POLLIN;
		if (poll(&pfd, 1, n == 0 ? (int)left : left < HEAD_POLL_MS ?
		    (int)left : HEAD_POLL_MS) == -1 && errno != EINTR)
			break;
		revents = pfd.revents;
	}
	if (v == FCGI_HEAD_MORE)
		v = FCGI_HEAD_BAD;
	if (v == FCGI_HEAD_OK)
		*whole = fcgi_request_end(buf, (size_t)n) > 0;
	OPENSSL_cleanse(buf, (size_t)n);
	*seen = (size_t)n;
	return v;
}

/* The peer of a refused connection, for the log line. */
static void
peer_text(const struct sockaddr_storage *ss, char *dst, size_t dstlen)
{
	const void	*a = ss->ss_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	if (inet_ntop(ss->ss_family, a, dst, (socklen_t)dstlen) == NULL)
		snprintf(dst, dstlen, "?");
}

/* w->epfd with listen_fd in it, or -1 (then ppoll is used). */
static void
waiter_init(struct waiter *w, int listen_fd)
{
	struct epoll_event	 ev = { EPOLLIN | EPOLLEXCLUSIVE, { 0 } };

	w->dbfd = -1;
	w->stale = false;
	if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return;
	ev.data.fd = listen_fd;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, listen_fd, &ev) == -1) {
		close(w->epfd);
		w->epfd = -1;
	}
}

/* Makes the database socket in w->epfd dbfd (-1: none). */
static void
waiter_watch_db(struct waiter *w, int dbfd)
{
	struct epoll_event	 ev = { EPOLLIN, { 0 } };

	if (w->dbfd != -1 && w->dbfd != dbfd)
		(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->dbfd, NULL);
	w->dbfd = -1;
	if (dbfd < 0)
		return;
	ev.data.fd = dbfd;
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, dbfd, &ev) == 0 ||
	    (errno == ENOENT &&
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, dbfd, &ev) == 0))
		w->dbfd = dbfd;
}

/*
 * Waits, with waitmask, until listen_fd or the database socket
 * (api_idle_fd) is readable: *conn, *db. 0, or -1 with errno.
 */
static int
waiter_wait(struct waiter *w, int listen_fd, struct app *app,
    const sigset_t *waitmask, bool *conn, bool *db)
{
	struct epoll_event	 ev[2];
	int			 dbfd = api_idle_fd(app), n;

	*conn = *db = false;
	if (w->epfd == -1) {
		struct pollfd	 pfd[2] = { { listen_fd, POLLIN, 0 },
				    { dbfd, POLLIN, 0 } };

		if (ppoll(pfd, dbfd >= 0 ? 2 : 1, NULL, waitmask) == -1)
			return -1;
		*conn = pfd[0].revents != 0;
		*db = dbfd >= 0 && pfd[1].revents != 0;
		return 0;
	}
	if (dbfd != w->dbfd || (w->stale && dbfd >= 0))
		waiter_watch_db(w, dbfd);
	w->stale = false;
	if ((n = epoll_pwait(w->epfd, ev, 2, -1, waitmask)) == -1)
		return -1;
	for (int i = 0; i < n; i++) {
		if (ev[i].data.fd == listen_fd)
			*conn = true;
		else
			*db = true;
	}
	return 0;
}

/*
 * Waits for a connection on listen_fd (non-blocking, shared by the
 * workers) and accepts it: a peer outside peers, or a head that is not
 * well-formed FastCGI, is closed before libfcgi reads a byte. While it
 * waits, it also takes what the database sends (api_idle). SIGTERM is
 * delivered only while waiting here (waiter_wait). The connected
 * fd, or -1 when *stop was set or accepting failed for good.
 */
static int
accept_conn(int listen_fd, struct app *app, struct waiter *w,
    const struct fcgi_peers *peers, const sigset_t *waitmask,
    unsigned char *head, bool *whole, volatile sig_atomic_t *stop)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 text[INET6_ADDRSTRLEN];
	size_t			 seen;
	int			 fd;
	bool			 conn, db;

	w->stale = true;	/* a request may have reconnected */
	while (!*stop) {
		if (waiter_wait(w, listen_fd, app, waitmask, &conn, &db) == -1) {
			if (errno == EINTR)
				continue;
			log_error("accept", "poll: %s", strerror(errno));
			return -1;
		}
		if (*stop)
			break;
		if (db) {
			api_idle(app);
			w->stale = true;
		}
		if (!conn)
			continue;
		len = sizeof(ss);
		if ((fd = accept4(listen_fd, (struct sockaddr *)&ss, &len,
		    SOCK_CLOEXEC)) == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_warn("accept", "%s", strerror(errno));
				usleep(100 * 1000);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED &&
			    errno != EPROTO && errno != EPERM) {
				log_error("accept", "%s", strerror(errno));
				return -1;
			}
			continue;
		}
		if (!fcgi_peers_allow(peers, (struct sockaddr *)&ss, len)) {
			peer_text(&ss, text, sizeof(text));
			log_warn("fastcgi_peer_refused", "connection from %s "
			    "closed: not in fastcgi_allowed_peers", text);
			close(fd);
			continue;
		}
		if (head_wait(fd, head, &seen, whole) != FCGI_HEAD_OK) {
			if (seen > 0)
				log_warn("fastcgi_bad_request", "connection "
				    "closed: malformed, oversized or incomplete "
				    "FastCGI parameters (%lu bytes)",
				    (unsigned long)seen);
			close(fd);
			continue;
		}
		*whole = *whole && seen <= LIBFCGI_IN_BUF;
		return fd;
	}
	return -1;
}

/*
 * The edge accepts each connection itself (accept_conn) and hands it to
 * libfcgi as the request's ipcFd; libfcgi's own accept is never used (its
 * listen socket is -1, so a connection it drops is not followed by an
 * accept of its own). SIGTERM stays blocked from the accept to the end of
 * the response, parameters included: a request once accepted finishes.
 * A connection whose request libfcgi has read to its end is closed here;
 * any other, by libfcgi, which first reads what the peer still sends
 * (lest a reset lose the response).
 */
int
fcgi_serve(int listen_fd, struct app *app, volatile sig_atomic_t *stop)
{
	FCGX_Request		 r;
	struct http_request	 req;
	struct http_response	 res;
	struct fcgi_peers	 peers;
	sigset_t		 term, waitmask;
	const char		*list = app->cfg->fastcgi_allowed_peers;
	unsigned char		*head = NULL;
	char			 err[256];
	struct out_room		 room;
	struct waiter		 w = { -1, -1, false };
	int			 fd, flags, ret = -1;
	bool			 whole;

	if (list == NULL || list[0] == '\0')
		list = FCGI_PEERS_DEFAULT;
	if (fcgi_peers_parse(&peers, list, err, sizeof(err)) == -1) {
		log_error("config", "%s", err);
		return -1;
	}
	if ((flags = fcntl(listen_fd, F_GETFL)) == -1 ||
	    fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) == -1 ||
	    (head = malloc(FCGI_HEAD_MAX)) == NULL ||
	    FCGX_Init() != 0 || FCGX_InitRequest(&r, -1, 0) != 0)
		goto out;
	waiter_init(&w, listen_fd);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigprocmask(SIG_BLOCK, &term, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	while ((fd = accept_conn(listen_fd, app, &w, &peers, &waitmask, head,
	    &whole, stop)) != -1) {
		/* Kept by the FCGX_Finish_r that FCGX_Accept_r starts with. */
		r.ipcFd = fd;
		r.keepConnection = 1;
		if (FCGX_Accept_r(&r) != 0)
			continue;	/* libfcgi refused it and closed fd */
		room.start = r.out->wrNext;
		room.stop = r.out->stop;
		room.used = (size_t)(room.stop - room.start);	/* all, until written */
		http_request_init(&req);
		http_response_init(&res);
		/* A flag set in req is answered by api_handle (400, 413). */
		(void)http_request_parse(&req, fcgi_param, fcgi_read, &r);
		log_set_request_id(req.request_id);
		api_handle(app, &req, &res);
		if (write_response(&r, &res, &room) == -1)
			log_warn("write_failed", "client went away");
		log_set_request_id(NULL);
		http_response_free(&res);
		http_request_free(&req);
		wipe_request(&r, &room);
		r.keepConnection = 0;	/* one request per connection */
		if (whole)
			r.ipcFd = -1;
		FCGX_Finish_r(&r);
		if (whole)
			close(fd);
	}
	FCGX_Free(&r, 1);
	ret = 0;
out:
	if (w.epfd != -1)
		close(w.epfd);
	free(head);
	return ret;
}

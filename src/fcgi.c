#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#include "api.h"
#include "crypto.h"
#include "fcgi.h"
#include "log.h"

/* Copies param name into dst; sets req->too_long when it does not fit. */
static void
get_param(FCGX_Request *r, const char *name, char *dst, size_t dstlen,
    struct http_request *req)
{
	const char	*v = FCGX_GetParam(name, r->envp);

	dst[0] = '\0';
	if (v == NULL)
		return;
	if (strlen(v) >= dstlen) {
		req->too_long = true;
		return;
	}
	memcpy(dst, v, strlen(v) + 1);
}

static void
read_path(FCGX_Request *r, struct http_request *req)
{
	const char	*uri = FCGX_GetParam("REQUEST_URI", r->envp);
	size_t		 len;

	if (uri == NULL)
		uri = FCGX_GetParam("SCRIPT_NAME", r->envp);
	if (uri == NULL)
		uri = "/";
	len = strcspn(uri, "?");
	if (len >= sizeof(req->path)) {
		req->too_long = true;
		len = 0;
	}
	memcpy(req->path, uri, len);
	req->path[len] = '\0';
}

/* Reads the body, bounded by HTTP_MAX_BODY. */
static void
read_body(FCGX_Request *r, struct http_request *req)
{
	const char	*cl = FCGX_GetParam("CONTENT_LENGTH", r->envp);
	char		 chunk[8192], *end;
	unsigned long long n;
	size_t		 left;

	if (cl == NULL || *cl == '\0')
		return;
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (errno != 0 || *end != '\0' || cl[0] == '-' || cl[0] == '+') {
		req->bad_length = true;
		return;
	}
	if (n > HTTP_MAX_BODY) {
		req->body_too_large = true;
		req->content_length = HTTP_MAX_BODY + 1;
		return;
	}
	req->content_length = (size_t)n;
	for (left = (size_t)n; left > 0;) {
		int want = left < sizeof(chunk) ? (int)left : (int)sizeof(chunk);
		int got = FCGX_GetStr(chunk, want, r->in);

		if (got <= 0 || buf_append(&req->body, chunk, (size_t)got) == -1) {
			req->bad_length = true;
			return;
		}
		left -= (size_t)got;
	}
}

static void
read_request(FCGX_Request *r, struct http_request *req)
{
	const char	*given_id;

	get_param(r, "REQUEST_METHOD", req->method, sizeof(req->method), req);
	read_path(r, req);
	get_param(r, "QUERY_STRING", req->query, sizeof(req->query), req);
	get_param(r, "CONTENT_TYPE", req->content_type,
	    sizeof(req->content_type), req);
	get_param(r, "HTTP_AUTHORIZATION", req->authorization,
	    sizeof(req->authorization), req);
	get_param(r, "HTTP_ACCEPT", req->accept, sizeof(req->accept), req);
	get_param(r, "HTTP_ORIGIN", req->origin, sizeof(req->origin), req);

	/* An insane caller id is replaced, not an error. */
	given_id = FCGX_GetParam("HTTP_X_REQUEST_ID", r->envp);
	if (given_id != NULL && http_request_id_ok(given_id))
		snprintf(req->request_id, sizeof(req->request_id), "%s", given_id);
	else {
		unsigned char raw[16];

		if (crypto_random(raw, sizeof(raw)) == -1)
			memset(raw, 0, sizeof(raw));
		crypto_hex(raw, sizeof(raw), req->request_id);
	}
	read_body(r, req);
}

/* Writes the response; -1 when the connection failed. */
static int
write_response(FCGX_Request *r, const struct http_response *res)
{
	FCGX_FPrintF(r->out, "Status: %d %s\r\n", res->status,
	    http_status_text(res->status));
	if (res->status != 204 && res->status != 303)
		FCGX_FPrintF(r->out, "Content-Type: %s\r\n", res->content_type);
	FCGX_FPrintF(r->out, "Content-Length: %lu\r\n",
	    (unsigned long)res->body.len);
	if (res->headers.len > 0)
		FCGX_PutStr(res->headers.data, (int)res->headers.len, r->out);
	FCGX_PutS("\r\n", r->out);
	if (res->body.len > 0)
		FCGX_PutStr(res->body.data, (int)res->body.len, r->out);
	return FCGX_GetError(r->out) == 0 ? 0 : -1;
}

/*
 * SIGTERM is blocked except around accept(): a stop request interrupts a
 * waiting accept, and never a request in progress, which finishes first.
 */
int
fcgi_serve(int listen_fd, struct app *app, volatile sig_atomic_t *stop)
{
	FCGX_Request		 r;
	struct http_request	 req;
	struct http_response	 res;
	sigset_t		 term;
	int			 rc;

	if (FCGX_Init() != 0 ||
	    FCGX_InitRequest(&r, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0)
		return -1;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	for (;;) {
		sigprocmask(SIG_UNBLOCK, &term, NULL);
		rc = *stop ? -1 : FCGX_Accept_r(&r);
		sigprocmask(SIG_BLOCK, &term, NULL);
		if (rc != 0)
			break;
		http_request_init(&req);
		http_response_init(&res);
		read_request(&r, &req);
		log_set_request_id(req.request_id);
		api_handle(app, &req, &res);
		if (write_response(&r, &res) == -1)
			log_warn("write_failed", "client went away");
		log_set_request_id(NULL);
		http_response_free(&res);
		http_request_free(&req);
		FCGX_Finish_r(&r);
	}
	FCGX_Free(&r, 0);
	return 0;
}

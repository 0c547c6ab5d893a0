#include <limits.h>

#include <fcgiapp.h>

#include "api.h"
#include "fcgi.h"
#include "http_parse.h"
#include "log.h"

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
		/* A flag set in req is answered by api_handle (400, 413). */
		(void)http_request_parse(&req, fcgi_param, fcgi_read, &r);
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

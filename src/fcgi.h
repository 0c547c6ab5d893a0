/*
 * The FastCGI edge, the only module that knows libfcgi: it hands the
 * request's parameters and input to the edge parser (http_parse.h) and
 * writes the response back.
 */
#ifndef SFC_FCGI_H
#define SFC_FCGI_H

#include <signal.h>

struct app;

/*
 * Accepts and answers requests on listen_fd until *stop is set or accept
 * fails. Returns 0, or -1 when libfcgi cannot be set up.
 */
int	fcgi_serve(int listen_fd, struct app *app, volatile sig_atomic_t *stop);

#endif

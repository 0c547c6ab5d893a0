/*
 * One JSON line per event on stderr: time, level, pid, request id, event,
 * message. Callers never pass a token, secret or request body.
 */
#ifndef SFC_LOG_H
#define SFC_LOG_H

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

void	log_set_level(enum log_level level);
/* 0 when name is debug|info|warn|error. */
int	log_parse_level(const char *name, enum log_level *level);
#define LOG_LEVEL_USAGE	"config: log_level: must be debug, info, warn or error"
/* The request id put on every line until cleared with NULL. Copied. */
void	log_set_request_id(const char *request_id);
void	log_msg(enum log_level level, const char *event, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#define log_debug(ev, ...)	log_msg(LOGL_DEBUG, (ev), __VA_ARGS__)
#define log_info(ev, ...)	log_msg(LOGL_INFO, (ev), __VA_ARGS__)
#define log_warn(ev, ...)	log_msg(LOGL_WARN, (ev), __VA_ARGS__)
#define log_error(ev, ...)	log_msg(LOGL_ERROR, (ev), __VA_ARGS__)

#endif

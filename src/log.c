#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_level	 min_level = LOGL_INFO;
static char		 current_request_id[65];

static const char *const level_names[] = { "debug", "info", "warn", "error" };

/*
 * What every line repeats, kept: the process id (a system call each time
 * otherwise), forgotten in a child of fork, and the second of the last
 * line, formatted.
 */
static long		 line_pid;
static bool		 line_pid_forked;	/* fork handler set */
static time_t		 line_sec = -1;
static char		 line_ts[32];

static void
forget_pid(void)
{
	line_pid = 0;
}

static long
log_pid(void)
{
	if (line_pid == 0) {
		if (!line_pid_forked) {
			if (pthread_atfork(NULL, NULL, forget_pid) != 0)
				return (long)getpid();
			line_pid_forked = true;
		}
		line_pid = (long)getpid();
	}
	return line_pid;
}

/* The UTC second t as 2026-12-02T13:09:06. */
static const char *
log_second(time_t t)
{
	struct tm	 tm;

	if (t != line_sec) {
		gmtime_r(&t, &tm);
		strftime(line_ts, sizeof(line_ts), "%Y-%m-%dT%H:%M:%S", &tm);
		line_sec = t;
	}
	return line_ts;
}

void
log_set_level(enum log_level level)
{
	min_level = level;
}

int
log_parse_level(const char *name, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	return -1;
}

void
log_set_request_id(const char *request_id)
{
	if (request_id == NULL)
		current_request_id[0] = '\0';
	else
		snprintf(current_request_id, sizeof(current_request_id), "%s",
		    request_id);
}

/* Appends s as JSON string content, escaping quotes and control characters. */
static size_t
put_escaped(char *out, size_t pos, size_t cap, const char *s)
{
	for (; *s != '\0' && pos + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[pos++] = '\\';
			out[pos++] = (char)c;
		} else if (c < 0x20 || c == 0x7f)
			pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
		else
			out[pos++] = (char)c;
	}
	return pos;
}

void
log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
	char		 msg[1024], line[3072];
	struct timespec	 now;
	va_list		 ap;
	size_t		 pos;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	clock_gettime(CLOCK_REALTIME, &now);
	pos = (size_t)snprintf(line, sizeof(line),
	    "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"pid\":%ld,",
	    log_second(now.tv_sec), now.tv_nsec / 1000000, level_names[level],
	    log_pid());
	if (current_request_id[0] != '\0') {
		pos += (size_t)snprintf(line + pos, sizeof(line) - pos,
		    "\"request_id\":\"");
		pos = put_escaped(line, pos, sizeof(line), current_request_id);
		pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\",");
	}
	pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"event\":\"");
	pos = put_escaped(line, pos, sizeof(line), event);
	pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\",\"msg\":\"");
	pos = put_escaped(line, pos, sizeof(line), msg);	/* leaves >= 7 bytes */
	pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"}\n");
	(void)!write(STDERR_FILENO, line, pos);
}

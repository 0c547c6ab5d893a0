/*
 * Unit tests for src/log.c (cmocka): the JSON line, its process id after
 * a fork, its timestamp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* The line that log_warn(event, "%s", msg) writes, into out. */
static void
line_of(const char *event, const char *msg, char *out, size_t outlen)
{
	int	 fds[2], saved;
	ssize_t	 n;

	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
	log_warn(event, "%s", msg);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(fds[1]);
	n = read(fds[0], out, outlen - 1);
	assert_true(n > 0);
	out[n] = '\0';
	close(fds[0]);
}

/* "pid":N, of line. */
static long
pid_of(const char *line)
{
	const char	*p = strstr(line, "\"pid\":");

	assert_non_null(p);
	return strtol(p + 6, NULL, 10);
}

static void
test_line(void **state)
{
	char	 line[4096], want[64];
	time_t	 before, after;
	struct tm tm;
	bool	 ok = false;

	(void)state;
	log_set_level(LOGL_INFO);
	log_set_request_id("req-1");
	before = time(NULL);
	line_of("ev\"1", "a \"quoted\"\nline", line, sizeof(line));
	after = time(NULL);
	log_set_request_id(NULL);
	assert_int_equal(pid_of(line), (long)getpid());
	assert_non_null(strstr(line, ",\"level\":\"warn\",\"pid\":"));
	assert_non_null(strstr(line, ",\"request_id\":\"req-1\",\"event\":"
	    "\"ev\\\"1\",\"msg\":\"a \\\"quoted\\\"\\u000aline\"}\n"));
	for (time_t t = before; t <= after; t++) {
		gmtime_r(&t, &tm);
		strftime(want, sizeof(want), "{\"ts\":\"%Y-%m-%dT%H:%M:%S.", &tm);
		ok = ok || strncmp(line, want, strlen(want)) == 0;
	}
	if (!ok)
		fail_msg("timestamp of %s", line);
	/* the same second again, and a line under the level: none */
	line_of("ev", "second", line, sizeof(line));
	assert_int_equal(pid_of(line), (long)getpid());
	log_set_level(LOGL_ERROR);
	log_warn("ev", "dropped");
	log_set_level(LOGL_INFO);
}

/* The pid is kept between lines: a forked child must not use its parent's. */
static void
test_pid_after_fork(void **state)
{
	char	 line[4096];
	int	 fds[2], status;
	pid_t	 pid;
	long	 child_pid;

	(void)state;
	line_of("ev", "parent", line, sizeof(line));
	assert_int_equal(pid_of(line), (long)getpid());
	assert_int_equal(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		line_of("ev", "child", line, sizeof(line));
		child_pid = pid_of(line);
		_exit(write(fds[1], &child_pid, sizeof(child_pid)) ==
		    (ssize_t)sizeof(child_pid) ? 0 : 1);
	}
	assert_true(pid > 0);
	close(fds[1]);
	assert_int_equal(read(fds[0], &child_pid, sizeof(child_pid)),
	    sizeof(child_pid));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(child_pid, (long)pid);
	line_of("ev", "parent again", line, sizeof(line));
	assert_int_equal(pid_of(line), (long)getpid());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line),
		cmocka_unit_test(test_pid_after_fork),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

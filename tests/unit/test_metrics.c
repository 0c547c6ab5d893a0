/*
 * Unit tests for src/metrics.c (cmocka): nothing counted before
 * metrics_init(), label escaping, counters summed across forked children,
 * histograms cumulative with _count equal to the +Inf bucket.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "metrics.h"

static void
test_before_init(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 1 << 20);
	metrics_request(1, 200, 0.01);		/* no region yet: a no-op */
	metrics_write(&b);
	assert_non_null(strstr(b.data, "sfconnect_build_info{version=\""));
	assert_null(strstr(b.data, "sfconnect_http_requests_total{"));
	buf_free(&b);
}

static void
test_label_escaping(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(metrics_put_label(&b, "a\"b\\c\nd"), 0);
	assert_string_equal(b.data, "a\\\"b\\\\c\\nd");
	buf_free(&b);
}

#define H "sfconnect_http_request_duration_seconds"
#define HL "{method=\"GET\",route=\"/healthz\""
#define S "sfconnect_salesforce_call_duration_seconds"
#define SL "{endpoint=\"token_refresh\""

static void
test_children_add_up(void **state)
{
	static const char *const want[] = {
		"sfconnect_http_requests_total" HL ",code=\"200\"} 100\n",
		H "_bucket" HL ",le=\"0.005\"} 20\n",
		H "_bucket" HL ",le=\"0.25\"} 20\n",
		H "_bucket" HL ",le=\"0.5\"} 100\n",
		H "_count" HL "} 100\n",
		H "_sum" HL "} 24.020000\n",
		S "_bucket" SL ",le=\"10\"} 0\n",	/* above the last bound */
		S "_bucket" SL ",le=\"+Inf\"} 4\n",
		"sfconnect_salesforce_calls_total" SL ",outcome=\"transient\"} 4\n",
		"sfconnect_worker_restarts_total 1\n",
	};
	struct buf	 b;
	int		 status;

	(void)state;
	assert_int_equal(metrics_init(), 0);
	for (int i = 0; i < 4; i++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			for (int j = 0; j < 25; j++)
				metrics_request(1, 200, j < 5 ? 0.001 : 0.3);
			metrics_sf_call(METRICS_SF_TOKEN_REFRESH, SF_TRANSIENT, 20);
			_exit(0);
		}
	}
	while (wait(&status) > 0)
		assert_int_equal(status, 0);
	metrics_worker_restart();
	buf_init(&b, 1 << 20);
	metrics_write(&b);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (strstr(b.data, want[i]) == NULL)
			fail_msg("missing: %s", want[i]);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_before_init),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_children_add_up),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for src/buf.c (cmocka): bounded appends, URL encoding, and the
 * two helpers for buffers that hold secrets (buf_presize, buf_cleanse_free).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"

static void
test_append_bounded(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_puts(&b, "abcd"), 0);
	assert_int_equal(buf_printf(&b, "%d", 1234), 0);
	assert_string_equal(b.data, "abcd1234");
	assert_int_equal(buf_puts(&b, "x"), -1);
	assert_string_equal(b.data, "abcd1234");
	assert_int_equal(b.len, 8);
	buf_reset(&b);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_put_urlencoded(&b, "a b~"), 0);
	assert_string_equal(b.data, "a%20b~");
	/* All or nothing. */
	assert_int_equal(buf_put_urlencoded(&b, "&&"), -1);
	assert_string_equal(b.data, "a%20b~");
	buf_free(&b);
	assert_null(b.data);
}

static void
test_presize(void **state)
{
	struct buf	 b;
	char		*first;
	size_t		 i;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(buf_presize(&b, 1000), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	assert_int_equal(b.len, 0);
	assert_true(b.cap >= 1001);
	/* Appends within the presized room never move the data. */
	first = b.data;
	for (i = 0; i < 1000; i++)
		assert_int_equal(buf_append(&b, "s", 1), 0);
	assert_ptr_equal(b.data, first);
	assert_int_equal(b.len, 1000);
	assert_int_equal(b.data[1000], '\0');
	buf_free(&b);

	/* Exactly the maximum: allowed, and one allocation of max + 1. */
	buf_init(&b, 64);
	assert_int_equal(buf_presize(&b, 64), 0);
	assert_int_equal(b.cap, 65);
	buf_free(&b);

	/* The data is kept; len + size is bounded by the maximum. */
	buf_init(&b, 64);
	assert_int_equal(buf_puts(&b, "keep"), 0);
	assert_int_equal(buf_presize(&b, 61), -1);
	assert_int_equal(buf_presize(&b, 60), 0);
	assert_string_equal(b.data, "keep");
	buf_free(&b);

	/* Size 0 still gives a terminated, empty buffer. */
	buf_init(&b, 0);
	assert_int_equal(buf_presize(&b, 0), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_puts(&b, "x"), -1);
	buf_free(&b);
}

static void
test_cleanse_free(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 128);
	assert_int_equal(buf_puts(&b, "secret-token"), 0);
	buf_cleanse_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.max, 128);
	/* An empty buffer, and a second call: nothing to do. */
	buf_cleanse_free(&b);
	buf_init(&b, 16);
	buf_cleanse_free(&b);
	assert_null(b.data);
	/* Usable again afterwards, like after buf_free. */
	assert_int_equal(buf_puts(&b, "again"), 0);
	assert_string_equal(b.data, "again");
	buf_cleanse_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_bounded),
		cmocka_unit_test(test_presize),
		cmocka_unit_test(test_cleanse_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

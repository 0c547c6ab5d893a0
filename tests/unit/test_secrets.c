/*
 * Unit tests (cmocka): secrets are never left in freed memory by the
 * buffers that carry them: a presized buf that grows (the Salesforce
 * response sink, src/sf_xfer.c), and the JSON answer of api_json
 * (src/api.c), which must not go through cJSON's own print buffers.
 *
 * Every free() and realloc() of libsfc's objects (-Wl,--wrap) and every
 * allocation of cJSON (cJSON_InitHooks) goes through a checker that looks
 * for the token in the whole block being freed; a realloc is counted as a
 * move (the old block freed as it is), which is what it may do. The
 * "control" tests show that the checker sees the copies the old code left.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "buf.h"
#include "http.h"

#define TOKEN	"00Dx0000000BV7z!AQ4AQFakeAccessTokenForTheFreedMemoryScan0123456789"

void	*__real_realloc(void *, size_t);
void	 __real_free(void *);
void	*__wrap_realloc(void *, size_t);
void	 __wrap_free(void *);

static int	 freed_with_token;	/* blocks freed that held TOKEN */

static void
check_block(void *p)
{
	size_t	 n;

	if (p == NULL)
		return;
	n = malloc_usable_size(p);
	if (memmem(p, n, TOKEN, strlen(TOKEN)) != NULL)
		freed_with_token++;
}

void
__wrap_free(void *p)
{
	check_block(p);
	__real_free(p);
}

/* Always moves: the old block is freed as it is, as a real realloc may do. */
void *
__wrap_realloc(void *p, size_t n)
{
	void	*q;
	size_t	 old;

	if (p == NULL)
		return malloc(n);
	if ((q = malloc(n)) == NULL)
		return NULL;
	old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	__wrap_free(p);
	return q;
}

static void *
hook_malloc(size_t n)
{
	return malloc(n);
}

static int
setup(void **state)
{
	cJSON_Hooks	 hooks = { hook_malloc, __wrap_free };

	(void)state;
	cJSON_InitHooks(&hooks);
	freed_with_token = 0;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	cJSON_InitHooks(NULL);
	return 0;
}

/* Appends TOKEN then enough to grow b well past its first block. */
static void
fill(struct buf *b)
{
	assert_int_equal(buf_puts(b, "{\"access_token\":\"" TOKEN "\""), 0);
	for (int i = 0; i < 2000; i++)
		assert_int_equal(buf_puts(b, ",\"x\":1"), 0);
}

static void
test_buf_control(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 1 << 20);
	fill(&b);
	buf_cleanse_free(&b);
	assert_true(freed_with_token > 0);	/* a plain buf leaves copies */
}

static void
test_presized_buf_grows_wiped(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_presize(&b, 64), 0);
	fill(&b);
	assert_true(b.cap > 2000 * 6);
	assert_non_null(strstr(b.data, TOKEN));
	buf_free(&b);		/* even buf_free: the presized mark wipes */
	assert_int_equal(freed_with_token, 0);
}

/* A token answer like h_token's, with enough fields to outgrow 256 bytes. */
static cJSON *
token_answer(void)
{
	cJSON	*o = cJSON_CreateObject();
	char	 name[32];

	cJSON_AddItemToObject(o, "access_token",
	    cJSON_CreateStringReference(TOKEN));
	for (int i = 0; i < 400; i++) {
		snprintf(name, sizeof(name), "field_%d", i);
		cJSON_AddStringToObject(o, name, "https://acme.my.salesforce.com");
	}
	return o;
}

static void
test_cjson_print_control(void **state)
{
	cJSON	*o = token_answer();
	char	*text;

	(void)state;
	text = cJSON_PrintUnformatted(o);
	assert_non_null(text);
	memset(text, 0, strlen(text));
	cJSON_free(text);
	cJSON_Delete(o);
	assert_true(freed_with_token > 0);	/* cJSON's print buffers */
}

static void
test_api_json_leaves_no_copy(void **state)
{
	struct http_request	 req;
	struct http_response	 res;
	struct ctx		 c;

	(void)state;
	http_request_init(&req);
	http_response_init(&res);
	memset(&c, 0, sizeof(c));
	c.req = &req;
	c.res = &res;
	api_json(&c, 200, token_answer());
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(res.body.data, "\"access_token\":\"" TOKEN "\""));
	assert_non_null(strstr(res.body.data, "\"field_399\""));
	http_response_free(&res);
	http_request_free(&req);
	assert_int_equal(freed_with_token, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_buf_control, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presized_buf_grows_wiped,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cjson_print_control, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_api_json_leaves_no_copy,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* A minimal test runner: each TEST is a function, RUN lists them, and every assertion prints both values
 * on failure. */
#ifndef RA_TEST_H
#define RA_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define FAILED_AT() fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__)

#define CHECK(cond)                                                                                      \
	do {                                                                                             \
		test_checks++;                                                                           \
		if (!(cond)) {                                                                           \
			FAILED_AT();                                                                     \
			fprintf(stderr, "%s\n", #cond);                                                  \
			test_failures++;                                                                 \
		}                                                                                        \
	} while (0)

#define CHECK_INT(a, b)                                                                                  \
	do {                                                                                             \
		long long va_ = (long long)(a), vb_ = (long long)(b);                                    \
		test_checks++;                                                                           \
		if (va_ != vb_) {                                                                        \
			FAILED_AT();                                                                     \
			fprintf(stderr, "%s == %s: %lld != %lld\n", #a, #b, va_, vb_);                    \
			test_failures++;                                                                 \
		}                                                                                        \
	} while (0)

#define CHECK_STR(a, b)                                                                                  \
	do {                                                                                             \
		const char *sa_ = (a), *sb_ = (b);                                                       \
		test_checks++;                                                                           \
		if (strcmp(sa_, sb_) != 0) {                                                             \
			FAILED_AT();                                                                     \
			fprintf(stderr, "%s == %s: \"%s\" != \"%s\"\n", #a, #b, sa_, sb_);                 \
			test_failures++;                                                                 \
		}                                                                                        \
	} while (0)

#define RUN(fn)                                                                                          \
	do {                                                                                             \
		int before_ = test_failures;                                                             \
		fn();                                                                                    \
		printf("%s %s\n", test_failures == before_ ? "ok  " : "FAIL", #fn);                       \
	} while (0)

#define TEST_EXIT()                                                                                      \
	do {                                                                                             \
		printf("%d checks, %d failed\n", test_checks, test_failures);                             \
		return test_failures ? 1 : 0;                                                            \
	} while (0)

#endif

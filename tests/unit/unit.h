/*
 * unit.h - what every CUnit test program shares: a runner that registers
 * one suite and exits non-zero when any assertion failed, and a reader for
 * the fixtures under tests/data.
 */
#ifndef HEPROUTER_TEST_UNIT_H
#define HEPROUTER_TEST_UNIT_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unit_test {
    const char *name;
    void (*fn)(void);
};

/* Runs the tests as one suite; the exit status is what `make check` reads. */
static inline int unit_run(const char *suite_name, const struct unit_test *tests)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return EXIT_FAILURE;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    if (suite == NULL)
        return EXIT_FAILURE;
    for (const struct unit_test *t = tests; t->name != NULL; t++)
        if (CU_add_test(suite, t->name, t->fn) == NULL)
            return EXIT_FAILURE;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (run == 0) {
        fprintf(stderr, "%s: no test ran\n", suite_name);
        return EXIT_FAILURE;
    }
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * Reads TEST_DATA_DIR/relpath into a malloc'ed buffer.  Returns NULL (and
 * says why on stderr) when the file cannot be read; callers assert on it.
 */
static inline unsigned char *unit_read_file(const char *relpath, size_t *len)
{
    char path[4096];
    *len = 0;
    snprintf(path, sizeof path, "%s/%s", TEST_DATA_DIR, relpath);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return NULL;
    }
    unsigned char *buf = NULL;
    size_t used = 0, cap = 0;
    for (;;) {
        if (used == cap) {
            cap = cap ? cap * 2 : 4096;
            unsigned char *n = realloc(buf, cap);
            if (n == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = n;
        }
        size_t got = fread(buf + used, 1, cap - used, f);
        used += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = used;
    return buf;
}

#endif

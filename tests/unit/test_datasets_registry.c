/* Unit tests of the dataset registry (server/datasets.c) over a cache the test imports
 * (tests/unit/data_build.c): a dataset opened once and shared, its users counted, removal refused
 * while one holds it and atomic after, ids that name no path, and the folders an import left. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/dataset.h"
#include "data_build.h"
#include "datasets.h"
#include "image/codec.h"

static void test_acquire_release_remove(void **state)
{
    const struct db_class classes[] = {{"cat", 2}, {"dog", 1}};
    struct db_dataset d = db_dataset_make(classes, 2, 4, 4, 1);
    char out[1024];
    snprintf(out, sizeof out, "%s/out", d.root);
    struct eng_error err;
    struct datasets *r = datasets_open(out, &err);
    assert_non_null(r);
    assert_string_equal(datasets_dir(r), out);

    /* Two users share one open dataset. */
    struct dataset *a = datasets_acquire(r, "set", &err), *b = datasets_acquire(r, "set", &err);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_int_equal(dataset_count(a), 3);
    /* Held: not removed, and still there. */
    assert_int_equal(datasets_remove(r, "set", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_non_null(strstr(err.message, "in use by 2 requests or jobs"));
    datasets_release(r, b);
    assert_int_equal(datasets_remove(r, "set", &err), -1);
    assert_non_null(strstr(err.message, "in use by 1 request or job"));
    datasets_release(r, a);
    /* Let go: removed, folder and all, and unknown after. */
    assert_int_equal(datasets_remove(r, "set", &err), 0);
    struct stat st;
    assert_int_not_equal(stat(d.dir, &st), 0);
    assert_int_equal(db_count_entries(out), 0);
    assert_null(datasets_acquire(r, "set", &err));
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(datasets_remove(r, "set", &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    datasets_close(r);
    db_dataset_free(&d);
}

static void test_ids(void **state)
{
    const struct db_class classes[] = {{"cat", 1}};
    struct db_dataset d = db_dataset_make(classes, 1, 2, 2, 1);
    char out[1024], path[1100];
    snprintf(out, sizeof out, "%s/out", d.root);
    /* What is no dataset: an import's temporary folder, a hidden one, a name with a dot. */
    snprintf(path, sizeof path, "%s/.import-1-abc", out);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/.hidden", out);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/a.b", out);
    mkdir(path, 0755);
    struct eng_error err;
    struct datasets *r = datasets_open(out, &err);
    assert_non_null(r);
    char **ids;
    size_t count;
    assert_int_equal(datasets_list_ids(r, &ids, &count, &err), 0);
    assert_int_equal(count, 1);
    assert_string_equal(ids[0], "set");
    datasets_free_ids(ids, count);
    /* Ids that would name a path elsewhere are unknown, never opened. */
    const char *bad[] = {"..", "../out/set", "set/", "", "a.b", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_false(datasets_valid_id(bad[i]));
        assert_null(datasets_acquire(r, bad[i], &err));
        assert_int_equal(err.code, ENG_NOT_FOUND);
        if (bad[i]) {
            assert_int_equal(datasets_remove(r, bad[i], &err), -1);
            assert_int_equal(err.code, ENG_NOT_FOUND);
        }
    }
    assert_true(datasets_valid_id("set"));
    assert_true(datasets_valid_id("A-z_09"));
    datasets_close(r);
    db_dataset_free(&d);
}

static int init(void **state)
{
    struct eng_error err;
    return img_codec_init(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquire_release_remove),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests_name("datasets_registry", tests, init, NULL);
}

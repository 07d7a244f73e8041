/* Unit tests of datasets' records in the store (server/dataset_store.c) on a database in a fresh
 * temporary folder: a record's life (importing, then ready or failed, once), the list's order,
 * ids taken twice, the same content found among the ready datasets made before, and removal.
 * Each expectation is dataset_store.h's contract. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset_import.h"
#include "dataset_store.h"
#include "storage.h"
#include "store_fixture.h"

/* An importing record of this id, made at time ms (ascending: the order of creation). */
static void create(struct storage *st, const char *id, int64_t ms)
{
    const struct dataset_record r = {.id = (char *)id,
                                     .name = "pets",
                                     .state = DATASET_IMPORTING,
                                     .source = "upload",
                                     .owner = "alice",
                                     .created_ms = ms};
    struct eng_error err;
    if (dataset_store_create(st, &r, &err) != 0) fail_msg("create %s: %s", id, err.message);
}

static struct dataset_record get(struct storage *st, const char *id)
{
    struct dataset_record r;
    struct eng_error err;
    if (dataset_store_get(st, id, &r, &err) != 0) fail_msg("get %s: %s", id, err.message);
    return r;
}

static void finish(struct storage *st, const char *id, enum dataset_state state, const char *hash)
{
    struct eng_error err;
    if (dataset_store_finish(st, id, state, hash, state == DATASET_FAILED ? "broken" : NULL,
                             &err) != 0)
        fail_msg("finish %s: %s", id, err.message);
}

static void test_lifecycle(void **state)
{
    struct fixture *f = *state;
    create(f->st, "a", 1000);
    struct dataset_record r = get(f->st, "a");
    assert_string_equal(r.id, "a");
    assert_string_equal(r.name, "pets");
    assert_int_equal(r.state, DATASET_IMPORTING);
    assert_string_equal(dataset_state_name(r.state), "importing");
    assert_null(r.job);
    assert_null(r.hash);
    assert_string_equal(r.source, "upload");
    assert_string_equal(r.owner, "alice");
    assert_int_equal(r.created_ms, 1000);
    dataset_record_clear(&r);
    struct eng_error err;
    assert_int_equal(dataset_store_set_job(f->st, "a", "job-1", &err), 0);
    finish(f->st, "a", DATASET_READY, "h1");
    r = get(f->st, "a");
    assert_int_equal(r.state, DATASET_READY);
    assert_string_equal(r.job, "job-1");
    assert_string_equal(r.hash, "h1");
    assert_null(r.error);
    dataset_record_clear(&r);
    /* It ends once: a second end, either way, is a conflict and changes nothing. */
    assert_int_equal(dataset_store_finish(f->st, "a", DATASET_FAILED, NULL, "late", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    r = get(f->st, "a");
    assert_int_equal(r.state, DATASET_READY);
    dataset_record_clear(&r);
    /* A failed one keeps its reason and no hash. */
    create(f->st, "b", 2000);
    finish(f->st, "b", DATASET_FAILED, "ignored");
    r = get(f->st, "b");
    assert_int_equal(r.state, DATASET_FAILED);
    assert_string_equal(r.error, "broken");
    assert_null(r.hash);
    dataset_record_clear(&r);
    /* An import cannot end as importing. */
    create(f->st, "c", 3000);
    assert_int_equal(dataset_store_finish(f->st, "c", DATASET_IMPORTING, NULL, NULL, &err), -1);
    assert_int_equal(err.code, ENG_INTERNAL);
}

static void test_ids_and_removal(void **state)
{
    struct fixture *f = *state;
    create(f->st, "a", 1000);
    const struct dataset_record again = {
        .id = "a", .name = "x", .state = DATASET_READY, .source = "disk"};
    struct eng_error err;
    assert_int_equal(dataset_store_create(f->st, &again, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    struct dataset_record r;
    assert_int_equal(dataset_store_get(f->st, "nosuch", &r, &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(dataset_store_set_job(f->st, "nosuch", "j", &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(dataset_store_delete(f->st, "a", &err), 0);
    assert_int_equal(dataset_store_get(f->st, "a", &r, &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(dataset_store_delete(f->st, "a", &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    /* The id is free again. */
    create(f->st, "a", 2000);
}

static void test_list_in_creation_order(void **state)
{
    struct fixture *f = *state;
    const char *ids[] = {"z", "m", "a"};
    for (int i = 0; i < 3; i++)
        create(f->st, ids[i], 1000 - i); /* the order is creation's, not the ids' or times' */
    struct dataset_record *records;
    size_t count;
    struct eng_error err;
    assert_int_equal(dataset_store_list(f->st, &records, &count, &err), 0);
    assert_int_equal(count, 3);
    for (size_t i = 0; i < count; i++)
        assert_string_equal(records[i].id, ids[i]);
    dataset_records_free(records, count);
}

static void test_same_content(void **state)
{
    struct fixture *f = *state;
    char same[65];
    struct eng_error err;
    create(f->st, "first", 1);
    create(f->st, "failed", 2);
    create(f->st, "second", 3);
    create(f->st, "other", 4);
    create(f->st, "third", 5);
    finish(f->st, "failed", DATASET_FAILED, NULL);
    /* Nothing is ready yet: no dataset has the content. */
    assert_int_equal(dataset_store_same_content(f->st, "second", "h", same, sizeof same, &err), 0);
    finish(f->st, "first", DATASET_READY, "h");
    finish(f->st, "second", DATASET_READY, "h");
    finish(f->st, "other", DATASET_READY, "g");
    /* The first of a content has none made before it; later ones name the first. */
    assert_int_equal(dataset_store_same_content(f->st, "first", "h", same, sizeof same, &err), 0);
    assert_int_equal(dataset_store_same_content(f->st, "second", "h", same, sizeof same, &err), 1);
    assert_string_equal(same, "first");
    assert_int_equal(dataset_store_same_content(f->st, "other", "g", same, sizeof same, &err), 0);
    /* Still importing, the third finds the first too; once the first is gone, the second. */
    assert_int_equal(dataset_store_same_content(f->st, "third", "h", same, sizeof same, &err), 1);
    assert_string_equal(same, "first");
    assert_int_equal(dataset_store_delete(f->st, "first", &err), 0);
    assert_int_equal(dataset_store_same_content(f->st, "third", "h", same, sizeof same, &err), 1);
    assert_string_equal(same, "second");
}

/* The name an upload is kept under (dataset_import.h): a plain name, whatever the client sent. */
static void test_upload_file_names(void **state)
{
    const struct {
        const char *given, *kept;
    } cases[] = {
        {"data_batch_1.bin", "data_batch_1.bin"},
        {"C:\\Users\\me\\train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"},
        {"../../etc/passwd", "passwd"},
        {"my pets (1).tar.gz", "my_pets__1_.tar.gz"},
        {".hidden", "_hidden"},
        {"..", "_."},
        {"a/", "upload"},
        {"", "upload"},
        {"\xc3\xa9t\xc3\xa9.zip", "__t__.zip"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char kept[DATASET_FILE_NAME_MAX + 1];
        dataset_import_file_name(cases[i].given, kept);
        assert_string_equal(kept, cases[i].kept);
    }
    /* A long name keeps its end, where the format shows. */
    char longer[300], kept[DATASET_FILE_NAME_MAX + 1];
    memset(longer, 'x', sizeof longer);
    snprintf(longer + sizeof longer - 12, 12, "_batch1.bin");
    dataset_import_file_name(longer, kept);
    assert_int_equal(strlen(kept), DATASET_FILE_NAME_MAX);
    assert_string_equal(kept + DATASET_FILE_NAME_MAX - 11, "_batch1.bin");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lifecycle, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_ids_and_removal, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_list_in_creation_order, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_same_content, store_setup, store_teardown),
        cmocka_unit_test(test_upload_file_names),
    };
    return cmocka_run_group_tests_name(store_group("dataset_store"), tests, NULL, NULL);
}

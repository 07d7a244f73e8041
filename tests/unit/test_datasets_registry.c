/* Unit tests of the dataset registry (server/datasets.c) over a cache the test imports
 * (tests/unit/data_build.c): a dataset opened once and shared, its users counted, removal refused
 * while one holds it and atomic after, ids that name no path, the folders an import left, and
 * aliases: one dataset under two ids, and links that are no alias. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* The registry's folder holds one cache: set. */
static void assert_lists_set_only(struct datasets *r)
{
    char **ids;
    size_t count;
    struct eng_error err;
    assert_int_equal(datasets_list_ids(r, &ids, &count, &err), 0);
    assert_int_equal(count, 1);
    assert_string_equal(ids[0], "set");
    datasets_free_ids(ids, count);
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
    assert_lists_set_only(r);
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

/* A second full cache of d's images under id, as an import of the same content makes. */
static void import_again(const struct db_dataset *d, const char *id)
{
    char src[1024], out[1024];
    snprintf(src, sizeof src, "%s/src", d->root);
    snprintf(out, sizeof out, "%s/out", d->root);
    struct eng_error err;
    if (data_import(src, out, id, NULL, NULL, &err) != 0) fail_msg("%s", err.message);
}

/* What the link out/<id> names ("" when it is no link). */
static const char *link_target(const char *out, const char *id)
{
    static char target[256];
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", out, id);
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    return target;
}

static void test_aliases(void **state)
{
    const struct db_class classes[] = {{"train/cat", 3}, {"train/dog", 3}};
    struct db_dataset d = db_dataset_make(classes, 2, 4, 4, 1);
    char out[1024];
    snprintf(out, sizeof out, "%s/out", d.root);
    import_again(&d, "copy");
    import_again(&d, "third");
    struct eng_error err;
    struct datasets *r = datasets_open(out, &err);
    assert_non_null(r);
    char target[65];

    /* copy's cache goes, and its id becomes a link to set's folder. */
    struct dataset *held = datasets_acquire(r, "copy", &err); /* opened, then let go */
    datasets_release(r, held);
    assert_int_equal(datasets_alias(r, "copy", "set", &err), 0);
    assert_string_equal(link_target(out, "copy"), "set");
    assert_int_equal(db_count_entries(out), 3); /* set, copy (a link), third */
    assert_true(datasets_alias_of(r, "copy", target));
    assert_string_equal(target, "set");
    assert_false(datasets_alias_of(r, "set", target));
    /* An alias of the alias names the cache itself: no chain of links. */
    assert_int_equal(datasets_alias(r, "third", "copy", &err), 0);
    assert_string_equal(link_target(out, "third"), "set");

    /* One dataset: the same pointer through every id, so a split made through one is there
     * through the others. */
    struct dataset *a = datasets_acquire(r, "set", &err);
    struct dataset *b = datasets_acquire(r, "copy", &err);
    struct dataset *c = datasets_acquire(r, "third", &err);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_ptr_equal(a, c);
    const struct data_split_spec spec = {
        .name = "half", .from = "train", .mode = DATA_SPLIT_COUNT, .count = 3, .seed = 1};
    assert_int_equal(dataset_split_derive(b, &spec, &err), 0);
    /* The only cache listed is set's; copy and third are aliases. */
    assert_lists_set_only(r);
    /* Held through an alias, set is in use; with aliases, too, naming them. */
    assert_int_equal(datasets_remove(r, "set", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    datasets_release(r, a);
    datasets_release(r, b);
    assert_int_equal(datasets_remove(r, "set", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    datasets_release(r, c);
    assert_int_equal(datasets_remove(r, "set", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_non_null(strstr(err.message, "delete "));
    assert_non_null(strstr(err.message, "copy"));
    assert_non_null(strstr(err.message, "third"));
    /* Not made: an alias of itself, of nothing, or of a folder that is an alias already. */
    assert_int_equal(datasets_alias(r, "set", "copy", &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    assert_int_equal(datasets_alias(r, "copy", "set", &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(datasets_alias(r, "set", "nothing", &err), -1);
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(db_count_entries(out), 3);

    /* The split was saved in set's folder: a registry opened afresh sees it through set. */
    datasets_close(r);
    r = datasets_open(out, &err);
    a = datasets_acquire(r, "set", &err);
    assert_non_null(a);
    assert_non_null(dataset_split(a, "half"));
    assert_int_equal(dataset_split(a, "half")->count, 3);
    datasets_release(r, a);

    /* Removing an alias takes its link only, even while the dataset is held. */
    a = datasets_acquire(r, "copy", &err);
    assert_int_equal(datasets_remove(r, "copy", &err), 0);
    assert_string_equal(link_target(out, "copy"), "");
    assert_null(datasets_acquire(r, "copy", &err));
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_int_equal(dataset_count(a), 6);
    datasets_release(r, a);
    assert_int_equal(datasets_remove(r, "third", &err), 0);
    assert_int_equal(db_count_entries(out), 1);

    /* Links that are no alias: out of the folder, absolute, to nothing, to a link. None is a
     * dataset; removing one takes the link, never what it names. */
    char path[1200], beside[1200];
    snprintf(beside, sizeof beside, "%s/x", d.root);
    assert_int_equal(mkdir(beside, 0755), 0);
    const struct {
        const char *id, *target;
    } links[] = {{"up", "../x"}, {"abs", d.dir}, {"missing", "nosuch"}, {"chain", "up"}};
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        snprintf(path, sizeof path, "%s/%s", out, links[i].id);
        assert_int_equal(symlink(links[i].target, path), 0);
    }
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        assert_null(datasets_acquire(r, links[i].id, &err));
        assert_int_equal(err.code, ENG_NOT_FOUND);
        assert_non_null(strstr(err.message, "unknown dataset"));
        assert_false(datasets_alias_of(r, links[i].id, target));
    }
    assert_lists_set_only(r);
    /* abs names set's own folder, yet set has no alias: it goes with the link left dangling. */
    assert_int_equal(datasets_remove(r, "up", &err), 0);
    assert_int_equal(access(beside, F_OK), 0);
    assert_int_equal(datasets_remove(r, "abs", &err), 0);
    assert_int_equal(access(d.dir, F_OK), 0);
    assert_int_equal(datasets_remove(r, "missing", &err), 0);
    assert_int_equal(datasets_remove(r, "chain", &err), 0);
    assert_int_equal(db_count_entries(out), 1);

    /* An alias whose dataset was removed by force, behind the registry's back: unknown, not a
     * crash, and removable. */
    import_again(&d, "late");
    assert_int_equal(datasets_alias(r, "late", "set", &err), 0);
    a = datasets_acquire(r, "late", &err);
    datasets_release(r, a);
    assert_int_equal(data_remove(out, "set", &err), 0);
    assert_null(datasets_acquire(r, "late", &err));
    assert_int_equal(err.code, ENG_NOT_FOUND);
    assert_false(datasets_alias_of(r, "late", target));
    assert_int_equal(datasets_remove(r, "late", &err), 0);
    assert_int_equal(db_count_entries(out), 0);
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
        cmocka_unit_test(test_aliases),
    };
    return cmocka_run_group_tests_name("datasets_registry", tests, init, NULL);
}

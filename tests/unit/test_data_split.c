/* engine/data's splits: derived splits against counts worked out by hand (per_class's labeled
 * and unlabeled parts, the largest-remainder shares of a stratified split) and against the
 * documented shuffle run here from core/rng.h; the same seed giving the same split; splits saved
 * in the cache and read back; splits with labels of their own; splits another open of the cache
 * saved, taken by a refresh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rng.h"
#include "data/dataset.h"
#include "data_build.h"

/* A dataset of 1x1 images: test/a 2 (indices 0, 1 in name order), then train/a 30, train/b 40,
 * train/c 50 (2-31, 32-71, 72-121). */
struct fixture {
    struct db_dataset d;
    struct dataset *ds;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    static const struct db_class classes[] = {
        {"test/a", 2}, {"train/a", 30}, {"train/b", 40}, {"train/c", 50}};
    f->d = db_dataset_make(classes, sizeof classes / sizeof *classes, 1, 1, 1);
    f->ds = f->d.ds;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_dataset_free(&f->d);
    free(f);
    return 0;
}

static void derive_ok(struct dataset *ds, struct data_split_spec spec)
{
    struct eng_error err = {0};
    if (dataset_split_derive(ds, &spec, &err)) fail_msg("%s", err.message);
}

static void derive_fails(struct dataset *ds, struct data_split_spec spec, enum eng_code code,
                         const char *part)
{
    struct eng_error err = {0};
    assert_int_equal(dataset_split_derive(ds, &spec, &err), -1);
    if (err.code != code || !strstr(err.message, part))
        fail_msg("expected %d '%s', got %d: %s", code, part, err.code, err.message);
}

/* Counts a split's images per dataset class (the dataset's labels, whatever the split says). */
static void count_classes(const struct dataset *ds, const struct data_split *s, size_t counts[3])
{
    memset(counts, 0, 3 * sizeof *counts);
    for (size_t k = 0; k < s->count; k++) {
        counts[dataset_label(ds, s->indices[k])]++;
        if (k) assert_true(s->indices[k] > s->indices[k - 1]);
    }
}

static void assert_same_split(const struct data_split *a, const struct data_split *b)
{
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->labeled, b->labeled);
    assert_memory_equal(a->indices, b->indices, a->count * sizeof *a->indices);
    assert_int_equal(a->labels != NULL, b->labels != NULL);
    if (a->labels) assert_memory_equal(a->labels, b->labels, a->count * sizeof *a->labels);
}

static void test_per_class(void **state)
{
    /* 25 per class of 30, 40 and 50: a labeled part of 75, 25 each, and an unlabeled rest of
     * 5, 15 and 25; together the train split, once each. */
    struct fixture *f = *state;
    derive_ok(f->ds, (struct data_split_spec){.name = "labeled",
                                              .from = "train",
                                              .mode = DATA_SPLIT_PER_CLASS,
                                              .per_class = 25,
                                              .seed = 7});
    const struct data_split *labeled = dataset_split(f->ds, "labeled");
    const struct data_split *rest = dataset_split(f->ds, "labeled-rest");
    assert_non_null(labeled);
    assert_non_null(rest);
    size_t counts[3];
    count_classes(f->ds, labeled, counts);
    assert_int_equal(labeled->count, 75);
    for (int c = 0; c < 3; c++)
        assert_int_equal(counts[c], 25);
    count_classes(f->ds, rest, counts);
    assert_int_equal(rest->count, 45);
    assert_int_equal(counts[0], 5);
    assert_int_equal(counts[1], 15);
    assert_int_equal(counts[2], 25);
    assert_true(labeled->labeled);
    assert_false(rest->labeled);
    assert_int_equal(data_split_label(f->ds, rest, 0), -1);
    assert_int_equal(data_split_label(f->ds, labeled, 0),
                     dataset_label(f->ds, labeled->indices[0]));
    uint8_t seen[122] = {0};
    for (size_t k = 0; k < labeled->count; k++)
        seen[labeled->indices[k]]++;
    for (size_t k = 0; k < rest->count; k++)
        seen[rest->indices[k]]++;
    for (int i = 0; i < 122; i++)
        assert_int_equal(seen[i], i >= 2);
    /* Saved: a new handle reads both back. */
    struct eng_error err = {0};
    struct dataset *again = dataset_open(f->d.dir, &err);
    assert_non_null(again);
    assert_same_split(dataset_split(again, "labeled"), labeled);
    assert_same_split(dataset_split(again, "labeled-rest"), rest);
    assert_int_equal(dataset_split_count(again), 4);
    assert_string_equal(dataset_split_at(again, 1)->name, "labeled-rest");
    /* The rest has no labels to give: per_class on it is refused. */
    derive_fails(
        again,
        (struct data_split_spec){
            .name = "x", .from = "labeled-rest", .mode = DATA_SPLIT_PER_CLASS, .per_class = 1},
        ENG_INVALID, "split 'labeled-rest' is unlabeled");
    /* Its description counts what the loader will see: no class for the rest. */
    json_t *doc = dataset_describe(again);
    json_t *splits = json_object_get(doc, "splits");
    json_t *rest_doc = json_array_get(splits, 1);
    assert_int_equal(json_integer_value(json_object_get(rest_doc, "unlabeled")), 45);
    json_t *train_doc = json_array_get(splits, 3);
    assert_string_equal(json_string_value(json_object_get(train_doc, "name")), "train");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(train_doc, "per_class"), 2)),
                     50);
    json_decref(doc);
    dataset_close(again);
}

static void test_same_seed_same_split(void **state)
{
    struct fixture *f = *state;
    const struct data_split_spec base = {.from = "train",
                                         .mode = DATA_SPLIT_FRACTION,
                                         .fraction = 0.25,
                                         .stratified = 1,
                                         .seed = 99};
    struct data_split_spec one = base, two = base, other = base;
    one.name = "one";
    two.name = "two";
    other.name = "other";
    other.seed = 100;
    derive_ok(f->ds, one);
    derive_ok(f->ds, two);
    derive_ok(f->ds, other);
    assert_same_split(dataset_split(f->ds, "one"), dataset_split(f->ds, "two"));
    assert_same_split(dataset_split(f->ds, "one-rest"), dataset_split(f->ds, "two-rest"));
    const struct data_split *a = dataset_split(f->ds, "one"), *b = dataset_split(f->ds, "other");
    assert_int_equal(a->count, 30);
    assert_int_equal(b->count, 30);
    assert_true(memcmp(a->indices, b->indices, a->count * sizeof *a->indices) != 0);
}

static void test_shuffle_is_fisher_yates(void **state)
{
    /* Not stratified, count 7: the first 7 positions of train's 120 after Fisher-Yates on the
     * stream rng_init(seed, 0, 0, 0), as the header documents it, worked here by hand. */
    struct fixture *f = *state;
    derive_ok(f->ds, (struct data_split_spec){.name = "seven",
                                              .rest = "others",
                                              .from = "train",
                                              .mode = DATA_SPLIT_COUNT,
                                              .count = 7,
                                              .seed = 1234});
    uint32_t positions[120];
    for (uint32_t i = 0; i < 120; i++)
        positions[i] = i;
    struct rng r;
    rng_init(&r, 1234, 0, 0, 0);
    for (uint32_t i = 119; i >= 1; i--) {
        uint32_t j = rng_below(&r, i + 1), t = positions[i];
        positions[i] = positions[j];
        positions[j] = t;
    }
    uint8_t want[122] = {0};
    const struct data_split *train = dataset_split(f->ds, "train");
    for (int k = 0; k < 7; k++)
        want[train->indices[positions[k]]] = 1;
    const struct data_split *seven = dataset_split(f->ds, "seven");
    assert_int_equal(seven->count, 7);
    for (size_t k = 0; k < 7; k++)
        assert_true(want[seven->indices[k]]);
    assert_int_equal(dataset_split(f->ds, "others")->count, 113);
}

static void test_stratified_shares(void **state)
{
    /* count 10 over 30/40/50: exact shares 2.5, 3.33, 4.17; floors 2, 3, 4 give 9, and the one
     * left goes to the largest fraction (.5): 3, 3, 4. fraction 0.1: 12 = 3, 4, 5 exactly. */
    struct fixture *f = *state;
    derive_ok(f->ds, (struct data_split_spec){.name = "ten",
                                              .from = "train",
                                              .mode = DATA_SPLIT_COUNT,
                                              .count = 10,
                                              .stratified = 1,
                                              .seed = 3});
    derive_ok(f->ds, (struct data_split_spec){.name = "tenth",
                                              .from = "train",
                                              .mode = DATA_SPLIT_FRACTION,
                                              .fraction = 0.1,
                                              .stratified = 1,
                                              .seed = 3});
    derive_ok(f->ds, (struct data_split_spec){.name = "loose",
                                              .from = "train",
                                              .mode = DATA_SPLIT_FRACTION,
                                              .fraction = 0.1,
                                              .seed = 3});
    size_t counts[3];
    count_classes(f->ds, dataset_split(f->ds, "ten"), counts);
    assert_int_equal(counts[0], 3);
    assert_int_equal(counts[1], 3);
    assert_int_equal(counts[2], 4);
    count_classes(f->ds, dataset_split(f->ds, "tenth"), counts);
    assert_int_equal(counts[0], 3);
    assert_int_equal(counts[1], 4);
    assert_int_equal(counts[2], 5);
    assert_int_equal(dataset_split(f->ds, "loose")->count, 12);
    assert_int_equal(dataset_split(f->ds, "loose-rest")->count, 108);
}

static void test_refused(void **state)
{
    struct fixture *f = *state;
    const struct data_split_spec ok = {
        .name = "p", .from = "train", .mode = DATA_SPLIT_PER_CLASS, .per_class = 31};
    derive_fails(f->ds, ok, ENG_INVALID,
                 "class 'a' has 30 images in split 'train', fewer than per_class 31");
    struct data_split_spec spec = ok;
    spec.from = "nope";
    derive_fails(f->ds, spec, ENG_NOT_FOUND, "no split 'nope'");
    spec = ok;
    spec.name = "bad/name";
    derive_fails(f->ds, spec, ENG_INVALID, "split name 'bad/name'");
    spec = ok;
    spec.rest = "p";
    derive_fails(f->ds, spec, ENG_INVALID, "the split and its rest are both 'p'");
    spec = (struct data_split_spec){
        .name = "q", .from = "train", .mode = DATA_SPLIT_FRACTION, .fraction = 1.5};
    derive_fails(f->ds, spec, ENG_INVALID, "fraction 1.5 is not in [0, 1]");
    spec = (struct data_split_spec){
        .name = "q", .from = "train", .mode = DATA_SPLIT_COUNT, .count = 121};
    derive_fails(f->ds, spec, ENG_INVALID, "count 121 is more than split 'train' holds (120)");
    /* A name taken by either part: nothing written, nothing added. */
    spec.count = 5;
    spec.rest = "test";
    derive_fails(f->ds, spec, ENG_CONFLICT, "split 'test' exists already");
    assert_null(dataset_split(f->ds, "q"));
    char path[2048];
    snprintf(path, sizeof path, "%s/splits/q.split", f->d.dir);
    FILE *file = fopen(path, "rb");
    assert_null(file);
    assert_int_equal(dataset_split_count(f->ds), 2);
}

static void test_own_labels(void **state)
{
    /* A pseudo-labelled split: its own labels, kept with their images when sorted. */
    struct fixture *f = *state;
    const uint32_t indices[3] = {5, 2, 9};
    const int32_t labels[3] = {1, 0, 2};
    struct eng_error err = {0};
    assert_int_equal(dataset_split_add(f->ds, "pseudo", indices, labels, 3, 1, &err), 0);
    const struct data_split *s = dataset_split(f->ds, "pseudo");
    const uint32_t sorted[3] = {2, 5, 9};
    assert_memory_equal(s->indices, sorted, sizeof sorted);
    assert_int_equal(data_split_label(f->ds, s, 0), 0);
    assert_int_equal(data_split_label(f->ds, s, 1), 1);
    assert_int_equal(data_split_label(f->ds, s, 2), 2);
    struct dataset *again = dataset_open(f->d.dir, &err);
    assert_same_split(dataset_split(again, "pseudo"), s);
    dataset_close(again);
    const uint32_t past[1] = {122}, twice[2] = {4, 4};
    assert_int_equal(dataset_split_add(f->ds, "x", past, NULL, 1, 1, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(dataset_split_add(f->ds, "x", twice, NULL, 2, 1, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    const int32_t no_class[1] = {3};
    assert_int_equal(dataset_split_add(f->ds, "x", indices, no_class, 1, 1, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_int_equal(dataset_split_add(f->ds, "pseudo", indices, NULL, 1, 1, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
}

/* Two opens of one cache, as two processes sharing data_dir have: a split one adds is not the
 * other's until it refreshes, then it is, the same; a refresh again changes nothing, and a name
 * the other saved is refused here as taken. */
static void test_refresh_takes_another_opens_splits(void **state)
{
    struct fixture *f = *state;
    struct eng_error err = {0};
    struct dataset *other = dataset_open(f->d.dir, &err);
    assert_non_null(other);
    const size_t before = dataset_split_count(other);
    const uint32_t indices[3] = {7, 3, 11};
    assert_int_equal(dataset_split_add(f->ds, "theirs", indices, NULL, 3, 1, &err), 0);
    assert_null(dataset_split(other, "theirs"));
    assert_int_equal(dataset_split_refresh(other, &err), 0);
    assert_int_equal(dataset_split_count(other), before + 1);
    assert_same_split(dataset_split(other, "theirs"), dataset_split(f->ds, "theirs"));
    assert_int_equal(dataset_split_refresh(other, &err), 0);
    assert_int_equal(dataset_split_count(other), before + 1);
    assert_int_equal(dataset_split_add(other, "mine", indices, NULL, 3, 1, &err), 0);
    assert_int_equal(dataset_split_add(f->ds, "mine", indices, NULL, 3, 1, &err), -1);
    assert_int_equal(err.code, ENG_CONFLICT);
    dataset_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_per_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_seed_same_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shuffle_is_fisher_yates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stratified_shares, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_takes_another_opens_splits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

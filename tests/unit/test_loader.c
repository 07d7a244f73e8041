/* engine/data's loader: the epoch order against Fisher-Yates on the documented stream, worked
 * here from core/rng.h; every batch the same with 0, 1, 2 and 4 loader threads; each sample equal
 * to the policy sampled for (seed, index, epoch) and classify_image_tensor run by hand, also for
 * another view (its own seed, the same order), and to its two halves (data_loader_image and
 * data_loader_tensor); resuming
 * at a batch; unlabeled splits; refused options; cancellation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "classify/classify.h"
#include "core/cancel.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data_build.h"
#include "policy/policy.h"

#define SEED 9

/* A dataset of 8x6 RGB images: test/a 2, train/a 7, train/b 6 (indices 0-1, 2-8, 9-14). */
struct fixture {
    struct db_dataset d;
    struct dataset *ds;
    struct policy *policy;
};

static const struct classify_preprocess pp = {
    .scale = 1.0f / 255, .mean = {0.5f, 0.4f, 0.3f}, .std = {0.25f, 0.2f, 0.5f}, .channels = 3};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    static const struct db_class classes[] = {{"test/a", 2}, {"train/a", 7}, {"train/b", 6}};
    f->d = db_dataset_make(classes, sizeof classes / sizeof *classes, 8, 6, 40);
    f->ds = f->d.ds;
    struct eng_error err = {0};
    if (!(f->policy = policy_parse_text("randaugment", &err))) fail_msg("%s", err.message);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    policy_free(f->policy);
    db_dataset_free(&f->d);
    free(f);
    return 0;
}

static struct data_loader_options options(const struct fixture *f, int threads)
{
    return (struct data_loader_options){.dataset = f->ds,
                                        .split = dataset_split(f->ds, "train"),
                                        .policy = f->policy,
                                        .preprocess = &pp,
                                        .seed = SEED,
                                        .epoch = 1,
                                        .batch = 4,
                                        .shuffle = 1,
                                        .threads = threads};
}

/* Every batch of a loader, concatenated. */
struct run {
    float *inputs;
    int32_t labels[64];
    uint32_t indices[64];
    size_t samples, batches, numbers[16];
};

static struct run run_all(const struct data_loader_options *o)
{
    struct eng_error err = {0};
    struct data_loader *l = data_loader_new(o, &err);
    if (!l) fail_msg("%s", err.message);
    struct run r = {calloc(64 * 3 * 6 * 8, sizeof(float))};
    struct data_batch b;
    int got;
    while ((got = data_loader_next(l, &b, &err)) == 1) {
        assert_int_equal(b.channels, 3);
        assert_int_equal(b.height, 6);
        assert_int_equal(b.width, 8);
        assert_int_equal(b.epoch, o->epoch);
        memcpy(r.inputs + r.samples * 144, b.inputs, b.size * 144 * sizeof(float));
        memcpy(r.labels + r.samples, b.labels, b.size * sizeof *b.labels);
        memcpy(r.indices + r.samples, b.indices, b.size * sizeof *b.indices);
        r.numbers[r.batches++] = b.number;
        r.samples += b.size;
    }
    if (got < 0) fail_msg("%s", err.message);
    assert_int_equal(data_loader_next(l, &b, &err), 0); /* and stays at the end */
    data_loader_free(l);
    return r;
}

static void test_order_is_fisher_yates(void **state)
{
    uint32_t order[13], want[13];
    data_loader_order(5, 3, order, 13);
    /* The header's algorithm, by hand: Fisher-Yates from the last position down on the stream
     * rng_init(seed, DATA_ORDER_INPUT, epoch, 0). */
    struct rng r;
    rng_init(&r, 5, 0xffffffffu, 3, 0);
    for (uint32_t i = 0; i < 13; i++)
        want[i] = i;
    for (uint32_t i = 12; i >= 1; i--) {
        uint32_t j = rng_below(&r, i + 1), t = want[i];
        want[i] = want[j];
        want[j] = t;
    }
    assert_memory_equal(order, want, sizeof order);
    int seen[13] = {0};
    for (int i = 0; i < 13; i++)
        seen[order[i]]++;
    for (int i = 0; i < 13; i++)
        assert_int_equal(seen[i], 1);
    uint32_t next_epoch[13];
    data_loader_order(5, 4, next_epoch, 13);
    assert_true(memcmp(order, next_epoch, sizeof order) != 0);
}

static void test_threads_give_the_same_batches(void **state)
{
    /* 13 images in batches of 4 (4, 4, 4, 1), for two epochs: byte for byte alike whatever the
     * threads and the ring's size. */
    struct fixture *f = *state;
    for (uint32_t epoch = 0; epoch < 2; epoch++) {
        struct data_loader_options o = options(f, 0);
        o.epoch = epoch;
        struct run base = run_all(&o);
        assert_int_equal(base.samples, 13);
        assert_int_equal(base.batches, 4);
        const int threads[4] = {1, 2, 4, 4}, prefetch[4] = {0, 0, 0, 9};
        for (int k = 0; k < 4; k++) {
            o.threads = threads[k];
            o.prefetch = prefetch[k];
            struct run r = run_all(&o);
            assert_int_equal(r.samples, 13);
            assert_memory_equal(r.indices, base.indices, sizeof r.indices);
            assert_memory_equal(r.labels, base.labels, sizeof r.labels);
            assert_memory_equal(r.inputs, base.inputs, 13 * 144 * sizeof(float));
            assert_memory_equal(r.numbers, base.numbers, sizeof r.numbers);
            free(r.inputs);
        }
        free(base.inputs);
    }
}

/* Each sample of the loader of `view` is image split[order[position]] with the policy sampled and
 * applied for (the view's seed, index, epoch), then classify_image_tensor; the label is the
 * image's. The view's seed is the header's: SEED, or SEED ^ (view x 0x9E3779B97F4A7C15). Its
 * inputs (the caller frees them). */
static float *samples_by_hand(struct fixture *f, uint32_t view)
{
    struct data_loader_options o = options(f, 2);
    o.view = view;
    struct run r = run_all(&o);
    const struct data_split *train = dataset_split(f->ds, "train");
    const uint64_t seed = view ? SEED ^ (view * 0x9E3779B97F4A7C15u) : SEED;
    uint32_t order[13];
    data_loader_order(SEED, 1, order, 13); /* the order is the seed's, whatever the view */
    float want[144];
    struct eng_error err = {0};
    int changed = 0;
    for (size_t k = 0; k < 13; k++) {
        const uint32_t index = train->indices[order[k]];
        assert_int_equal(r.indices[k], index);
        assert_int_equal(r.labels[k], dataset_label(f->ds, index));
        struct img view_img;
        dataset_image(f->ds, index, &view_img);
        struct trace *t = policy_sample(f->policy, seed, index, 1, 8, 6, &err);
        struct img *augmented = trace_apply(t, &view_img, seed, index, 1, &err);
        assert_int_equal(classify_image_tensor(augmented, &pp, NULL, 0, 0, 1, want, &err), 0);
        assert_memory_equal(r.inputs + k * 144, want, sizeof want);
        changed += memcmp(augmented->data, view_img.data, 144) != 0;
        /* The sample's two halves, as a caller that edits the image between them gets them. */
        struct img *half = data_loader_image(&o, index, &err);
        float tensor[144];
        assert_non_null(half);
        assert_memory_equal(half->data, augmented->data, 144);
        assert_int_equal(data_loader_tensor(&o, half, index, tensor, &err), 0);
        assert_memory_equal(tensor, want, sizeof want);
        img_free(half);
        trace_free(t);
        img_free(augmented);
    }
    assert_true(changed > 0); /* RandAugment did change images */
    return r.inputs;
}

static void test_samples_by_hand(void **state)
{
    free(samples_by_hand(*state, 0));
}

/* Another view (FixMatch's strong view beside its weak one): the same order and labels, the
 * policy drawn at the view's own seed, so the two views of a sample differ. */
static void test_views(void **state)
{
    float *weak = samples_by_hand(*state, 0), *strong = samples_by_hand(*state, 1);
    int differ = 0;
    for (size_t k = 0; k < 13; k++)
        differ += memcmp(weak + k * 144, strong + k * 144, 144 * sizeof(float)) != 0;
    assert_true(differ > 0);
    free(weak);
    free(strong);
}

/* The tensor half refuses an image whose size gives another tensor than the batch's, naming the
 * sample. */
static void test_tensor_half_refuses_another_size(void **state)
{
    struct fixture *f = *state;
    struct data_loader_options o = options(f, 0);
    struct eng_error err = {0};
    struct img *small = img_new(4, 4, 3, &err);
    float tensor[144];
    assert_int_equal(data_loader_tensor(&o, small, 3, tensor, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "image 3 ("));
    assert_non_null(
        strstr(err.message, "4x4 after the policy gives a 4x4 tensor; the batch's is 8x6"));
    img_free(small);
}

static void test_preprocessing_by_hand(void **state)
{
    /* No policy, no shuffle: the split's images in order, each classify_image_tensor of the
     * image, and its first value (x 0, y 0, red) is (seed / 255 - 0.5) / 0.25 by hand. */
    struct fixture *f = *state;
    struct data_loader_options o = options(f, 2);
    o.policy = NULL;
    o.shuffle = 0;
    struct run r = run_all(&o);
    const struct data_split *train = dataset_split(f->ds, "train");
    float want[144];
    struct eng_error err = {0};
    for (size_t k = 0; k < 13; k++) {
        assert_int_equal(r.indices[k], train->indices[k]);
        struct img view;
        dataset_image(f->ds, train->indices[k], &view);
        assert_int_equal(classify_image_tensor(&view, &pp, NULL, 0, 0, 1, want, &err), 0);
        assert_memory_equal(r.inputs + k * 144, want, sizeof want);
        const int seed = (int)(2 + k) * 40; /* db_png's seed of image 2 + k */
        const float red = ((float)(seed & 255) * (1.0f / 255) - 0.5f) / 0.25f;
        assert_true(fabsf(r.inputs[k * 144] - red) < 1e-6f);
        /* Planes: green of pixel (1, 0) is (7 + 29 + seed) / 255 - 0.4) / 0.2. */
        const float green = ((float)((7 + 29 + seed) & 255) * (1.0f / 255) - 0.4f) / 0.2f;
        assert_true(fabsf(r.inputs[k * 144 + 48 + 1] - green) < 1e-5f);
    }
    free(r.inputs);
}

static void test_resume_and_drop_last(void **state)
{
    struct fixture *f = *state;
    struct data_loader_options o = options(f, 2);
    struct run full = run_all(&o);
    o.first_batch = 2;
    struct run tail = run_all(&o);
    assert_int_equal(tail.batches, 2);
    assert_int_equal(tail.numbers[0], 2);
    assert_int_equal(tail.samples, 5);
    assert_memory_equal(tail.indices, full.indices + 8, 5 * sizeof *tail.indices);
    assert_memory_equal(tail.inputs, full.inputs + 8 * 144, 5 * 144 * sizeof(float));
    o.first_batch = 0;
    o.drop_last = 1;
    struct run dropped = run_all(&o);
    assert_int_equal(dropped.batches, 3);
    assert_int_equal(dropped.samples, 12);
    free(full.inputs);
    free(tail.inputs);
    free(dropped.inputs);
}

static void test_unlabeled_split(void **state)
{
    struct fixture *f = *state;
    struct eng_error err = {0};
    const struct data_split_spec spec = {
        .name = "few", .from = "train", .mode = DATA_SPLIT_PER_CLASS, .per_class = 2, .seed = 1};
    assert_int_equal(dataset_split_derive(f->ds, &spec, &err), 0);
    struct data_loader_options o = options(f, 1);
    o.split = dataset_split(f->ds, "few-rest");
    struct run r = run_all(&o);
    assert_int_equal(r.samples, 9);
    for (size_t k = 0; k < r.samples; k++)
        assert_int_equal(r.labels[k], -1);
    free(r.inputs);
}

static void test_refused(void **state)
{
    struct fixture *f = *state;
    struct eng_error err = {0};
    struct data_loader_options o = options(f, 1);
    o.batch = 0;
    assert_null(data_loader_new(&o, &err));
    assert_int_equal(err.code, ENG_INVALID);
    struct policy *audio = policy_parse_text("specaugment-LB", &err);
    struct policy *views =
        policy_parse_text("{\"views\": [{\"op\": \"Identity\"}, {\"op\": \"Invert\"}]}", &err);
    assert_non_null(audio);
    assert_non_null(views);
    o = options(f, 1);
    o.policy = audio;
    assert_null(data_loader_new(&o, &err));
    assert_int_equal(err.code, ENG_INVALID);
    o.policy = views;
    assert_null(data_loader_new(&o, &err));
    assert_int_equal(err.code, ENG_UNSUPPORTED);
    /* A policy that changes the size, without a crop to bring it back. */
    struct policy *grow =
        policy_parse_text("{\"op\": \"Resize\", \"height\": 12, \"width\": 16}", &err);
    if (!grow) fail_msg("%s", err.message);
    o.policy = grow;
    struct data_loader *l = data_loader_new(&o, &err);
    struct data_batch b;
    assert_non_null(l);
    assert_int_equal(data_loader_next(l, &b, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    assert_non_null(strstr(err.message, "give the preprocessing a crop"));
    assert_non_null(strstr(err.message, "train/"));
    data_loader_free(l);
    /* With one, the batch has the crop's size. */
    struct classify_preprocess cropped = pp;
    cropped.crop_height = cropped.crop_width = 5;
    o.preprocess = &cropped;
    assert_non_null(l = data_loader_new(&o, &err));
    assert_int_equal(data_loader_next(l, &b, &err), 1);
    assert_int_equal(b.height, 5);
    assert_int_equal(b.width, 5);
    data_loader_free(l);
    policy_free(grow);
    policy_free(audio);
    policy_free(views);
}

static int always_stop(void *ctx, struct eng_error *err)
{
    (void)ctx;
    return eng_fail(err, ENG_CANCELLED, "the job was cancelled");
}

static void test_cancelled(void **state)
{
    struct fixture *f = *state;
    const struct eng_cancel check = {always_stop, NULL};
    eng_cancel_install(&check);
    struct data_loader_options o = options(f, 2);
    struct eng_error err = {0};
    struct data_loader *l = data_loader_new(&o, &err);
    struct data_batch b;
    assert_int_equal(data_loader_next(l, &b, &err), -1);
    assert_int_equal(err.code, ENG_CANCELLED);
    data_loader_free(l);
    eng_cancel_install(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_is_fisher_yates),
        cmocka_unit_test_setup_teardown(test_threads_give_the_same_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_samples_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tensor_half_refuses_another_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preprocessing_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_and_drop_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlabeled_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

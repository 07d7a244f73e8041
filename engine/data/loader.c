/* The loader (data/loader.h): a ring of batch buffers that loader threads fill in batch order and
 * the consumer empties in the same order. Batch b goes to slot b mod ring; a thread takes the next
 * batch once its slot is free, makes it outside the lock, and marks it ready. */
#include "data/loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cancel.h"
#include "core/rng.h"
#include "data/internal.h"
#include "policy/policy.h"

enum slot_state { SLOT_FREE, SLOT_BUSY, SLOT_READY };

struct slot {
    enum slot_state state;
    size_t number, size;
    float *inputs;
    int32_t *labels;
    uint32_t *indices;
    int failed;
    struct eng_error err;
};

struct data_loader {
    struct data_loader_options o;
    uint32_t *order;
    size_t n, batches;
    int channels, height, width;
    size_t sample_floats;
    struct slot *slots;
    int ring;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    size_t next_make, next_give;
    struct slot *given; /* returned by the last data_loader_next, freed at the next */
    int stop;
    pthread_t *threads;
    int started;
    const struct eng_cancel *cancel;
};

void data_loader_order(uint64_t seed, uint32_t epoch, uint32_t *order, size_t n)
{
    struct rng r;
    rng_init(&r, seed, DATA_ORDER_INPUT, epoch, 0);
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    data_shuffle(order, n, &r);
}

/* ---- One sample ----------------------------------------------------------------------------- */

/* Puts "image i (source): " in front of err's message. */
static int name_sample(const struct data_loader_options *o, uint32_t index, struct eng_error *err)
{
    char why[sizeof err->message];
    snprintf(why, sizeof why, "%s", err->message);
    return eng_fail(err, err->code, "image %u (%s): %s", index, dataset_source(o->dataset, index),
                    why);
}

/* o's policy on view (sample index of o's epoch) at the seed of o's view: a new image. */
static struct img *augment(const struct data_loader_options *o, const struct img *view,
                           uint32_t index, struct eng_error *err)
{
    uint64_t seed = o->seed ^ (o->view * UINT64_C(0x9E3779B97F4A7C15));
    struct trace *t =
        policy_sample(o->policy, seed, index, o->epoch, view->width, view->height, err);
    struct img *out = t ? trace_apply(t, view, seed, index, o->epoch, err) : NULL;
    trace_free(t);
    return out;
}

/* src (sample index's image) as a height x width tensor under o's preprocessing. */
static int to_tensor(const struct data_loader_options *o, int height, int width,
                     const struct img *src, float *out, struct eng_error *err)
{
    int h, w, rc = classify_preprocess_size(o->preprocess, src->width, src->height, &h, &w, err);
    if (rc == 0 && (h != height || w != width))
        rc = eng_fail(err, ENG_INVALID,
                      "%dx%d after the policy gives a %dx%d tensor; the batch's is %dx%d: give "
                      "the preprocessing a crop",
                      src->width, src->height, w, h, width, height);
    if (rc == 0) rc = classify_image_tensor(src, o->preprocess, NULL, 0, 0, 1, out, err);
    return rc;
}

static int make_sample(const struct data_loader *l, uint32_t index, float *out,
                       struct eng_error *err)
{
    struct img view;
    dataset_image(l->o.dataset, index, &view);
    struct img *augmented = l->o.policy ? augment(&l->o, &view, index, err) : NULL;
    if (l->o.policy && !augmented) return name_sample(&l->o, index, err);
    int rc = to_tensor(&l->o, l->height, l->width, augmented ? augmented : &view, out, err);
    img_free(augmented);
    return rc ? name_sample(&l->o, index, err) : 0;
}

/* Makes batch `number` into slot s. */
static void make_batch(const struct data_loader *l, struct slot *s, size_t number)
{
    const size_t first = number * l->o.batch;
    s->number = number;
    s->size = l->n - first < l->o.batch ? l->n - first : l->o.batch;
    s->failed = 0;
    for (size_t k = 0; k < s->size && !s->failed; k++) {
        const size_t position = l->order ? l->order[first + k] : first + k;
        s->indices[k] = l->o.split->indices[position];
        s->labels[k] = data_split_label(l->o.dataset, l->o.split, position);
        s->failed = eng_cancel_poll(&s->err) ||
                    make_sample(l, s->indices[k], s->inputs + k * l->sample_floats, &s->err);
    }
}

/* ---- Threads -------------------------------------------------------------------------------- */

static void *loader_thread(void *arg)
{
    struct data_loader *l = arg;
    eng_cancel_install(l->cancel);
    pthread_mutex_lock(&l->lock);
    while (!l->stop && l->next_make < l->batches) {
        struct slot *s = &l->slots[l->next_make % (size_t)l->ring];
        if (s->state != SLOT_FREE) {
            pthread_cond_wait(&l->changed, &l->lock);
            continue;
        }
        const size_t number = l->next_make++;
        s->state = SLOT_BUSY;
        pthread_mutex_unlock(&l->lock);
        make_batch(l, s, number);
        pthread_mutex_lock(&l->lock);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&l->changed);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* ---- The interface -------------------------------------------------------------------------- */

/* The tensor's size for the options: the crop's, or the one image size's. */
static int options_tensor_size(const struct data_loader_options *o, int *height, int *width,
                               struct eng_error *err)
{
    const struct classify_preprocess *pp = o->preprocess;
    int w, h;
    dataset_uniform_size(o->dataset, &w, &h);
    if (pp->crop_height > 0) w = h = 1; /* any size gives the crop */
    if (w == 0)
        return eng_fail(err, ENG_INVALID,
                        "the dataset's images differ in size: the preprocessing needs a crop");
    return classify_preprocess_size(pp, w, h, height, width, err);
}

static int tensor_size(struct data_loader *l, struct eng_error *err)
{
    if (options_tensor_size(&l->o, &l->height, &l->width, err)) return -1;
    l->channels = l->o.preprocess->channels;
    l->sample_floats = (size_t)l->channels * (size_t)l->height * (size_t)l->width;
    return 0;
}

static int check_options(const struct data_loader_options *o, struct eng_error *err)
{
    if (!o->dataset || !o->split || !o->preprocess)
        return eng_fail(err, ENG_INVALID,
                        "the loader needs a dataset, a split and a preprocessing");
    if (o->batch < 1 || o->batch > (1u << 20) || o->threads < 0 || o->threads > 256 ||
        o->prefetch < 0 || o->prefetch > 1024)
        return eng_fail(err, ENG_INVALID,
                        "batch %zu, threads %d, prefetch %d: batch 1..2^20, threads 0..256, "
                        "prefetch 0..1024",
                        o->batch, o->threads, o->prefetch);
    if (o->policy && policy_domain(o->policy) & ~POLICY_IMAGE)
        return eng_fail(err, ENG_INVALID, "the policy is for audio, not images");
    if (o->policy && policy_view_count(o->policy) > 1)
        return eng_fail(err, ENG_UNSUPPORTED, "policies with several views are not loaded yet");
    return 0;
}

static int alloc_slots(struct data_loader *l, struct eng_error *err)
{
    const int min_ring = l->o.threads + 1;
    l->ring = l->o.prefetch > min_ring ? l->o.prefetch : min_ring;
    if (!(l->slots = calloc((size_t)l->ring, sizeof *l->slots))) return eng_no_memory(err);
    for (int i = 0; i < l->ring; i++) {
        struct slot *s = &l->slots[i];
        s->inputs = malloc(l->o.batch * l->sample_floats * sizeof *s->inputs);
        s->labels = malloc(l->o.batch * sizeof *s->labels);
        s->indices = malloc(l->o.batch * sizeof *s->indices);
        if (!s->inputs || !s->labels || !s->indices) return eng_no_memory(err);
    }
    return 0;
}

struct data_loader *data_loader_new(const struct data_loader_options *o, struct eng_error *err)
{
    if (check_options(o, err)) return NULL;
    struct data_loader *l = calloc(1, sizeof *l);
    if (!l) {
        eng_no_memory(err);
        return NULL;
    }
    l->o = *o;
    l->n = o->split->count;
    l->batches = o->drop_last ? l->n / o->batch : (l->n + o->batch - 1) / o->batch;
    l->next_make = l->next_give = o->first_batch < l->batches ? o->first_batch : l->batches;
    l->cancel = eng_cancel_installed();
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->changed, NULL);
    int rc = tensor_size(l, err);
    if (rc == 0 && o->shuffle && !(l->order = malloc((l->n ? l->n : 1) * sizeof *l->order)))
        rc = eng_no_memory(err);
    if (rc == 0 && l->order) data_loader_order(o->seed, o->epoch, l->order, l->n);
    if (rc == 0) rc = alloc_slots(l, err);
    if (rc == 0 && o->threads > 0 && !(l->threads = calloc((size_t)o->threads, sizeof *l->threads)))
        rc = eng_no_memory(err);
    for (int t = 0; rc == 0 && t < o->threads; t++, l->started++)
        if (pthread_create(&l->threads[t], NULL, loader_thread, l) != 0)
            rc = eng_fail(err, ENG_INTERNAL, "could not start loader thread %d", t);
    if (rc) {
        data_loader_free(l);
        return NULL;
    }
    return l;
}

size_t data_loader_batches(const struct data_loader *l)
{
    return l->batches;
}

int data_loader_next(struct data_loader *l, struct data_batch *b, struct eng_error *err)
{
    pthread_mutex_lock(&l->lock);
    if (l->given) {
        l->given->state = SLOT_FREE;
        l->given = NULL;
        pthread_cond_broadcast(&l->changed);
    }
    if (l->next_give == l->batches) {
        pthread_mutex_unlock(&l->lock);
        return 0;
    }
    struct slot *s = &l->slots[l->next_give % (size_t)l->ring];
    if (l->started == 0) {
        pthread_mutex_unlock(&l->lock);
        make_batch(l, s, l->next_give);
        pthread_mutex_lock(&l->lock);
    } else {
        while (!(s->state == SLOT_READY && s->number == l->next_give))
            pthread_cond_wait(&l->changed, &l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    if (s->failed) {
        *err = s->err;
        return -1;
    }
    l->next_give++;
    l->given = s;
    *b = (struct data_batch){.epoch = l->o.epoch,
                             .number = s->number,
                             .size = s->size,
                             .channels = l->channels,
                             .height = l->height,
                             .width = l->width,
                             .inputs = s->inputs,
                             .labels = s->labels,
                             .indices = s->indices};
    return 1;
}

struct img *data_loader_image(const struct data_loader_options *o, uint32_t index,
                              struct eng_error *err)
{
    struct img view;
    dataset_image(o->dataset, index, &view);
    struct img *out = o->policy ? augment(o, &view, index, err) : img_clone(&view, err);
    if (!out) name_sample(o, index, err);
    return out;
}

int data_loader_tensor(const struct data_loader_options *o, const struct img *image, uint32_t index,
                       float *out, struct eng_error *err)
{
    int height, width;
    return options_tensor_size(o, &height, &width, err) ||
                   to_tensor(o, height, width, image, out, err)
               ? name_sample(o, index, err)
               : 0;
}

void data_loader_free(struct data_loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    l->stop = 1;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->lock);
    for (int t = 0; t < l->started; t++)
        pthread_join(l->threads[t], NULL);
    for (int i = 0; l->slots && i < l->ring; i++) {
        free(l->slots[i].inputs);
        free(l->slots[i].labels);
        free(l->slots[i].indices);
    }
    free(l->slots);
    free(l->threads);
    free(l->order);
    pthread_cond_destroy(&l->changed);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* The gaugment space: G-Augment's policy graphs (Wang et al. 2022), on a fixed-length encoding
 * (search.h describes it): a chain of depth stages, vertices v0 .. v<depth>, each stage a vertex
 * with up to width outgoing edges. An edge carries an op at a level (or nothing, the graph's
 * skip), a weight (its probability is its share of its vertex's weights) and how many stages it
 * jumps. Every point is a valid graph, so the prior draws any point; the mutation adds, removes
 * and rewires edges and changes their ops and values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/internal.h"

#define MAX_DEPTH  8  /* stages; with MAX_WIDTH, 160 dimensions at most */
#define MAX_WIDTH  4  /* edges out of a vertex */
#define MAX_OPS    64 /* ops to draw from */
#define MAX_WEIGHT 10 /* an edge's weight is a whole number in [1, MAX_WEIGHT] */

/* The audio default: waveform ops that need no clip from the request, then the SpecAugment
 * masks and warp. */
static const char *const audio_ops[] = {"Gain",     "Noise",    "Speed",    "TimeShift",
                                        "Reverb",   "LowPass",  "HighPass", "FrequencyMask",
                                        "TimeMask", "TimeWarp", NULL};

/* An edge slot's dimensions (indexes into the space's list; on is -1 for slot 0, which is always
 * there, and to is -1 in the last stage, which can only reach the end). */
struct slot {
    int on, op, weight, level, to;
};

struct gaugment {
    int depth, width;
    const struct op_desc *ops[MAX_OPS];
    size_t op_count;
    /* Stages before split draw from ops[0, wave) (waveform ops), the others from ops[wave,
     * op_count); for images, and audio of one kind, split is 0 and wave is 0. */
    int split;
    size_t wave;
    struct slot slots[MAX_DEPTH][MAX_WIDTH];
};

static void stage_ops(const struct gaugment *g, int stage, size_t *first, size_t *count)
{
    *first = stage < g->split ? 0 : g->wave;
    *count = stage < g->split ? g->wave : g->op_count - g->wave;
}

static double at(const struct search_space *s, const double *point, int dim)
{
    return search_dim_snap(&s->dims[dim], point[dim]);
}

static bool slot_on(const struct search_space *s, const struct slot *slot, const double *point)
{
    return slot->on < 0 || at(s, point, slot->on) == 1;
}

static json_t *gaugment_concretize(const struct search_space *s, const double *point,
                                   struct eng_error *err)
{
    const struct gaugment *g = s->ctx;
    json_t *edges = json_array();
    for (int v = 0; edges && v < g->depth; v++) {
        double total = 0;
        for (int e = 0; e < g->width; e++)
            if (slot_on(s, &g->slots[v][e], point)) total += at(s, point, g->slots[v][e].weight);
        size_t first, count;
        stage_ops(g, v, &first, &count);
        for (int e = 0; edges && e < g->width; e++) {
            const struct slot *slot = &g->slots[v][e];
            if (!slot_on(s, slot, point)) continue;
            char from[16], to[16];
            snprintf(from, sizeof from, "v%d", v);
            snprintf(to, sizeof to, "v%d", v + (slot->to < 0 ? 1 : (int)at(s, point, slot->to)));
            json_t *edge = json_pack("{s:s, s:s, s:f}", "from", from, "to", to, "p",
                                     at(s, point, slot->weight) / total);
            size_t op = (size_t)at(s, point, slot->op);
            json_t *node =
                op < count ? spaces_op_level(g->ops[first + op], at(s, point, slot->level)) : NULL;
            if (!edge || (op < count && (!node || json_object_set_new(edge, "do", node) != 0)) ||
                json_array_append_new(edges, edge) != 0) {
                json_decref(edges);
                edges = NULL;
            }
        }
    }
    json_t *doc = edges ? json_pack("{s:{s:s, s:o}}", "dag", "start", "v0", "edges", edges) : NULL;
    if (!doc) eng_no_memory(err);
    return doc;
}

/* A value of d other than x, uniformly (x itself when d has one value). */
static double other_value(const struct search_dim *d, double x, struct rng *r)
{
    double step = d->kind == SEARCH_DIM_QUANTIZED ? d->step : 1;
    double high = d->kind == SEARCH_DIM_CHOICE ? (double)d->choices - 1 : d->high;
    uint32_t values = (uint32_t)((high - d->low) / step + 1e-9) + 1;
    if (values < 2) return x;
    uint32_t k = (uint32_t)((x - d->low) / step + 0.5);
    k = (k + 1 + rng_below(r, values - 1)) % values;
    return search_dim_snap(d, d->low + k * step);
}

enum mutation { ADD, REMOVE, REWIRE, CHANGE_OP, CHANGE_VALUE };

struct move {
    enum mutation kind;
    const struct slot *slot;
};

/* One of the mutations that change the graph, uniformly among those the parent allows: an edge
 * added (a slot turned on, its values drawn afresh), removed, rewired to another stage, given
 * another op, or given another weight or level. */
static void gaugment_mutate(void *space, struct rng *r, const double *parent, double *child)
{
    const struct search_space *s = space;
    const struct gaugment *g = s->ctx;
    struct move moves[MAX_DEPTH * MAX_WIDTH * 4];
    size_t count = 0;
    memcpy(child, parent, s->n * sizeof *child);
    for (int v = 0; v < g->depth; v++)
        for (int e = 0; e < g->width; e++) {
            const struct slot *slot = &g->slots[v][e];
            bool on = slot_on(s, slot, parent);
            if (slot->on >= 0) moves[count++] = (struct move){on ? REMOVE : ADD, slot};
            if (!on) continue;
            if (slot->to >= 0) moves[count++] = (struct move){REWIRE, slot};
            moves[count++] = (struct move){CHANGE_OP, slot};
            moves[count++] = (struct move){CHANGE_VALUE, slot};
        }
    /* Slot 0 of stage 0 is always on, so there is a move: changing its op. */
    const struct move move = moves[rng_below(r, (uint32_t)count)];
    const struct slot *slot = move.slot;
    enum mutation kind = move.kind;
    int dim = kind == REWIRE ? slot->to : kind == CHANGE_OP ? slot->op : slot->on;
    if (kind == CHANGE_VALUE) dim = rng_below(r, 2) ? slot->weight : slot->level;
    if (kind == ADD) {
        const int drawn[] = {slot->op, slot->weight, slot->level, slot->to};
        for (size_t i = 0; i < sizeof drawn / sizeof drawn[0]; i++)
            if (drawn[i] >= 0) child[drawn[i]] = search_dim_sample(&s->dims[drawn[i]], r);
    }
    child[dim] = other_value(&s->dims[dim], at(s, parent, dim), r);
}

static const struct space_kind gaugment_kind = {
    .concretize = gaugment_concretize, .mutate = gaugment_mutate, .free_ctx = free};

/* The slot's dimensions, at /stages/<stage>/edges/<e>/...; a slot other than the first has an
 * on/off dimension the others depend on. */
static int add_slot(struct search_space *s, struct gaugment *g, int stage, int e,
                    struct eng_error *err)
{
    size_t first, count;
    stage_ops(g, stage, &first, &count);
    struct slot *slot = &g->slots[stage][e];
    char base[64], pointer[96];
    snprintf(base, sizeof base, "/stages/%d/edges/%d", stage, e);
    slot->on = slot->to = -1;
    if (e > 0) {
        struct search_dim on = {.kind = SEARCH_DIM_CHOICE, .high = 1, .choices = 2, .parent = -1};
        snprintf(pointer, sizeof pointer, "%s/on", base);
        if (space_add_dim(s, on, pointer, json_pack("[b, b]", 0, 1), err) != 0) return -1;
        slot->on = (int)s->n - 1;
    }
    json_t *names = json_array();
    for (size_t o = 0; names && o < count; o++)
        json_array_append_new(names, json_string(g->ops[first + o]->name));
    if (!names || json_array_append_new(names, json_string("none")) != 0) {
        json_decref(names);
        return eng_no_memory(err);
    }
    const struct search_dim dims[] = {
        {.kind = SEARCH_DIM_CHOICE, .high = (double)count, .choices = count + 1},
        {.kind = SEARCH_DIM_INT, .low = 1, .high = MAX_WEIGHT},
        {.kind = SEARCH_DIM_QUANTIZED, .high = 1, .step = 0.1},
        {.kind = SEARCH_DIM_INT, .low = 1, .high = g->depth - stage},
    };
    static const char *const names_of[] = {"op", "weight", "level", "to"};
    int *index[] = {&slot->op, &slot->weight, &slot->level, &slot->to};
    /* The last stage's edges can only go to the end: no "to" dimension. */
    size_t used = stage == g->depth - 1 ? 3 : 4;
    for (size_t i = 0; i < used; i++) {
        struct search_dim d = dims[i];
        d.parent = slot->on;
        d.parent_choice = 1;
        snprintf(pointer, sizeof pointer, "%s/%s", base, names_of[i]);
        if (space_add_dim(s, d, pointer, i == 0 ? names : NULL, err) != 0) return -1;
        *index[i] = (int)s->n - 1;
    }
    return 0;
}

struct search_space *gaugment_compile(const json_t *args, struct eng_error *err)
{
    static const char *const keys[] = {"domain", "depth", "width", "ops", NULL};
    const char *domain = json_string_value(json_object_get(args, "domain"));
    bool audio = domain && strcmp(domain, "audio") == 0;
    struct gaugment *g = calloc(1, sizeof *g);
    struct search_space *s = NULL;
    if (!g) {
        eng_no_memory(err);
        return NULL;
    }
    if (spaces_check_keys(args, "gaugment", keys, err) != 0) goto fail;
    if (json_object_get(args, "domain") && !audio && !(domain && strcmp(domain, "image") == 0)) {
        eng_fail(err, ENG_INVALID, "/domain: must be \"image\" or \"audio\"");
        goto fail;
    }
    const struct op_desc *listed[MAX_OPS];
    size_t count = 0;
    unsigned domains =
        audio ? (1u << OP_DOMAIN_WAVEFORM) | (1u << OP_DOMAIN_SPECTROGRAM) : 1u << OP_DOMAIN_IMAGE;
    if (spaces_int_arg(args, "depth", 3, 1, MAX_DEPTH, &g->depth, err) != 0 ||
        spaces_int_arg(args, "width", 3, 1, MAX_WIDTH, &g->width, err) != 0 ||
        spaces_ops_arg(args, audio ? audio_ops : spaces_autoaugment_ops, domains, listed, MAX_OPS,
                       &count, err) != 0)
        goto fail;
    /* Waveform ops first: a graph never runs one after a spectrogram op. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < count; i++)
            if ((listed[i]->domain == OP_DOMAIN_WAVEFORM) == (pass == 0))
                g->ops[g->op_count++] = listed[i];
    g->wave = 0;
    while (g->wave < count && g->ops[g->wave]->domain == OP_DOMAIN_WAVEFORM)
        g->wave++;
    if (g->wave > 0 && g->wave < count) {
        if (g->depth < 2) {
            eng_fail(err, ENG_INVALID,
                     "/depth: a graph of waveform and spectrogram ops needs a "
                     "depth of 2 or more (waveform stages, then spectrogram "
                     "ones)");
            goto fail;
        }
        g->split = (g->depth + 1) / 2;
    } else {
        g->wave = 0;
    }
    if (!(s = space_new(&gaugment_kind, err))) goto fail;
    s->ctx = g;
    for (int v = 0; v < g->depth; v++)
        for (int e = 0; e < g->width; e++)
            if (add_slot(s, g, v, e, err) != 0) {
                search_space_free(s);
                return NULL;
            }
    return s;
fail:
    free(g);
    return NULL;
}

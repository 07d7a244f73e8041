/* Where the activations' floats live. A value the backward pass reads (a Conv's or
 * BatchNormalization's input, a Relu's output...) is kept from its forward to the backward, in
 * floats of its own; any other one (a BatchNorm's output that only a Relu reads, which takes
 * its slopes from its own output; an Add's output; what a pool reads) is needed only from the
 * forward step that writes it to its last forward reader, and takes a slot that values before
 * and after it share. Which values a backward step reads, each op says at compile time
 * (train_step.skips_inputs, skips_output; both false, the default, keeps everything); the
 * caller may ask to keep others (train_plan_options.keep, for train_plan_value). */
#include <stdlib.h>
#include <string.h>

#include "train/internal.h"

/* Per root value: the forward steps that write it first and read it last, and whether it must
 * live to the backward pass. */
struct life {
    long first, last;
    bool kept;
};

static void note_read(struct train_plan *t, struct life *life, int id, long step, bool kept)
{
    if (id < 0 || t->np->values[id].is_const) return;
    struct life *l = &life[t->root[id]];
    if (step > l->last) l->last = step;
    l->kept |= kept;
}

static void note_write(struct train_plan *t, struct life *life, int id, long step, bool kept)
{
    struct life *l = &life[t->root[id]];
    if (l->first < 0) l->first = l->last = step;
    l->kept |= kept;
}

/* A slot free before step first and holding count floats: the smallest such, or a new one;
 * busy until step last. NULL when memory runs out. */
static float *slot(struct train_plan *t, size_t count, long first, long last)
{
    size_t best = t->n_slots;
    for (size_t i = 0; i < t->n_slots; i++)
        if (t->slots[i].busy_until < first && t->slots[i].count >= count &&
            (best == t->n_slots || t->slots[i].count < t->slots[best].count))
            best = i;
    if (best == t->n_slots) {
        struct train_slot *grown = realloc(t->slots, (t->n_slots + 1) * sizeof *grown);
        if (!grown) return NULL;
        t->slots = grown;
        float *data = calloc(count ? count : 1, sizeof *data);
        if (!data) return NULL;
        t->slots[t->n_slots++] = (struct train_slot){data, count, -1};
    }
    t->slots[best].busy_until = last;
    return t->slots[best].data;
}

int train_place_values(struct train_plan *t, struct eng_error *err)
{
    size_t n = t->np->n_values;
    struct life *life = malloc((n ? n : 1) * sizeof *life);
    if (!life) return eng_no_memory(err);
    for (size_t i = 0; i < n; i++)
        life[i] = (struct life){-1, -1, false};
    for (size_t i = 0; i < t->n_steps; i++) {
        const struct train_step *s = &t->steps[i];
        long at = (long)i;
        for (int k = 0; k < s->n_convert; k++) {
            note_read(t, life, s->convert[k].from, at, false);
            note_write(t, life, s->convert[k].to, at, false);
        }
        for (int k = 0; k < TRAIN_MAX_INPUTS; k++)
            note_read(t, life, s->in[k], at, !s->skips_inputs);
        note_write(t, life, s->out, at, !s->skips_output);
    }
    life[t->root[t->output]].kept = true; /* the caller reads it after the forward */
    for (size_t id = 0; id < n; id++)     /* and those it asked for (options.keep) */
        if (train_listed(t->keep, t->n_keep, t->np->values[id].name)) life[t->root[id]].kept = true;
    int rc = 0;
    for (size_t i = 0; i < t->n_steps && !rc; i++)
        for (size_t id = 0; id < n && !rc; id++) {
            const struct life *l = &life[id];
            if (t->data[id] || t->np->values[id].is_const || t->root[id] != (int)id ||
                l->first != (long)i)
                continue;
            size_t count = t->np->values[id].count;
            if (l->kept) {
                t->owned[id] = 1;
                t->data[id] = calloc(count ? count : 1, sizeof(float));
            } else {
                t->data[id] = slot(t, count, l->first, l->last);
            }
            if (!t->data[id]) rc = eng_no_memory(err);
        }
    for (size_t id = 0; id < n && !rc; id++)
        if (t->root[id] != (int)id) t->data[id] = t->data[t->root[id]];
    free(life);
    return rc;
}

void train_slots_free(struct train_plan *t)
{
    for (size_t i = 0; i < t->n_slots; i++)
        free(t->slots[i].data);
    free(t->slots);
}

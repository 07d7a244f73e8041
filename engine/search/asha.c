/* Early stopping over epochs: successive halving (Jamieson and Talwalkar 2016) and its
 * asynchronous form, ASHA (Li et al. 2020, "A System for Massively Parallel Hyperparameter
 * Tuning"), decided as Optuna's SuccessiveHalvingPruner does (search.h has the rules). Trials
 * are numbered densely from 0, so their states live in an array indexed by trial number. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search/algo_internal.h"

enum trial_state { TRIAL_RUN, TRIAL_WAIT, TRIAL_STOP, TRIAL_DROP };

struct asha_trial {
    enum trial_state state;
    size_t next; /* the rung it reports at next (past the last: judged at every rung) */
};

struct rung_entry {
    uint64_t trial;
    double value;
};

struct rung {
    unsigned epoch;
    struct rung_entry *e; /* the values reported here */
    size_t n, cap;
    size_t expected; /* synchronous: trials still to report here */
};

struct search_asha {
    bool async;
    unsigned eta;
    struct rung *rungs;
    size_t n_rungs;
    struct asha_trial *trials;
    size_t n_trials;
};

void search_asha_free(struct search_asha *s)
{
    if (!s) return;
    for (size_t k = 0; k < s->n_rungs; k++)
        free(s->rungs[k].e);
    free(s->rungs);
    free(s->trials);
    free(s);
}

struct search_asha *search_asha_new(unsigned min_epochs, unsigned max_epochs, unsigned eta,
                                    bool async, size_t trials, struct eng_error *err)
{
    if (min_epochs < 1 || eta < 2 || max_epochs < min_epochs || (!async && trials < 1)) {
        eng_fail(err, ENG_INVALID,
                 "early stopping needs min_epochs >= 1, eta >= 2, max_epochs >= min_epochs "
                 "and, when synchronous, trials >= 1 (got %u, %u, %u, %zu)",
                 min_epochs, eta, max_epochs, trials);
        return NULL;
    }
    struct search_asha *s = calloc(1, sizeof *s);
    if (!s) goto no_memory;
    s->async = async;
    s->eta = eta;
    for (unsigned long long r = min_epochs; r < max_epochs; r *= eta)
        s->n_rungs++;
    s->rungs = calloc(s->n_rungs ? s->n_rungs : 1, sizeof *s->rungs);
    if (!s->rungs) goto no_memory;
    unsigned long long r = min_epochs;
    for (size_t k = 0; k < s->n_rungs; k++, r *= eta)
        s->rungs[k].epoch = (unsigned)r;
    if (!async) {
        s->trials = calloc(trials, sizeof *s->trials);
        if (!s->trials) goto no_memory;
        s->n_trials = trials;
        if (s->n_rungs) s->rungs[0].expected = trials;
    }
    return s;
no_memory:
    search_asha_free(s);
    eng_no_memory(err);
    return NULL;
}

static int rung_add(struct rung *g, uint64_t trial, double value, struct eng_error *err)
{
    struct rung_entry *e = algo_grow(g->e, &g->cap, g->n, sizeof *e, err);
    if (!e) return -1;
    g->e = e;
    g->e[g->n++] = (struct rung_entry){trial, value};
    return 0;
}

/* How many a rung of n values promotes: the top 1/eta, and at least one. */
static size_t promoted(size_t n, unsigned eta)
{
    return n / eta > 0 ? n / eta : 1;
}

static int by_rank(const void *a, const void *b)
{
    const struct rung_entry *x = a, *y = b;
    if (x->value != y->value) return x->value > y->value ? -1 : 1;
    return x->trial < y->trial ? -1 : x->trial > y->trial;
}

/* A synchronous rung everyone expected has reported at: its best go on, the rest stop. */
static void rung_decide(struct search_asha *s, size_t k)
{
    struct rung *g = &s->rungs[k];
    qsort(g->e, g->n, sizeof *g->e, by_rank);
    size_t m = g->n ? promoted(g->n, s->eta) : 0;
    for (size_t i = 0; i < g->n; i++) {
        struct asha_trial *t = &s->trials[g->e[i].trial];
        t->state = i < m ? TRIAL_RUN : TRIAL_STOP;
        t->next = k + 1;
    }
    if (k + 1 < s->n_rungs) s->rungs[k + 1].expected = m;
}

static enum search_asha_decision decision_of(const struct asha_trial *t)
{
    return t->state == TRIAL_RUN    ? SEARCH_ASHA_CONTINUE
           : t->state == TRIAL_WAIT ? SEARCH_ASHA_WAIT
                                    : SEARCH_ASHA_STOP;
}

/* The trial's record, grown on first sight when asynchronous. */
static struct asha_trial *trial_at(struct search_asha *s, uint64_t trial, struct eng_error *err)
{
    if (trial < s->n_trials) return &s->trials[trial];
    if (!s->async) {
        eng_fail(err, ENG_INVALID, "trial %llu is past the %zu trials of this successive halving",
                 (unsigned long long)trial, s->n_trials);
        return NULL;
    }
    if (trial >= UINT32_MAX) {
        eng_fail(err, ENG_INVALID, "trial number %llu is too large", (unsigned long long)trial);
        return NULL;
    }
    size_t n = 2 * (size_t)trial + 16;
    struct asha_trial *grown = realloc(s->trials, n * sizeof *grown);
    if (!grown) {
        eng_no_memory(err);
        return NULL;
    }
    memset(grown + s->n_trials, 0, (n - s->n_trials) * sizeof *grown);
    s->trials = grown;
    s->n_trials = n;
    return &s->trials[trial];
}

int search_asha_report(struct search_asha *s, uint64_t trial, unsigned epoch, double value,
                       enum search_asha_decision *decision, struct eng_error *err)
{
    struct asha_trial *t = trial_at(s, trial, err);
    if (!t) return -1;
    size_t k = 0;
    while (k < s->n_rungs && s->rungs[k].epoch != epoch)
        k++;
    /* Not a rung, a rung already passed, or the pending rung reported again: nothing new. */
    if (t->state != TRIAL_RUN || k == s->n_rungs || k < t->next) {
        *decision = decision_of(t);
        return 0;
    }
    struct rung *g = &s->rungs[k];
    if (!s->async && k > t->next)
        return eng_fail(err, ENG_INVALID,
                        "trial %llu reported epoch %u before its rung at epoch %u was decided",
                        (unsigned long long)trial, epoch, s->rungs[t->next].epoch);
    if (rung_add(g, trial, isnan(value) ? -INFINITY : value, err) < 0) return -1;
    value = g->e[g->n - 1].value;
    if (s->async) {
        size_t better = 0;
        for (size_t i = 0; i < g->n; i++)
            better += g->e[i].value > value;
        t->state = better < promoted(g->n, s->eta) ? TRIAL_RUN : TRIAL_STOP;
        t->next = k + 1;
    } else {
        t->state = TRIAL_WAIT;
        if (--g->expected == 0) rung_decide(s, k);
    }
    *decision = decision_of(t);
    return 0;
}

enum search_asha_decision search_asha_poll(const struct search_asha *s, uint64_t trial)
{
    return trial < s->n_trials ? decision_of(&s->trials[trial]) : SEARCH_ASHA_CONTINUE;
}

void search_asha_drop(struct search_asha *s, uint64_t trial)
{
    if (trial >= s->n_trials) return;
    struct asha_trial *t = &s->trials[trial];
    enum trial_state was = t->state;
    t->state = TRIAL_DROP;
    if (s->async || t->next >= s->n_rungs || (was != TRIAL_RUN && was != TRIAL_WAIT)) return;
    struct rung *g = &s->rungs[t->next];
    if (was == TRIAL_WAIT) {
        /* It reported: take its value back, so it takes no promotion. */
        size_t i = 0;
        while (g->e[i].trial != trial)
            i++;
        memmove(&g->e[i], &g->e[i + 1], (g->n - i - 1) * sizeof *g->e);
        g->n--;
    } else if (--g->expected == 0) {
        rung_decide(s, t->next);
    }
}

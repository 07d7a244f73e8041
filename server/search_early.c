/* Early stopping of a search's trials (search_early.h): its params, and a trial's decision
 * replayed from the curves: ASHA's in trial order, successive halving's rung by rung. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_kind.h"
#include "job_store.h"
#include "json_text.h"
#include "search_early.h"
#include "search_objective.h"

#define MAX_ETA 100

static const char *const names[] = {"name", "min_epochs", "eta", NULL};

int search_early_open(struct search_early *e, int *on, const json_t *params,
                      const struct search_objective *o, struct eng_error *err)
{
    const json_t *v = json_object_get(params, "early_stopping");
    long long min_epochs, eta;
    memset(e, 0, sizeof *e);
    *on = v != NULL;
    if (!v) return 0;
    if (o->kind != SEARCH_OBJECTIVE_VAL_ACCURACY)
        return eng_fail(err, ENG_INVALID,
                        "params.early_stopping: not for the %s objective: early stopping judges a "
                        "trial by its metric after each epoch, which only val_accuracy has",
                        o->name);
    if (!json_is_object(v))
        return eng_fail(err, ENG_INVALID,
                        "params.early_stopping: must be {\"name\": \"asha\" or "
                        "\"successive-halving\", \"min_epochs\": m, \"eta\": e}");
    if (json_check_members(v, names, "params.early_stopping.", "member", err)) return -1;
    const char *name = json_string_value(json_object_get(v, "name"));
    int sync = name && strcmp(name, "successive-halving") == 0;
    if (!sync && !(name && strcmp(name, "asha") == 0))
        return eng_fail(err, ENG_INVALID,
                        "params.early_stopping.name: required: \"asha\" or \"successive-halving\"");
    if (job_param_int(params, "early_stopping.min_epochs", 0, 1, 1, o->epochs, &min_epochs, err) ||
        job_param_int(params, "early_stopping.eta", 0, 3, 2, MAX_ETA, &eta, err))
        return -1;
    if (min_epochs >= o->epochs)
        return eng_fail(err, ENG_INVALID,
                        "params.early_stopping.min_epochs: must be less than the objective's %ld "
                        "epochs: a trial that reaches them is finished, not judged",
                        o->epochs);
    *e = (struct search_early){(unsigned)min_epochs, (unsigned)eta, (unsigned)o->epochs, sync, 0};
    return 0;
}

json_t *search_early_json(const struct search_early *e)
{
    json_t *v = json_pack("{s:I, s:I, s:I}", "min_epochs", (json_int_t)e->min_epochs, "eta",
                          (json_int_t)e->eta, "max_epochs", (json_int_t)e->max_epochs);
    if (v && e->sync && json_object_set_new(v, "trials", json_integer((json_int_t)e->trials))) {
        json_decref(v);
        return NULL;
    }
    return v;
}

int search_early_from_json(struct search_early *e, const json_t *v, struct eng_error *err)
{
    json_int_t min_epochs, eta, max_epochs, trials = 0;
    if (json_unpack((json_t *)v, "{s:I, s:I, s:I, s?I}", "min_epochs", &min_epochs, "eta", &eta,
                    "max_epochs", &max_epochs, "trials", &trials) != 0 ||
        min_epochs < 1 || eta < 2 || eta > MAX_ETA || max_epochs <= min_epochs ||
        max_epochs > 100000 || trials < 0 || trials > SEARCH_EARLY_MAX_SYNC_TRIALS ||
        (json_object_get(v, "trials") && trials < 1))
        return eng_fail(err, ENG_INVALID, "params.early_stopping: not early stopping's settings");
    *e = (struct search_early){(unsigned)min_epochs, (unsigned)eta, (unsigned)max_epochs,
                               trials > 0, (size_t)trials};
    return 0;
}

/* Whether epoch is one of the rungs, min_epochs * eta^k below max_epochs. */
static int is_rung(const struct search_early *e, unsigned epoch)
{
    for (unsigned long long r = e->min_epochs; r < e->max_epochs; r *= e->eta)
        if (r == epoch) return 1;
    return 0;
}

int search_early_decide(const struct search_early *e, const struct search_early_curve *curves,
                        size_t trial, unsigned epoch, enum search_asha_decision *decision,
                        struct eng_error *err)
{
    if (curves[trial].n < epoch)
        return eng_fail(err, ENG_INTERNAL, "trial %zu has no metric for epoch %u", trial, epoch);
    *decision = SEARCH_ASHA_CONTINUE;
    if (!is_rung(e, epoch)) return 0;
    for (size_t j = 0; j < trial; j++)
        if (!curves[j].final && curves[j].n < epoch) {
            *decision = SEARCH_ASHA_WAIT;
            return 0;
        }
    struct search_asha *s = search_asha_new(e->min_epochs, e->max_epochs, e->eta, true, 0, err);
    int rc = s ? 0 : -1;
    for (size_t j = 0; rc == 0 && j <= trial; j++) {
        size_t n = j < trial ? curves[j].n : epoch;
        for (size_t k = 0; rc == 0 && k < n; k++)
            rc = search_asha_report(s, j, (unsigned)k + 1, curves[j].values[k], decision, err);
    }
    search_asha_free(s);
    return rc;
}

int search_early_decide_sync(const struct search_early *e, const struct search_early_curve *curves,
                             size_t trial, unsigned epoch, enum search_asha_decision *decision,
                             struct eng_error *err)
{
    if (trial >= e->trials || curves[trial].n < epoch)
        return eng_fail(err, ENG_INTERNAL, "trial %zu has no metric for epoch %u", trial, epoch);
    struct search_asha *s =
        search_asha_new(e->min_epochs, e->max_epochs, e->eta, false, e->trials, err);
    if (!s) return -1;
    int pending = 0;
    for (unsigned long long r = e->min_epochs; !pending && r < e->max_epochs; r *= e->eta) {
        for (size_t j = 0; j < e->trials; j++) {
            /* Those a rung before cut, dropped or left waiting report nothing here. */
            if (search_asha_poll(s, j) != SEARCH_ASHA_CONTINUE) continue;
            size_t n = j == trial ? epoch : curves[j].n;
            enum search_asha_decision ignored;
            if (n >= r) {
                if (search_asha_report(s, j, (unsigned)r, curves[j].values[r - 1], &ignored, err) <
                    0) {
                    search_asha_free(s);
                    return -1;
                }
            } else if (j != trial && curves[j].final) {
                search_asha_drop(s, j);
            } else {
                pending = 1;
            }
        }
    }
    *decision = search_asha_poll(s, trial);
    search_asha_free(s);
    return 0;
}

/* A JSON curve's values into a malloc'd array (*values NULL for none). */
static int read_curve(const json_t *epochs, double **values, size_t *n, struct eng_error *err)
{
    *n = json_array_size(epochs);
    *values = NULL;
    if (*n == 0) return json_is_array(epochs) ? 0 : eng_fail(err, ENG_INTERNAL, "not a curve");
    if (!(*values = malloc(*n * sizeof **values))) return eng_no_memory(err);
    for (size_t k = 0; k < *n; k++) {
        const json_t *v = json_array_get(epochs, k);
        (*values)[k] = json_is_number(v) ? json_number_value(v) : NAN;
    }
    return 0;
}

/* The curves of entries (each {"epochs", "final"}), the first n of them, with own (when not NULL)
 * as entry `self`'s epochs, not final: a malloc'd array of n (free with free_curves). */
static struct search_early_curve *read_curves(const json_t *entries, size_t n, size_t self,
                                              const json_t *own, struct eng_error *err)
{
    struct search_early_curve *curves = calloc(n ? n : 1, sizeof *curves);
    int rc = curves ? 0 : eng_no_memory(err);
    for (size_t j = 0; rc == 0 && j < n; j++) {
        const json_t *entry = json_array_get(entries, j);
        double *values = NULL;
        int mine = own && j == self;
        rc = read_curve(mine ? own : json_object_get(entry, "epochs"), &values, &curves[j].n, err);
        curves[j].values = values;
        curves[j].final = !mine && json_is_true(json_object_get(entry, "final"));
    }
    if (rc == 0) return curves;
    for (size_t j = 0; curves && j < n; j++)
        free((void *)curves[j].values);
    free(curves);
    return NULL;
}

static void free_curves(struct search_early_curve *curves, size_t n)
{
    for (size_t j = 0; curves && j < n; j++)
        free((void *)curves[j].values);
    free(curves);
}

int search_early_decide_json(const struct search_early *e, const json_t *siblings,
                             const json_t *own, unsigned epoch, enum search_asha_decision *decision,
                             struct eng_error *err)
{
    size_t trial = json_array_size(siblings);
    struct search_early_curve *curves = read_curves(siblings, trial + 1, trial, own, err);
    int rc = curves ? search_early_decide(e, curves, trial, epoch, decision, err) : -1;
    free_curves(curves, trial + 1);
    return rc;
}

int search_early_decide_sync_json(const struct search_early *e, const json_t *all, size_t trial,
                                  unsigned epoch, enum search_asha_decision *decision,
                                  struct eng_error *err)
{
    if (json_array_size(all) != e->trials)
        return eng_fail(err, ENG_INTERNAL, "%zu curves for %zu trials", json_array_size(all),
                        e->trials);
    struct search_early_curve *curves = read_curves(all, e->trials, trial, NULL, err);
    int rc = curves ? search_early_decide_sync(e, curves, trial, epoch, decision, err) : -1;
    free_curves(curves, e->trials);
    return rc;
}

/* A record's curve: its result's epochs, else its checkpoint's val accuracies. */
static json_t *record_curve(const json_t *record)
{
    const json_t *epochs = json_object_get(json_object_get(record, "result"), "epochs");
    if (json_is_array(epochs)) return json_incref((json_t *)epochs);
    json_t *curve = json_array();
    const json_t *metrics = json_object_get(json_object_get(record, "checkpoint"), "metrics");
    size_t i;
    const json_t *row;
    json_array_foreach(metrics, i, row)
    {
        const json_t *v = json_object_get(row, "val_accuracy");
        if (curve && json_array_append(curve, json_is_number(v) ? (json_t *)v : json_null())) {
            json_decref(curve);
            curve = NULL;
        }
    }
    return curve;
}

/* Whether a record's state is final. */
static int record_final(const json_t *record)
{
    const char *name = json_string_value(json_object_get(record, "state"));
    int state = name ? job_state_from_name(name) : -1;
    return state >= 0 && job_state_is_final((enum job_state)state);
}

int search_early_siblings(const json_t *records, size_t trial, json_t **siblings,
                          struct eng_error *err)
{
    *siblings = json_array();
    for (size_t j = 0; *siblings && j < trial; j++)
        if (json_array_append_new(*siblings, json_pack("{s:[], s:b}", "epochs", "final", 1))) break;
    if (!*siblings || json_array_size(*siblings) != trial) goto no_memory;
    size_t i;
    const json_t *record;
    json_array_foreach(records, i, record)
    {
        const json_t *t = json_object_get(json_object_get(record, "params"), "trial");
        if (!json_is_integer(t) || json_integer_value(t) < 0 ||
            (uint64_t)json_integer_value(t) >= trial)
            continue;
        json_t *curve = record_curve(record);
        json_t *entry =
            curve ? json_pack("{s:o, s:b}", "epochs", curve, "final", record_final(record)) : NULL;
        if (!entry || json_array_set_new(*siblings, (size_t)json_integer_value(t), entry))
            goto no_memory;
    }
    return 0;
no_memory:
    json_decref(*siblings);
    *siblings = NULL;
    return eng_no_memory(err);
}

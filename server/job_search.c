/* The job kind "search": a policy search (engine/search) whose trials are child jobs of the kind
 * search-trial (server/job_search_trial.c), scored by the objective: affinity, the accuracy on the
 * val split, with the trial's policy applied once per image at the job's seed, of a model trained
 * on clean data (Lim et al. 2019's density matching; the affinity kind's accuracy), or one that
 * trains per trial, val_accuracy or affinity-diversity (search_objective.h), whose trials may
 * stop early (search_early.h: each trial judges itself; under successive halving a trial at an
 * undecided rung ends its run waiting, and the search wakes it once the rung is decided) and
 * whose training images a budget may count.
 *
 * The search asks the algorithm for trial k's point, concretizes it into a policy and queues a
 * child with it; `parallel` threads of its own claim and run its children (job_children.h). The
 * schedule is fixed, so the points never depend on timing: trial k is asked only once trials 0 to
 * k - parallel have been told, and trials are told in trial order (a trial that ends early waits
 * for those before it). Each proposal is then a function of the seed, k and parallel alone
 * (search.h's replay contract): the same params give the same trials, and a random search, whose
 * asks do not read what was told, the same trials for any parallel. Successive halving's first
 * rung waits for every trial, so it asks them all at once (a window of every trial rather than
 * parallel): each proposal is then a function of the seed and k.
 *
 * Each told trial (point, params, policy, value, state, seconds, its child's id) is a line of the
 * artifact trials.jsonl; the checkpoint holds the file's length, the count of told trials and
 * the wall time the search has run (the time budget's), so it stays small however many trials there
 * are (job_kind.h's file kept in step), and the trials in flight: each one's point and its child's
 * id, stored before the child is queued. A resumed job reads the told trials back and tells them
 * again (the algorithm's state is its seed and what it was told), and takes the trials in flight
 * back with their points, never asking again: their children, queued again by the store's recovery,
 * run on from their own checkpoints, a child that ended meanwhile is read, not run again, and one
 * the store never got is queued. So it ends with an uninterrupted job's trials. A trial whose point
 * gives no policy, or whose child fails, is cancelled or is interrupted for good, is recorded so
 * and told as failed; the job fails only when every trial failed, as a search with no result has
 * nothing to report. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "job_affinity_diversity.h"
#include "job_children.h"
#include "job_kind.h"
#include "job_search.h"
#include "job_search_report.h"
#include "policy/policy.h"
#include "saved_policies.h"
#include "search/search.h"

/* How long the search sleeps at most between looks at its next trial's child: a child cancelled
 * before it ran ends without a thread telling it. */
#define WAIT_MS 200
/* How often successive halving looks for waiting trials to wake when no child ended its run. */
#define WAKE_S 1.0

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A trial asked and not told yet. */
struct slot {
    size_t trial;
    double *point;
    json_t *doc; /* its policy, or NULL when the point gives none (then why) */
    struct eng_error why;
    char job[JOB_ID_SIZE]; /* its child ("" with no policy) */
};

struct search_run {
    struct job_ctx *ctx;
    struct job_search_params p;
    struct search_algo *algo;
    struct job_children *children;
    size_t dims;
    json_t *trials;     /* the told trials' rows, each with its "point" */
    double before;      /* the wall time the search ran before this attempt (its checkpoint's) */
    double started;     /* now_s() when this attempt started */
    FILE *file;         /* trials.jsonl, their rows */
    size_t told;        /* trials told */
    struct slot *slots; /* the trials in flight, told + 0, 1, ...: at most window */
    size_t window;      /* parallel, or every trial for successive halving */
    double woken_at;    /* when successive halving last looked for trials to wake */
    size_t flying;
    double *point;   /* a point being read or asked */
    uint64_t images; /* the told trials' training images, summed: what the images budget counts */
};

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    struct job_search_params p;
    int rc = job_search_params_open(&p, app, params, 1, err);
    job_search_params_close(&p);
    return rc;
}

/* The wall time the search has run, over its attempts: what the time budget counts. The time
 * between an attempt's last checkpoint and its end (a kill), and while the server was down, is
 * not counted. */
static double elapsed(const struct search_run *s)
{
    return s->before + now_s() - s->started;
}

/* The share of the budget spent. */
static double fraction(const struct search_run *s)
{
    double by_trials = (double)s->told / (double)s->p.trials;
    double by_time = s->p.seconds > 0 ? elapsed(s) / s->p.seconds : 0;
    return fmin(1, fmax(by_trials, by_time));
}

static json_t *point_json(const double *point, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_real(point[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* A stored point back into point: 0, or -1 when it is not one of n numbers. */
static int point_read(const json_t *a, double *point, size_t n)
{
    if (json_array_size(a) != n) return -1;
    for (size_t i = 0; i < n; i++) {
        if (!json_is_number(json_array_get(a, i))) return -1;
        point[i] = json_number_value(json_array_get(a, i));
    }
    return 0;
}

static json_t *job_or_null(const char *job)
{
    return job[0] ? json_string(job) : json_null();
}

/* The checkpoint: the told trials (trials.jsonl's length) and those in flight. */
static int checkpoint(struct search_run *s, struct eng_error *err)
{
    json_t *flying = json_array();
    for (size_t i = 0; flying && i < s->flying; i++) {
        const struct slot *t = &s->slots[i];
        if (json_array_append_new(flying,
                                  json_pack("{s:I, s:o, s:o}", "trial", (json_int_t)t->trial,
                                            "point", point_json(t->point, s->dims), "job",
                                            job_or_null(t->job))) != 0) {
            json_decref(flying);
            flying = NULL;
        }
    }
    json_t *state =
        flying ? json_pack("{s:I, s:I, s:f, s:o}", "trials", (json_int_t)s->told, "bytes",
                           (json_int_t)ftell(s->file), "seconds", elapsed(s), "running", flying)
               : NULL;
    int rc =
        state ? job_ctx_checkpoint(s->ctx, state, fraction(s), "trials", err) : eng_no_memory(err);
    json_decref(state);
    return rc;
}

/* Tells the algorithm a told trial's row. */
static int tell(struct search_run *s, const json_t *row, struct eng_error *err)
{
    if (point_read(json_object_get(row, "point"), s->point, s->dims) != 0 ||
        !json_is_integer(json_object_get(row, "trial")))
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not search's");
    const json_t *value = json_object_get(row, "value");
    s->images += (uint64_t)json_integer_value(json_object_get(row, "images"));
    return search_algo_tell(s->algo, (uint64_t)json_integer_value(json_object_get(row, "trial")),
                            s->point, json_number_value(value), json_is_number(value), err);
}

/* The first `bytes` of trials.jsonl (malloc'd, NUL-terminated), or NULL with err. */
static char *read_trials(struct search_run *s, long bytes, struct eng_error *err)
{
    const char *dir = job_ctx_artifacts(s->ctx, err);
    char path[PATH_MAX];
    if (!dir) return NULL;
    snprintf(path, sizeof path, "%s/trials.jsonl", dir);
    FILE *f = fopen(path, "rb");
    char *text = f ? malloc((size_t)bytes + 1) : NULL;
    if (!text || fread(text, 1, (size_t)bytes, f) != (size_t)bytes) {
        if (f) fclose(f);
        free(text);
        eng_fail(err, ENG_INTERNAL,
                 "cannot read the %ld bytes of trials.jsonl the checkpoint names", bytes);
        return NULL;
    }
    fclose(f);
    text[bytes] = '\0';
    return text;
}

/* Opens the next slot for trial told + flying at point, its child's id job (NULL: a new one):
 * concretizes the policy (a point that gives none is kept with why). */
static int slot_open(struct search_run *s, const double *point, const char *job,
                     struct eng_error *err)
{
    struct slot *t = &s->slots[s->flying];
    *t = (struct slot){.trial = s->told + s->flying, .point = malloc(s->dims * sizeof(double) + 1)};
    if (!t->point) return eng_no_memory(err);
    memcpy(t->point, point, s->dims * sizeof *point);
    s->flying++;
    t->doc = search_space_concretize(s->p.space, point, &t->why);
    if (!t->doc) return t->why.code == ENG_NO_MEMORY ? eng_no_memory(err) : 0;
    if (job) {
        snprintf(t->job, sizeof t->job, "%s", job);
        return 0;
    }
    return job_children_new_id(t->job, err);
}

static void slot_close(struct slot *t)
{
    free(t->point);
    json_decref(t->doc);
}

/* The slot's child's params: the affinity kind's with "objective", "policy" and "trial", or those
 * of an objective that trains (search_objective_trial_params, with early stopping's settings). */
static json_t *trial_params(const struct search_run *s, const struct slot *t)
{
    if (s->p.objective.kind != SEARCH_OBJECTIVE_AFFINITY) {
        json_t *early = s->p.early_on ? search_early_json(&s->p.early) : NULL;
        json_t *params =
            !s->p.early_on || early
                ? search_objective_trial_params(&s->p.objective, early, t->doc, t->trial)
                : NULL;
        json_decref(early);
        return params;
    }
    json_t *params = json_copy(s->p.classify);
    if (params && json_object_set_new(params, "objective", json_string(s->p.objective.name)) == 0 &&
        json_object_set(params, "policy", t->doc) == 0 &&
        json_object_set_new(params, "trial", json_integer((json_int_t)t->trial)) == 0)
        return params;
    json_decref(params);
    return NULL;
}

/* Queues the slot's child unless the store has it (queued by an attempt before a restart). */
static int slot_queue(struct search_run *s, const struct slot *t, struct eng_error *err)
{
    struct job child;
    if (!t->job[0]) return 0;
    if (job_children_get(s->children, t->job, &child, err) == 0) {
        job_clear(&child);
        return 0;
    }
    if (err->code != ENG_NOT_FOUND) return -1;
    json_t *params = trial_params(s, t);
    int rc = params ? 0 : eng_no_memory(err);
    if (rc == 0) rc = job_children_add(s->children, t->job, "search-trial", params, err);
    json_decref(params);
    return rc;
}

/* The trial's row once it has ended: 1 with *row, 0 while its child has not ended, -1 with err. */
static int slot_row(struct search_run *s, const struct slot *t, json_t **row, struct eng_error *err)
{
    struct job child = {0};
    if (t->job[0] && job_children_get(s->children, t->job, &child, err) != 0) return -1;
    if (t->job[0] && !job_state_is_final(child.state)) {
        job_clear(&child);
        return 0;
    }
    const json_t *value = json_object_get(child.result, "value");
    int ok = child.state == JOB_SUCCEEDED && json_is_number(value);
    const char *error = !t->job[0]                     ? t->why.message
                        : child.state == JOB_SUCCEEDED ? (ok ? NULL : "the trial gave no value")
                        : child.error                  ? child.error
                                                       : "the trial was cancelled";
    double seconds = child.started_ms && child.finished_ms > child.started_ms
                         ? (double)(child.finished_ms - child.started_ms) / 1000
                         : 0;
    /* A trial early stopping ended has its value, the last epoch's: "stopped", not cancelled. */
    int stopped = ok && json_is_true(json_object_get(child.result, "stopped"));
    const char *state = stopped                                     ? "stopped"
                        : ok                                        ? "succeeded"
                        : t->job[0] && child.state != JOB_SUCCEEDED ? job_state_name(child.state)
                                                                    : "failed";
    *row = json_pack("{s:I, s:o, s:o, s:O*, s:o, s:O, s:s, s:f}", "trial", (json_int_t)t->trial,
                     "job", job_or_null(t->job), "point", point_json(t->point, s->dims), "policy",
                     t->doc, "params", search_space_params(s->p.space, t->point), "value",
                     ok ? value : json_null(), "state", state, "seconds", seconds);
    static const char *const details[] = {"epochs", "images", "affinity", "diversity"};
    for (size_t i = 0; *row && ok && i < sizeof details / sizeof details[0]; i++)
        if (json_object_get(child.result, details[i]))
            json_object_set(*row, details[i], json_object_get(child.result, details[i]));
    if (*row && error) json_object_set_new(*row, "error", json_string(error));
    job_clear(&child);
    return *row ? 1 : eng_no_memory(err);
}

/* Adds a told trial's row to trials.jsonl. */
static int append_row(struct search_run *s, const json_t *row, struct eng_error *err)
{
    char *line = json_dumps(row, JSON_COMPACT);
    int ok = line && fprintf(s->file, "%s\n", line) >= 0 && fflush(s->file) == 0;
    free(line);
    return ok ? 0 : eng_fail(err, ENG_INTERNAL, "cannot write trials.jsonl");
}

/* Tells the first trial in flight (row, which it takes) and drops its slot. */
static int tell_first(struct search_run *s, json_t *row, struct eng_error *err)
{
    const json_t *value = json_object_get(row, "value");
    int rc = json_array_append_new(s->trials, row) == 0 ? 0 : eng_no_memory(err);
    if (rc == 0) rc = append_row(s, row, err);
    if (rc == 0) rc = tell(s, row, err);
    if (rc != 0) return -1;
    if (json_is_number(value))
        job_ctx_log(s->ctx, "trial %zu: %.6g", s->told, json_number_value(value));
    else
        job_ctx_log(s->ctx, "trial %zu %s: %s", s->told,
                    json_string_value(json_object_get(row, "state")),
                    json_string_value(json_object_get(row, "error")));
    slot_close(&s->slots[0]);
    memmove(s->slots, s->slots + 1, --s->flying * sizeof *s->slots);
    s->told++;
    return 0;
}

/* Takes the told trials back (the checkpoint's count of trials.jsonl's lines, its first *length
 * bytes), telling each again, and the trials in flight into their slots. */
static int restore(struct search_run *s, const json_t *saved, long *length, struct eng_error *err)
{
    json_int_t trials, bytes;
    double seconds;
    const json_t *running = json_object_get(saved, "running");
    if (json_unpack((json_t *)saved, "{s:I, s:I, s:F}", "trials", &trials, "bytes", &bytes,
                    "seconds", &seconds) != 0 ||
        trials < 0 || bytes < 0 || json_array_size(running) > s->window)
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not search's");
    char *text = read_trials(s, (long)bytes, err), *line = text;
    int rc = text ? 0 : -1;
    for (json_int_t i = 0; rc == 0 && i < trials; i++) {
        char *end = strchr(line, '\n');
        json_t *row = end ? json_loadb(line, (size_t)(end - line), 0, NULL) : NULL;
        if (!row || json_integer_value(json_object_get(row, "trial")) != i)
            rc = eng_fail(err, ENG_INTERNAL, "trials.jsonl does not hold trial %lld", (long long)i);
        else if (tell(s, row, err) == 0)
            rc = json_array_append(s->trials, row) == 0 ? 0 : eng_no_memory(err);
        else
            rc = -1;
        json_decref(row);
        line = end ? end + 1 : line;
    }
    free(text);
    if (rc != 0) return -1;
    s->told = (size_t)trials;
    s->before = seconds;
    *length = (long)bytes;
    /* (An earlier version's "running", one object, is not read: its trial is asked again, which
     * one trial at a time gives the same point.) */
    size_t i;
    const json_t *t;
    json_array_foreach(running, i, t)
    {
        const char *job = json_string_value(json_object_get(t, "job"));
        if ((size_t)json_integer_value(json_object_get(t, "trial")) != s->told + i ||
            point_read(json_object_get(t, "point"), s->point, s->dims) != 0 ||
            (job && strlen(job) != JOB_ID_SIZE - 1))
            return eng_fail(err, ENG_INTERNAL,
                            "the checkpoint's trial %zu in flight is not search's", s->told + i);
        if (slot_open(s, s->point, job, err) != 0) return -1;
    }
    return 0;
}

/* Whether the budget lets trial told + flying start. */
static int may_ask(const struct search_run *s)
{
    return s->flying < s->window && s->told + s->flying < s->p.trials &&
           !(s->p.seconds > 0 && elapsed(s) >= s->p.seconds) &&
           !(s->p.images > 0 && s->images >= s->p.images);
}

/* Successive halving: queues again each waiting trial whose rung is decided (search_early.h), as
 * the trial itself would decide it from every trial's record. Looked at when a child ended its
 * run and every WAKE_S otherwise: the last trial to reach a rung decides it without ending. */
static int wake_decided(struct search_run *s, struct eng_error *err)
{
    json_t *records = NULL, *all = NULL;
    int rc = job_children_records(s->children, s->p.trials, &records, err) ||
                     search_early_siblings(records, s->p.trials, &all, err)
                 ? -1
                 : 0;
    size_t i;
    const json_t *record;
    json_array_foreach(records, i, record)
    {
        const char *state = json_string_value(json_object_get(record, "state"));
        const json_t *trial = json_object_get(json_object_get(record, "params"), "trial");
        enum search_asha_decision d;
        if (rc != 0 || !state || strcmp(state, "waiting") != 0 || !json_is_integer(trial) ||
            (size_t)json_integer_value(trial) >= s->p.trials)
            continue;
        size_t k = (size_t)json_integer_value(trial);
        size_t epoch = json_array_size(json_object_get(json_array_get(all, k), "epochs"));
        rc = search_early_decide_sync_json(&s->p.early, all, k, (unsigned)epoch, &d, err);
        /* One cancelled meanwhile is not waiting any more: nothing to wake. */
        if (rc == 0 && d != SEARCH_ASHA_WAIT &&
            job_children_wake(s->children, json_string_value(json_object_get(record, "id")), err) !=
                0)
            rc = err->code == ENG_CONFLICT ? 0 : -1;
    }
    json_decref(records);
    json_decref(all);
    s->woken_at = now_s();
    return rc;
}

/* The trials, from where the checkpoint left them, until the budget is spent or the grid is
 * done. */
static int run_trials(struct search_run *s, struct eng_error *err)
{
    int rc = 0, done = 0, ran = 1; /* ran: a child ended its run since the last look */
    long length = 0;
    const json_t *saved = job_ctx_restored(s->ctx);
    if (saved) rc = restore(s, saved, &length, err);
    /* What a trial told after the checkpoint wrote is cut: it is told again. */
    if (rc == 0 && !(s->file = job_ctx_artifact_resume(s->ctx, "trials.jsonl", length, err)))
        rc = -1;
    if (rc == 0 && saved)
        job_ctx_log(s->ctx, "resuming at trial %zu, with %zu in flight", s->told, s->flying);
    for (size_t i = 0; rc == 0 && i < s->flying; i++)
        rc = slot_queue(s, &s->slots[i], err);
    while (rc == 0) {
        if (job_ctx_cancelled(s->ctx, err)) {
            rc = -1;
            break;
        }
        /* Trial k is asked once trials 0 to k - parallel are told: no sooner, no later. */
        while (rc == 0 && !done && may_ask(s)) {
            int asked = search_algo_ask(s->algo, s->told + s->flying, s->point, err);
            if (asked == 1) done = 1; /* the grid is done */
            if (asked != 0) {
                rc = asked < 0 ? -1 : 0;
                break;
            }
            /* Stored before its child is queued: a restart queues it, or finds it, never asks
             * again. */
            rc = slot_open(s, s->point, NULL, err) || checkpoint(s, err) ||
                         slot_queue(s, &s->slots[s->flying - 1], err)
                     ? -1
                     : 0;
        }
        if (rc != 0 || s->flying == 0) break;
        if (s->p.early.sync && (ran || now_s() - s->woken_at >= WAKE_S) &&
            wake_decided(s, err) != 0) {
            rc = -1;
            break;
        }
        json_t *row = NULL;
        int ended = slot_row(s, &s->slots[0], &row, err);
        ran = ended == 0 && job_children_wait(s->children, WAIT_MS);
        if (ended < 0 || (ended == 1 && (tell_first(s, row, err) || checkpoint(s, err)))) rc = -1;
    }
    /* Children the search no longer waits for are cancelled, but on a stop of the server, which
     * queues them again to run with the search's next start. */
    for (size_t i = 0; rc != 0 && !job_ctx_resumes(s->ctx) && i < s->flying; i++) {
        struct eng_error ignored;
        if (s->slots[i].job[0]) job_children_cancel(s->children, s->slots[i].job, &ignored);
    }
    if (s->file && fclose(s->file) != 0 && rc == 0)
        rc = eng_fail(err, ENG_INTERNAL, "cannot write trials.jsonl");
    s->file = NULL;
    return rc;
}

/* Whether a row is of a trial early stopping ended (its value after fewer epochs). */
static int stopped_row(const json_t *row)
{
    const char *state = json_string_value(json_object_get(row, "state"));
    return state && strcmp(state, "stopped") == 0;
}

/* The index of the best trial (the first of equals), or -1 when none succeeded: among the trials
 * that ran their whole budget, or when none did, those early stopping ended, whose values are
 * after fewer epochs. */
static long best_trial(const json_t *trials)
{
    long best = -1;
    for (int stopped = 0; best < 0 && stopped < 2; stopped++) {
        size_t i;
        const json_t *row;
        json_array_foreach(trials, i, row)
        {
            const json_t *v = json_object_get(row, "value");
            if (json_is_number(v) && stopped_row(row) == stopped &&
                (best < 0 ||
                 json_number_value(v) > json_number_value(json_object_get(
                                            json_array_get(trials, (size_t)best), "value"))))
                best = (long)i;
        }
    }
    return best;
}

/* The trials as the result shows them: the rows without their points. */
static json_t *result_trials(const json_t *trials)
{
    json_t *out = json_array();
    size_t i;
    const json_t *row;
    json_array_foreach(trials, i, row)
    {
        json_t *copy = json_copy((json_t *)row);
        if (copy) json_object_del(copy, "point");
        if (!out || !copy || json_array_append_new(out, copy) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* The result, the artifacts and, with save_as, the best policy saved by that name (replacing
 * one saved since the job was queued, or by its own attempt before a restart). */
static int report(struct search_run *s, json_t **result, struct eng_error *err)
{
    long best = best_trial(s->trials);
    if (best < 0) {
        const json_t *last = json_array_get(s->trials, json_array_size(s->trials) - 1);
        return eng_fail(err, ENG_INVALID, "every trial failed (%zu); the last: %s",
                        json_array_size(s->trials),
                        last ? json_string_value(json_object_get(last, "error")) : "none ran");
    }
    const json_t *row = json_array_get(s->trials, (size_t)best);
    const json_t *policy = json_object_get(row, "policy");
    if (s->p.save_as) {
        struct policy_record r;
        int created;
        if (saved_policies_put(job_ctx_app(s->ctx)->storage, s->p.save_as, policy, NULL, 1, &r,
                               &created, err) != 0)
            return -1;
        policy_record_clear(&r);
        job_ctx_log(s->ctx, "saved the best policy as %s", s->p.save_as);
    }
    if (job_search_report_leaderboard(s->ctx, s->trials, err) ||
        job_search_report_curve(s->ctx, s->trials, err))
        return -1;
    /* The model, dataset and val split: the affinity objective's, or a training run's. */
    const json_t *train = s->p.objective.train;
    json_t *model =
        train ? json_incref(json_object_get(train, "model")) : json_string(s->p.jc.model_name);
    *result = json_pack(
        "{s:{s:O, s:O, s:O, s:O}, s:o, s:s*, s:s, s:o, s:s, s:s}", "best", "trial",
        json_object_get(row, "trial"), "policy", policy, "params", json_object_get(row, "params"),
        "value", json_object_get(row, "value"), "trials", result_trials(s->trials), "saved_as",
        s->p.save_as, "objective", s->p.objective.name, "model", model, "dataset",
        train ? json_string_value(json_object_get(train, "dataset")) : s->p.jc.dataset_id, "split",
        train ? json_string_value(json_object_get(train, "val_split")) : s->p.jc.split->name);
    if (!*result) return eng_no_memory(err);
    return job_search_report_heatmap(s->ctx, s->trials, *result, err) ||
                   job_classify_write_result(s->ctx, *result, err)
               ? -1
               : 0;
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    struct search_run s = {.ctx = ctx, .trials = json_array(), .started = now_s()};
    int rc = s.trials ? job_search_params_open(&s.p, job_ctx_app(ctx), params, 0, err)
                      : eng_no_memory(err);
    if (rc == 0) {
        struct search_view view = search_space_view(s.p.space);
        s.dims = view.n;
        s.point = malloc(s.dims * sizeof *s.point + 1);
        /* Successive halving's first rung waits for every trial: all are asked at once. */
        s.window = s.p.early_on && s.p.early.sync ? s.p.trials : (size_t)s.p.parallel;
        s.slots = calloc(s.window, sizeof *s.slots);
        if (!s.point || !s.slots) rc = eng_no_memory(err);
        if (rc == 0) s.algo = search_algo_new(s.p.algorithm, s.p.settings, &view, s.p.jc.seed, err);
        if (rc == 0 && s.algo) s.children = job_children_start(ctx, s.p.parallel, err);
        rc = s.children ? run_trials(&s, err) : -1;
    }
    job_children_stop(s.children);
    if (rc == 0) rc = report(&s, result, err);
    /* The clean run affinity-diversity's trials shared goes with the search, unless it resumes. */
    char clean[4096];
    if (s.p.objective.kind == SEARCH_OBJECTIVE_AFFINITY_DIVERSITY && !job_ctx_resumes(ctx) &&
        search_trial_clean_dir(job_ctx_app(ctx), job_ctx_id(ctx), clean, sizeof clean) == 0)
        job_affinity_diversity_clean_remove(clean);
    for (size_t i = 0; i < s.flying; i++)
        slot_close(&s.slots[i]);
    free(s.slots);
    free(s.point);
    search_algo_free(s.algo);
    json_decref(s.trials);
    job_search_params_close(&s.p);
    return rc;
}

const struct job_kind job_kind_search = {
    .name = "search",
    .help = "a policy search over a space with $search placeholders (or a named space) by grid, "
            "random, evolution or TPE, each trial a child job scored by the objective: affinity (a "
            "clean model's accuracy on the val split with the trial's policy applied), or "
            "val_accuracy or affinity-diversity (a model trained per trial)",
    .validate = validate,
    .run = run,
};

/* The job kind "affinity-diversity" (Gontijo-Lopes et al. 2020, "Affinity and Diversity",
 * Figure 1): both scores for each of a list of policies, with the clean model the job trains.
 *
 * The job trains the model once without a policy (the clean run) and once per policy, each run
 * with the same seed, budget, model and hyperparameters (job_train_run.c's run, every time).
 * Then, per policy:
 *   - affinity: the clean model's accuracy on the val split with the policy applied (once per
 *     image, at the seed, as the affinity kind applies it) divided by its accuracy on the clean
 *     val split: the paper's ratio (metric_affinity, the affinity kind's own function);
 *   - diversity: the policy run's final training loss divided by the clean run's (the diversity
 *     kind's definition: the mean cross-entropy over the last epoch's batches as each was trained
 *     on);
 *   - gain: the policy model's accuracy on the clean val split minus the clean model's.
 * Both accuracies on the clean val split come from the pass that gives a run's val metrics
 * (job_train_run_evaluate), and the augmented ones from the same pass with the policy, so
 * Identity scores an affinity of exactly 1 and, its run being the clean run's computation, a
 * diversity of exactly 1 and a gain of exactly 0.
 *
 * Each run is a phase of the job, checkpointed after every epoch; the checkpoint's JSON names the
 * phase and carries the numbers of the runs done (and, after the clean run, its augmented
 * accuracies), so a resumed job continues inside the run it was in and ends with an uninterrupted
 * job's numbers. The checkpoint files alternate with the job's checkpoints across the runs
 * (job_train_run.c): a run never overwrites the file the last checkpoint names, which is the run
 * before's until its own first checkpoint.
 *
 * A search's affinity-diversity trials share their clean run (job_affinity_diversity.h): it is the
 * same computation for every trial, so the first trial to get to it trains it and leaves its
 * model and numbers in the search's folder, and the others load them. The files are written
 * under temporary names and renamed, the numbers last, so a kill leaves either nothing or the
 * whole run; a lock on the folder (flock, released by the kernel when a process dies) keeps two
 * trials from training it at once. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "job_affinity.h"
#include "job_affinity_diversity.h"
#include "job_chart.h"
#include "job_kind.h"
#include "job_train.h"
#include "metrics/classification.h"
#include "policy/policy.h"

#define MAX_POLICIES 32
/* How long a run waiting for another to train the shared clean run sleeps between looks. */
#define LOCK_WAIT_MS 200
#define RUNS         (1 + MAX_POLICIES) /* run 0 is the clean run, run 1 + i policy i's */

/* What the scores need of a run. */
struct run_numbers {
    double loss;     /* the final training loss */
    double accuracy; /* on the clean val split */
    double seconds;
};

struct affinity_diversity {
    struct job_train_params p;
    json_t *docs; /* the policies as given, or as "ops" expands them */
    struct policy *policies[MAX_POLICIES];
    size_t n; /* policies */
    struct run_numbers runs[RUNS];
    double augmented[MAX_POLICIES]; /* the clean model's accuracy on the val split per policy */
    size_t count;                   /* the val split's images */
    const char *clean_dir;          /* the shared clean run's folder, or NULL */
};

static void release(struct affinity_diversity *a)
{
    for (size_t i = 0; i < a->n; i++)
        policy_free(a->policies[i]);
    json_decref(a->docs);
    job_train_params_close(&a->p);
}

static int open_params(struct affinity_diversity *a, const struct app *app, const json_t *params,
                       struct eng_error *err)
{
    return job_train_params_open(&a->p, app, params, JOB_TRAIN_FOR_AFFINITY_DIVERSITY, err) ||
                   job_affinity_policies(params, MAX_POLICIES, &a->docs, a->policies, &a->n, err)
               ? -1
               : 0;
}

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    struct affinity_diversity a = {0};
    int rc = open_params(&a, app, params, err);
    release(&a);
    return rc;
}

/* The members run k's checkpoints add: the phase, the runs done, and after the clean run its
 * augmented accuracies and the val split's size. */
static json_t *extra(const struct affinity_diversity *a, size_t k)
{
    json_t *done = json_array(), *augmented = json_array();
    for (size_t j = 0; done && j < k; j++)
        json_array_append_new(done, json_pack("{s:o, s:o, s:f}", "loss",
                                              job_train_number(a->runs[j].loss), "accuracy",
                                              job_train_number(a->runs[j].accuracy), "seconds",
                                              a->runs[j].seconds));
    for (size_t i = 0; augmented && k > 0 && i < a->n; i++)
        json_array_append_new(augmented, job_train_number(a->augmented[i]));
    if (!done || !augmented || json_array_size(done) != k ||
        json_array_size(augmented) != (k > 0 ? a->n : 0)) {
        json_decref(done);
        json_decref(augmented);
        return NULL;
    }
    return json_pack("{s:I, s:o, s:o, s:I}", "phase", (json_int_t)k, "runs", done, "augmented",
                     augmented, "count", (json_int_t)a->count);
}

/* A saved job's runs done before its phase, back from the checkpoint; *phase the run it was
 * in. */
static int restore_done(struct affinity_diversity *a, const json_t *saved, size_t *phase,
                        struct eng_error *err)
{
    json_int_t k, count;
    json_t *done, *augmented;
    if (json_unpack((json_t *)saved, "{s:I, s:o, s:o, s:I}", "phase", &k, "runs", &done,
                    "augmented", &augmented, "count", &count) != 0 ||
        k < 0 || k > (json_int_t)a->n || json_array_size(done) != (size_t)k ||
        json_array_size(augmented) != (k > 0 ? a->n : 0))
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not affinity-diversity's");
    for (size_t j = 0; j < (size_t)k; j++) {
        const json_t *run = json_array_get(done, j);
        a->runs[j] = (struct run_numbers){job_train_real(json_object_get(run, "loss")),
                                          job_train_real(json_object_get(run, "accuracy")),
                                          job_train_real(json_object_get(run, "seconds"))};
    }
    for (size_t i = 0; k > 0 && i < a->n; i++)
        a->augmented[i] = job_train_real(json_array_get(augmented, i));
    a->count = (size_t)count;
    *phase = (size_t)k;
    return 0;
}

/* The clean model on the val split under each policy. */
static int evaluate_policies(struct affinity_diversity *a, struct job_train_run *r,
                             struct eng_error *err)
{
    for (size_t i = 0; i < a->n; i++) {
        double loss;
        if (job_train_run_evaluate(r, a->policies[i], &loss, &a->augmented[i], &a->count, err))
            return -1;
        job_ctx_log(r->ctx, "the clean model on the val split under policy %zu: accuracy %.4f", i,
                    a->augmented[i]);
    }
    return 0;
}

/* The shared clean run's file `name` in a->clean_dir, into path. */
static int clean_path(const struct affinity_diversity *a, const char *name, char *path, size_t size,
                      struct eng_error *err)
{
    int n = snprintf(path, size, "%s/%s", a->clean_dir, name);
    return n >= 0 && (size_t)n < size ? 0 : eng_fail(err, ENG_INTERNAL, "path too long: %s", name);
}

/* Takes the lock on the shared clean run's folder (made when missing) into *fd, waiting while
 * another run holds it; -1 with err, ENG_CANCELLED when the job is cancelled meanwhile. */
static int clean_lock(const struct affinity_diversity *a, struct job_ctx *ctx, int *fd,
                      struct eng_error *err)
{
    char path[4096];
    if (mkdir(a->clean_dir, 0755) != 0 && errno != EEXIST)
        return eng_fail(err, ENG_INTERNAL, "cannot make %s: %s", a->clean_dir, strerror(errno));
    if (clean_path(a, "lock", path, sizeof path, err)) return -1;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return eng_fail(err, ENG_INTERNAL, "cannot open %s: %s", path, strerror(errno));
    for (int waited = 0; flock(*fd, LOCK_EX | LOCK_NB) != 0; waited = 1) {
        if (errno != EWOULDBLOCK || job_ctx_cancelled(ctx, err)) {
            if (errno != EWOULDBLOCK)
                eng_fail(err, ENG_INTERNAL, "cannot lock %s: %s", path, strerror(errno));
            close(*fd);
            *fd = -1;
            return -1;
        }
        if (!waited) job_ctx_log(ctx, "waiting for another trial's clean run");
        nanosleep(&(struct timespec){0, LOCK_WAIT_MS * 1000000L}, NULL);
    }
    return 0;
}

/* Loads the shared clean run into r and a->runs[0] when its folder holds one: *loaded 1, or 0
 * when it holds none yet. */
static int clean_load(struct affinity_diversity *a, struct job_train_run *r, int *loaded,
                      struct eng_error *err)
{
    char json_path[4096], state_path[4096];
    json_int_t step;
    double loss, accuracy, seconds;
    *loaded = 0;
    if (clean_path(a, "clean.json", json_path, sizeof json_path, err) ||
        clean_path(a, "clean.state", state_path, sizeof state_path, err))
        return -1;
    if (access(json_path, F_OK) != 0) return 0;
    json_error_t jerr;
    json_t *numbers = json_load_file(json_path, 0, &jerr);
    int rc = numbers &&
                     json_unpack(numbers, "{s:I, s:F, s:F, s:F}", "step", &step, "loss", &loss,
                                 "accuracy", &accuracy, "seconds", &seconds) == 0 &&
                     step >= 0
                 ? 0
                 : eng_fail(err, ENG_INTERNAL, "%s is not a clean run's", json_path);
    json_decref(numbers);
    if (rc == 0)
        rc = job_train_state_load(state_path, (uint64_t)step, r->plan, r->optim, r->ema, err);
    if (rc != 0) return -1;
    a->runs[0] = (struct run_numbers){loss, accuracy, seconds};
    job_ctx_log(r->ctx, "the clean run: another trial's (loss %.4f, val accuracy %.4f)", loss,
                accuracy);
    *loaded = 1;
    return 0;
}

/* Leaves the clean run r trained in its folder: the checkpoint file, then its numbers, each
 * written under a temporary name and renamed. */
static int clean_save(const struct affinity_diversity *a, struct job_train_run *r,
                      struct eng_error *err)
{
    char path[4096], tmp[4200];
    if (clean_path(a, "clean.state", path, sizeof path, err)) return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (job_train_state_save(tmp, r->plan, r->optim, r->ema, err)) return -1;
    if (rename(tmp, path) != 0)
        return eng_fail(err, ENG_INTERNAL, "cannot write %s: %s", path, strerror(errno));
    json_t *numbers =
        json_pack("{s:I, s:f, s:f, s:f}", "step", (json_int_t)train_plan_step(r->plan), "loss",
                  a->runs[0].loss, "accuracy", a->runs[0].accuracy, "seconds", a->runs[0].seconds);
    if (!numbers) return eng_no_memory(err);
    int rc = clean_path(a, "clean.json", path, sizeof path, err);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (rc == 0 && (json_dump_file(numbers, tmp, JSON_COMPACT) != 0 || rename(tmp, path) != 0))
        rc = eng_fail(err, ENG_INTERNAL, "cannot write %s", path);
    json_decref(numbers);
    return rc;
}

void job_affinity_diversity_clean_remove(const char *clean_dir)
{
    static const char *const files[] = {"clean.json", "clean.state", "clean.json.tmp",
                                        "clean.state.tmp", "lock"};
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", clean_dir, files[i]);
        unlink(path);
    }
    rmdir(clean_dir);
}

/* Run k whole, from saved (its own checkpoint's JSON) when not NULL; the clean run's model then
 * scored under every policy. A shared clean run is loaded when its folder has it, else trained
 * and left there. */
static int train(struct affinity_diversity *a, struct job_ctx *ctx, size_t k, const json_t *saved,
                 struct eng_error *err)
{
    char phase[64], prefix[32];
    if (k == 0) {
        snprintf(phase, sizeof phase, "clean run");
        snprintf(prefix, sizeof prefix, "clean.");
    } else {
        snprintf(phase, sizeof phase, "run with policies/%zu", k - 1);
        snprintf(prefix, sizeof prefix, "policies/%zu.", k - 1);
    }
    struct job_train_run r = {.ctx = ctx,
                              .p = &a->p,
                              .policy = k ? a->policies[k - 1] : NULL,
                              .first_checkpoint = (long)k * a->p.epochs,
                              .phase = phase,
                              .metric_prefix = prefix,
                              .progress_base = (double)k / (double)(1 + a->n),
                              .progress_span = 1 / (double)(1 + a->n),
                              .extra = extra(a, k)};
    int lock = -1, loaded = 0;
    int rc = r.extra ? 0 : eng_no_memory(err);
    if (rc == 0 && k == 0 && a->clean_dir) rc = clean_lock(a, ctx, &lock, err);
    if (rc == 0) rc = job_train_run_open(&r, err);
    if (rc == 0 && lock >= 0) rc = clean_load(a, &r, &loaded, err);
    if (rc == 0 && !loaded)
        rc = (saved && job_train_run_restore(&r, saved, err)) || job_train_run_epochs(&r, err) ? -1
                                                                                               : 0;
    if (rc == 0 && !loaded) {
        /* The last epoch was evaluated (eval_every is the epochs). */
        const json_t *last = json_array_get(r.metrics, json_array_size(r.metrics) - 1);
        a->runs[k] = (struct run_numbers){job_train_metric(last, "train_loss"),
                                          job_train_metric(last, "val_accuracy"), r.seconds};
    }
    if (rc == 0 && k == 0) rc = evaluate_policies(a, &r, err);
    if (rc == 0 && lock >= 0 && !loaded) rc = clean_save(a, &r, err);
    if (lock >= 0) close(lock);
    json_decref(r.extra);
    job_train_run_close(&r);
    return rc;
}

/* Policy i's scores. */
struct scores {
    double affinity, diversity, gain;
};

static struct scores scores(const struct affinity_diversity *a, size_t i)
{
    struct scores s;
    double difference;
    metric_affinity(a->runs[0].accuracy, a->augmented[i], &difference, &s.affinity);
    s.diversity = a->runs[1 + i].loss / a->runs[0].loss;
    s.gain = a->runs[1 + i].accuracy - a->runs[0].accuracy;
    return s;
}

/* table.csv: a row per policy. */
static int write_table(struct affinity_diversity *a, struct job_ctx *ctx, char *const *names,
                       struct eng_error *err)
{
    char *csv = NULL;
    size_t size;
    FILE *f = open_memstream(&csv, &size);
    if (!f) return eng_no_memory(err);
    fputs("policy,affinity,diversity,accuracy,gain,loss,augmented_accuracy\n", f);
    for (size_t i = 0; i < a->n; i++) {
        struct scores s = scores(a, i);
        const double values[] = {s.affinity, s.diversity,         a->runs[1 + i].accuracy,
                                 s.gain,     a->runs[1 + i].loss, a->augmented[i]};
        job_classify_csv_field(f, names[i]);
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            fputc(',', f);
            if (isfinite(values[v])) fprintf(f, "%.17g", values[v]);
        }
        fputc('\n', f);
    }
    int rc = fclose(f) == 0 ? 0 : eng_no_memory(err);
    if (rc == 0) rc = job_classify_write_artifact(ctx, "table.csv", csv, size, err);
    free(csv);
    return rc;
}

/* scatter.png: affinity on x, diversity on y, coloured by gain, through the clean model's (1, 1).
 */
static int write_scatter(struct affinity_diversity *a, struct job_ctx *ctx, struct eng_error *err)
{
    double *xs = malloc(3 * a->n * sizeof *xs);
    if (!xs) return eng_no_memory(err);
    double *ys = xs + a->n, *gains = ys + a->n;
    for (size_t i = 0; i < a->n; i++) {
        struct scores s = scores(a, i);
        xs[i] = s.affinity;
        ys[i] = s.diversity;
        gains[i] = s.gain;
    }
    void *png = NULL;
    size_t size;
    int rc = job_chart_scatter(xs, ys, gains, a->n, 1, 1, &png, &size, err);
    if (rc == 0) rc = job_classify_write_artifact(ctx, "scatter.png", png, size, err);
    free(png);
    free(xs);
    return rc;
}

/* The result: the clean run, a row per policy, and the scatter's points with its colour scale. */
static json_t *result_json(const struct affinity_diversity *a, char *const *names)
{
    json_t *rows = json_array(), *points = json_array();
    double scale = 0, seconds = 0;
    for (size_t i = 0; rows && points && i < a->n; i++) {
        struct scores s = scores(a, i);
        const struct run_numbers *run = &a->runs[1 + i];
        json_array_append_new(
            rows, json_pack("{s:s, s:O, s:o, s:o, s:o, s:o, s:o, s:o}", "name", names[i], "policy",
                            json_array_get(a->docs, i), "affinity", job_train_number(s.affinity),
                            "diversity", job_train_number(s.diversity), "accuracy",
                            job_train_number(run->accuracy), "gain", job_train_number(s.gain),
                            "loss", job_train_number(run->loss), "augmented_accuracy",
                            job_train_number(a->augmented[i])));
        json_array_append_new(points, json_pack("{s:s, s:o, s:o, s:o}", "name", names[i],
                                                "affinity", job_train_number(s.affinity),
                                                "diversity", job_train_number(s.diversity), "gain",
                                                job_train_number(s.gain)));
        if (isfinite(s.gain) && fabs(s.gain) > scale) scale = fabs(s.gain);
    }
    for (size_t k = 0; k <= a->n; k++)
        seconds += a->runs[k].seconds;
    if (!rows || !points || json_array_size(rows) != a->n || json_array_size(points) != a->n) {
        json_decref(rows);
        json_decref(points);
        return NULL;
    }
    return json_pack("{s:{s:o, s:o}, s:I, s:I, s:I, s:o, s:{s:o, s:f}, s:f}", "clean", "loss",
                     job_train_number(a->runs[0].loss), "accuracy",
                     job_train_number(a->runs[0].accuracy), "count", (json_int_t)a->count, "epochs",
                     (json_int_t)a->p.epochs, "steps", (json_int_t)a->p.steps, "policies", rows,
                     "scatter", "points", points, "gain_scale", scale > 0 ? scale : 1,
                     "duration_seconds", seconds);
}

static int finish(struct affinity_diversity *a, struct job_ctx *ctx, json_t **result,
                  struct eng_error *err)
{
    char *names[MAX_POLICIES] = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < a->n; i++)
        if (!(names[i] = job_affinity_policy_name(json_array_get(a->docs, i))))
            rc = eng_no_memory(err);
    if (rc == 0) rc = write_table(a, ctx, names, err);
    if (rc == 0) rc = write_scatter(a, ctx, err);
    if (rc == 0) rc = (*result = result_json(a, names)) ? 0 : eng_no_memory(err);
    if (rc == 0) rc = job_classify_write_result(ctx, *result, err);
    for (size_t i = 0; i < a->n; i++)
        free(names[i]);
    return rc;
}

int job_affinity_diversity_run(struct job_ctx *ctx, const json_t *params, const char *clean_dir,
                               json_t **result, struct eng_error *err)
{
    struct affinity_diversity a = {.clean_dir = clean_dir};
    const json_t *saved = job_ctx_restored(ctx);
    size_t phase = 0;
    int rc = open_params(&a, job_ctx_app(ctx), params, err);
    if (rc == 0 && saved) rc = restore_done(&a, saved, &phase, err);
    for (size_t k = phase; rc == 0 && k <= a.n; k++)
        rc = train(&a, ctx, k, k == phase ? saved : NULL, err);
    if (rc == 0) rc = finish(&a, ctx, result, err);
    /* The checkpoint files are kept only for a job that will run again (as train's). */
    if (rc == 0 || !job_ctx_resumes(ctx)) job_train_remove_states(ctx);
    if (rc != 0 && *result) {
        json_decref(*result);
        *result = NULL;
    }
    release(&a);
    return rc;
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    return job_affinity_diversity_run(ctx, params, NULL, result, err);
}

const struct job_kind job_kind_affinity_diversity = {
    .name = "affinity-diversity",
    .help = "a model trained without a policy and with each of a list of policies: per policy "
            "affinity (the clean model's val accuracy under it over its clean one), diversity "
            "(final training loss over the clean run's) and the val accuracy gain, as a table "
            "and a scatter (Gontijo-Lopes et al. 2020, Figure 1)",
    .validate = validate,
    .run = run,
};

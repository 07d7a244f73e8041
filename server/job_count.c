/* The debug kind "count" (debug_routes only): counts units 1..units, unit_ms each, and sums
 * their numbers, with a checkpoint after every unit. It is what the job system's own tests run:
 * killed anywhere and resumed, it must end with every unit counted exactly once, which the
 * result's total (units (units + 1) / 2) and its artifact units.csv (one line per unit: the unit
 * and the attempt that counted it) both show. */
#include <stdio.h>
#include <time.h>

#include "job_kind.h"

#define MAX_UNITS   100000
#define MAX_UNIT_MS 60000
/* A unit's sleep is cut into slices this long, with a cancellation check between them. */
#define SLICE_MS 10

static const char *const names[] = {"units", "unit_ms", "fail_at", NULL};

static int read_params(const json_t *params, long long *units, long long *unit_ms,
                       long long *fail_at, struct eng_error *err)
{
    return job_params_known(params, names, err) ||
                   job_param_int(params, "units", 1, 0, 1, MAX_UNITS, units, err) ||
                   job_param_int(params, "unit_ms", 0, 0, 0, MAX_UNIT_MS, unit_ms, err) ||
                   job_param_int(params, "fail_at", 0, 0, 0, MAX_UNITS, fail_at, err)
               ? -1
               : 0;
}

static int validate(const struct app *app, const json_t *params, struct eng_error *err)
{
    long long units, unit_ms, fail_at;
    return read_params(params, &units, &unit_ms, &fail_at, err);
}

/* Sleeps ms, stopping early (-1 with err) when the job is cancelled. */
static int work(struct job_ctx *ctx, long long ms, struct eng_error *err)
{
    for (long long slept = 0; slept < ms; slept += SLICE_MS) {
        if (job_ctx_cancelled(ctx, err) != 0) return -1;
        long long slice = ms - slept < SLICE_MS ? ms - slept : SLICE_MS;
        struct timespec pause = {.tv_sec = 0, .tv_nsec = slice * 1000000L};
        while (nanosleep(&pause, &pause) != 0) {
        }
    }
    return job_ctx_cancelled(ctx, err);
}

static int run(struct job_ctx *ctx, const json_t *params, json_t **result, struct eng_error *err)
{
    long long units, unit_ms, fail_at;
    if (read_params(params, &units, &unit_ms, &fail_at, err) != 0) return -1;
    /* The checkpoint: units done, their sum, and units.csv's length after the last of them. */
    json_int_t done = 0, total = 0, bytes = 0;
    const json_t *saved = job_ctx_restored(ctx);
    if (saved && json_unpack((json_t *)saved, "{s:I, s:I, s:I}", "done", &done, "total", &total,
                             "bytes", &bytes) != 0)
        return eng_fail(err, ENG_INTERNAL, "the checkpoint is not count's");
    json_int_t resumed_from = done;
    FILE *log = job_ctx_artifact_resume(ctx, "units.csv", (long)bytes, err);
    if (!log) return -1;
    int rc = 0;
    if (bytes == 0 && fputs("unit,attempt\n", log) == EOF)
        rc = eng_fail(err, ENG_INTERNAL, "cannot write units.csv");
    if (done > 0) job_ctx_log(ctx, "resuming after unit %lld of %lld", (long long)done, units);
    while (rc == 0 && done < units) {
        json_int_t unit = done + 1;
        if (work(ctx, unit_ms, err) != 0) {
            rc = -1;
            break;
        }
        if (unit == fail_at) {
            rc = eng_fail(err, ENG_INVALID, "unit %lld failed, as params.fail_at asked",
                          (long long)unit);
            break;
        }
        if (fprintf(log, "%lld,%d\n", (long long)unit, job_ctx_attempt(ctx)) < 0 ||
            fflush(log) != 0) {
            rc = eng_fail(err, ENG_INTERNAL, "cannot write units.csv");
            break;
        }
        json_t *state = json_pack("{s:I, s:I, s:I}", "done", unit, "total", total + unit, "bytes",
                                  (json_int_t)ftell(log));
        rc = state ? job_ctx_checkpoint(ctx, state, (double)unit / (double)units, "counting", err)
                   : eng_no_memory(err);
        json_decref(state);
        if (rc != 0) break;
        done = unit;
        total += unit;
        job_ctx_metric(ctx, "total", (double)total, (long)unit);
    }
    if (fclose(log) != 0 && rc == 0) rc = eng_fail(err, ENG_INTERNAL, "cannot write units.csv");
    if (rc != 0) return -1;
    *result = json_pack("{s:I, s:I, s:I, s:i}", "units", (json_int_t)units, "total", total,
                        "resumed_from", resumed_from, "attempt", job_ctx_attempt(ctx));
    return *result ? 0 : eng_no_memory(err);
}

const struct job_kind job_kind_count = {
    .name = "count",
    .help = "counts units 1..units, unit_ms each, with a checkpoint after each (debug_routes)",
    .flags = JOB_KIND_DEBUG,
    .validate = validate,
    .run = run,
};

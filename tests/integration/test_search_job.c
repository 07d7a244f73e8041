/* The job kind search with the affinity objective, against the real binary, on the colour model
 * (colour_model.h: each class's logit is its channel's mean) and a val split of solid colours
 * (colour_dataset.h's, each class's channel in [200, 230], the others in [20, 50]), so a trial's
 * value under Solarize follows from the colours by hand: a channel at or above the threshold is
 * inverted, and an image is right when its class's channel is the largest after that. Each
 * trial's value is also the affinity kind's accuracy for its policy (a separate job); a grid
 * enumerates its space exactly and stops; kill -9 then resume ends with the trials of an
 * uninterrupted search; save_as saves the best policy for /v1/augment; the time budget is the
 * search's wall time; bad params are refused with the field named. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "colour_dataset.h"
#include "colour_model.h"
#include "harness.h"
#include "image/codec.h"
#include "job_client.h"

#define CONFIG "{\"preprocess\": {}, \"labels\": \"labels.txt\"}"
/* The model's classes in channel order; the dataset's class c (class_names) is channel 2 - c. */
#define LABELS "red\ngreen\nblue\n"

/* Val images per class. */
#define PER_CLASS 40

#define SOLARIZE "{\"op\": \"Solarize\", \"threshold\": {\"$search\": {\"int\": [0, 256]}}}"

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) fail_msg("cannot make %s", path);
}

/* A dataset of one split, val: per class n images, image i of class c colour(c, i). */
static void make_dataset(const struct server *srv, int n, char id[64])
{
    char src[PATH_MAX], path[PATH_MAX + 64];
    snprintf(src, sizeof src, "%s/search%d", srv->dir, n);
    make_dir(src);
    snprintf(path, sizeof path, "%s/val", src);
    make_dir(path);
    for (int c = 0; c < CLASSES; c++) {
        snprintf(path, sizeof path, "%s/val/%s", src, class_names[c]);
        make_dir(path);
        for (int i = 0; i < n; i++) {
            unsigned char rgb[3];
            size_t size;
            colour(c, i, rgb);
            void *png = solid_png(rgb, &size);
            snprintf(path, sizeof path, "%s/val/%s/%03d.png", src, class_names[c], i);
            write_file(path, png, size);
            free(png);
        }
    }
    job_import_dataset(srv, src, id);
}

/* The accuracy of the colour model on the dataset of n per class under Solarize at each of the
 * thresholds in turn: by hand. */
static double solarized_accuracy(const double *thresholds, int count, int n)
{
    int right = 0;
    for (int c = 0; c < CLASSES; c++)
        for (int i = 0; i < n; i++) {
            unsigned char rgb[3];
            colour(c, i, rgb);
            for (int t = 0; t < count; t++)
                for (int k = 0; k < 3; k++)
                    if (rgb[k] >= thresholds[t]) rgb[k] = (unsigned char)(255 - rgb[k]);
            int top = 0; /* the first of equals, as the model's ranking */
            for (int k = 1; k < 3; k++)
                if (rgb[k] > rgb[top]) top = k;
            right += top == 2 - c;
        }
    return (double)right / (CLASSES * n);
}

/* A server on the colour model, with a dataset of n images per class imported: its id into ds. */
static struct server *start(void **state, int n, char ds[64])
{
    colour_model_write("colour", CONFIG, LABELS);
    struct server *srv = harness_start_with_models(state, "\"job_threads\": 2");
    make_dataset(srv, n, ds);
    return srv;
}

/* A search's params text: space, algorithm and budget (JSON texts) on dataset ds, and more
 * members (a text starting with ", ", or ""). */
static char *params(const char *space, const char *algorithm, const char *budget, const char *ds,
                    const char *more)
{
    char *text = NULL;
    assert_true(asprintf(&text,
                         "{\"space\": %s, \"algorithm\": %s, \"objective\": \"affinity\", "
                         "\"budget\": %s, \"dataset\": \"%s\", \"splits\": {\"val\": \"val\"}, "
                         "\"model\": \"colour\", \"seed\": 5%s}",
                         space, algorithm, budget, ds, more) > 0);
    return text;
}

/* Runs a search to success: its result (the caller owns it) and its id into id. */
static json_t *run_search(const struct server *srv, const char *text, char id[32])
{
    job_submit(srv, "search", text, id);
    json_t *doc = job_wait_state(srv, id, "succeeded");
    json_t *result = json_incref(json_object_get(doc, "result"));
    json_decref(doc);
    assert_non_null(result);
    return result;
}

/* Runs the search of those params (as params() takes them) to success: its result, its id. */
static json_t *search(const struct server *srv, const char *space, const char *algorithm,
                      const char *budget, const char *ds, const char *more, char id[32])
{
    char *text = params(space, algorithm, budget, ds, more);
    json_t *result = run_search(srv, text, id);
    free(text);
    return result;
}

static double number(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_number(v)) fail_msg("%s is not a number", key);
    return json_number_value(v);
}

/* The best of the trials is the first with the largest value (trial 0 succeeded). */
static void check_best(const json_t *result)
{
    const json_t *trials = json_object_get(result, "trials"),
                 *best = json_object_get(result, "best");
    size_t top = 0;
    for (size_t i = 1; i < json_array_size(trials); i++)
        if (json_is_number(json_object_get(json_array_get(trials, i), "value")) &&
            number(json_array_get(trials, i), "value") >
                number(json_array_get(trials, top), "value"))
            top = i;
    const json_t *row = json_array_get(trials, top);
    assert_int_equal(json_integer_value(json_object_get(best, "trial")), (json_int_t)top);
    assert_true(number(best, "value") == number(row, "value"));
    assert_true(json_equal(json_object_get(best, "policy"), json_object_get(row, "policy")));
    assert_true(json_equal(json_object_get(best, "params"), json_object_get(row, "params")));
}

/* A random search over Solarize's threshold: every value is the hand-computed accuracy at its
 * threshold and the affinity kind's accuracy for its policy; the best is the largest. */
static void test_random_is_affinity(void **state)
{
    char ds[64], id[32];
    struct server *srv = start(state, PER_CLASS, ds);
    json_t *result = search(srv, SOLARIZE, "\"random\"", "{\"trials\": 8}", ds, "", id);
    const json_t *trials = json_object_get(result, "trials");
    assert_int_equal(json_array_size(trials), 8);
    json_t *policies = json_array();
    int distinct = 0;
    for (size_t i = 0; i < 8; i++) {
        json_t *row = json_array_get(trials, i);
        assert_int_equal(json_int(row, "trial"), (json_int_t)i);
        assert_string_equal(json_str(row, "state"), "succeeded");
        double threshold = number(json_object_get(row, "params"), "/threshold");
        assert_true(threshold == number(json_object_get(row, "policy"), "threshold"));
        assert_true(number(row, "value") == solarized_accuracy(&threshold, 1, PER_CLASS));
        distinct += i && number(row, "value") != number(json_array_get(trials, 0), "value");
        json_array_append(policies, json_object_get(row, "policy"));
    }
    assert_true(distinct >
                0); /* the draws are not all alike: the comparison below means something */
    check_best(result);

    char *affinity = NULL;
    char *list = json_dumps(policies, JSON_COMPACT);
    assert_true(asprintf(&affinity,
                         "{\"model\": \"colour\", \"dataset\": \"%s\", \"split\": \"val\", "
                         "\"seed\": 5, \"policies\": %s}",
                         ds, list) > 0);
    char aid[32];
    job_submit(srv, "affinity", affinity, aid);
    json_t *doc = job_wait_state(srv, aid, "succeeded");
    const json_t *rows = json_object_get(json_object_get(doc, "result"), "policies");
    for (size_t i = 0; i < 8; i++)
        assert_true(number(json_object_get(json_array_get(rows, i), "accuracy"), "mean") ==
                    number(json_array_get(trials, i), "value"));
    json_decref(doc);
    free(affinity);
    free(list);
    json_decref(policies);

    /* The leaderboard ranks the best first; the curve is a chart. */
    char path[128];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/leaderboard.csv", id);
    http_get(srv, path, &r);
    assert_status(&r, 200);
    char expected[64];
    snprintf(expected, sizeof expected, "\n1,%lld,succeeded,",
             (long long)json_int(json_object_get(result, "best"), "trial"));
    assert_contains(r.body, "rank,trial,state,value,seconds,params,policy,job,epochs\n");
    assert_contains(r.body, expected);
    http_response_free(&r);
    expect_chart_artifact(srv, id, "best.png");
    json_decref(result);
}

/* A grid over two Solarizes at 0 or 256: exactly its four points, the last dimension fastest;
 * two inversions undo each other, one leaves every image wrong. */
static void test_grid_enumerates(void **state)
{
    char ds[64], id[32];
    struct server *srv = start(state, 4, ds);
    json_t *result = search(
        srv,
        "{\"seq\": [{\"op\": \"Solarize\", \"threshold\": {\"$search\": {\"choice\": [0, "
        "256]}}}, {\"op\": \"Solarize\", \"threshold\": {\"$search\": {\"choice\": [0, 256]}}}]}",
        "\"grid\"", "{\"trials\": 100}", ds, "", id);
    const json_t *trials = json_object_get(result, "trials");
    assert_int_equal(json_array_size(trials), 4);
    for (int i = 0; i < 4; i++) {
        const json_t *row = json_array_get(trials, (size_t)i);
        double t[2] = {i / 2 ? 256 : 0, i % 2 ? 256 : 0};
        assert_true(number(json_object_get(row, "params"), "/seq/0/threshold") == t[0]);
        assert_true(number(json_object_get(row, "params"), "/seq/1/threshold") == t[1]);
        assert_true(number(row, "value") == solarized_accuracy(t, 2, 4));
        assert_true(number(row, "value") == (i == 0 || i == 3 ? 1 : 0));
    }
    check_best(result);
    assert_int_equal(json_int(json_object_get(result, "best"), "trial"), 0);
    json_decref(result);
}

/* A point with no policy is a failed trial, not a failed job: a grid over the subsets of two ops
 * ends with the empty one, which the space refuses. Of the others, FlipLR alone leaves solid
 * images as they are. A space of policies of two views, which no trial could score, is refused at
 * submission, naming where it gives them; a search whose every trial fails (a crop larger than
 * the images) fails, saying so. */
static void test_failed_trials(void **state)
{
    char ds[64], id[32];
    struct server *srv = start(state, 4, ds);
    json_t *result = search(srv, "{\"space\": \"ops-subset\", \"ops\": [\"Invert\", \"FlipLR\"]}",
                            "\"grid\"", "{\"trials\": 10}", ds, "", id);
    const json_t *trials = json_object_get(result, "trials");
    assert_int_equal(json_array_size(trials), 4);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_str(json_array_get(trials, i), "state"), "succeeded");
    json_t *failed = json_array_get(trials, 3);
    assert_string_equal(json_str(failed, "state"), "failed");
    assert_true(json_is_null(json_object_get(failed, "value")));
    assert_contains(json_str(failed, "error"), "at least one op");
    assert_true(number(json_array_get(trials, 1), "value") == 0); /* Invert alone */
    assert_true(number(json_array_get(trials, 2), "value") == 1); /* FlipLR alone */
    assert_true(number(json_object_get(result, "best"), "value") == 1);
    check_best(result);
    json_decref(result);

    /* Policies of two views, which the objective's single pass cannot score: refused at once,
     * rather than every trial failing. */
    char *text = params("{\"views\": [" SOLARIZE ", {\"op\": \"FlipLR\"}]}", "\"random\"",
                        "{\"trials\": 2}", ds, "");
    job_expect_refusal(srv, "search", text, 422,
                       "params.space: the space at each dimension's low gives a policy of 2 views");
    free(text);
    /* A crop larger than every image parses, but no trial can draw an image through it: the
     * search fails, saying so. */
    text = params("{\"op\": \"RandomCrop\", \"height\": 4096, \"width\": 4096}", "\"random\"",
                  "{\"trials\": 2}", ds, "");
    job_submit(srv, "search", text, id);
    free(text);
    json_t *doc = job_wait_state(srv, id, "failed");
    assert_contains(json_str(doc, "error"), "every trial failed (2)");
    assert_contains(json_str(doc, "error"), "RandomCrop: 4096x4096 is larger than");
    json_decref(doc);
}

/* Whether two results' trials are alike but for their durations and their children's ids
 * (another search's jobs): 0 when they are, else the first trial that differs plus one. */
static size_t trials_differ(const json_t *a, const json_t *b)
{
    const json_t *ta = json_object_get(a, "trials"), *tb = json_object_get(b, "trials");
    if (json_array_size(ta) != json_array_size(tb)) return SIZE_MAX;
    for (size_t i = 0; i < json_array_size(ta); i++) {
        json_t *ra = json_copy(json_array_get(ta, i)), *rb = json_copy(json_array_get(tb, i));
        json_object_del(ra, "seconds");
        json_object_del(rb, "seconds");
        json_object_del(ra, "job");
        json_object_del(rb, "job");
        int same = json_equal(ra, rb);
        json_decref(ra);
        json_decref(rb);
        if (!same) return i + 1;
    }
    return 0;
}

/* The children of job id (every page of GET /v1/jobs?parent=id): a new array. */
static json_t *children_of(const struct server *srv, const char *id)
{
    json_t *all = json_array();
    char next[64] = "";
    do {
        char path[160];
        snprintf(path, sizeof path, "/v1/jobs?parent=%s&limit=100%s%s", id,
                 next[0] ? "&after=" : "", next);
        struct http_response r;
        http_get(srv, path, &r);
        assert_status(&r, 200);
        json_t *doc = http_json(&r);
        http_response_free(&r);
        json_array_extend(all, json_object_get(doc, "jobs"));
        const json_t *n = json_object_get(doc, "next");
        snprintf(next, sizeof next, "%s", json_is_string(n) ? json_string_value(n) : "");
        json_decref(doc);
    } while (next[0]);
    return all;
}

/* Each trial of the result ran as exactly one child of the search id, of the kind search-trial,
 * whose params hold the trial's number and policy and which ended in the trial's state, with the
 * trial's value; no other child. */
static void check_children(const struct server *srv, const char *id, const json_t *result)
{
    const json_t *trials = json_object_get(result, "trials");
    json_t *children = children_of(srv, id);
    assert_int_equal(json_array_size(children), json_array_size(trials));
    size_t i;
    json_t *child;
    json_array_foreach(children, i, child)
    {
        assert_string_equal(json_str(child, "parent"), id);
        assert_string_equal(json_str(child, "kind"), "search-trial");
        json_int_t k = json_int(json_object_get(child, "params"), "trial");
        assert_true(k >= 0 && (size_t)k < json_array_size(trials));
        json_t *row = json_array_get(trials, (size_t)k);
        /* The trial's child is this one: so no trial had two. */
        assert_string_equal(json_str(row, "job"), json_str(child, "id"));
        assert_string_equal(json_str(child, "state"), json_str(row, "state"));
        assert_true(json_equal(json_object_get(json_object_get(child, "params"), "policy"),
                               json_object_get(row, "policy")));
        if (strcmp(json_str(row, "state"), "succeeded") == 0)
            assert_true(number(json_object_get(child, "result"), "value") == number(row, "value"));
    }
    json_decref(children);
}

/* A search killed with kill -9 mid-way, with `parallel` trials at once, resumes and ends with the
 * trials of an uninterrupted one (all but their durations and children); each trial ran as one
 * child, which never ran again once it had succeeded (a second child, or a child that did not
 * succeed, would show). */
static void kill9_resume(void **state, const char *parallel)
{
    char ds[64], id[32], id2[32];
    struct server *first = start(state, 300, ds), *second;
    char *text = params(SOLARIZE, "{\"name\": \"evolution\", \"population\": 4, \"sample\": 2}",
                        "{\"trials\": 100}", ds, parallel);
    job_submit(first, "search", text, id);
    json_t *resumed = job_kill_and_resume(state, first, id, 0.3, "resuming at trial", &second);
    /* The resume took trials in flight back (its last checkpoint had asked the next trial
     * before the kill, as every checkpoint after a tell is followed at once by an ask's). */
    char path[128];
    struct http_response r;
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    http_get(second, path, &r);
    const char *line = strstr(r.body, "resuming at trial ");
    unsigned told, flying;
    assert_non_null(line);
    assert_int_equal(sscanf(line, "resuming at trial %u, with %u in flight", &told, &flying), 2);
    if (flying < 1 || told < 30) fail_msg("resumed at trial %u with %u in flight", told, flying);
    http_response_free(&r);
    json_t *result = run_search(second, text, id2);
    free(text);
    const json_t *a = json_object_get(resumed, "result");
    assert_int_equal(json_array_size(json_object_get(a, "trials")), 100);
    size_t differs = trials_differ(a, result);
    if (differs) fail_msg("trial %zu differs after the resume", differs - 1);
    json_t *best_a = json_deep_copy(json_object_get(a, "best")),
           *best_b = json_deep_copy(json_object_get(result, "best"));
    assert_true(json_equal(best_a, best_b));
    json_decref(best_a);
    json_decref(best_b);
    check_children(second, id, a);
    for (size_t i = 0; i < 100; i++)
        assert_string_equal(json_str(json_array_get(json_object_get(a, "trials"), i), "state"),
                            "succeeded");
    /* trials.jsonl, which the killed attempt was appending to, holds each trial once, in order:
     * what a trial after the last checkpoint wrote was cut. */
    job_expect_trials_file(second, id, 100);
    json_decref(result);
    json_decref(resumed);
}

static void test_kill9_resume(void **state)
{
    kill9_resume(state, "");
}

static void test_kill9_resume_parallel(void **state)
{
    kill9_resume(state, ", \"parallel\": 2");
}

/* Random's points do not depend on what it was told, so two trials at once give the trials of
 * one at a time, each the hand-computed accuracy at its threshold; each trial is a child job
 * listed by ?parent=, and the children stay out of the list of jobs unless asked for. */
static void test_parallel_random(void **state)
{
    char ds[64], id1[32], id2[32];
    struct server *srv = start(state, PER_CLASS, ds);
    json_t *one = search(srv, SOLARIZE, "\"random\"", "{\"trials\": 6}", ds, "", id1);
    json_t *two =
        search(srv, SOLARIZE, "\"random\"", "{\"trials\": 6}", ds, ", \"parallel\": 2", id2);
    assert_int_equal(json_array_size(json_object_get(two, "trials")), 6);
    size_t differs = trials_differ(one, two);
    if (differs) fail_msg("trial %zu differs with parallel 2", differs - 1);
    for (size_t i = 0; i < 6; i++) {
        json_t *row = json_array_get(json_object_get(two, "trials"), i);
        double threshold = number(json_object_get(row, "params"), "/threshold");
        assert_true(number(row, "value") == solarized_accuracy(&threshold, 1, PER_CLASS));
    }
    check_best(two);
    check_children(srv, id1, one);
    check_children(srv, id2, two);

    struct http_response r;
    http_get(srv, "/v1/jobs?limit=100", &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    http_response_free(&r);
    const json_t *jobs = json_object_get(doc, "jobs");
    assert_int_equal(json_array_size(jobs), 2);
    assert_string_equal(json_str(json_array_get(jobs, 0), "id"), id2);
    assert_string_equal(json_str(json_array_get(jobs, 1), "id"), id1);
    json_decref(doc);
    http_get(srv, "/v1/jobs?limit=100&children=1", &r);
    assert_status(&r, 200);
    doc = http_json(&r);
    http_response_free(&r);
    assert_int_equal(json_array_size(json_object_get(doc, "jobs")), 2 + 6 + 6);
    json_decref(doc);
    http_get(srv, "/v1/jobs?children=2", &r);
    assert_status(&r, 422);
    assert_contains(r.body, "children: 0 or 1");
    http_response_free(&r);
    json_decref(one);
    json_decref(two);
}

/* Evolution's proposals depend on what it was told; with the schedule fixed (trial k asked once
 * trials 0 to k - parallel are told), two runs with three at once give the same trials. */
static void test_parallel_evolution_repeats(void **state)
{
    char ds[64], id1[32], id2[32];
    struct server *srv = start(state, PER_CLASS, ds);
    const char *evolution = "{\"name\": \"evolution\", \"population\": 4, \"sample\": 2}";
    json_t *a = search(srv, SOLARIZE, evolution, "{\"trials\": 24}", ds, ", \"parallel\": 3", id1);
    json_t *b = search(srv, SOLARIZE, evolution, "{\"trials\": 24}", ds, ", \"parallel\": 3", id2);
    size_t differs = trials_differ(a, b);
    if (differs) fail_msg("trial %zu differs between the two runs", differs - 1);
    check_best(a);
    check_children(srv, id2, b);
    json_decref(a);
    json_decref(b);
}

/* The children of search id in this state, once there are at least n of them (failing after
 * WAIT_S): a new array. */
static json_t *wait_children(const struct server *srv, const char *id, const char *state, size_t n)
{
    for (int waited = 0; waited < WAIT_S * 20; waited++) {
        json_t *children = children_of(srv, id), *found = json_array();
        size_t i;
        json_t *child;
        json_array_foreach(children, i, child) if (strcmp(json_str(child, "state"), state) == 0)
            json_array_append(found, child);
        json_decref(children);
        if (json_array_size(found) >= n) return found;
        json_decref(found);
        job_sleep_ms(50);
    }
    fail_msg("search %s never had %zu %s children", id, n, state);
    return NULL;
}

/* A policy of long trials: each image made side x side, solarized at threshold (a JSON text),
 * and made 8 x 8 again. */
#define RESIZED(side, threshold)                                                                   \
    "{\"seq\": [{\"op\": \"Resize\", \"height\": " side ", \"width\": " side                       \
    "}, {\"op\": \"Solarize\", \"threshold\": " threshold "}, "                                    \
    "{\"op\": \"Resize\", \"height\": 8, \"width\": 8}]}"
/* Trials of a second or more in a Release build, against a cancel seen within 0.2 s. */
#define SLOW_SPACE RESIZED("1024", "{\"$search\": {\"int\": [0, 256]}}")

/* Starts a search of space, algorithm, budget and more params (as params() takes them) on a
 * dataset of 300 images per class, into *srv and id, and waits until n of its children run:
 * those children. */
static json_t *slow_search(void **state, const char *space, const char *algorithm,
                           const char *budget, const char *more, size_t n, struct server **srv,
                           char id[32])
{
    char ds[64];
    *srv = start(state, 300, ds);
    char *text = params(space, algorithm, budget, ds, more);
    job_submit(*srv, "search", text, id);
    free(text);
    return wait_children(*srv, id, "running", n);
}

/* A child cancelled while it runs is that trial's end, "cancelled" and told as failed; the search
 * goes on with the others and succeeds. A grid: the long trial first, then a short one. */
static void test_cancel_child(void **state)
{
    char id[32];
    struct server *srv;
    json_t *running = slow_search(
        state,
        "{\"$search\": {\"choice\": [" RESIZED("1024", "128") ", {\"op\": \"Solarize\", "
                                                              "\"threshold\": 128}]}}",
        "\"grid\"", "{\"trials\": 2}", "", 1, &srv, id);
    const char *child = json_str(json_array_get(running, 0), "id");
    assert_int_equal(json_int(json_object_get(json_array_get(running, 0), "params"), "trial"), 0);
    job_cancel(srv, child);
    json_t *doc = job_wait_state(srv, id, "succeeded");
    const json_t *trials = json_object_get(json_object_get(doc, "result"), "trials");
    assert_int_equal(json_array_size(trials), 2);
    json_t *row = json_array_get(trials, 0);
    assert_string_equal(json_str(row, "state"), "cancelled");
    assert_string_equal(json_str(row, "job"), child);
    assert_true(json_is_null(json_object_get(row, "value")));
    assert_string_equal(json_str(json_array_get(trials, 1), "state"), "succeeded");
    double threshold = 128;
    assert_true(number(json_array_get(trials, 1), "value") ==
                solarized_accuracy(&threshold, 1, 300));
    assert_int_equal(json_int(json_object_get(json_object_get(doc, "result"), "best"), "trial"), 1);
    check_children(srv, id, json_object_get(doc, "result"));
    json_decref(doc);
    json_decref(running);
}

/* Cancelling a search cancels its children: the two running at once end cancelled, and none is
 * left queued or running. */
static void test_cancel_parent(void **state)
{
    char id[32];
    struct server *srv;
    json_t *running = slow_search(state, SLOW_SPACE, "\"random\"", "{\"trials\": 100}",
                                  ", \"parallel\": 2", 2, &srv, id);
    job_cancel(srv, id);
    json_decref(job_wait_state(srv, id, "cancelled"));
    json_t *children = children_of(srv, id);
    size_t i;
    json_t *child;
    json_array_foreach(children, i, child)
    {
        const char *s = json_str(child, "state");
        assert_true(strcmp(s, "cancelled") == 0 || strcmp(s, "succeeded") == 0);
    }
    json_array_foreach(running, i, child)
    {
        json_t *now = job_get(srv, json_str(child, "id"), NULL);
        assert_string_equal(json_str(now, "state"), "cancelled");
        json_decref(now);
    }
    json_decref(children);
    json_decref(running);
}

/* The time budget is the search's wall time: with two trials at once, trials keep starting until
 * the search has run its seconds (their seconds, summed, pass that twice as fast), and none
 * starts after: the search takes at least the budget, and each trial was queued within it (its
 * child's created time, the search's started time: the server's clock). */
static void test_time_budget(void **state)
{
    char ds[64], id[32];
    struct server *srv = start(state, 300, ds);
    char *text = params(RESIZED("512", "{\"$search\": {\"int\": [0, 256]}}"), "\"random\"",
                        "{\"trials\": 1000, \"seconds\": 3}", ds, ", \"parallel\": 2");
    double t0 = harness_now();
    json_t *result = run_search(srv, text, id);
    double took = harness_now() - t0;
    free(text);
    if (took < 3) fail_msg("the search of a 3 s budget took %.2f s", took);
    json_t *doc = job_get(srv, id, NULL);
    const char *started = json_str(doc, "started");
    json_t *children = children_of(srv, id);
    size_t i;
    const json_t *child;
    json_array_foreach(children, i, child)
    {
        /* ISO 8601 UTC with milliseconds, the same day: compared as seconds of the day. */
        const char *created = json_str((json_t *)child, "created");
        int h0, m0, h1, m1;
        double s0, s1;
        assert_int_equal(sscanf(started + 11, "%d:%d:%lf", &h0, &m0, &s0), 3);
        assert_int_equal(sscanf(created + 11, "%d:%d:%lf", &h1, &m1, &s1), 3);
        double after = (h1 - h0) * 3600 + (m1 - m0) * 60 + (s1 - s0);
        if (after < -86400 / 2) after += 86400; /* past midnight */
        if (after > 3.5) fail_msg("trial queued %.2f s into a 3 s budget", after);
    }
    const json_t *trials = json_object_get(result, "trials");
    assert_true(json_array_size(trials) < 1000);
    assert_int_equal(json_array_size(children), json_array_size(trials));
    json_decref(children);
    json_decref(doc);
    json_decref(result);
}

static void test_cancel(void **state)
{
    char ds[64];
    struct server *srv = start(state, PER_CLASS, ds);
    char *text = params(SOLARIZE, "\"random\"", "{\"trials\": 100000}", ds, "");
    job_cancel_running(srv, "search", text);
    free(text);
}

/* A SIGTERM queues the search and its running children again; at the next start the search runs
 * them on, each from its own checkpoint, and ends with each trial run by its one child. Trials of
 * a quarter of SLOW_SPACE's work, which run to their end here, with a long wait for sanitized
 * builds. */
static void test_stop_requeues_children(void **state)
{
    char id[32];
    struct server *first, *second;
    json_t *running =
        slow_search(state, RESIZED("512", "{\"$search\": {\"int\": [0, 256]}}"), "\"random\"",
                    "{\"trials\": 2}", ", \"parallel\": 2", 2, &first, id);
    size_t i;
    json_t *child;
    json_array_foreach(running, i, child) job_wait_progress(first, json_str(child, "id"), 0.01);
    assert_int_equal(server_stop(first, SIGTERM, 60000), 0);
    json_t *doc =
        job_resume_for(state, first, id, "resuming at trial 0, with 2 in flight", 600, &second);
    check_children(second, id, json_object_get(doc, "result"));
    json_array_foreach(running, i, child)
    {
        json_t *now = job_get(second, json_str(child, "id"), NULL);
        assert_string_equal(json_str(now, "state"), "succeeded");
        assert_int_equal(json_int(now, "attempts"), 2);
        json_decref(now);
        char path[128];
        struct http_response r;
        snprintf(path, sizeof path, "/v1/jobs/%s/events", json_str(child, "id"));
        http_get(second, path, &r);
        assert_contains(r.body, "the server stopped; the job resumes at its next start");
        assert_contains(r.body, "resuming at batch");
        http_response_free(&r);
    }
    json_decref(doc);
    json_decref(running);
}

/* POST /v1/augment of a solid image with policy and seed 7: the output's bytes (malloc'd). */
static char *augmented(const struct server *srv, const char *policy, size_t *size)
{
    static const unsigned char teal[3] = {30, 160, 140};
    size_t png_size;
    void *png = solid_png(teal, &png_size);
    char *escaped = curl_easy_escape(NULL, policy, 0), path[1024];
    snprintf(path, sizeof path, "/v1/augment?policy=%s&seed=7", escaped);
    curl_free(escaped);
    const char *headers[] = {"Content-Type: image/png", "Accept: image/png", NULL};
    struct http_request req = {
        .path = path, .headers = headers, .body = png, .body_size = png_size};
    struct http_response r;
    http_send(srv, &req, &r);
    free(png);
    assert_status(&r, 200);
    char *body = r.body;
    *size = r.body_size;
    r.body = NULL;
    http_response_free(&r);
    return body;
}

/* save_as: the best policy (FlipLR, which leaves solid images as they are, over Invert) is saved
 * by that name, which /v1/augment then takes as it takes the document; the name is then taken. */
static void test_save_as(void **state)
{
    char ds[64], id[32];
    struct server *srv = start(state, 4, ds);
    char *text = params("{\"$search\": {\"choice\": [{\"op\": \"Invert\"}, {\"op\": \"FlipLR\"}]}}",
                        "\"grid\"", "{\"trials\": 2}", ds, ", \"save_as\": \"found-1\"");
    json_t *result = run_search(srv, text, id);
    assert_string_equal(json_str(result, "saved_as"), "found-1");
    assert_int_equal(json_int(json_object_get(result, "best"), "trial"), 1);
    size_t n_name, n_doc, n_other;
    char *by_name = augmented(srv, "found-1", &n_name);
    char *by_doc = augmented(srv, "{\"op\": \"FlipLR\"}", &n_doc);
    char *other = augmented(srv, "{\"op\": \"Invert\"}", &n_other);
    assert_true(n_name == n_doc && memcmp(by_name, by_doc, n_name) == 0);
    assert_false(n_name == n_other && memcmp(by_name, other, n_name) == 0);
    free(by_name);
    free(by_doc);
    free(other);
    job_expect_refusal(srv, "search", text, 409, "params.save_as: a policy named found-1 is saved");
    free(text);
    json_decref(result);
}

/* A random search with this objective, val split and model is refused with status and needle. */
static void refused_objective(const struct server *srv, const char *ds, const char *objective,
                              const char *val, const char *model, long status, const char *needle)
{
    char *text = NULL;
    assert_true(asprintf(&text,
                         "{\"space\": " SOLARIZE ", \"algorithm\": \"random\", \"objective\": "
                         "\"%s\", \"budget\": {\"trials\": 1}, \"dataset\": \"%s\", "
                         "\"splits\": {\"val\": \"%s\"}, \"model\": \"%s\"}",
                         objective, ds, val, model) > 0);
    job_expect_refusal(srv, "search", text, status, needle);
    free(text);
}

static void test_bad_params(void **state)
{
    char ds[64];
    struct server *srv = start(state, 4, ds);
    static const struct {
        const char *space, *algorithm, *budget, *more, *needle;
    } cases[] = {
        {"{\"op\": \"Solarize\", \"threshold\": {\"$search\": {\"int\": [0, 400]}}}", "\"random\"",
         "{\"trials\": 2}", "", "params.space: /threshold"},
        {"{\"op\": \"Solarize\", \"threshold\": {\"$search\": {\"normal\": [0, 1]}}}", "\"random\"",
         "{\"trials\": 2}", "", "params.space: /threshold/$search"},
        {SOLARIZE, "\"annealing\"", "{\"trials\": 2}", "", "params.algorithm: "},
        {SOLARIZE, "{\"name\": \"tpe\", \"gamma\": 7}", "{\"trials\": 2}", "",
         "params.algorithm: "},
        {SOLARIZE, "\"random\"", "{\"trials\": 2}", ", \"parallel\": 65", "params.parallel: "},
        {SOLARIZE, "\"random\"", "{\"trials\": 2}", ", \"parallel\": 0", "params.parallel: "},
        {SOLARIZE, "\"random\"", "{}", "", "params.budget: required"},
        {SOLARIZE, "\"random\"", "{\"trials\": 0}", "", "params.budget.trials: must be"},
        {SOLARIZE, "\"random\"", "{\"images\": 5}", "",
         "params.budget.images: the affinity objective trains nothing"},
        {SOLARIZE, "\"random\"", "{\"seconds\": -1}", "", "params.budget.seconds"},
        {SOLARIZE, "\"random\"", "{\"trials\": 2}", ", \"save_as\": \"-x\"", "params.save_as: "},
        {SOLARIZE, "\"random\"", "{\"trials\": 2}", ", \"trials\": 2", "params.trials: unknown"},
        /* AugMix's three views (its jsd mode) in one option. */
        {"{\"$search\": {\"choice\": [" SOLARIZE ", {\"preset\": \"augmix\", \"jsd\": "
         "true}]}}",
         "\"random\"", "{\"trials\": 2}", "",
         "params.space: / at its option 1 gives a policy of 3 views; the affinity objective takes "
         "one view per image"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = params(cases[i].space, cases[i].algorithm, cases[i].budget, ds, cases[i].more);
        job_expect_refusal(srv, "search", text, 422, cases[i].needle);
        free(text);
    }
    refused_objective(srv, ds, "val_accuracy", "val", "colour", 422, "params.splits: required: {");
    refused_objective(srv, ds, "accuracy", "val", "colour", 422, "params.objective: required: ");
    refused_objective(srv, ds, "affinity", "test", "colour", 422, "params.splits.val: dataset");
    refused_objective(srv, ds, "affinity", "val", "nope", 404, "params.model: no such model");
    /* A trial is queued by its search alone. */
    job_expect_refusal(srv, "search-trial", "{\"objective\": \"affinity\"}", 422,
                       "kind: search-trial jobs are queued by the server itself");
}

int main(int argc, char **argv)
{
    struct eng_error err = {0};
    if (img_codec_init(&err) != 0) return fprintf(stderr, "%s\n", err.message), 1;
    const struct CMUnitTest tests[] = {
        HARNESS_MODELS_TEST(test_random_is_affinity),
        HARNESS_MODELS_TEST(test_grid_enumerates),
        HARNESS_MODELS_TEST(test_failed_trials),
        HARNESS_MODELS_TEST(test_kill9_resume),
        HARNESS_MODELS_TEST(test_kill9_resume_parallel),
        HARNESS_MODELS_TEST(test_parallel_random),
        HARNESS_MODELS_TEST(test_parallel_evolution_repeats),
        HARNESS_MODELS_TEST(test_cancel),
        HARNESS_MODELS_TEST(test_cancel_child),
        HARNESS_MODELS_TEST(test_cancel_parent),
        HARNESS_MODELS_TEST(test_stop_requeues_children),
        HARNESS_MODELS_TEST(test_save_as),
        HARNESS_MODELS_TEST(test_time_budget),
        HARNESS_MODELS_TEST(test_bad_params),
    };
    return harness_main(argc, argv, "search_job", tests, sizeof tests / sizeof tests[0]);
}

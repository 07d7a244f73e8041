/* Unit tests of server/metrics.c. The rendered text is split into lines and each sample is looked
 * up by its name and labels, so the checks follow the Prometheus text format rather than one
 * frozen string. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

#define COUNTER "augserve_http_requests_total"
#define HIST    "augserve_http_request_duration_seconds"

struct lines {
    char **items;
    size_t count;
    char *text;
};

static void split_lines(char *text, struct lines *out)
{
    out->text = text;
    out->count = 0;
    size_t capacity = 64;
    out->items = malloc(capacity * sizeof *out->items);
    assert_non_null(out->items);
    size_t len = strlen(text);
    assert_true(len > 0);
    assert_int_equal(text[len - 1], '\n'); /* the format ends every line, the last one too */
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        if (out->count == capacity) {
            capacity *= 2;
            char **grown = realloc(out->items, capacity * sizeof *grown);
            assert_non_null(grown);
            out->items = grown;
        }
        out->items[out->count++] = line;
        line = nl + 1;
    }
}

static void free_lines(struct lines *l)
{
    free(l->items);
    free(l->text);
}

static struct lines render(struct metrics *m, const struct metrics_gauges *g)
{
    char *text = metrics_render(m, g);
    assert_non_null(text);
    struct lines l;
    split_lines(text, &l);
    return l;
}

/* The value of the one sample whose name and labels are exactly `series` ("name{...}" or
 * "name"); fails when there is none or more than one. */
static const char *sample(const struct lines *l, const char *series)
{
    size_t len = strlen(series);
    const char *value = NULL;
    for (size_t i = 0; i < l->count; i++) {
        const char *line = l->items[i];
        if (strncmp(line, series, len) == 0 && line[len] == ' ') {
            if (value) fail_msg("two samples of %s", series);
            value = line + len + 1;
        }
    }
    if (!value) fail_msg("no sample of %s", series);
    return value;
}

static int has_sample(const struct lines *l, const char *series)
{
    size_t len = strlen(series);
    for (size_t i = 0; i < l->count; i++)
        if (strncmp(l->items[i], series, len) == 0 &&
            (l->items[i][len] == ' ' || l->items[i][len] == '{'))
            return 1;
    return 0;
}

static unsigned long long sample_count(const struct lines *l, const char *series)
{
    const char *value = sample(l, series);
    char *end;
    unsigned long long n = strtoull(value, &end, 10);
    if (end == value || *end != '\0') fail_msg("%s: \"%s\" is not a count", series, value);
    return n;
}

static double sample_double(const struct lines *l, const char *series)
{
    const char *value = sample(l, series);
    char *end;
    double d = strtod(value, &end);
    if (end == value || *end != '\0') fail_msg("%s: \"%s\" is not a number", series, value);
    return d;
}

/* Lines starting with prefix. */
static size_t count_prefixed(const struct lines *l, const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < l->count; i++)
        if (strncmp(l->items[i], prefix, strlen(prefix)) == 0) n++;
    return n;
}

static void assert_line(const struct lines *l, const char *expected)
{
    size_t n = 0;
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i], expected) == 0) n++;
    if (n != 1) fail_msg("\"%s\" appears %zu times", expected, n);
}

/* Every line is a comment ("# HELP name text" or "# TYPE name type") or "series value"; a
 * family's TYPE line comes before its samples. */
static void assert_well_formed(const struct lines *l)
{
    for (size_t i = 0; i < l->count; i++) {
        const char *line = l->items[i];
        assert_true(line[0] != '\0');
        if (line[0] == '#') {
            assert_true(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0);
            continue;
        }
        const char *space = strrchr(line, ' ');
        assert_non_null(space);
        char *end;
        strtod(space + 1, &end);
        if (*end != '\0') fail_msg("bad value in \"%s\"", line);
        size_t name_len = strcspn(line, "{ ");
        char type_prefix[256];
        int n = snprintf(type_prefix, sizeof type_prefix, "# TYPE %.*s ", (int)name_len, line);
        assert_true(n > 0 && (size_t)n < sizeof type_prefix);
        int typed = 0;
        for (size_t j = 0; j < i && !typed; j++) {
            const char *t = l->items[j];
            if (strncmp(t, type_prefix, (size_t)n) == 0) typed = 1;
            /* histogram samples carry _bucket, _sum and _count suffixes */
            if (strncmp(t, "# TYPE " HIST " histogram", strlen("# TYPE " HIST " histogram")) == 0 &&
                strncmp(line, HIST "_", strlen(HIST "_")) == 0)
                typed = 1;
        }
        if (!typed) fail_msg("sample before its TYPE: \"%s\"", line);
    }
}

static const struct metrics_gauges zero_gauges = {0, 0, 0, 0, -1};

static void test_empty(void **state)
{
    struct metrics *m = metrics_create();
    assert_non_null(m);
    struct lines l = render(m, &zero_gauges);
    assert_well_formed(&l);
    assert_line(&l, "# TYPE " COUNTER " counter");
    assert_line(&l, "# TYPE " HIST " histogram");
    assert_int_equal(count_prefixed(&l, COUNTER "{"), 0);
    assert_int_equal(count_prefixed(&l, HIST "_"), 0);
    free_lines(&l);
    metrics_destroy(m);
}

static void test_counters(void **state)
{
    struct metrics *m = metrics_create();
    assert_non_null(m);
    for (int i = 0; i < 3; i++)
        assert_int_equal(metrics_observe(m, "/healthz", "GET", 200, 0.001), 0);
    assert_int_equal(metrics_observe(m, "/healthz", "GET", 503, 0.002), 0);
    assert_int_equal(metrics_observe(m, "/healthz", "HEAD", 200, 0.001), 0);
    assert_int_equal(metrics_observe(m, "/v1/models/{name}", "POST", 201, 0.3), 0);
    assert_int_equal(metrics_observe(m, "/v1/models/{name}", "POST", 201, 0.4), 0);

    struct lines l = render(m, &zero_gauges);
    assert_well_formed(&l);
    assert_line(&l, "# TYPE " COUNTER " counter");
    assert_line(&l, COUNTER "{route=\"/healthz\",method=\"GET\",status=\"200\"} 3");
    assert_line(&l, COUNTER "{route=\"/healthz\",method=\"GET\",status=\"503\"} 1");
    assert_line(&l, COUNTER "{route=\"/healthz\",method=\"HEAD\",status=\"200\"} 1");
    assert_line(&l, COUNTER "{route=\"/v1/models/{name}\",method=\"POST\",status=\"201\"} 2");
    assert_int_equal(count_prefixed(&l, COUNTER "{"), 4);
    /* Histograms are by route and method, not status: three series. */
    assert_int_equal(count_prefixed(&l, HIST "_count{"), 3);
    assert_int_equal(sample_count(&l, HIST "_count{route=\"/healthz\",method=\"GET\"}"), 4);
    assert_int_equal(sample_count(&l, HIST "_count{route=\"/healthz\",method=\"HEAD\"}"), 1);
    assert_int_equal(sample_count(&l, HIST "_count{route=\"/v1/models/{name}\",method=\"POST\"}"),
                     2);
    free_lines(&l);
    metrics_destroy(m);
}

/* Checks one histogram series against the observed values: every bucket holds the observations
 * <= its bound (so they are cumulative), +Inf and _count hold all, _sum their sum. Returns the
 * number of finite buckets. */
static size_t check_histogram(const struct lines *l, const char *route, const char *method,
                              const double *observed, size_t n)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, HIST "_bucket{route=\"%s\",method=\"%s\",le=\"", route, method);
    size_t plen = strlen(prefix);
    double last_bound = -INFINITY;
    unsigned long long last_count = 0;
    size_t finite = 0;
    int saw_inf = 0;
    for (size_t i = 0; i < l->count; i++) {
        const char *line = l->items[i];
        if (strncmp(line, prefix, plen) != 0) continue;
        assert_false(saw_inf); /* +Inf is the last bucket */
        const char *le = line + plen;
        const char *quote = strchr(le, '"');
        assert_non_null(quote);
        assert_true(strncmp(quote, "\"} ", 3) == 0);
        unsigned long long count = strtoull(quote + 3, NULL, 10);
        double bound;
        if (strncmp(le, "+Inf\"", 5) == 0) {
            bound = INFINITY;
            saw_inf = 1;
        } else {
            char *end;
            bound = strtod(le, &end);
            assert_ptr_equal(end, quote);
            finite++;
        }
        assert_true(bound > last_bound);
        assert_true(count >= last_count);
        unsigned long long expected = 0;
        for (size_t k = 0; k < n; k++)
            if (observed[k] <= bound) expected++;
        if (count != expected)
            fail_msg("%s le=%g: %llu, expected %llu", route, bound, count, expected);
        last_bound = bound;
        last_count = count;
    }
    assert_true(saw_inf);

    char series[256];
    snprintf(series, sizeof series, HIST "_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"}", route,
             method);
    unsigned long long inf = sample_count(l, series);
    snprintf(series, sizeof series, HIST "_count{route=\"%s\",method=\"%s\"}", route, method);
    assert_int_equal(sample_count(l, series), n);
    assert_int_equal(inf, n);
    double sum = 0;
    for (size_t k = 0; k < n; k++)
        sum += observed[k];
    snprintf(series, sizeof series, HIST "_sum{route=\"%s\",method=\"%s\"}", route, method);
    double rendered = sample_double(l, series);
    if (fabs(rendered - sum) > 1e-9 * (fabs(sum) > 1 ? fabs(sum) : 1))
        fail_msg("_sum %.17g, expected %.17g", rendered, sum);
    return finite;
}

/* Requests whose work stopped early, by reason: both series from the start, at 0. */
static void test_stops(void **state)
{
    struct metrics *m = metrics_create();
    assert_non_null(m);
    struct lines l = render(m, &zero_gauges);
    assert_well_formed(&l);
    assert_line(&l, "# TYPE augserve_requests_stopped_total counter");
    assert_line(&l, "augserve_requests_stopped_total{reason=\"deadline\"} 0");
    assert_line(&l, "augserve_requests_stopped_total{reason=\"client_closed\"} 0");
    free_lines(&l);
    metrics_count_stop(m, METRICS_STOP_CLIENT_CLOSED);
    metrics_count_stop(m, METRICS_STOP_CLIENT_CLOSED);
    metrics_count_stop(m, METRICS_STOP_DEADLINE);
    l = render(m, &zero_gauges);
    assert_well_formed(&l);
    assert_line(&l, "augserve_requests_stopped_total{reason=\"deadline\"} 1");
    assert_line(&l, "augserve_requests_stopped_total{reason=\"client_closed\"} 2");
    free_lines(&l);
    metrics_destroy(m);
}

/* The job queue's series: this process's counters from 0, and the store's queued jobs by kind
 * with their total (none when the store could not count them). */
static void test_job_queue(void **state)
{
    (void)state;
    struct metrics *m = metrics_create();
    assert_non_null(m);
    struct lines l = render(m, &zero_gauges);
    assert_well_formed(&l);
    assert_line(&l, "# TYPE augserve_jobs_claimed_total counter");
    assert_line(&l, "augserve_jobs_claimed_total 0");
    assert_line(&l, "augserve_job_leases_expired_total 0");
    assert_line(&l, "augserve_job_retries_total 0");
    assert_line(&l, "augserve_job_leases_lost_total 0");
    assert_false(has_sample(&l, "augserve_job_queue_depth"));
    free_lines(&l);
    metrics_count_jobs(m, METRICS_JOBS_CLAIMED, 1);
    metrics_count_jobs(m, METRICS_JOBS_CLAIMED, 1);
    metrics_count_jobs(m, METRICS_JOBS_EXPIRED, 3);
    metrics_count_jobs(m, METRICS_JOBS_RETRIED, 2);
    metrics_count_jobs(m, METRICS_JOBS_LOST, 1);
    json_t *queued = json_pack("{s:i, s:i}", "search-trial", 4, "train", 1);
    struct metrics_gauges g = zero_gauges;
    g.jobs_queued = queued;
    l = render(m, &g);
    assert_well_formed(&l);
    assert_line(&l, "augserve_jobs_claimed_total 2");
    assert_line(&l, "augserve_job_leases_expired_total 3");
    assert_line(&l, "augserve_job_retries_total 2");
    assert_line(&l, "augserve_job_leases_lost_total 1");
    assert_line(&l, "# TYPE augserve_job_queue_depth gauge");
    assert_line(&l, "augserve_job_queue_depth 5");
    assert_line(&l, "augserve_jobs_queued{kind=\"search-trial\"} 4");
    assert_line(&l, "augserve_jobs_queued{kind=\"train\"} 1");
    free_lines(&l);
    json_decref(queued);
    metrics_destroy(m);
}

static void test_histogram(void **state)
{
    struct metrics *m = metrics_create();
    assert_non_null(m);
    /* Values spread over the whole range, one far past any sensible bucket. */
    const double a[] = {0.0001, 0.0007, 0.003, 0.003, 0.02, 0.07, 0.3, 0.3, 0.3, 1.5, 4, 7, 120};
    const double b[] = {0.25, 0.125, 0.5};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
        assert_int_equal(metrics_observe(m, "/a", "GET", 200, a[i]), 0);
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        assert_int_equal(metrics_observe(m, "/b", "POST", i == 0 ? 200 : 500, b[i]), 0);

    struct lines l = render(m, &zero_gauges);
    assert_well_formed(&l);
    assert_line(&l, "# TYPE " HIST " histogram");
    size_t buckets = check_histogram(&l, "/a", "GET", a, sizeof a / sizeof a[0]);
    assert_true(buckets >= 2);
    /* Every series has the same buckets. */
    assert_int_equal(check_histogram(&l, "/b", "POST", b, sizeof b / sizeof b[0]), buckets);
    /* Sums of binary fractions are exact. */
    assert_true(sample_double(&l, HIST "_sum{route=\"/b\",method=\"POST\"}") == 0.875);
    /* 120 s lies past every finite bucket: only +Inf counts it. */
    char series[256];
    snprintf(series, sizeof series, HIST "_bucket{route=\"/a\",method=\"GET\",le=\"+Inf\"}");
    assert_int_equal(sample_count(&l, series), 13);
    free_lines(&l);
    metrics_destroy(m);
}

static void test_bucket_bound_inclusive(void **state)
{
    struct metrics *m = metrics_create();
    assert_non_null(m);
    /* Prometheus' default buckets include 0.005, 0.1, 0.25 and 1: values exactly on a bound
     * belong to it (le means "less than or equal"). */
    const double on[] = {0.005, 0.1, 0.25, 1};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        assert_int_equal(metrics_observe(m, "/on", "GET", 200, on[i]), 0);
    struct lines l = render(m, &zero_gauges);
    check_histogram(&l, "/on", "GET", on, sizeof on / sizeof on[0]);
    assert_int_equal(sample_count(&l, HIST "_bucket{route=\"/on\",method=\"GET\",le=\"0.005\"}"),
                     1);
    assert_int_equal(sample_count(&l, HIST "_bucket{route=\"/on\",method=\"GET\",le=\"0.1\"}"), 2);
    assert_int_equal(sample_count(&l, HIST "_bucket{route=\"/on\",method=\"GET\",le=\"0.25\"}"), 3);
    assert_int_equal(sample_count(&l, HIST "_bucket{route=\"/on\",method=\"GET\",le=\"1\"}"), 4);
    free_lines(&l);
    metrics_destroy(m);
}

static void test_gauges(void **state)
{
    struct metrics *m = metrics_create();
    assert_non_null(m);
    struct metrics_gauges g = {.in_flight = 7,
                               .workers_busy = 2,
                               .queue_depth = 3,
                               .workers = 4,
                               .job_runners = 5,
                               .job_runners_busy = 1,
                               .resident_bytes = 123456789};
    struct lines l = render(m, &g);
    assert_well_formed(&l);
    assert_line(&l, "# TYPE augserve_http_requests_in_flight gauge");
    assert_line(&l, "augserve_http_requests_in_flight 7");
    assert_line(&l, "# TYPE augserve_workers gauge");
    assert_line(&l, "augserve_workers 4");
    assert_line(&l, "# TYPE augserve_workers_busy gauge");
    assert_line(&l, "augserve_workers_busy 2");
    assert_line(&l, "# TYPE augserve_queue_depth gauge");
    assert_line(&l, "augserve_queue_depth 3");
    assert_line(&l, "# TYPE augserve_job_runners gauge");
    assert_line(&l, "augserve_job_runners 5");
    assert_line(&l, "# TYPE augserve_job_runners_busy gauge");
    assert_line(&l, "augserve_job_runners_busy 1");
    assert_line(&l, "# TYPE process_resident_memory_bytes gauge");
    assert_line(&l, "process_resident_memory_bytes 123456789");
    free_lines(&l);

    /* An unknown RSS is left out rather than rendered as -1. */
    g.resident_bytes = -1;
    l = render(m, &g);
    assert_well_formed(&l);
    assert_false(has_sample(&l, "process_resident_memory_bytes"));
    assert_line(&l, "augserve_workers 4");
    free_lines(&l);
    metrics_destroy(m);
}

static void test_label_escaping(void **state)
{
    struct metrics *m = metrics_create();
    assert_non_null(m);
    assert_int_equal(metrics_observe(m, "/a\"b\\c\nd", "GET", 200, 0.5), 0);
    struct lines l = render(m, &zero_gauges);
    /* Text format: backslash, double quote and line feed are escaped in label values. */
    assert_line(&l, COUNTER "{route=\"/a\\\"b\\\\c\\nd\",method=\"GET\",status=\"200\"} 1");
    assert_well_formed(&l);
    free_lines(&l);
    metrics_destroy(m);
}

/* Methods outside HTTP's standard set, whatever their text, share the one label "other": a
 * thousand distinct ones, a long one, a lowercase "get" (methods are case-sensitive), an empty
 * one and none at all add one counter and one histogram series, next to the standard methods'. */
static void test_method_labels(void **state)
{
    struct metrics *m = metrics_create();
    assert_non_null(m);
    static const char *const standard[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                           "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    const size_t n_standard = sizeof standard / sizeof standard[0];
    for (size_t i = 0; i < n_standard; i++)
        assert_int_equal(metrics_observe(m, "unmatched", standard[i], 404, 0.001), 0);
    char method[4097];
    unsigned x = 12345;
    for (int i = 0; i < 1000; i++) {
        int len = snprintf(method, sizeof method, "M%d", i);
        for (; len < 4 + i % 40; len++) {
            x = x * 1103515245u + 12345u;
            method[len] = (char)('A' + (x >> 16) % 26);
        }
        method[len] = '\0';
        assert_int_equal(metrics_observe(m, "unmatched", method, 404, 0.001), 0);
    }
    memset(method, 'Q', sizeof method - 1);
    method[sizeof method - 1] = '\0';
    assert_int_equal(metrics_observe(m, "unmatched", method, 404, 0.001), 0);
    assert_int_equal(metrics_observe(m, "unmatched", "get", 404, 0.001), 0);
    assert_int_equal(metrics_observe(m, "unmatched", "", 404, 0.001), 0);
    assert_int_equal(metrics_observe(m, "unmatched", NULL, 404, 0.001), 0);

    struct lines l = render(m, &zero_gauges);
    assert_well_formed(&l);
    assert_int_equal(count_prefixed(&l, COUNTER "{"), n_standard + 1);
    assert_int_equal(count_prefixed(&l, HIST "_count{"), n_standard + 1);
    for (size_t i = 0; i < n_standard; i++) {
        char series[128];
        snprintf(series, sizeof series,
                 COUNTER "{route=\"unmatched\",method=\"%s\",status=\"404\"}", standard[i]);
        assert_int_equal(sample_count(&l, series), 1);
    }
    assert_int_equal(
        sample_count(&l, COUNTER "{route=\"unmatched\",method=\"other\",status=\"404\"}"), 1004);
    assert_int_equal(sample_count(&l, HIST "_count{route=\"unmatched\",method=\"other\"}"), 1004);
    free_lines(&l);
    metrics_destroy(m);
}

#define THREADS        4
#define OBS_PER_THREAD 2000

static void *observe_thread(void *arg)
{
    struct metrics *m = arg;
    for (int i = 0; i < OBS_PER_THREAD; i++)
        if (metrics_observe(m, i % 2 ? "/odd" : "/even", "GET", 200, 0.5) != 0) return arg;
    return NULL;
}

static void test_concurrent_observe(void **state)
{
    struct metrics *m = metrics_create();
    assert_non_null(m);
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, observe_thread, m), 0);
    for (int t = 0; t < THREADS; t++) {
        void *failed;
        assert_int_equal(pthread_join(threads[t], &failed), 0);
        assert_null(failed);
    }
    struct lines l = render(m, &zero_gauges);
    unsigned long long half = THREADS * OBS_PER_THREAD / 2;
    assert_int_equal(sample_count(&l, COUNTER "{route=\"/odd\",method=\"GET\",status=\"200\"}"),
                     half);
    assert_int_equal(sample_count(&l, COUNTER "{route=\"/even\",method=\"GET\",status=\"200\"}"),
                     half);
    assert_int_equal(sample_count(&l, HIST "_count{route=\"/odd\",method=\"GET\"}"), half);
    assert_true(sample_double(&l, HIST "_sum{route=\"/even\",method=\"GET\"}") ==
                0.5 * (double)half);
    free_lines(&l);
    metrics_destroy(m);
}

static void test_process_rss(void **state)
{
    long before = metrics_process_rss();
    assert_true(before > 0);
    assert_int_equal(before % sysconf(_SC_PAGESIZE), 0);
    /* Touching 64 MiB makes it resident: RSS grows by most of it. */
    size_t size = 64u << 20;
    unsigned char *block = malloc(size);
    assert_non_null(block);
    for (size_t i = 0; i < size; i += 4096)
        block[i] = (unsigned char)i;
    long after = metrics_process_rss();
    assert_true(after - before >= (long)(32u << 20));
    free(block);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),         cmocka_unit_test(test_counters),
        cmocka_unit_test(test_stops),         cmocka_unit_test(test_job_queue),
        cmocka_unit_test(test_histogram),     cmocka_unit_test(test_bucket_bound_inclusive),
        cmocka_unit_test(test_gauges),        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_method_labels), cmocka_unit_test(test_concurrent_observe),
        cmocka_unit_test(test_process_rss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Upper bounds in seconds, as Prometheus client libraries default to, plus finer steps below
 * 5 ms where most of our requests land. */
static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define BUCKETS (sizeof bucket_bounds / sizeof bucket_bounds[0])

struct counter_series {
    char *route, *method;
    int status;
    unsigned long long count;
};

struct histogram_series {
    char *route, *method;
    unsigned long long buckets[BUCKETS]; /* non-cumulative; summed when rendered */
    unsigned long long count;
    double sum;
};

struct metrics {
    pthread_mutex_t lock;
    struct counter_series *counters;
    size_t counter_count, counter_capacity;
    struct histogram_series *histograms;
    size_t histogram_count, histogram_capacity;
    unsigned long long stops[METRICS_STOP_REASONS];
    unsigned long long jobs[METRICS_JOBS_COUNTS];
};

static const char *const stop_reasons[METRICS_STOP_REASONS] = {"deadline", "client_closed"};

void metrics_count_stop(struct metrics *m, enum metrics_stop reason)
{
    pthread_mutex_lock(&m->lock);
    m->stops[reason]++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_count_jobs(struct metrics *m, enum metrics_jobs what, unsigned long n)
{
    pthread_mutex_lock(&m->lock);
    m->jobs[what] += n;
    pthread_mutex_unlock(&m->lock);
}

static const struct {
    const char *name, *help;
} job_counters[METRICS_JOBS_COUNTS] = {
    [METRICS_JOBS_CLAIMED] = {"augserve_jobs_claimed_total",
                              "Jobs and search trials this process claimed from the queue."},
    [METRICS_JOBS_EXPIRED] = {"augserve_job_leases_expired_total",
                              "Leases of running jobs (any process's) this process found expired."},
    [METRICS_JOBS_RETRIED] = {"augserve_job_retries_total",
                              "Jobs whose lease expired that were queued again."},
    [METRICS_JOBS_LOST] = {"augserve_job_leases_lost_total",
                           "Jobs this process stopped without recording them: their lease was "
                           "lost."},
};

struct metrics *metrics_create(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_destroy(struct metrics *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->counter_count; i++) {
        free(m->counters[i].route);
        free(m->counters[i].method);
    }
    for (size_t i = 0; i < m->histogram_count; i++) {
        free(m->histograms[i].route);
        free(m->histograms[i].method);
    }
    free(m->counters);
    free(m->histograms);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Grows *items (of item_size bytes each) to hold one more. */
static int reserve(void **items, size_t *capacity, size_t count, size_t item_size)
{
    if (count < *capacity) return 0;
    size_t grown_capacity = *capacity ? *capacity * 2 : 16;
    void *grown = realloc(*items, grown_capacity * item_size);
    if (!grown) return -1;
    *items = grown;
    *capacity = grown_capacity;
    return 0;
}

static int copy_labels(char **route_out, char **method_out, const char *route, const char *method)
{
    *route_out = strdup(route);
    *method_out = strdup(method);
    if (*route_out && *method_out) return 0;
    free(*route_out);
    free(*method_out);
    return -1;
}

static struct counter_series *find_counter(struct metrics *m, const char *route, const char *method,
                                           int status)
{
    for (size_t i = 0; i < m->counter_count; i++) {
        struct counter_series *c = &m->counters[i];
        if (c->status == status && strcmp(c->route, route) == 0 && strcmp(c->method, method) == 0)
            return c;
    }
    if (reserve((void **)&m->counters, &m->counter_capacity, m->counter_count,
                sizeof *m->counters) != 0)
        return NULL;
    struct counter_series *c = &m->counters[m->counter_count];
    memset(c, 0, sizeof *c);
    if (copy_labels(&c->route, &c->method, route, method) != 0) return NULL;
    c->status = status;
    m->counter_count++;
    return c;
}

static struct histogram_series *find_histogram(struct metrics *m, const char *route,
                                               const char *method)
{
    for (size_t i = 0; i < m->histogram_count; i++) {
        struct histogram_series *h = &m->histograms[i];
        if (strcmp(h->route, route) == 0 && strcmp(h->method, method) == 0) return h;
    }
    if (reserve((void **)&m->histograms, &m->histogram_capacity, m->histogram_count,
                sizeof *m->histograms) != 0)
        return NULL;
    struct histogram_series *h = &m->histograms[m->histogram_count];
    memset(h, 0, sizeof *h);
    if (copy_labels(&h->route, &h->method, route, method) != 0) return NULL;
    m->histogram_count++;
    return h;
}

/* RFC 9110's methods and PATCH (RFC 5789): the names a label may hold. Methods are
 * case-sensitive, as the router matches them. */
static const char *const known_methods[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                            "CONNECT", "OPTIONS", "TRACE", "PATCH"};

/* A client may send any token as its method: one outside the known set is counted as "other",
 * so that no request can add a series. */
static const char *method_label(const char *method)
{
    for (size_t i = 0; method && i < sizeof known_methods / sizeof known_methods[0]; i++)
        if (strcmp(method, known_methods[i]) == 0) return known_methods[i];
    return "other";
}

int metrics_observe(struct metrics *m, const char *route, const char *method, int status,
                    double seconds)
{
    method = method_label(method);
    pthread_mutex_lock(&m->lock);
    struct counter_series *c = find_counter(m, route, method, status);
    struct histogram_series *h = c ? find_histogram(m, route, method) : NULL;
    if (h) {
        c->count++;
        h->count++;
        h->sum += seconds;
        for (size_t b = 0; b < BUCKETS; b++)
            if (seconds <= bucket_bounds[b]) {
                h->buckets[b]++;
                break;
            }
    }
    pthread_mutex_unlock(&m->lock);
    return h ? 0 : -1;
}

/* Label values are route patterns and method names: no quotes, backslashes or newlines can
 * occur in them (the router only knows fixed patterns, and method_label's names are fixed), but
 * escape anyway so a future label cannot break the format. */
static void write_label(FILE *out, const char *value)
{
    for (const char *c = value; *c; c++) {
        if (*c == '\\' || *c == '"') fputc('\\', out);
        if (*c == '\n') {
            fputs("\\n", out);
            continue;
        }
        fputc(*c, out);
    }
}

static void write_series_labels(FILE *out, const char *route, const char *method)
{
    fputs("route=\"", out);
    write_label(out, route);
    fputs("\",method=\"", out);
    write_label(out, method);
    fputc('"', out);
}

char *metrics_render(struct metrics *m, const struct metrics_gauges *g)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out) return NULL;
    pthread_mutex_lock(&m->lock);
    fputs("# HELP augserve_http_requests_total HTTP requests answered.\n"
          "# TYPE augserve_http_requests_total counter\n",
          out);
    for (size_t i = 0; i < m->counter_count; i++) {
        const struct counter_series *c = &m->counters[i];
        fputs("augserve_http_requests_total{", out);
        write_series_labels(out, c->route, c->method);
        fprintf(out, ",status=\"%d\"} %llu\n", c->status, c->count);
    }
    fputs("# HELP augserve_http_request_duration_seconds Time from request start to response.\n"
          "# TYPE augserve_http_request_duration_seconds histogram\n",
          out);
    for (size_t i = 0; i < m->histogram_count; i++) {
        const struct histogram_series *h = &m->histograms[i];
        unsigned long long cumulative = 0;
        for (size_t b = 0; b < BUCKETS; b++) {
            cumulative += h->buckets[b];
            fputs("augserve_http_request_duration_seconds_bucket{", out);
            write_series_labels(out, h->route, h->method);
            fprintf(out, ",le=\"%g\"} %llu\n", bucket_bounds[b], cumulative);
        }
        fputs("augserve_http_request_duration_seconds_bucket{", out);
        write_series_labels(out, h->route, h->method);
        fprintf(out, ",le=\"+Inf\"} %llu\n", h->count);
        fputs("augserve_http_request_duration_seconds_sum{", out);
        write_series_labels(out, h->route, h->method);
        fprintf(out, "} %.9g\n", h->sum);
        fputs("augserve_http_request_duration_seconds_count{", out);
        write_series_labels(out, h->route, h->method);
        fprintf(out, "} %llu\n", h->count);
    }
    fputs("# HELP augserve_requests_stopped_total Heavy requests whose work stopped early.\n"
          "# TYPE augserve_requests_stopped_total counter\n",
          out);
    for (int r = 0; r < METRICS_STOP_REASONS; r++)
        fprintf(out, "augserve_requests_stopped_total{reason=\"%s\"} %llu\n", stop_reasons[r],
                m->stops[r]);
    for (int j = 0; j < METRICS_JOBS_COUNTS; j++)
        fprintf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", job_counters[j].name,
                job_counters[j].help, job_counters[j].name, job_counters[j].name, m->jobs[j]);
    pthread_mutex_unlock(&m->lock);
    fprintf(out,
            "# HELP augserve_http_requests_in_flight Requests received and not yet answered.\n"
            "# TYPE augserve_http_requests_in_flight gauge\n"
            "augserve_http_requests_in_flight %ld\n"
            "# HELP augserve_workers Worker threads for heavy requests.\n"
            "# TYPE augserve_workers gauge\n"
            "augserve_workers %d\n"
            "# HELP augserve_workers_busy Workers processing a request.\n"
            "# TYPE augserve_workers_busy gauge\n"
            "augserve_workers_busy %d\n"
            "# HELP augserve_queue_depth Heavy requests waiting for a worker.\n"
            "# TYPE augserve_queue_depth gauge\n"
            "augserve_queue_depth %d\n"
            "# HELP augserve_job_runners Job runner threads (job_workers).\n"
            "# TYPE augserve_job_runners gauge\n"
            "augserve_job_runners %d\n"
            "# HELP augserve_job_runners_busy Job runners running a job.\n"
            "# TYPE augserve_job_runners_busy gauge\n"
            "augserve_job_runners_busy %d\n",
            g->in_flight, g->workers, g->workers_busy, g->queue_depth, g->job_runners,
            g->job_runners_busy);
    if (g->jobs_queued) {
        const char *kind;
        const json_t *count;
        long long total = 0;
        json_object_foreach((json_t *)g->jobs_queued, kind, count) total +=
            json_integer_value(count);
        fprintf(out,
                "# HELP augserve_job_queue_depth Jobs waiting in the store's queue, every "
                "process's.\n"
                "# TYPE augserve_job_queue_depth gauge\n"
                "augserve_job_queue_depth %lld\n"
                "# HELP augserve_jobs_queued Jobs waiting in the store's queue, by kind.\n"
                "# TYPE augserve_jobs_queued gauge\n",
                total);
        json_object_foreach((json_t *)g->jobs_queued, kind, count)
        {
            fputs("augserve_jobs_queued{kind=\"", out);
            write_label(out, kind);
            fprintf(out, "\"} %lld\n", (long long)json_integer_value(count));
        }
    }
    if (g->resident_bytes >= 0)
        fprintf(out,
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                "# TYPE process_resident_memory_bytes gauge\n"
                "process_resident_memory_bytes %ld\n",
                g->resident_bytes);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

long metrics_process_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long total_pages, resident_pages;
    int n = fscanf(f, "%ld %ld", &total_pages, &resident_pages);
    fclose(f);
    if (n != 2) return -1;
    return resident_pages * sysconf(_SC_PAGESIZE);
}

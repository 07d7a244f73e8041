/* Request metrics in Prometheus' text exposition format: counts by route, method and status, and
 * latency histograms by route and method. Every label comes from a closed set, so the number of
 * series stays bounded whatever clients send: routes are the route table's patterns
 * ("/v1/models/{name}"; the web UI's catch-all is one too) or "unmatched", methods are HTTP's
 * standard ones or "other", statuses are those the server answers. */
#ifndef AUGSERVE_METRICS_H
#define AUGSERVE_METRICS_H

#include <jansson.h>

struct metrics;

/* Point-in-time values the caller reads when rendering. */
struct metrics_gauges {
    long in_flight; /* requests received and not yet answered */
    int workers_busy;
    int queue_depth;
    int workers;
    int job_runners;      /* job_workers */
    int job_runners_busy; /* runners running a job */
    long resident_bytes;  /* process RSS, -1 if unknown */
    /* Queued jobs in the store, every process's: an object of kind -> count (job_store_queued),
     * or NULL when the store could not say. Kinds are the kind table's: a closed set. */
    const json_t *jobs_queued;
};

struct metrics *metrics_create(void);
void metrics_destroy(struct metrics *m);

/* Records one answered request. route: a route table pattern or "unmatched", never the path the
 * client sent; method: as the client sent it (NULL when unknown), counted as "other" unless it is
 * one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE and PATCH. Returns 0, or -1 when
 * memory ran out (the sample is lost). */
int metrics_observe(struct metrics *m, const char *route, const char *method, int status,
                    double seconds);

/* Why a heavy request's work was stopped early (server/watch.h). */
enum metrics_stop {
    METRICS_STOP_DEADLINE,      /* request_timeout_s passed */
    METRICS_STOP_CLIENT_CLOSED, /* its client closed the connection */
    METRICS_STOP_REASONS,
};
/* Counts one request whose work stopped early, in augserve_requests_stopped_total{reason}. */
void metrics_count_stop(struct metrics *m, enum metrics_stop reason);

/* What this process's job system counts (job_store.h, "Leases"). */
enum metrics_jobs {
    METRICS_JOBS_CLAIMED, /* jobs (and children) claimed by this process's runners */
    METRICS_JOBS_EXPIRED, /* leases its sweeps found expired, any process's */
    METRICS_JOBS_RETRIED, /* of those, jobs queued again (not left interrupted) */
    METRICS_JOBS_LOST,    /* jobs it stopped because their lease was lost */
    METRICS_JOBS_COUNTS,
};
/* Adds n to a job counter (augserve_jobs_claimed_total, ...). */
void metrics_count_jobs(struct metrics *m, enum metrics_jobs what, unsigned long n);

/* The exposition text (malloc'd), or NULL when memory ran out. */
char *metrics_render(struct metrics *m, const struct metrics_gauges *gauges);

/* Resident set size of this process in bytes, from /proc/self/statm; -1 if unreadable. */
long metrics_process_rss(void);

#endif

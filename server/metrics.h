/* Request metrics in Prometheus' text exposition format: counts by route, method and status, and
 * latency histograms by route and method. Every label comes from a closed set, so the number of
 * series stays bounded whatever clients send: routes are the route table's patterns
 * ("/v1/models/{name}"; the web UI's catch-all is one too) or "unmatched", methods are HTTP's
 * standard ones or "other", statuses are those the server answers. */
#ifndef AUGSERVE_METRICS_H
#define AUGSERVE_METRICS_H

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

/* The exposition text (malloc'd), or NULL when memory ran out. */
char *metrics_render(struct metrics *m, const struct metrics_gauges *gauges);

/* Resident set size of this process in bytes, from /proc/self/statm; -1 if unreadable. */
long metrics_process_rss(void);

#endif

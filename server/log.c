#include "log.h"
#include "response.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct access_log {
    FILE *out; /* NULL when off */
    int owned;
    pthread_mutex_t lock;
};

static pthread_mutex_t stderr_lock = PTHREAD_MUTEX_INITIALIZER;

void log_format_time_ms(int64_t ms, char *buf, size_t size)
{
    struct tm tm;
    time_t seconds = (time_t)(ms / 1000);
    gmtime_r(&seconds, &tm);
    size_t used = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + used, size - used, ".%03dZ", (int)(ms % 1000));
}

void log_format_time(char *buf, size_t size)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    log_format_time_ms((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, buf, size);
}

/* Writes doc as one line and frees it. */
static void write_line(FILE *out, pthread_mutex_t *lock, json_t *doc)
{
    char *line =
        doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(doc);
    if (!line) return;
    pthread_mutex_lock(lock);
    fprintf(out, "%s\n", line);
    fflush(out);
    pthread_mutex_unlock(lock);
    free(line);
}

struct access_log *access_log_open(const char *target, struct eng_error *err)
{
    struct access_log *log = calloc(1, sizeof *log);
    if (!log) {
        eng_no_memory(err);
        return NULL;
    }
    pthread_mutex_init(&log->lock, NULL);
    if (strcmp(target, "stderr") == 0) {
        log->out = stderr;
    } else if (strcmp(target, "off") != 0) {
        log->out = fopen(target, "a");
        if (!log->out) {
            eng_fail(err, ENG_INTERNAL, "access_log: cannot open %s: %s", target, strerror(errno));
            pthread_mutex_destroy(&log->lock);
            free(log);
            return NULL;
        }
        log->owned = 1;
    }
    return log;
}

void access_log_write(struct access_log *log, const struct access_entry *e)
{
    if (!log->out) return;
    char time_text[32];
    log_format_time(time_text, sizeof time_text);
    json_t *doc =
        json_pack("{s:s, s:o?, s:o?, s:o?, s:i, s:I, s:f, s:o?, s:o?}", "time", time_text,
                  "request_id", json_string_lossy(e->request_id), "method",
                  json_string_lossy(e->method), "path", json_string_lossy(e->path), "status",
                  e->status, "bytes", (json_int_t)e->bytes, "duration_ms", e->duration_s * 1000.0,
                  "client", json_string_lossy(e->client), "key", json_string_lossy(e->key_name));
    /* stderr is shared with server events, so it takes their lock. */
    write_line(log->out, log->out == stderr ? &stderr_lock : &log->lock, doc);
}

void access_log_close(struct access_log *log)
{
    if (!log) return;
    if (log->owned) fclose(log->out);
    pthread_mutex_destroy(&log->lock);
    free(log);
}

void log_event(const char *level, const char *event, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    char time_text[32];
    log_format_time(time_text, sizeof time_text);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:o?}", "time", time_text, "level", level, "event",
                            event, "message", json_string_lossy(message));
    write_line(stderr, &stderr_lock, doc);
}

/* Logging as JSON lines: one access-log line per answered request, and server events (start,
 * stop, failures) on stderr. Lines are written whole under a lock, so threads never interleave. */
#ifndef AUGSERVE_LOG_H
#define AUGSERVE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct access_log;

struct access_entry {
    const char *request_id;
    const char *method;
    const char *path;
    int status;
    unsigned long long bytes;
    double duration_s;
    const char *client;   /* address, or NULL */
    const char *key_name; /* API key that authorised it, or NULL */
};

/* target: "stderr", "off" or a file path (appended to). NULL with err filled on failure. */
struct access_log *access_log_open(const char *target, struct eng_error *err);
void access_log_write(struct access_log *log, const struct access_entry *entry);
void access_log_close(struct access_log *log);

/* A server event on stderr: {"time":..., "level":..., "event":..., "message":...}. */
void log_event(const char *level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* UTC time as RFC 3339 with milliseconds into buf (at least 32 bytes): now, or ms since the
 * epoch. */
void log_format_time(char *buf, size_t size);
void log_format_time_ms(int64_t ms, char *buf, size_t size);

#endif

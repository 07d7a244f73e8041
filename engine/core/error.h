/* Errors from the engine: a code the caller maps to its own terms (the server to HTTP statuses)
 * and a message that names the offending input and what would have been accepted. The engine
 * never prints. */
#ifndef AUGSERVE_ENGINE_CORE_ERROR_H
#define AUGSERVE_ENGINE_CORE_ERROR_H

enum eng_code {
    ENG_OK = 0,
    ENG_INVALID, /* the input is well-formed but not acceptable (a bad argument, a bad policy) */
    ENG_UNDECODABLE, /* corrupt or truncated data */
    ENG_UNSUPPORTED, /* a format or feature this build does not handle */
    ENG_TOO_LARGE,   /* past a configured limit */
    ENG_NOT_FOUND,   /* what a name refers to is not there (a model, a dataset, a job) */
    ENG_CONFLICT,    /* the name is taken, or the thing is in a state that forbids the change */
    ENG_CANCELLED,   /* stopped early: past its deadline, or nobody waits for it (core/cancel.h) */
    ENG_NO_MEMORY,
    ENG_INTERNAL,
};

struct eng_error {
    enum eng_code code;
    char message[512];
};

/* Sets err (if not NULL) and returns -1, so callers can write `return eng_fail(err, ...)`. */
int eng_fail(struct eng_error *err, enum eng_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* eng_fail with ENG_NO_MEMORY and "out of memory": the one message for a failed allocation. */
int eng_no_memory(struct eng_error *err);

#endif

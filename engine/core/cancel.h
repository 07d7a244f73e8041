/* Stopping long work early: a request whose deadline has passed, or whose client has gone, should
 * not hold a worker for minutes. The server installs a check on the thread that serves a request;
 * the engine asks it between units of work (each op of a policy, each inference step, each
 * millisecond slept), and parallel_for hands the caller's check to the threads it starts, so a
 * request's samples stop together.
 *
 * The check is per thread rather than an argument, so that every function between the server and
 * a loop need not carry it; code that runs without one installed (the CLI, the tests) is never
 * stopped. A check must be cheap (it runs thousands of times a second) and thread-safe (the
 * threads of one parallel_for share it). */
#ifndef AUGSERVE_ENGINE_CORE_CANCEL_H
#define AUGSERVE_ENGINE_CORE_CANCEL_H

#include "core/error.h"

struct eng_cancel {
    /* 0 to go on; otherwise fails err with ENG_CANCELLED, saying why, and returns -1. */
    int (*check)(void *ctx, struct eng_error *err);
    void *ctx;
};

/* Installs c (NULL: none) for the calling thread; c must outlive its installation. */
void eng_cancel_install(const struct eng_cancel *c);

/* What the calling thread has installed, or NULL. */
const struct eng_cancel *eng_cancel_installed(void);

/* 0 when the work may go on (always, with nothing installed), else -1 with err set. */
int eng_cancel_poll(struct eng_error *err);

#endif

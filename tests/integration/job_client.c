/* The jobs tests' client helpers (job_client.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job_client.h"

void job_sleep_ms(long ms)
{
    struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0) {
    }
}

void job_send(const struct server *srv, const char *method, const char *path, const char *body,
              const char *key, struct http_response *r)
{
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    const char *headers[] = {"Content-Type: application/json", key ? auth : NULL, NULL};
    struct http_request req = {.method = method,
                               .path = path,
                               .headers = headers,
                               .body = body,
                               .body_size = body ? strlen(body) : 0};
    http_send(srv, &req, r);
}

json_t *job_get(const struct server *srv, const char *id, const char *key)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    struct http_response r;
    job_send(srv, "GET", path, NULL, key, &r);
    assert_status(&r, 200);
    json_t *doc = http_json(&r);
    http_response_free(&r);
    return doc;
}

json_t *job_wait_state(const struct server *srv, const char *id, const char *state)
{
    double deadline = harness_now() + WAIT_S;
    for (;;) {
        json_t *doc = job_get(srv, id, NULL);
        const char *now = json_str(doc, "state");
        if (strcmp(now, state) == 0) return doc;
        int final = strcmp(now, "queued") != 0 && strcmp(now, "running") != 0;
        if (final || harness_now() > deadline)
            fail_msg("job %s is %s (error: %s), not %s", id, now,
                     json_string_value(json_object_get(doc, "error")), state);
        json_decref(doc);
        job_sleep_ms(20);
    }
}

struct server *job_restart_on(void **state, const struct server *first, const char *settings)
{
    json_t *doc = json_loads(settings, 0, NULL);
    json_object_set_new(doc, "data_dir", json_string(first->data_dir));
    char *extra = json_dumps(doc, JSON_COMPACT);
    struct server *srv = harness_start(state, extra);
    free(extra);
    json_decref(doc);
    return srv;
}

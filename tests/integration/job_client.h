/* What the integration tests of /v1/jobs share: requests with a JSON body and a key, reading a
 * job, waiting for its state, and restarting the server on the same data_dir (kill -9 tests).
 * Each fails the running cmocka test when it cannot go on. */
#ifndef AUGSERVE_TEST_JOB_CLIENT_H
#define AUGSERVE_TEST_JOB_CLIENT_H

#include <jansson.h>

#include "harness.h"

/* How long a test waits for a job's state or progress: long, as sanitized builds on a loaded
 * machine run jobs many times slower. */
#define WAIT_S 90.0

void job_sleep_ms(long ms);

/* Sends method path with an optional JSON body and key (NULL: no Authorization); the response
 * in r. */
void job_send(const struct server *srv, const char *method, const char *path, const char *body,
              const char *key, struct http_response *r);

/* GET /v1/jobs/{id}, which must answer 200: its document (the caller owns it). */
json_t *job_get(const struct server *srv, const char *id, const char *key);

/* Polls the job until its state is `state` (failing after WAIT_S, or when it reaches another
 * final state); its document. */
json_t *job_wait_state(const struct server *srv, const char *id, const char *state);
/* The same with another deadline, for a job over a large dataset. */
json_t *job_wait_state_for(const struct server *srv, const char *id, const char *state,
                           double seconds);

/* A server on first's data_dir, with settings (a JSON object's text), registered for the
 * teardown. */
struct server *job_restart_on(void **state, const struct server *first, const char *settings);

/* The same with job_threads 2 and the harness's models_dir: a restart after a kill -9. */
struct server *job_restart(void **state, const struct server *first);

/* POSTs {"kind": kind, "params": params} (a JSON text): 202 asserted; the job's id into id. */
void job_submit(const struct server *srv, const char *kind, const char *params, char id[32]);

/* Polls until the job, running, has done at least `fraction` of its work (failing when it ends
 * first or after WAIT_S). */
void job_wait_progress(const struct server *srv, const char *id, double fraction);

/* POSTs a job that must be refused with status, the body containing needle. */
void job_expect_refusal(const struct server *srv, const char *kind, const char *params, long status,
                        const char *needle);

/* DELETE /v1/jobs/{id}: the cancel is accepted (200, 202 or 204). */
void job_cancel(const struct server *srv, const char *id);

/* Submits a job of kind with params (one that runs long), cancels it once it has made progress
 * and waits until it is cancelled. */
void job_cancel_running(const struct server *srv, const char *kind, const char *params);

/* Kills first with kill -9 once job id has done `fraction` of its work, starts a second server on
 * its data_dir (job_threads 2, the harness's models_dir) into *second, and waits for the job to
 * succeed there: on its second attempt, with an event containing log_needle (the kind's line
 * saying where it resumed). The job's document. */
json_t *job_kill_and_resume(void **state, struct server *first, const char *id, double fraction,
                            const char *log_needle, struct server **second);
/* The second half of that: first has stopped; the second server and the wait. */
json_t *job_resume(void **state, const struct server *first, const char *id, const char *log_needle,
                   struct server **second);
/* The same with another deadline, for a job whose rest is long. */
json_t *job_resume_for(void **state, const struct server *first, const char *id,
                       const char *log_needle, double seconds, struct server **second);

/* A count job of `units` units, killed once it had done a quarter, as its document shows it at its
 * end: every unit counted once, on its second attempt, resumed from where it had got to (which it
 * returns: the result's resumed_from). */
int job_expect_count_resumed(json_t *doc, int units);

/* The count kind's units.csv of job id: each unit 1..units once, those up to resumed counted by
 * attempt 1 and the others by attempt 2. */
void job_check_units_once(const struct server *srv, const char *id, int units, int resumed);

/* Search id's trials.jsonl holds trials 0 to trials - 1 once each, in order (what an interrupted
 * attempt wrote after its last checkpoint was cut). */
void job_expect_trials_file(const struct server *srv, const char *id, int trials);

/* The job's folder holds its artifacts folder and nothing else (no checkpoint file left). */
void job_expect_only_artifacts(const struct server *srv, const char *id);

/* `augserve dataset import src --out <data_dir>/datasets`: the dataset's id into id. */
void job_import_dataset(const struct server *srv, const char *src, char id[64]);

#endif

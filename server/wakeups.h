/* What a process does when another process sharing its store tells it something (storage.h's
 * notifications, heard on PostgreSQL only): a job queued wakes its idle runners, a cancel makes
 * its running jobs read their flag, a model added or removed makes it rescan models_dir (which
 * every process of the store mounts), a saved policy saved or deleted makes it read the saved
 * policies into the engine's table again, a job's new events make its event streams read them.
 * Whatever a lost notification would have said, the process finds on its own later: runners poll
 * every job_poll_s, running jobs read their cancel flag and event streams the store as often, the
 * models wait for the next notification or SIGHUP and the policies for the next notification
 * (every channel is heard once, payload NULL, when the listener is back). */
#ifndef AUGSERVE_WAKEUPS_H
#define AUGSERVE_WAKEUPS_H

#include "core/error.h"

struct app;

/* Starts listening (app->listener), before the parts that hear anything exist: what is heard is
 * dropped until wakeups_hear. 0, or -1 with err. */
int wakeups_listen(struct app *app, struct eng_error *err);
/* Once app->jobs and app->models are open: from now on what is heard reaches them. */
void wakeups_hear(struct app *app);
/* For the event stream of job `job`: a count that moves whenever the store announces new events of
 * that job (or of one sharing its count) and when announcements may have been lost (the listener
 * connected again), into *count. 1 while announcements arrive (PostgreSQL, the listener's
 * connection up), when the stream need not read the store until the count moves; 0 when they do
 * not (SQLite, or the connection down), when only reading the store finds new events. */
int wakeups_events(struct app *app, const char *job, unsigned *count);
/* A models_settings' changed hook (its arg the app): tells the other processes. */
void wakeups_model_changed(void *app, const char *name);

#endif

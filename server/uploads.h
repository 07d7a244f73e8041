/* Uploads while they are received. A body streamed to a file (server/http.c's ROUTE_UPLOAD) goes
 * to data_dir/uploads/.partial-<worker id>-XXXXXX, named by the process receiving it
 * (leases_worker_id), until its request ends: removed, or moved by dataset_import_submit to
 * data_dir/uploads/<id>/, where the dataset's record (importing) keeps it for its import job.
 *
 * data_dir is shared by every process of a PostgreSQL store, so a partial file may be another
 * server's, still arriving: it is removed (uploads_sweep, at start-up and on every process's
 * lease sweep) only once its owner is gone, which is when the owner is known to have ended (on
 * this machine: no process of its pid; on a SQLite store, which one process uses: any other than
 * this one) or its heartbeat in the store (process_store.h) is older than lease_s, as a job's
 * lease expires. A receiving server killed or frozen past lease_s loses its partial uploads so;
 * the clients of a frozen one get a 500 when it comes back and finds the file gone. */
#ifndef AUGSERVE_UPLOADS_H
#define AUGSERVE_UPLOADS_H

struct app;

/* Creates a partial upload of this process under data_dir/uploads: its descriptor, opened for
 * writing, with its path in *path (to free); or -1 with errno (*path NULL). */
int uploads_create(const char *data_dir, char **path);

/* Whether an entry of data_dir/uploads is a partial upload (else the folder of a dataset's). */
int uploads_is_partial(const char *name);

/* Removes the partial uploads of data_dir/uploads whose receiving process is gone (above), logging
 * each. A store that cannot answer keeps them for a later sweep. */
void uploads_sweep(struct app *app);

#endif

/* A kill -9 between a training run's two checkpoint writes (its file, then the record in the store
 * that names it), every time rather than by a timed race: the test holds the store's write lock on
 * its own SQLite connection, so the server, once it has renamed the new checkpoint file into the
 * job's folder, waits on the lock to commit the record; the test sees the file and kills the
 * server there. The job's folder then holds the new file and the store the record before it:
 * the state a power cut or a kill -9 between the two writes leaves. */
#ifndef AUGSERVE_TEST_KILL_BETWEEN_H
#define AUGSERVE_TEST_KILL_BETWEEN_H

#include <jansson.h>

#include "harness.h"

/* Kills srv with kill -9 (waiting for its exit) once job id's checkpoint record is one `reached`
 * accepts and the server has written the next checkpoint's file but not its record. The record
 * the store keeps (the caller owns it). */
json_t *kill_between_file_and_record(struct server *srv, const char *id,
                                     int (*reached)(const json_t *record));

/* Makes the record of job id, on srv's stopped server, name checkpoint file `file`. */
void kill_between_set_file(const struct server *srv, const char *id, const char *file);

#endif

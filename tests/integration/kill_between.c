/* A kill -9 between a checkpoint's file and its record (kill_between.h). The checkpoint files are
 * the job folder's *.ckpt, written to *.ckpt.tmp and renamed, each starting with "AUGTRAIN", a u32
 * version and the u64 plan step (server/job_train_state.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "job_client.h"
#include "kill_between.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The job's checkpoint record, read in db's transaction or on its own (NULL before the first). */
static json_t *record(sqlite3 *db, const char *id)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(db, "SELECT checkpoint FROM jobs WHERE id = ?", -1, &stmt, NULL))
        fail_msg("store: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_TRANSIENT);
    json_t *doc = NULL;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_text(stmt, 0))
        doc = json_loads((const char *)sqlite3_column_text(stmt, 0), 0, NULL);
    else if (rc != SQLITE_ROW)
        fail_msg("store: job %s: %s", id, sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    return doc;
}

static int later(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* Whether the folder holds a file whose name ends with suffix; the newest one's modification time
 * into *newest when newest is not NULL (and a file named `except` is left out). */
static int find(const char *folder, const char *suffix, const char *except, struct timespec *newest)
{
    DIR *dir = opendir(folder);
    if (!dir) return 0;
    int found = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        char path[PATH_MAX + 400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", folder, e->d_name);
        if (!ends_with(e->d_name, suffix) || (except && !strcmp(e->d_name, except)) ||
            stat(path, &st) != 0)
            continue;
        if (newest && (!found || later(&st.st_mtim, newest))) *newest = st.st_mtim;
        found = 1;
    }
    closedir(dir);
    return found;
}

/* Whether a checkpoint was saved after record's: the file record names holds another step (one
 * file rewritten in place), or another checkpoint file is newer than it. */
static int saved_after(const char *folder, const json_t *record)
{
    const char *file = json_string_value(json_object_get(record, "file"));
    char path[PATH_MAX + 400];
    snprintf(path, sizeof path, "%s/%s", folder, file);
    struct stat st;
    unsigned char head[20];
    uint64_t step;
    FILE *f = fopen(path, "rb");
    int got = f && fread(head, 1, sizeof head, f) == sizeof head && stat(path, &st) == 0;
    if (f) fclose(f);
    if (!got) return 0;
    memcpy(&step, head + 12, sizeof step);
    struct timespec other = {0};
    return step != (uint64_t)json_integer_value(json_object_get(record, "step")) ||
           (find(folder, ".ckpt", file, &other) && later(&other, &st.st_mtim));
}

static void exec(sqlite3 *db, const char *sql)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("store: %s: %s", sql, sqlite3_errmsg(db));
}

/* The store of srv's server, opened for the test's own reads and writes. */
static sqlite3 *open_store(const struct server *srv)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/augserve.db", srv->data_dir);
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        fail_msg("cannot open %s", path);
    /* Longer than the server's (5 s): the lock is ours as soon as its write ends. */
    sqlite3_busy_timeout(db, 30000);
    return db;
}

void kill_between_set_file(const struct server *srv, const char *id, const char *file)
{
    sqlite3 *db = open_store(srv);
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(db,
                           "UPDATE jobs SET checkpoint = json_set(checkpoint, '$.file', ?)"
                           " WHERE id = ?",
                           -1, &stmt, NULL))
        fail_msg("store: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(stmt, 1, file, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 2, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) != SQLITE_DONE || sqlite3_changes(db) != 1)
        fail_msg("store: job %s: %s", id, sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

json_t *kill_between_file_and_record(struct server *srv, const char *id,
                                     int (*reached)(const json_t *record))
{
    char folder[PATH_MAX + 64];
    snprintf(folder, sizeof folder, "%s/jobs/%s", srv->data_dir, id);
    sqlite3 *db = open_store(srv);
    double deadline = harness_now() + WAIT_S;
    for (;;) {
        json_t *r = record(db, id);
        int ok = r && reached(r);
        json_decref(r);
        if (ok) break;
        if (harness_now() > deadline) fail_msg("job %s never reached the checkpoint", id);
        job_sleep_ms(1);
    }
    /* The lock taken while the next save is under way, so that it holds from the save's rename
     * to its commit at once. Taken later, it holds all the same: the server's writes of the epoch
     * after fail one by one after their 5 s wait, and its next save waits on it. */
    while (!find(folder, ".ckpt.tmp", NULL, NULL) && harness_now() < deadline)
        ;
    exec(db, "BEGIN IMMEDIATE");
    double locked = harness_now();
    json_t *kept = record(db, id);
    while (!saved_after(folder, kept)) {
        if (harness_now() > deadline) fail_msg("job %s: no checkpoint file after the record", id);
        job_sleep_ms(1);
    }
    assert_int_equal(server_stop(srv, SIGKILL, 5000), 0);
    assert_true(WIFSIGNALED(srv->wait_status));
    json_t *phase = json_object_get(kept, "phase");
    char *text = phase ? json_dumps(phase, JSON_ENCODE_ANY) : NULL;
    print_message("killed %.1f s into the lock; the record: phase %s, epoch %lld, step %lld, %s\n",
                  harness_now() - locked, text ? text : "none",
                  (long long)json_integer_value(json_object_get(kept, "epoch")),
                  (long long)json_integer_value(json_object_get(kept, "step")),
                  json_string_value(json_object_get(kept, "file")));
    free(text);
    exec(db, "ROLLBACK");
    sqlite3_close(db);
    return kept;
}

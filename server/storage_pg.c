/* The store's PostgreSQL backend (storage_internal.h), through libpq: one connection, used under
 * st->lock like SQLite's.
 *
 * A statement is its SQL with the layer's `?` and `?N` placeholders rewritten to PostgreSQL's $N,
 * and its parameters as text: it runs at its first step (PQexecParams, the server inferring each
 * parameter's type from where it stands) and its rows are then read from the one result. */
#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage_internal.h"

struct pg {
    PGconn *conn;
    char *error;     /* the last failure's message, or NULL */
    int duplicate;   /* whether it broke a UNIQUE constraint (SQLSTATE 23505) */
    int64_t changes; /* rows the last INSERT, UPDATE or DELETE changed */
    int transaction; /* between a BEGIN and its COMMIT or ROLLBACK */
    int idle_s;      /* the session's idle-in-transaction limit (0: none) */
};

/* The pg_advisory_lock key of the migrations' lock, held to their transaction's end ("augs" in
 * ASCII). (Several processes share a store: jobs are claimed under leases, job_store.h.) */
#define MIGRATION_LOCK "1635084147"

struct pg_stmt {
    struct storage_stmt base;
    char *sql; /* with $N placeholders */
    int count; /* parameters */
    char **values;
    PGresult *result; /* once run */
    int row, rows;
};

static struct pg *pg_of(struct storage *st)
{
    return st->conn;
}

static struct pg_stmt *stmt_of(struct storage_stmt *s)
{
    return (struct pg_stmt *)s;
}

/* Keeps the message (without libpq's final newline) for errmsg. */
static void set_error(struct pg *pg, const char *message, int duplicate)
{
    free(pg->error);
    pg->error = strdup(message);
    if (pg->error) pg->error[strcspn(pg->error, "\n")] = '\0';
    pg->duplicate = duplicate;
}

/* Checks a result: 0 when it is a success, else -1 with the error kept; clears it either way
 * when keep is 0. */
static int check(struct pg *pg, PGresult *r, int keep)
{
    ExecStatusType status = PQresultStatus(r);
    /* An empty query is migration 1's, which has nothing to do. */
    int ok = r && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ||
                   status == PGRES_EMPTY_QUERY);
    if (ok && strncmp(PQcmdStatus(r), "SELECT", 6) != 0)
        pg->changes = strtoll(PQcmdTuples(r), NULL, 10);
    if (!ok) {
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        set_error(pg, r ? PQresultErrorMessage(r) : PQerrorMessage(pg->conn),
                  state && strcmp(state, "23505") == 0);
    }
    if (!keep || !ok) PQclear(r);
    return ok ? 0 : -1;
}

/* A connection the server dropped (it restarted, or an administrator ended it) is made again
 * before the next statement outside a transaction; the statement that found it dropped has failed
 * already. Inside a transaction every statement fails until the ROLLBACK, so none of the rest of
 * it runs on a new connection, outside the transaction. */
static int limit_idle(struct pg *pg)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SET idle_in_transaction_session_timeout = %lld",
             (long long)pg->idle_s * 1000);
    return check(pg, PQexec(pg->conn, sql), 0);
}

static void reconnect_if_lost(struct pg *pg)
{
    if (pg->transaction || PQstatus(pg->conn) != CONNECTION_BAD) return;
    PQreset(pg->conn);
    /* A session's settings end with it. Should this fail, so does the statement that follows. */
    if (PQstatus(pg->conn) == CONNECTION_OK && pg->idle_s > 0) limit_idle(pg);
}

int storage_pg_limit_idle(struct storage *st, int seconds, struct eng_error *err)
{
    struct pg *pg = pg_of(st);
    pg->idle_s = seconds;
    reconnect_if_lost(pg);
    return limit_idle(pg) == 0 ? 0 : storage_fail(st, err, "limiting idle transactions");
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* "relation meta already exists, skipping", and the like */
}

static int open_db(struct storage *st, const char *url, struct eng_error *err)
{
    struct pg *pg = calloc(1, sizeof *pg);
    if (!pg) return eng_no_memory(err);
    st->conn = pg;
    /* A URL's own connect_timeout or client_encoding wins: libpq keeps the last value of a
     * keyword, and the URL (dbname, expanded) comes last. Without a timeout a start-up against an
     * unreachable host would wait for TCP's. */
    const char *const keys[] = {"connect_timeout", "client_encoding", "dbname", NULL};
    const char *const values[] = {"10", "UTF8", url, NULL};
    pg->conn = PQconnectdbParams(keys, values, 1);
    if (!pg->conn) return eng_no_memory(err);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        set_error(pg, PQerrorMessage(pg->conn), 0);
        return eng_fail(err, ENG_INTERNAL, "storage: cannot connect to the PostgreSQL store: %s",
                        pg->error ? pg->error : "out of memory");
    }
    PQsetNoticeProcessor(pg->conn, ignore_notice, NULL);
    return 0;
}

static void close_db(struct storage *st)
{
    struct pg *pg = pg_of(st);
    PQfinish(pg->conn);
    free(pg->error);
    free(pg);
}

static int exec(struct storage *st, const char *sql)
{
    struct pg *pg = pg_of(st);
    int ending = strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0;
    if (ending) pg->transaction = 0;
    reconnect_if_lost(pg);
    int rc = check(pg, PQexec(pg->conn, sql), 0);
    if (rc == 0 && strncmp(sql, "BEGIN", 5) == 0) pg->transaction = 1;
    return rc;
}

/* sql with `?` numbered in order and `?N` kept as N, both written $N, outside quoted text; the
 * parameters' count (the highest number) into *count. NULL when memory runs out. */
static char *rewrite(const char *sql, int *count)
{
    /* "$N" is at most 11 bytes for a `?`: a bound that needs no second pass. */
    char *out = malloc(strlen(sql) * 11 + 1);
    if (!out) return NULL;
    char *o = out;
    int next = 0, quoted = 0;
    *count = 0;
    for (const char *p = sql; *p; p++) {
        if (*p == '\'') quoted = !quoted;
        if (quoted || *p != '?') {
            *o++ = *p;
            continue;
        }
        int n;
        if (p[1] >= '0' && p[1] <= '9') {
            char *end;
            n = (int)strtol(p + 1, &end, 10);
            p = end - 1;
        } else {
            n = ++next;
        }
        if (n > *count) *count = n;
        o += sprintf(o, "$%d", n);
    }
    *o = '\0';
    return out;
}

static struct storage_stmt *prepare(struct storage *st, const char *sql)
{
    struct pg *pg = pg_of(st);
    struct pg_stmt *s = calloc(1, sizeof *s);
    if (s) s->sql = rewrite(sql, &s->count);
    if (s && s->sql) s->values = calloc(s->count ? (size_t)s->count : 1, sizeof *s->values);
    if (!s || !s->sql || !s->values) {
        if (s) free(s->sql);
        free(s);
        set_error(pg, "out of memory", 0);
        return NULL;
    }
    s->base.driver = &storage_pg_driver;
    s->base.st = st;
    return &s->base;
}

static int bind_text(struct storage_stmt *base, int index, const char *text)
{
    struct pg_stmt *s = stmt_of(base);
    if (index < 1 || index > s->count) return -1;
    char *copy = text ? strdup(text) : NULL;
    if (text && !copy) return -1;
    free(s->values[index - 1]);
    s->values[index - 1] = copy;
    return 0;
}

static int bind_int64(struct storage_stmt *s, int index, int64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)value);
    return bind_text(s, index, text);
}

static int bind_double(struct storage_stmt *s, int index, double value)
{
    char text[32];
    snprintf(text, sizeof text, "%.17g", value); /* reads back to the same double */
    return bind_text(s, index, text);
}

static int step(struct storage_stmt *base)
{
    struct pg_stmt *s = stmt_of(base);
    if (!s->result) {
        struct pg *pg = pg_of(base->st);
        reconnect_if_lost(pg);
        PGresult *r = PQexecParams(pg->conn, s->sql, s->count, NULL, (const char *const *)s->values,
                                   NULL, NULL, 0);
        if (check(pg, r, 1) != 0) return STORAGE_ERROR;
        s->result = r;
        s->rows = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : 0;
        s->row = -1;
    }
    if (s->row < s->rows) s->row++;
    return s->row < s->rows ? STORAGE_ROW : STORAGE_DONE;
}

static const char *column_text(struct storage_stmt *base, int column)
{
    struct pg_stmt *s = stmt_of(base);
    if (PQgetisnull(s->result, s->row, column)) return NULL;
    return PQgetvalue(s->result, s->row, column);
}

static int64_t column_int64(struct storage_stmt *s, int column)
{
    const char *text = column_text(s, column);
    return text ? strtoll(text, NULL, 10) : 0;
}

static double column_double(struct storage_stmt *s, int column)
{
    const char *text = column_text(s, column);
    return text ? strtod(text, NULL) : 0;
}

static void finalize(struct storage_stmt *base)
{
    struct pg_stmt *s = stmt_of(base);
    PQclear(s->result);
    for (int i = 0; i < s->count; i++)
        free(s->values[i]);
    free(s->values);
    free(s->sql);
    free(s);
}

static int64_t changes(struct storage *st)
{
    return pg_of(st)->changes;
}

static const char *errmsg(struct storage *st)
{
    const char *error = pg_of(st)->error;
    return error ? error : "unknown error";
}

static int duplicate(struct storage *st)
{
    return pg_of(st)->duplicate;
}

/* SQLite's types, which the migrations are written in, as PostgreSQL's: SQLite's INTEGER is 64
 * bits (times in milliseconds), its REAL a double, its AUTOINCREMENT key an identity that never
 * reuses a value. Whole words only. */
static const struct {
    const char *sqlite, *postgresql;
} types[] = {
    {"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
    {"INTEGER", "BIGINT"},
    {"REAL", "DOUBLE PRECISION"},
};

static int is_name_char(char c)
{
    return c == '_' || isalnum((unsigned char)c);
}

/* Whether the word of this length starts at p in sql, standing alone. */
static int word_at(const char *sql, const char *p, const char *word, size_t length)
{
    return strncmp(p, word, length) == 0 && !(p > sql && is_name_char(p[-1])) &&
           !is_name_char(p[length]);
}

static char *schema_sql(const char *sql)
{
    /* No replacement is more than 4 times its word's length (REAL). */
    char *out = malloc(strlen(sql) * 4 + 1);
    if (!out) return NULL;
    char *o = out;
    for (const char *p = sql; *p;) {
        size_t i = 0, length = 0;
        for (; i < sizeof types / sizeof types[0]; i++) {
            length = strlen(types[i].sqlite);
            if (word_at(sql, p, types[i].sqlite, length)) break;
        }
        if (i == sizeof types / sizeof types[0]) {
            *o++ = *p++;
            continue;
        }
        o += sprintf(o, "%s", types[i].postgresql);
        p += length;
    }
    *o = '\0';
    return out;
}

const struct storage_driver storage_pg_driver = {
    STORAGE_DRIVER_FUNCTIONS,
    /* READ COMMITTED: the claim's SKIP LOCKED and the UPDATE ... WHERE state = 'running' checks
     * are what keeps two writers apart, as SQLite's one writer does. */
    .begin_sql = "BEGIN",
    /* Two servers starting on a new database at once: the second waits for the first's
     * migrations and then finds them done. */
    .begin_migration_sql = "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")",
    /* Leases are timed by the database's clock: the machines' clocks may disagree. */
    .clock_sql = "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
};

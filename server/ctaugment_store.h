/* CTAugment states' records in the store (/v1/ctaugment): an id, the state as ctaug_to_json
 * writes it (policy/policy.h's CTAugment section), how many updates it has had, who made it and
 * when. Every function is one atomic operation of the store, safe from any thread; no caller sees
 * SQL. What the state means is the engine's: the store keeps its document and never reads it. */
#ifndef AUGSERVE_CTAUGMENT_STORE_H
#define AUGSERVE_CTAUGMENT_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "job_store.h"

struct storage;

#define CTAUGMENT_ID_SIZE JOB_ID_SIZE

struct ctaugment_record {
    char id[CTAUGMENT_ID_SIZE];
    json_t *state;    /* ctaug_to_json's document */
    char *owner;      /* the API key's name that made it, or NULL */
    int64_t revision; /* 0 when made; each ctaugment_store_update adds 1 */
    int64_t created_ms;
    int64_t updated_ms; /* when the state last changed (created_ms until an update) */
};

/* Frees what a record holds and zeroes it. */
void ctaugment_record_clear(struct ctaugment_record *r);

/* A new record with r's id, state and owner (revision 0, created now; r's other fields are
 * ignored). ENG_CONFLICT when the id is taken. */
int ctaugment_store_create(struct storage *st, const struct ctaugment_record *r,
                           struct eng_error *err);

/* The record of id into *out. ENG_NOT_FOUND when there is none. */
int ctaugment_store_get(struct storage *st, const char *id, struct ctaugment_record *out,
                        struct eng_error *err);

/* Calls each(record, ctx) for every record, oldest first, stopping at the first that returns
 * non-zero (its value is returned, err filled by it). The record is the store's until each
 * returns. 0, or -1 with err. */
int ctaugment_store_each(struct storage *st,
                         int (*each)(const struct ctaugment_record *, void *ctx,
                                     struct eng_error *err),
                         void *ctx, struct eng_error *err);

/* A read-modify-write of id's state, in one transaction that holds the row (FOR UPDATE on
 * PostgreSQL, SQLite's write lock), so two updates at once, from two threads or two servers on
 * one store, never lose one: update(state, ctx, err) gives the new state (a new reference, or
 * NULL with err, and then nothing changes); the record is stored with revision + 1 and the new
 * record read into *out. ENG_NOT_FOUND when there is no such record. */
int ctaugment_store_update(struct storage *st, const char *id,
                           json_t *(*update)(const json_t *state, void *ctx, struct eng_error *err),
                           void *ctx, struct ctaugment_record *out, struct eng_error *err);

/* Removes the record. ENG_NOT_FOUND when there is none. */
int ctaugment_store_delete(struct storage *st, const char *id, struct eng_error *err);

#endif

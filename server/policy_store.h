/* Saved policies' records in the embedded store (POST /v1/policies): a name, the compiled
 * document, who saved it and when. Every function is one atomic operation of the store, safe from
 * any thread; no caller sees SQL (a PostgreSQL backend implements the same functions). What a
 * saved policy means to the engine is policy/saved.h's; server/saved_policies.c keeps the two in
 * step. */
#ifndef AUGSERVE_POLICY_STORE_H
#define AUGSERVE_POLICY_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"

struct storage;

struct policy_record {
    char *name;
    json_t *document; /* the compiled policy document */
    char *owner;      /* the API key's name that first saved it, or NULL */
    int64_t created_ms;
    int64_t updated_ms; /* when the document was last set (created_ms until a replace) */
};

/* Frees what a record holds and zeroes it. */
void policy_record_clear(struct policy_record *r);

/* Saves r->document as r->name (created and updated now; r's times are ignored). A name already
 * saved is ENG_CONFLICT unless replace, which sets its document and updated time and keeps its
 * owner and created time. *created (if not NULL) says whether the name was new. */
int policy_store_put(struct storage *st, const struct policy_record *r, int replace, int *created,
                     struct eng_error *err);

/* The record of name into *out (policy_record_clear it). ENG_NOT_FOUND when there is none. */
int policy_store_get(struct storage *st, const char *name, struct policy_record *out,
                     struct eng_error *err);

/* Calls each(record, ctx) for every record in name order, stopping at the first that returns
 * non-zero (its value is returned, err filled by it). The record is the store's until each
 * returns. 0, or -1 with err. */
int policy_store_each(struct storage *st,
                      int (*each)(const struct policy_record *, void *ctx, struct eng_error *err),
                      void *ctx, struct eng_error *err);

/* Removes the record. ENG_NOT_FOUND when there is none. */
int policy_store_delete(struct storage *st, const char *name, struct eng_error *err);

#endif

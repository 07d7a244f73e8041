/* Helpers shared by the cmocka engine tests: reading fixture files whole, and parsing policies
 * that must parse or must be refused. Each fails the running test when its expectation is not
 * met. */
#ifndef AUGSERVE_TEST_TESTUTIL_H
#define AUGSERVE_TEST_TESTUTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct nn_graph;
struct policy;

/* A file's bytes, with one spare byte after them; free data. */
struct blob {
    unsigned char *data;
    size_t size;
};

/* Reads dir/name whole. */
struct blob tu_read_file(const char *dir, const char *name);

/* Loads dir/name as JSON. */
json_t *tu_load_json(const char *dir, const char *name);

/* Parses a policy document that must be valid. */
struct policy *tu_parse_policy(const char *text);

/* Checks that text is refused as ENG_INVALID with an error message containing message. */
void tu_expect_policy_invalid(const char *text, const char *message);

/* The zoo model a train job's model object names (engine/train), initialised from seed. */
struct nn_graph *tu_zoo_model(const char *model_json, uint64_t seed);

/* Checks that train_zoo_parse refuses model_json as ENG_INVALID with a message containing
 * needle. */
void tu_zoo_refused(const char *model_json, const char *needle);

/* Writes size bytes of data to dir/name. */
void tu_write_file(const char *dir, const char *name, const void *data, size_t size);
/* Writes doc (then released) to dir/name, indented. */
void tu_write_json(const char *dir, const char *name, json_t *doc);

#endif

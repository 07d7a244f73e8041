/* JSON and clients: the text we write (jansson writes every real with 17 significant digits, 0.95
 * reading 0.94999999999999996, which is exact but hard on people and diffs), and the members of
 * what they send. */
#ifndef AUGSERVE_JSON_TEXT_H
#define AUGSERVE_JSON_TEXT_H

#include <jansson.h>

#include "core/error.h"

/* json_dumps(doc, flags), but with each real in the fewest significant digits that read back as
 * the same double (0.95), so no value changes; where that text would be longer than jansson's
 * (6.925012123749049e16 against 69250121237490488.0), jansson's stays. Integers, strings and keys
 * are as jansson writes them. Returns a malloc'd string, or NULL when memory runs out (or doc is
 * NULL). */
char *json_text(const json_t *doc, size_t flags);

/* ENG_INVALID naming the first member of obj not in names (NULL-terminated), as "<prefix><member>:
 * unknown <what>; known: <names>": a typo in a member's name is an error, not a default silently
 * used. 0 when every member is known. */
int json_check_members(const json_t *obj, const char *const names[], const char *prefix,
                       const char *what, struct eng_error *err);

#endif

/* JSON text for clients: jansson writes every real with 17 significant digits (0.95 reads
 * 0.94999999999999996), which is exact but hard on people and diffs. */
#ifndef AUGSERVE_JSON_TEXT_H
#define AUGSERVE_JSON_TEXT_H

#include <jansson.h>

/* json_dumps(doc, flags), but with each real in the fewest significant digits that read back as
 * the same double (0.95), so no value changes; where that text would be longer than jansson's
 * (6.925012123749049e16 against 69250121237490488.0), jansson's stays. Integers, strings and keys
 * are as jansson writes them. Returns a malloc'd string, or NULL when memory runs out (or doc is
 * NULL). */
char *json_text(const json_t *doc, size_t flags);

#endif

/* multipart/form-data bodies (RFC 7578 over RFC 2046's multipart syntax), parsed as they arrive,
 * in chunks split anywhere, into whole parts under a cap on their number. The parser takes bytes,
 * not a connection: server/http.c feeds it a request's body, the unit tests and the fuzz target
 * feed it bytes of their own. What it accepts and refuses is said atop multipart.c. */
#ifndef AUGSERVE_MULTIPART_H
#define AUGSERVE_MULTIPART_H

#include <stddef.h>

#include "request.h"

struct multipart;

enum multipart_status {
    MULTIPART_OK,
    MULTIPART_MALFORMED,      /* not multipart/form-data as RFC 2046 and RFC 7578 have it: 400 */
    MULTIPART_NESTED,         /* a part is itself multipart (RFC 7578 §4.3): 400 */
    MULTIPART_TOO_MANY_PARTS, /* more than max_parts: 413 */
    MULTIPART_NO_MEMORY,
    MULTIPART_SINK_FAILED, /* the sink of a streamed part refused its bytes (it says why) */
};

/* Starts parsing a body whose Content-Type header is content_type. MULTIPART_MALFORMED, and no
 * parser, when the header is not multipart/form-data with one usable boundary. */
enum multipart_status multipart_begin(const char *content_type, size_t max_parts,
                                      struct multipart **mp);

/* Streams the value of the first part named name (a string that outlives mp) to sink as it
 * arrives instead of holding it, so a file part of any size takes no memory: multipart_end lists
 * that part with an empty value (size 0). A nonzero return from sink stops the parse with
 * MULTIPART_SINK_FAILED. Call it before the first multipart_feed. */
void multipart_stream_part(struct multipart *mp, const char *name,
                           int (*sink)(void *ctx, const char *data, size_t size), void *ctx);

/* Feeds the next body bytes. After the first failure, later calls do nothing and return it. */
enum multipart_status multipart_feed(struct multipart *mp, const char *data, size_t size);

/* Ends the body. On MULTIPART_OK the parts are the caller's (free them with
 * multipart_free_parts); mp still needs multipart_free. A body without any part, or one that ends
 * before its close delimiter, is MULTIPART_MALFORMED. */
enum multipart_status multipart_end(struct multipart *mp, struct request_part **parts,
                                    size_t *count);

/* The first failure as a sentence for the client, naming the part by its number; "" while all
 * is well. */
const char *multipart_error(const struct multipart *mp);

/* Frees mp and the parts it still holds. NULL is fine. */
void multipart_free(struct multipart *mp);

void multipart_free_parts(struct request_part *parts, size_t count);

#endif

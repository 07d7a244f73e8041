/* multipart/form-data bodies, parsed by libmicrohttpd's post processor as they arrive, collected
 * into whole parts under a cap on their number. */
#ifndef AUGSERVE_MULTIPART_H
#define AUGSERVE_MULTIPART_H

#include <stddef.h>

#include "request.h"

struct MHD_Connection;
struct multipart;

enum multipart_status {
    MULTIPART_OK,
    MULTIPART_MALFORMED,      /* not parseable as multipart/form-data: 400 */
    MULTIPART_TOO_MANY_PARTS, /* more than max_parts: 413 */
    MULTIPART_NO_MEMORY,
};

/* Starts parsing the body of conn, whose Content-Type says multipart/form-data. Returns NULL when
 * the header is unusable (no boundary, say) or memory runs out. */
struct multipart *multipart_begin(struct MHD_Connection *conn, size_t max_parts);

/* Feeds the next body bytes. After the first failure, later calls do nothing and return it. */
enum multipart_status multipart_feed(struct multipart *mp, const char *data, size_t size);

/* Ends the body and hands the parts over to the caller (free them with multipart_free_parts).
 * Frees mp in every case. A body without any part, or one that ends mid-part, is
 * MULTIPART_MALFORMED. */
enum multipart_status multipart_end(struct multipart *mp, struct request_part **parts,
                                    size_t *count);

/* Frees mp without taking its parts (the request was abandoned). */
void multipart_abort(struct multipart *mp);

void multipart_free_parts(struct request_part *parts, size_t count);

#endif

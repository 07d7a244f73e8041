#include "multipart.h"

#include <microhttpd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* libmicrohttpd buffers this much of a part's headers and values between callbacks. */
#define POST_BUFFER_SIZE (64 * 1024)

struct multipart {
    struct MHD_PostProcessor *pp;
    struct request_part *parts;
    size_t count, capacity, max_parts;
    size_t current_capacity; /* bytes allocated for parts[count - 1].data */
    enum multipart_status status;
};

static int same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Whether a callback at offset 0 repeats the announcement of the part just opened rather than
 * starting another: libmicrohttpd's post processor (0.9.75) may report a field with no data
 * when a body chunk ends right after the field's headers, and then report it again, at offset
 * 0, with its value (seen with node's fetch, which sends each part in its own write). A field
 * that is really empty followed by one of the same name therefore reads as one field. */
static int repeats_open_part(const struct multipart *mp, const char *key, const char *filename)
{
    if (mp->count == 0) return 0;
    const struct request_part *part = &mp->parts[mp->count - 1];
    return part->size == 0 && same_text(part->name, key ? key : "") &&
           same_text(part->filename, filename);
}

static char *strdup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int start_part(struct multipart *mp, const char *key, const char *filename,
                      const char *content_type)
{
    if (mp->count == mp->max_parts) {
        mp->status = MULTIPART_TOO_MANY_PARTS;
        return -1;
    }
    if (mp->count == mp->capacity) {
        size_t capacity = mp->capacity ? mp->capacity * 2 : 4;
        struct request_part *grown = realloc(mp->parts, capacity * sizeof *grown);
        if (!grown) goto no_memory;
        mp->parts = grown;
        mp->capacity = capacity;
    }
    struct request_part *part = &mp->parts[mp->count];
    memset(part, 0, sizeof *part);
    part->name = strdup(key ? key : "");
    part->filename = strdup_or_null(filename);
    part->content_type = strdup_or_null(content_type);
    mp->count++; /* counted now so that multipart_free_parts frees what was copied */
    mp->current_capacity = 0;
    if (!part->name || (filename && !part->filename) || (content_type && !part->content_type))
        goto no_memory;
    return 0;
no_memory:
    mp->status = MULTIPART_NO_MEMORY;
    return -1;
}

static int append(struct multipart *mp, const char *data, size_t size)
{
    struct request_part *part = &mp->parts[mp->count - 1];
    if (part->size + size + 1 > mp->current_capacity) {
        size_t capacity = mp->current_capacity ? mp->current_capacity : 256;
        while (capacity < part->size + size + 1)
            capacity *= 2;
        unsigned char *grown = realloc(part->data, capacity);
        if (!grown) {
            mp->status = MULTIPART_NO_MEMORY;
            return -1;
        }
        part->data = grown;
        mp->current_capacity = capacity;
    }
    if (size) memcpy(part->data + part->size, data, size);
    part->size += size;
    part->data[part->size] = '\0'; /* form fields can be read as strings */
    return 0;
}

static enum MHD_Result on_data(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
    struct multipart *mp = cls;
    /* Offset 0 opens a new part; the post processor reports each part's bytes in order. */
    if (off == 0 && !repeats_open_part(mp, key, filename) &&
        start_part(mp, key, filename, content_type) != 0)
        return MHD_NO;
    if (mp->count == 0) {
        mp->status = MULTIPART_MALFORMED;
        return MHD_NO;
    }
    if (append(mp, data, size) != 0) return MHD_NO;
    return MHD_YES;
}

struct multipart *multipart_begin(struct MHD_Connection *conn, size_t max_parts)
{
    struct multipart *mp = calloc(1, sizeof *mp);
    if (!mp) return NULL;
    mp->max_parts = max_parts;
    mp->pp = MHD_create_post_processor(conn, POST_BUFFER_SIZE, on_data, mp);
    if (!mp->pp) {
        free(mp);
        return NULL;
    }
    return mp;
}

enum multipart_status multipart_feed(struct multipart *mp, const char *data, size_t size)
{
    if (mp->status != MULTIPART_OK) return mp->status;
    if (MHD_post_process(mp->pp, data, size) != MHD_YES && mp->status == MULTIPART_OK)
        mp->status = MULTIPART_MALFORMED;
    return mp->status;
}

enum multipart_status multipart_end(struct multipart *mp, struct request_part **parts,
                                    size_t *count)
{
    /* The post processor says MHD_NO when the body stopped inside a part. */
    if (MHD_destroy_post_processor(mp->pp) != MHD_YES && mp->status == MULTIPART_OK)
        mp->status = MULTIPART_MALFORMED;
    mp->pp = NULL;
    /* The post processor skips anything before the first boundary as a preamble, so a body with
     * no boundary at all would pass as zero parts; RFC 2046 requires at least one part. */
    if (mp->status == MULTIPART_OK && mp->count == 0) mp->status = MULTIPART_MALFORMED;
    enum multipart_status status = mp->status;
    if (status == MULTIPART_OK) {
        *parts = mp->parts;
        *count = mp->count;
    } else {
        multipart_free_parts(mp->parts, mp->count);
        *parts = NULL;
        *count = 0;
    }
    free(mp);
    return status;
}

void multipart_abort(struct multipart *mp)
{
    if (!mp) return;
    if (mp->pp) MHD_destroy_post_processor(mp->pp);
    multipart_free_parts(mp->parts, mp->count);
    free(mp);
}

void multipart_free_parts(struct request_part *parts, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(parts[i].name);
        free(parts[i].filename);
        free(parts[i].content_type);
        free(parts[i].data);
    }
    free(parts);
}

/* The saved state of optimisers and EMAs (internal.h describes the bytes), and the tensor lists
 * both keep. Written byte by byte in little-endian order, so a checkpoint moves between hosts. */
#include <stdlib.h>
#include <string.h>

#include "train/internal.h"

#define STATE_MAGIC "AUGT"

static const struct train_param *nth_param(const struct train_param *a, size_t na,
                                           const struct train_param *b, size_t i)
{
    return i < na ? &a[i] : &b[i - na];
}

struct state_tensor *state_new_tensors(const struct train_param *a, size_t na,
                                       const struct train_param *b, size_t nb, unsigned nbuf,
                                       struct eng_error *err)
{
    size_t n = na + nb;
    struct state_tensor *tensors = calloc(n ? n : 1, sizeof *tensors);
    if (!tensors) {
        eng_no_memory(err);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct train_param *p = nth_param(a, na, b, i);
        struct state_tensor *t = &tensors[i];
        t->count = p->count;
        t->nbuf = nbuf;
        t->name = strdup(p->name ? p->name : "");
        int ok = t->name != NULL;
        for (unsigned k = 0; k < nbuf && ok; k++)
            ok = (t->buf[k] = calloc(p->count ? p->count : 1, sizeof(float))) != NULL;
        if (!ok) {
            state_free_tensors(tensors, i + 1);
            eng_no_memory(err);
            return NULL;
        }
    }
    return tensors;
}

void state_free_tensors(struct state_tensor *tensors, size_t n)
{
    if (!tensors) return;
    for (size_t i = 0; i < n; i++) {
        free((char *)tensors[i].name);
        free(tensors[i].buf[0]);
        free(tensors[i].buf[1]);
    }
    free(tensors);
}

int state_check_params(const char *what, const struct state_tensor *tensors, size_t n,
                       const struct train_param *a, size_t na, const struct train_param *b,
                       size_t nb, struct eng_error *err)
{
    if (na + nb != n)
        return eng_fail(err, ENG_INVALID, "%s: %zu tensors given, it was made for %zu", what,
                        na + nb, n);
    for (size_t i = 0; i < n; i++) {
        const struct train_param *p = nth_param(a, na, b, i);
        if (!p->value)
            return eng_fail(err, ENG_INVALID, "%s: tensor %zu (%s) has no values", what, i,
                            tensors[i].name);
        if (p->count != tensors[i].count)
            return eng_fail(err, ENG_INVALID,
                            "%s: tensor %zu (%s) has %zu values, it was made for %zu", what, i,
                            tensors[i].name, p->count, tensors[i].count);
    }
    return 0;
}

/* ---- Writing ---- */

struct writer {
    unsigned char *data;
    size_t size;
};

static void put_u32(struct writer *w, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        w->data[w->size++] = (unsigned char)(v >> (8 * k));
}

static void put_u64(struct writer *w, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        w->data[w->size++] = (unsigned char)(v >> (8 * k));
}

static void put_bytes(struct writer *w, const void *bytes, size_t n)
{
    memcpy(w->data + w->size, bytes, n);
    w->size += n;
}

int state_save(const char tag[4], const struct state_tensor *tensors, size_t n,
               unsigned char **data, size_t *size, struct eng_error *err)
{
    size_t total = 16;
    for (size_t i = 0; i < n; i++)
        total += 24 + strlen(tensors[i].name) + (size_t)tensors[i].nbuf * tensors[i].count * 4;
    struct writer w = {malloc(total), 0};
    if (!w.data) return eng_no_memory(err);
    put_bytes(&w, STATE_MAGIC, 4);
    put_u32(&w, STATE_VERSION);
    put_bytes(&w, tag, 4);
    put_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const struct state_tensor *t = &tensors[i];
        size_t len = strlen(t->name);
        put_u32(&w, (uint32_t)len);
        put_bytes(&w, t->name, len);
        put_u64(&w, t->count);
        put_u64(&w, t->steps);
        put_u32(&w, t->nbuf);
        for (unsigned k = 0; k < t->nbuf; k++)
            for (size_t j = 0; j < t->count; j++) {
                uint32_t bits;
                memcpy(&bits, &t->buf[k][j], 4);
                put_u32(&w, bits);
            }
    }
    *data = w.data;
    *size = w.size;
    return 0;
}

/* ---- Reading ---- */

struct reader {
    const unsigned char *p;
    size_t left;
};

static int take(struct reader *r, size_t n, const unsigned char **out)
{
    if (r->left < n) return -1;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return 0;
}

static int get_u32(struct reader *r, uint32_t *v)
{
    const unsigned char *b;
    if (take(r, 4, &b)) return -1;
    *v = 0;
    for (int k = 0; k < 4; k++)
        *v |= (uint32_t)b[k] << (8 * k);
    return 0;
}

static int get_u64(struct reader *r, uint64_t *v)
{
    const unsigned char *b;
    if (take(r, 8, &b)) return -1;
    *v = 0;
    for (int k = 0; k < 8; k++)
        *v |= (uint64_t)b[k] << (8 * k);
    return 0;
}

/* One pass over the bytes: checks them against tensors, and with write set stores their steps
 * and buffers. */
static int load_pass(const char tag[4], struct state_tensor *tensors, size_t n, const void *data,
                     size_t size, int write, struct eng_error *err)
{
    struct reader r = {data, size};
    const unsigned char *magic, *their_tag;
    uint32_t version, count32;
    if (take(&r, 4, &magic) || memcmp(magic, STATE_MAGIC, 4) || get_u32(&r, &version))
        return eng_fail(err, ENG_UNDECODABLE, "not a saved training state");
    if (version != STATE_VERSION)
        return eng_fail(err, ENG_UNDECODABLE,
                        "saved training state of version %u; this build "
                        "reads version %d",
                        version, STATE_VERSION);
    if (take(&r, 4, &their_tag) || get_u32(&r, &count32))
        return eng_fail(err, ENG_UNDECODABLE, "saved training state truncated");
    if (memcmp(their_tag, tag, 4))
        return eng_fail(err, ENG_CONFLICT, "saved state of a '%.4s', not of a '%.4s'",
                        (const char *)their_tag, tag);
    if (count32 != n)
        return eng_fail(err, ENG_CONFLICT, "saved state of %u tensors, this model has %zu", count32,
                        n);
    for (size_t i = 0; i < n; i++) {
        struct state_tensor *t = &tensors[i];
        uint32_t len, nbuf;
        uint64_t count, steps;
        const unsigned char *name, *bits;
        if (get_u32(&r, &len) || take(&r, len, &name) || get_u64(&r, &count) ||
            get_u64(&r, &steps) || get_u32(&r, &nbuf))
            return eng_fail(err, ENG_UNDECODABLE, "saved training state truncated");
        if (len != strlen(t->name) || memcmp(name, t->name, len) || count != t->count ||
            nbuf != t->nbuf)
            return eng_fail(err, ENG_CONFLICT,
                            "saved state's tensor %zu is '%.*s' (%llu values, %u buffers), this "
                            "model's is '%s' (%zu values, %u buffers)",
                            i, (int)(len < 200 ? len : 200), (const char *)name,
                            (unsigned long long)count, nbuf, t->name, t->count, t->nbuf);
        if (take(&r, (size_t)nbuf * t->count * 4, &bits))
            return eng_fail(err, ENG_UNDECODABLE, "saved training state truncated");
        if (!write) continue;
        t->steps = steps;
        for (unsigned k = 0; k < nbuf; k++)
            for (size_t j = 0; j < t->count; j++, bits += 4) {
                uint32_t v = (uint32_t)bits[0] | (uint32_t)bits[1] << 8 | (uint32_t)bits[2] << 16 |
                             (uint32_t)bits[3] << 24;
                memcpy(&t->buf[k][j], &v, 4);
            }
    }
    if (r.left)
        return eng_fail(err, ENG_UNDECODABLE, "saved training state has %zu bytes past its end",
                        r.left);
    return 0;
}

int state_load(const char tag[4], struct state_tensor *tensors, size_t n, const void *data,
               size_t size, struct eng_error *err)
{
    if (load_pass(tag, tensors, n, data, size, 0, err)) return -1;
    return load_pass(tag, tensors, n, data, size, 1, err);
}

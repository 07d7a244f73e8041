/* A train job's checkpoint file (job_train.h). Layout, little-endian as the CPUs the server runs
 * on (x86-64, aarch64) store them:
 *   "AUGTRAIN" u32 version  u64 plan step  u32 parameters  u32 buffers
 *   per parameter, then per buffer: u64 count, count floats
 *   u64 size, the optimiser's bytes;  u64 size, the EMA's bytes (size 0 without an EMA)
 * The counts are checked against the plan on load, and the optimiser and EMA check their own
 * bytes, so a file of another model is refused rather than half loaded; the step is checked
 * against the checkpoint JSON's, so a file of another epoch is refused too. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job_train.h"

#define MAGIC   "AUGTRAIN"
#define VERSION 1u

static int put(FILE *f, const void *data, size_t size)
{
    return size == 0 || fwrite(data, 1, size, f) == size ? 0 : -1;
}

static int put_u64(FILE *f, uint64_t v)
{
    return put(f, &v, sizeof v);
}

/* A tensor's count and values. */
static int put_tensor(FILE *f, const struct train_param *t)
{
    return put_u64(f, t->count) || put(f, t->value, t->count * sizeof(float));
}

/* Saved bytes with their size. */
static int put_bytes(FILE *f, unsigned char *data, size_t size)
{
    int rc = put_u64(f, size) || put(f, data, size);
    free(data);
    return rc;
}

static int write_all(FILE *f, struct train_plan *plan, const struct train_optim *optim,
                     const struct train_ema *ema, struct eng_error *err)
{
    uint32_t head[3] = {VERSION, (uint32_t)train_plan_param_count(plan),
                        (uint32_t)train_plan_buffer_count(plan)};
    if (put(f, MAGIC, 8) || put(f, head, sizeof head[0]) || put_u64(f, train_plan_step(plan)) ||
        put(f, head + 1, 2 * sizeof head[0]))
        return -1;
    for (size_t i = 0; i < head[1]; i++)
        if (put_tensor(f, train_plan_param(plan, i))) return -1;
    for (size_t i = 0; i < head[2]; i++)
        if (put_tensor(f, train_plan_buffer(plan, i))) return -1;
    unsigned char *data = NULL;
    size_t size = 0;
    if (train_optim_save(optim, &data, &size, err)) return -2;
    if (put_bytes(f, data, size)) return -1;
    data = NULL;
    size = 0;
    if (ema && train_ema_save(ema, &data, &size, err)) return -2;
    return put_bytes(f, data, size);
}

/* The rename itself made durable: without it a power cut may keep the record committed next
 * while losing the rename, and the resume would then find the other (older) file. */
static int sync_folder(const char *path)
{
    char folder[4096];
    const char *slash = strrchr(path, '/');
    size_t length = slash ? (size_t)(slash - path) : 0;
    if (length == 0 || length >= sizeof folder) {
        folder[0] = slash ? '/' : '.';
        folder[1] = '\0';
    } else {
        memcpy(folder, path, length);
        folder[length] = '\0';
    }
    int fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (close(fd) != 0) rc = -1;
    return rc;
}

int job_train_file_save(const char *path,
                        int (*write)(FILE *f, const void *arg, struct eng_error *err),
                        const void *arg, struct eng_error *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return eng_fail(err, ENG_INTERNAL, "path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return eng_fail(err, ENG_INTERNAL, "cannot write %s: %s", tmp, strerror(errno));
    int rc = write(f, arg, err);
    /* Flushed to the disk before the rename: the record that names the file is committed next,
     * and must never name a file a power cut truncated. */
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) rc = rc ? rc : -1;
    if (fclose(f) != 0) rc = rc ? rc : -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc == 0 && sync_folder(path) != 0) rc = -1;
    if (rc == 0) return 0;
    if (rc == -1) eng_fail(err, ENG_INTERNAL, "cannot write %s: %s", path, strerror(errno));
    remove(tmp);
    return -1;
}

/* The checkpoint as job_train_file_save's writer. */
struct state {
    struct train_plan *plan;
    const struct train_optim *optim;
    const struct train_ema *ema;
};

static int write_state(FILE *f, const void *arg, struct eng_error *err)
{
    const struct state *s = arg;
    return write_all(f, s->plan, s->optim, s->ema, err);
}

int job_train_state_save(const char *path, struct train_plan *plan, const struct train_optim *optim,
                         const struct train_ema *ema, struct eng_error *err)
{
    struct state s = {plan, optim, ema};
    return job_train_file_save(path, write_state, &s, err);
}

/* ---- Loading ----------------------------------------------------------------------------------
 */

struct reader {
    const unsigned char *p, *end;
};

static int get(struct reader *r, void *out, size_t size)
{
    if ((size_t)(r->end - r->p) < size) return -1;
    memcpy(out, r->p, size);
    r->p += size;
    return 0;
}

/* The next tensor into t, which must have its count. */
static int get_tensor(struct reader *r, struct train_param *t)
{
    uint64_t count;
    return get(r, &count, sizeof count) || count != t->count ||
                   get(r, t->value, t->count * sizeof(float))
               ? -1
               : 0;
}

/* The next saved bytes: *data points into the file. */
static int get_bytes(struct reader *r, const unsigned char **data, size_t *size)
{
    uint64_t n;
    if (get(r, &n, sizeof n) || n > (uint64_t)(r->end - r->p)) return -1;
    *data = r->p;
    *size = (size_t)n;
    r->p += n;
    return 0;
}

int job_train_file_read(const char *path, unsigned char **data, size_t *size, struct eng_error *err)
{
    FILE *f = fopen(path, "rb");
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        if (f) fclose(f);
        return eng_fail(err, ENG_INTERNAL, "cannot read %s: %s", path, strerror(errno));
    }
    *data = malloc(n ? (size_t)n : 1);
    int ok = *data && fread(*data, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (ok) {
        *size = (size_t)n;
        return 0;
    }
    free(*data);
    return *data ? eng_fail(err, ENG_INTERNAL, "cannot read %s", path) : eng_no_memory(err);
}

int job_train_state_load(const char *path, uint64_t expected, struct train_plan *plan,
                         struct train_optim *optim, struct train_ema *ema, struct eng_error *err)
{
    unsigned char *data = NULL;
    size_t size = 0;
    if (job_train_file_read(path, &data, &size, err)) return -1;
    struct reader r = {data, data + size};
    char magic[8];
    uint32_t version, counts[2];
    uint64_t step = 0;
    const unsigned char *optim_bytes = NULL, *ema_bytes = NULL;
    size_t optim_size = 0, ema_size = 0;
    int bad =
        get(&r, magic, 8) || memcmp(magic, MAGIC, 8) != 0 || get(&r, &version, sizeof version) ||
        version != VERSION || get(&r, &step, sizeof step) || get(&r, counts, sizeof counts) ||
        counts[0] != train_plan_param_count(plan) || counts[1] != train_plan_buffer_count(plan);
    /* A file of another step than its record's would resume from weights the record does not
     * describe: an epoch trained twice or lost, silently. */
    if (!bad && step != expected) {
        free(data);
        return eng_fail(err, ENG_INTERNAL,
                        "the checkpoint %s holds step %llu, not the step %llu its record names: "
                        "it does not go with the job's checkpoint; start a new job",
                        path, (unsigned long long)step, (unsigned long long)expected);
    }
    for (size_t i = 0; !bad && i < counts[0]; i++)
        bad = get_tensor(&r, train_plan_param(plan, i));
    for (size_t i = 0; !bad && i < counts[1]; i++)
        bad = get_tensor(&r, train_plan_buffer(plan, i));
    bad = bad || get_bytes(&r, &optim_bytes, &optim_size) || get_bytes(&r, &ema_bytes, &ema_size) ||
          r.p != r.end || (ema_size != 0) != (ema != NULL);
    int rc = bad ? eng_fail(err, ENG_INTERNAL, "the checkpoint %s is not this job's", path) : 0;
    if (rc == 0) rc = train_optim_load(optim, optim_bytes, optim_size, err);
    if (rc == 0 && ema) rc = train_ema_load(ema, ema_bytes, ema_size, err);
    if (rc == 0) train_plan_set_step(plan, step);
    free(data);
    return rc;
}

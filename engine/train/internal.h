/* What the files of the train area share. Private to engine/train (AUGENGINE_TRAIN_INTERNAL). */
#ifndef AUGENGINE_TRAIN_INTERNAL_H
#define AUGENGINE_TRAIN_INTERNAL_H

#ifndef AUGENGINE_TRAIN_INTERNAL
#error "train/internal.h is private to engine/train; include train/train.h"
#endif

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "train/train.h"

/* ---- Saved state (state.c): the bytes of train_optim_save and train_ema_save ---------------- */
/* Little-endian: "AUGT", u32 version, a 4-byte tag naming what saved it ("sgd ", "admw", "ema "),
 * u32 tensors; then per tensor u32 name length, the name, u64 count, u64 steps, u32 buffers, and
 * buffers x count float32 bits. A reader checks everything against the tensors it expects, so
 * bytes from another model or optimiser are refused rather than misread. */
#define STATE_VERSION 1

/* One tensor's state: count floats in each of its nbuf buffers. */
struct state_tensor {
    const char *name;
    size_t count;
    uint64_t steps;
    unsigned nbuf;
    float *buf[2];
};

/* The bytes of tensors[0..n) under tag into *data (malloc'd) and *size. */
int state_save(const char tag[4], const struct state_tensor *tensors, size_t n,
               unsigned char **data, size_t *size, struct eng_error *err);

/* Reads bytes saved under tag over tensors[0..n), whose names, counts and nbuf they must match:
 * every check first, then the steps and buffers are written, so a refusal changes nothing. */
int state_load(const char tag[4], struct state_tensor *tensors, size_t n, const void *data,
               size_t size, struct eng_error *err);

/* The tensors of an optimiser or an EMA: one per a[0..na) then b[0..nb) (b may be NULL), each
 * with a copy of the name, the count, and nbuf zeroed buffers of count floats. NULL on
 * ENG_NO_MEMORY; state_free_tensors(tensors, na + nb) frees them. */
struct state_tensor *state_new_tensors(const struct train_param *a, size_t na,
                                       const struct train_param *b, size_t nb, unsigned nbuf,
                                       struct eng_error *err);
void state_free_tensors(struct state_tensor *tensors, size_t n);

/* Checks that a[0..na) then b[0..nb) are the tensors[0..n) they were made from (na + nb == n and
 * every count equal): ENG_INVALID naming the first that is not, what naming the caller. */
int state_check_params(const char *what, const struct state_tensor *tensors, size_t n,
                       const struct train_param *a, size_t na, const struct train_param *b,
                       size_t nb, struct eng_error *err);

#endif

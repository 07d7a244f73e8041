#include "input.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "parallel.h"
#include "policy.h"
#include "request.h"
#include "response.h"

const char *input_param(const struct request *req, const char *name)
{
    const struct request_part *part = request_part(req, name);
    if (part && !part->filename) return (const char *)part->data;
    return request_query(req, name);
}

int input_parse_whole(const char *text, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
    if (!text || *text < '0' || *text > '9') return -1;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int input_seed(const struct request *req, struct response *resp, unsigned long long *seed)
{
    const char *text = input_param(req, "seed");
    if (text && input_parse_whole(text, 0, POLICY_MAX_SEED, seed) != 0) {
        response_error(resp, 422, "seed: must be a whole number in [0, %llu]", POLICY_MAX_SEED);
        return -1;
    }
    if (!text) {
        if (RAND_bytes((unsigned char *)seed, sizeof *seed) != 1) {
            response_error(resp, 500, "the random generator failed");
            return -1;
        }
        *seed &= POLICY_MAX_SEED;
    }
    return 0;
}

int input_collect_images(struct request *req, struct response *resp, struct input_image *images,
                         int max, int *count)
{
    *count = 0;
    if (req->part_count > 0) {
        for (size_t i = 0; i < req->part_count; i++) {
            if (strcmp(req->parts[i].name, "image") != 0) continue;
            if (*count == max) {
                response_error(resp, 422, "more than max_inputs (%d) images", max);
                return -1;
            }
            images[*count].data = req->parts[i].data;
            images[*count].size = req->parts[i].size;
            (*count)++;
        }
    } else if (req->body_size > 0) {
        const char *type = request_header(req, "Content-Type");
        if (type && strncasecmp(type, "image/", 6) != 0 &&
            strncasecmp(type, "application/octet-stream", 24) != 0) {
            response_error(resp, 415,
                           "Content-Type %s: send an image (image/*) or multipart "
                           "parts named image",
                           type);
            return -1;
        }
        images[0].data = req->body;
        images[0].size = req->body_size;
        *count = 1;
    }
    if (*count == 0) {
        response_error(resp, 422,
                       "no image: send it as the body (Content-Type: image/*) or as "
                       "multipart parts named image");
        return -1;
    }
    return 0;
}

struct decoding {
    struct input_image *images;
    const struct img_limits *limits;
    struct eng_error *errors;
};

static void decode_one(void *ctx, size_t i)
{
    struct decoding *d = ctx;
    struct input_image *in = &d->images[i];
    in->image = img_decode(in->data, in->size, d->limits, &in->info, &d->errors[i]);
}

int input_decode_images(struct request *req, struct response *resp, struct input_image *images,
                        int count)
{
    const struct config *cfg = req->app->cfg;
    struct img_limits limits = {(uint64_t)cfg->max_pixels, cfg->max_dimension};
    struct decoding d = {images, &limits, calloc((size_t)count, sizeof *d.errors)};
    if (!d.errors) {
        response_error(resp, 503, "out of memory");
        return -1;
    }
    parallel_for((size_t)count, req->app->workers, decode_one, &d);
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        if (images[i].image) continue;
        /* Name the image, keeping the engine's status. */
        struct eng_error *err = &d.errors[i];
        char message[sizeof err->message + 32];
        snprintf(message, sizeof message, "image %d: %s", i, err->message);
        memcpy(err->message, message, sizeof err->message - 1);
        err->message[sizeof err->message - 1] = '\0';
        response_engine_error(resp, err);
        rc = -1;
    }
    free(d.errors);
    return rc;
}

void input_free_images(struct input_image *images, int count)
{
    for (int i = 0; i < count; i++)
        img_free(images[i].image);
}

/* What the image handlers (/v1/augment, /v1/predict, /v1/pseudo-label) read from a request: their
 * parameters, from multipart form fields or the query, and their images, from multipart parts
 * named "image" or the raw body. Each function that can fail writes the error response itself and
 * returns -1. */
#ifndef AUGSERVE_INPUT_H
#define AUGSERVE_INPUT_H

#include <stddef.h>

#include "codec.h"

struct request;
struct response;

struct input_image {
    const unsigned char *data; /* the request's bytes */
    size_t size;
    struct img *image; /* once decoded */
    struct img_info info;
};

/* A request parameter: a multipart form field, else a query parameter; NULL when absent. */
const char *input_param(const struct request *req, const char *name);

/* Parses a whole decimal number in [min, max]: 0, or -1 for anything else. */
int input_parse_whole(const char *text, unsigned long long min, unsigned long long max,
                      unsigned long long *out);

/* The "seed" parameter (0 to POLICY_MAX_SEED), or a random seed when it is absent. */
int input_seed(const struct request *req, struct response *resp, unsigned long long *seed);

/* Collects the images into images[0..max): 415 for a body that is not an image, 422 for none or
 * more than max (max_inputs). */
int input_collect_images(struct request *req, struct response *resp, struct input_image *images,
                         int max, int *count);

/* Decodes every image, in parallel on the app's workers, against max_pixels and max_dimension.
 * The error names the image and keeps the decoder's status (415, 422, 413). */
int input_decode_images(struct request *req, struct response *resp, struct input_image *images,
                        int count);

/* Frees the decoded images. */
void input_free_images(struct input_image *images, int count);

#endif

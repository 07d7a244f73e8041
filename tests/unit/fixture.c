#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_u32(FILE *f, uint32_t *out)
{
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) return -1;
    *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

struct img *fixture_load(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fixture %s: cannot open\n", path);
        return NULL;
    }
    char magic[4];
    uint32_t w, h, c;
    struct img *im = NULL;
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "AUGF", 4) != 0 || read_u32(f, &w) ||
        read_u32(f, &h) || read_u32(f, &c)) {
        fprintf(stderr, "fixture %s: bad header\n", path);
    } else if ((im = img_new((int)w, (int)h, (int)c, NULL)) == NULL) {
        fprintf(stderr, "fixture %s: bad size %ux%ux%u\n", path, w, h, c);
    } else if (fread(im->data, 1, im->stride * (size_t)h, f) != im->stride * (size_t)h) {
        fprintf(stderr, "fixture %s: truncated\n", path);
        img_free(im);
        im = NULL;
    }
    fclose(f);
    return im;
}

long fixture_diff(const struct img *a, const struct img *b, int tolerance, int *max_diff)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels) return -1;
    long count = 0;
    int largest = 0;
    for (int y = 0; y < a->height; y++) {
        const uint8_t *ra = img_row(a, y), *rb = img_row(b, y);
        for (int x = 0; x < a->width; x++) {
            int worst = 0;
            for (int c = 0; c < a->channels; c++) {
                int d = abs((int)ra[x * a->channels + c] - (int)rb[x * a->channels + c]);
                if (d > worst) worst = d;
            }
            if (worst > tolerance) count++;
            if (worst > largest) largest = worst;
        }
    }
    if (max_diff) *max_diff = largest;
    return count;
}

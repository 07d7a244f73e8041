/* libFuzzer target: search spaces (any bytes as JSON text) through search_space_compile, as the
 * search job will call it on a client's "space"; a space that compiles has a few points drawn
 * (the space's sampler, or each dimension's prior), mutated when the space has a mutation, and
 * each concretized, parsed as a policy and listed as params. Build with -DAUGSERVE_FUZZ=ON
 * (clang); run: build-fuzz/fuzz_search. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "search/search.h"

static void use(const struct search_space *s, const double *point)
{
    struct eng_error err = {0};
    json_t *doc = search_space_concretize(s, point, &err);
    struct policy *p = doc ? policy_parse(doc, &err) : NULL;
    policy_free(p);
    json_decref(doc);
    json_decref(search_space_params(s, point));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    struct eng_error err = {0};
    struct search_space *s = doc ? search_space_compile(doc, &err) : NULL;
    json_decref(doc);
    if (!s) return 0;
    struct search_view v = search_space_view(s);
    double *point = calloc(v.n + 1, sizeof *point), *child = calloc(v.n + 1, sizeof *child);
    for (uint32_t draw = 0; point && child && draw < 4; draw++) {
        struct rng r;
        rng_init(&r, 1, draw, 0, 0);
        if (v.sample)
            v.sample(v.ctx, &r, point);
        else
            for (size_t d = 0; d < v.n; d++)
                point[d] = search_dim_sample(&v.dims[d], &r);
        use(s, point);
        if (v.mutate) {
            v.mutate(v.ctx, &r, point, child);
            use(s, child);
        }
    }
    free(point);
    free(child);
    search_space_free(s);
    return 0;
}

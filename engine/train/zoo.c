/* The model zoo's entry points: a model's name and arguments read and checked, the model built
 * by its family's architecture (zoo_archs.c) with its reference's initialisation, and the
 * parameter count. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/internal.h"

const char train_zoo_archs[] = "small-cnn, resnet-20, resnet-32, resnet-44, resnet-56, "
                               "resnet-110 (CIFAR, 32 px), wrn-D-K (D = 6n + 4 in 10..100, "
                               "K 1..16), resnet-18, resnet-34, resnet-50, resnet-101, "
                               "resnet-152 (torchvision)";

static const int cifar_depths[] = {20, 32, 44, 56, 110};
static const int tv_depths[] = {18, 34, 50, 101, 152};

static bool in_list(int v, const int *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == v) return true;
    return false;
}

/* Sets the family, depth and width that arch names; -1 with err when it names none. */
static int parse_arch(const char *arch, struct train_zoo_spec *spec, struct eng_error *err)
{
    int depth = 0, width = 0, used = 0;
    spec->width = 1;
    if (!strcmp(arch, "small-cnn")) {
        spec->family = TRAIN_ZOO_SMALL_CNN;
        return 0;
    }
    if (sscanf(arch, "resnet-%4d%n", &depth, &used) == 1 && !arch[used] && arch[7] >= '1' &&
        arch[7] <= '9') {
        spec->depth = depth;
        if (in_list(depth, cifar_depths, sizeof cifar_depths / sizeof *cifar_depths)) {
            spec->family = TRAIN_ZOO_RESNET_CIFAR;
            return 0;
        }
        if (in_list(depth, tv_depths, sizeof tv_depths / sizeof *tv_depths)) {
            spec->family = TRAIN_ZOO_RESNET;
            return 0;
        }
    } else if (sscanf(arch, "wrn-%4d-%3d%n", &depth, &width, &used) == 2 && !arch[used] &&
               arch[4] >= '1' && arch[4] <= '9' && strchr(arch + 4, '-')[1] >= '1' &&
               strchr(arch + 4, '-')[1] <= '9') {
        /* WRN-100-16, the largest, has about 370M parameters (1.5 GB): the papers stop at
         * WRN-40-10 and WRN-28-10 (56M, 36M). */
        if (depth < 10 || depth > 100 || (depth - 4) % 6 || width < 1 || width > 16)
            return eng_fail(err, ENG_INVALID,
                            "model arch '%s': a WRN's depth is 6n + 4 up to 100 (10, 16, 22, "
                            "28, 40...) and its width 1..16",
                            arch);
        spec->family = TRAIN_ZOO_WRN;
        spec->depth = depth;
        spec->width = width;
        return 0;
    }
    return eng_fail(err, ENG_INVALID, "model arch '%s' is not in the zoo; it has %s", arch,
                    train_zoo_archs);
}

/* An integer member in [lo, hi] into *out, or the default when absent. */
static int int_member(const json_t *model, const char *key, int lo, int hi, int dflt, int *out,
                      struct eng_error *err)
{
    const json_t *v = json_object_get(model, key);
    if (!v) {
        if (dflt < 0) return eng_fail(err, ENG_INVALID, "model: '%s' is required", key);
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return eng_fail(err, ENG_INVALID, "model: '%s' must be an integer in %d..%d", key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* A rate member (a drop probability in [0, 1)) into *out, 0 when absent. */
static int rate_member(const json_t *model, const char *key, float *out, struct eng_error *err)
{
    const json_t *v = json_object_get(model, key);
    *out = 0;
    if (!v) return 0;
    double p = json_number_value(v);
    /* (float)p too: 0.99999999 would round to 1, which no rate may be. */
    if (!json_is_number(v) || !(p >= 0 && (float)p < 1))
        return eng_fail(err, ENG_INVALID, "model: '%s' must be a number in [0, 1)", key);
    *out = (float)p;
    return 0;
}

/* Stochastic depth drops residual blocks: small-cnn has none. */
static int check_noise(const struct train_zoo_spec *spec, struct eng_error *err)
{
    if (spec->stochastic_depth > 0 && spec->family == TRAIN_ZOO_SMALL_CNN)
        return eng_fail(err, ENG_INVALID,
                        "model: 'stochastic_depth' drops residual blocks, and %s has none (the "
                        "CIFAR ResNets, WRN and torchvision's ResNets have them)",
                        spec->arch);
    return 0;
}

int train_zoo_parse(const json_t *model, struct train_zoo_spec *spec, struct eng_error *err)
{
    memset(spec, 0, sizeof *spec);
    if (!json_is_object(model))
        return eng_fail(err, ENG_INVALID,
                        "model must be an object such as {\"arch\": "
                        "\"resnet-20\", \"classes\": 10}");
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)model, key, value)
    {
        if (strcmp(key, "arch") && strcmp(key, "classes") && strcmp(key, "variant") &&
            strcmp(key, "channels") && strcmp(key, "size") && strcmp(key, "dropout") &&
            strcmp(key, "stochastic_depth") && strcmp(key, "bn_momentum"))
            return eng_fail(err, ENG_INVALID,
                            "model: unknown member '%s'; known: arch, classes, variant, "
                            "channels, size, dropout, stochastic_depth, bn_momentum",
                            key);
    }
    const json_t *arch = json_object_get(model, "arch");
    if (!json_is_string(arch) || json_string_length(arch) >= sizeof spec->arch)
        return eng_fail(err, ENG_INVALID, "model: 'arch' must be one of %s", train_zoo_archs);
    snprintf(spec->arch, sizeof spec->arch, "%s", json_string_value(arch));
    if (parse_arch(spec->arch, spec, err)) return -1;
    const json_t *variant = json_object_get(model, "variant");
    if (variant) {
        const char *v = json_string_value(variant);
        if (spec->family != TRAIN_ZOO_WRN)
            return eng_fail(err, ENG_INVALID, "model: 'variant' applies to wrn-D-K only");
        if (!v || (strcmp(v, "standard") && strcmp(v, "fixmatch")))
            return eng_fail(err, ENG_INVALID,
                            "model: 'variant' must be \"standard\" or \"fixmatch\"");
        spec->fixmatch = !strcmp(v, "fixmatch");
    }
    if (int_member(model, "classes", 1, 100000, -1, &spec->classes, err) ||
        int_member(model, "channels", 1, 64, 3, &spec->channels, err) ||
        int_member(model, "size", 8, 4096, spec->family == TRAIN_ZOO_RESNET ? 224 : 32, &spec->size,
                   err) ||
        rate_member(model, "dropout", &spec->dropout, err) ||
        rate_member(model, "stochastic_depth", &spec->stochastic_depth, err))
        return -1;
    const json_t *momentum = json_object_get(model, "bn_momentum");
    if (momentum) {
        double m = json_number_value(momentum);
        if (!json_is_number(momentum) || !(m > 0 && (float)m > 0 && (float)m < 1))
            return eng_fail(err, ENG_INVALID,
                            "model: 'bn_momentum' must be a number in (0, 1), ONNX's (the running "
                            "statistics' share: 0.9 is PyTorch's momentum=0.1)");
        spec->bn_momentum = (float)m;
    }
    return check_noise(spec, err);
}

/* What train_zoo_parse guarantees, for specs made in code. */
static int check_spec(const struct train_zoo_spec *spec, struct eng_error *err)
{
    struct train_zoo_spec named = {0};
    if (parse_arch(spec->arch, &named, err)) return -1;
    if (named.family != spec->family || named.depth != spec->depth || named.width != spec->width ||
        (spec->fixmatch && spec->family != TRAIN_ZOO_WRN) || spec->classes < 1 ||
        spec->classes > 100000 || spec->channels < 1 || spec->channels > 64 || spec->size < 8 ||
        spec->size > 4096 || !(spec->dropout >= 0 && spec->dropout < 1) ||
        !(spec->stochastic_depth >= 0 && spec->stochastic_depth < 1) ||
        !(spec->bn_momentum >= 0 && spec->bn_momentum < 1))
        return eng_fail(err, ENG_INVALID, "model '%s': its arguments are out of range", spec->arch);
    return check_noise(spec, err);
}

struct nn_graph *train_zoo_build(const struct train_zoo_spec *spec, uint64_t seed,
                                 struct eng_error *err)
{
    if (check_spec(spec, err)) return NULL;
    struct zoo z = {.b = nn_builder_new(spec->arch, 13),
                    .seed = seed,
                    .bn_momentum = spec->bn_momentum > 0 ? spec->bn_momentum : 0.9f,
                    .dropout = spec->dropout,
                    .drop_path = spec->stochastic_depth};
    int64_t in_dims[4] = {-1, spec->channels, spec->size, spec->size},
            out_dims[2] = {-1, spec->classes};
    const char *batch[4] = {"N", NULL, NULL, NULL};
    nn_builder_input(z.b, "input", NN_FLOAT, 4, in_dims, batch);
    switch (spec->family) {
    case TRAIN_ZOO_SMALL_CNN:
        z.conv_init = z.linear_init = ZOO_TORCH_DEFAULT;
        zoo_small_cnn(&z, spec);
        break;
    case TRAIN_ZOO_RESNET_CIFAR:
        z.conv_init = z.linear_init = ZOO_NORMAL_FAN_IN;
        zoo_resnet_cifar(&z, spec);
        break;
    case TRAIN_ZOO_WRN:
        z.conv_init = ZOO_NORMAL_FAN_OUT;
        z.linear_bias_zero = true;
        if (spec->fixmatch) {
            z.linear_init = ZOO_XAVIER_NORMAL;
            if (!(spec->bn_momentum > 0)) z.bn_momentum = 0.999f;
            z.leaky = 0.1f;
        } else {
            z.linear_init = ZOO_TORCH_DEFAULT;
        }
        zoo_wrn(&z, spec);
        break;
    case TRAIN_ZOO_RESNET:
        z.conv_init = ZOO_NORMAL_FAN_OUT;
        z.linear_init = ZOO_TORCH_DEFAULT;
        zoo_resnet(&z, spec);
        break;
    }
    nn_builder_output(z.b, "logits", NN_FLOAT, 2, out_dims, batch);
    return nn_builder_finish(z.b, err);
}

bool zoo_is_buffer(const struct nn_graph *g, const struct nn_tensor *t)
{
    bool stat = false, other = false;
    for (size_t n = 0; n < nn_graph_node_count(g); n++) {
        const struct nn_node *node = nn_graph_node(g, n);
        for (size_t k = 0; k < node->n_inputs; k++)
            if (!strcmp(node->inputs[k], t->info.name)) {
                if (!strcmp(node->op_type, "BatchNormalization") && (k == 3 || k == 4))
                    stat = true;
                else
                    other = true;
            }
    }
    return stat && !other;
}

size_t train_model_parameter_count(const struct nn_graph *g)
{
    size_t total = 0;
    for (size_t i = 0; i < nn_graph_initializer_count(g); i++) {
        const struct nn_tensor *t = nn_graph_initializer_at(g, i);
        if (t->info.dtype == NN_FLOAT && !zoo_is_buffer(g, t)) total += t->count;
    }
    return total;
}

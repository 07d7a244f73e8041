/* config.json's "perceptual" makes the model a backbone for LPIPS: {"taps": [value names], "lin":
 * [one weights file per tap] or false, "shift": [3 numbers], "scale": [3 numbers]}. Checking it
 * needs the graph to run, so it is applied after the rest has loaded; a section that does not
 * load leaves the model serving everything else, and its reason is kept for the similarity API. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics/metric.h"
#include "model_internal.h"

#define MAX_TAPS       32
#define PROBE_MAX_SIDE 256 /* the largest image side tried when looking for the smallest */

static const float lpips_shift[3] = {-0.030f, -0.088f, -0.188f};
static const float lpips_scale[3] = {0.458f, 0.448f, 0.450f};

void model_free_perceptual(struct model *m)
{
    for (size_t k = 0; k < m->perceptual.n_taps; k++) {
        if (m->tap_names) free(m->tap_names[k]);
        if (m->lin) free(m->lin[k]);
    }
    free(m->tap_names);
    free(m->lin);
    free(m->channels);
    json_decref(m->perceptual_config);
    free(m->perceptual_reason);
}

/* Whether a node of g writes a value of that name. */
static int produced(const struct nn_graph *g, const char *name)
{
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        for (size_t k = 0; k < node->n_outputs; k++)
            if (strcmp(node->outputs[k], name) == 0) return 1;
    }
    return 0;
}

/* LPIPS feeds any image size: one NCHW input of 3 channels, height and width symbolic. */
static int check_backbone_input(const struct model *m, struct eng_error *err)
{
    const struct nn_graph *g = m->graph;
    const struct nn_tensor_info *in = nn_graph_input_count(g) == 1 ? nn_graph_input(g, 0) : NULL;
    if (!in || in->rank != 4 || (in->dims[1] != 3 && in->dims[1] >= 0) || in->dims[2] >= 0 ||
        in->dims[3] >= 0)
        return eng_fail(err, ENG_INVALID,
                        "config.json: perceptual: the model needs exactly one input, NCHW with 3 "
                        "channels and a symbolic height and width (dynamic_axes in "
                        "torch.onnx.export)");
    return 0;
}

/* "taps": every name must be a value of the graph; the unknown ones are listed together. */
static int parse_taps(struct model *m, json_t *taps, struct eng_error *err)
{
    size_t n = json_array_size(taps);
    if (!json_is_array(taps) || n < 1 || n > MAX_TAPS)
        return eng_fail(err, ENG_INVALID,
                        "config.json: perceptual.taps: must be an array of 1 to %d value names",
                        MAX_TAPS);
    if (!(m->tap_names = calloc(n, sizeof *m->tap_names))) return eng_no_memory(err);
    m->perceptual.n_taps = n;
    char unknown[400] = "";
    size_t used = 0;
    for (size_t k = 0; k < n; k++) {
        const char *name = json_string_value(json_array_get(taps, k));
        if (!name)
            return eng_fail(err, ENG_INVALID, "config.json: perceptual.taps[%zu]: must be a string",
                            k);
        if (!(m->tap_names[k] = strdup(name))) return eng_no_memory(err);
        if (!produced(m->graph, name) && used < sizeof unknown)
            used += (size_t)snprintf(unknown + used, sizeof unknown - used, "%s%s",
                                     used ? ", " : "", name);
    }
    if (used)
        return eng_fail(err, ENG_INVALID,
                        "config.json: perceptual.taps: the model has no values named %s", unknown);
    m->perceptual.taps = (const char *const *)m->tap_names;
    return 0;
}

/* Runs the backbone with its taps on one black side x side image: 0 when it compiles and every
 * tap is a non-empty [1, C, h, w], with channels[k] its C. */
static int probe(struct model *m, int side, int *channels, struct eng_error *err)
{
    struct nn_tensor_info shape = {.dtype = NN_FLOAT, .rank = 4, .dims = {1, 3, side, side}};
    size_t n_out = nn_graph_output_count(m->graph), total = n_out + m->perceptual.n_taps;
    float *input = calloc((size_t)3 * (size_t)side * (size_t)side, sizeof *input);
    float **outputs = calloc(total, sizeof *outputs);
    struct nn_tensor_info *info = calloc(total, sizeof *info);
    struct nn_plan *plan = NULL;
    int rc = input && outputs && info ? 0 : eng_fail(err, ENG_NO_MEMORY, "out of memory");
    if (rc == 0 && !(plan = model_compile(m, &shape, 1, err))) rc = -1;
    if (rc == 0) rc = nn_plan_run(plan, (const float *const *)&input, outputs, info, err);
    for (size_t k = n_out; rc == 0 && k < total; k++) {
        const struct nn_tensor_info *t = &info[k];
        if (t->rank != 4 || t->dims[1] < 1 || t->dims[2] < 1 || t->dims[3] < 1)
            rc = eng_fail(err, ENG_INVALID, "tap %s is not a non-empty [N, C, H, W] tensor",
                          m->tap_names[k - n_out]);
        else
            channels[k - n_out] = (int)t->dims[1];
    }
    for (size_t k = 0; outputs && k < total; k++)
        free(outputs[k]);
    nn_plan_free(plan);
    free(outputs);
    free(info);
    free(input);
    return rc;
}

/* The smallest side of a square image every tap has a non-empty output for, by bisection: a plan
 * that does not compile or an empty tap means too small. Non-square images need both sides at
 * least this, since a backbone's layers treat height and width alike. */
static int find_min_side(struct model *m, struct eng_error *err)
{
    struct eng_error probed = {0};
    if (probe(m, PROBE_MAX_SIDE, m->channels, &probed) != 0)
        return eng_fail(err, ENG_INVALID, "perceptual: the taps do not run on a %dx%d image: %s",
                        PROBE_MAX_SIDE, PROBE_MAX_SIDE, probed.message);
    int lo = 1, hi = PROBE_MAX_SIDE;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (probe(m, mid, m->channels, &probed) == 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    m->perceptual.min_side = hi;
    return 0;
}

/* One tap's weights from a file in the model's folder: .npy (float32 or float64, any shape, such
 * as the (1, C, 1, 1) of the lpips checkpoints' lin layers) or .json (an array of numbers). */
static int read_weights(const char *folder, const char *file, double **values, size_t *count,
                        struct eng_error *err)
{
    char path[PATH_MAX];
    size_t len = strlen(file);
    int npy = len > 4 && strcmp(file + len - 4, ".npy") == 0;
    int js = len > 5 && strcmp(file + len - 5, ".json") == 0;
    if (!model_valid_file_name(file) || (!npy && !js) || model_path_join(path, folder, file) != 0)
        return eng_fail(err, ENG_INVALID,
                        "%s: must name a .npy or .json file in the model's folder", file);
    if (npy) return metric_npy_read_file(path, values, count, err) ? -1 : 0;
    json_error_t error;
    json_t *doc = json_load_file(path, 0, &error);
    *count = json_array_size(doc);
    *values = malloc((*count ? *count : 1) * sizeof **values);
    int rc = json_is_array(doc) && *values ? 0 : -1;
    for (size_t c = 0; rc == 0 && c < *count; c++) {
        json_t *v = json_array_get(doc, c);
        (*values)[c] = json_number_value(v);
        if (!json_is_number(v)) rc = -1;
    }
    json_decref(doc);
    return rc ? eng_fail(err, ENG_INVALID, "%s: must be a JSON array of numbers", file) : 0;
}

/* Tap k's weights: one per channel, each finite and >= 0 (LPIPS is a sum of non-negative terms;
 * a negative weight would let it go below 0). */
static int load_lin(struct model *m, size_t k, const char *folder, const char *file,
                    struct eng_error *err)
{
    struct eng_error inner = {0};
    double *values = NULL;
    size_t count = 0;
    int rc = read_weights(folder, file, &values, &count, &inner);
    if (rc == 0 && count != (size_t)m->channels[k])
        rc = eng_fail(&inner, ENG_INVALID, "%s holds %zu weights; tap %s has %d channels", file,
                      count, m->tap_names[k], m->channels[k]);
    for (size_t c = 0; rc == 0 && c < count; c++)
        if (!(values[c] >= 0) || !isfinite(values[c]))
            rc = eng_fail(&inner, ENG_INVALID,
                          "%s: weight %zu is %g; linear weights must be finite and >= 0", file, c,
                          values[c]);
    if (rc == 0 && !(m->lin[k] = malloc(count * sizeof *m->lin[k]))) rc = eng_no_memory(&inner);
    for (size_t c = 0; rc == 0 && c < count; c++)
        m->lin[k][c] = (float)values[c];
    free(values);
    return rc ? eng_fail(err, inner.code, "config.json: perceptual.lin[%zu]: %s", k, inner.message)
              : 0;
}

/* "lin": false (every weight 1, the "baseline" LPIPS) or one weights file per tap. */
static int parse_lin(struct model *m, json_t *lin, const char *folder, struct eng_error *err)
{
    size_t n = m->perceptual.n_taps;
    if (json_is_false(lin)) return 0;
    if (!json_is_array(lin) || json_array_size(lin) != n)
        return eng_fail(err, ENG_INVALID,
                        "config.json: perceptual.lin: must be false or an array of %zu file names, "
                        "one per tap",
                        n);
    for (size_t k = 0; k < n; k++) {
        const char *file = json_string_value(json_array_get(lin, k));
        if (!file)
            return eng_fail(err, ENG_INVALID,
                            "config.json: perceptual.lin[%zu]: must be a file name", k);
        if (load_lin(m, k, folder, file, err)) return -1;
    }
    return 0;
}

static int apply_perceptual(struct model *m, json_t *cfg, const char *folder, struct eng_error *err)
{
    static const char *const fields[] = {"taps", "lin", "shift", "scale", NULL};
    struct model_perceptual *p = &m->perceptual;
    memcpy(p->shift, lpips_shift, sizeof p->shift);
    memcpy(p->scale, lpips_scale, sizeof p->scale);
    if (!json_is_object(cfg))
        return eng_fail(err, ENG_INVALID, "config.json: perceptual: must be an object");
    json_t *lin = json_object_get(cfg, "lin");
    if (model_config_check_fields(cfg, "perceptual.", fields, err) ||
        model_config_get_triple(cfg, "shift", "perceptual.shift", 0, p->shift, err) ||
        model_config_get_triple(cfg, "scale", "perceptual.scale", 1, p->scale, err) ||
        check_backbone_input(m, err) || parse_taps(m, json_object_get(cfg, "taps"), err))
        return -1;
    if (!lin)
        return eng_fail(
            err, ENG_INVALID,
            "config.json: perceptual.lin: required: false, or one weights file per tap");
    m->channels = calloc(p->n_taps, sizeof *m->channels);
    m->lin = calloc(p->n_taps, sizeof *m->lin);
    if (!m->channels || !m->lin) return eng_no_memory(err);
    if (find_min_side(m, err) || parse_lin(m, lin, folder, err)) return -1;
    p->channels = m->channels;
    p->weights = (const float *const *)m->lin;
    return 0;
}

void model_load_perceptual(struct model *m, const char *folder)
{
    json_t *cfg = m->perceptual_config;
    if (!cfg) return;
    struct eng_error err = {0};
    if (apply_perceptual(m, cfg, folder, &err) == 0) {
        m->has_perceptual = 1;
    } else {
        m->perceptual_reason = strdup(err.message);
        log_event("warn", "perceptual_unavailable", "model %s: %s", m->name, err.message);
    }
    json_decref(cfg);
    m->perceptual_config = NULL;
}

const struct model_perceptual *model_perceptual(const struct model *m)
{
    return m->has_perceptual ? &m->perceptual : NULL;
}

const char *model_perceptual_reason(const struct model *m)
{
    return m->perceptual_reason;
}

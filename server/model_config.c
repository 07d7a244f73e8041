/* config.json: which input takes images and which output holds the class scores, the evaluation
 * transform ("preprocess"), the labels file, max_batch and dynamic batching. It is validated
 * strictly: an unknown field or a value out of range makes the model unavailable, with a message
 * naming the field. The "perceptual" section is kept for model_perceptual.c, which needs the
 * graph to run before it can check it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"

#define MAX_LABELS_BYTES (16 << 20)
#define MAX_SIDE         65536
#define MAX_DELAY_US     10000000L

int model_path_join(char out[PATH_MAX], const char *dir, const char *file)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, file);
    if (n < 0 || n >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int model_config_check_fields(json_t *obj, const char *prefix, const char *const *allowed,
                              struct eng_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], key) != 0)
            i++;
        if (!allowed[i])
            return eng_fail(err, ENG_INVALID, "config.json: %s%s: unknown field", prefix, key);
    }
    return 0;
}

/* An integer member in [min, max] into *out, which keeps its default when the member is absent. */
static int get_int(json_t *obj, const char *key, const char *field, long min, long max, long *out,
                   struct eng_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return eng_fail(err, ENG_INVALID, "config.json: %s: must be an integer in [%ld, %ld]",
                        field, min, max);
    *out = (long)json_integer_value(v);
    return 0;
}

/* A string member that is either off_value (*out 0) or on_value (*out 1); *out keeps its default
 * when the member is absent. */
static int get_switch(json_t *obj, const char *key, const char *field, const char *off_value,
                      const char *on_value, int *out, struct eng_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    const char *s = json_string_value(v);
    if (s && strcmp(s, off_value) == 0)
        *out = 0;
    else if (s && strcmp(s, on_value) == 0)
        *out = 1;
    else
        return eng_fail(err, ENG_INVALID, "config.json: %s: must be \"%s\" or \"%s\"", field,
                        off_value, on_value);
    return 0;
}

int model_config_get_triple(json_t *obj, const char *key, const char *field, int positive,
                            float out[3], struct eng_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_array(v) || json_array_size(v) != 3)
        return eng_fail(err, ENG_INVALID, "config.json: %s: must be an array of 3 numbers", field);
    for (size_t i = 0; i < 3; i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_number(x) || (positive && json_number_value(x) <= 0))
            return eng_fail(err, ENG_INVALID, "config.json: %s[%zu]: must be a number%s", field, i,
                            positive ? " > 0" : "");
        out[i] = (float)json_number_value(x);
    }
    return 0;
}

/* "crop": one side for a square, or [height, width]. */
static int get_crop(json_t *obj, struct classify_preprocess *p, struct eng_error *err)
{
    json_t *v = json_object_get(obj, "crop");
    if (!v) return 0;
    long h = 0, w = 0;
    if (json_is_integer(v)) {
        h = w = (long)json_integer_value(v);
    } else if (json_is_array(v) && json_array_size(v) == 2 &&
               json_is_integer(json_array_get(v, 0)) && json_is_integer(json_array_get(v, 1))) {
        h = (long)json_integer_value(json_array_get(v, 0));
        w = (long)json_integer_value(json_array_get(v, 1));
    } else {
        h = -1;
    }
    if (h < 1 || w < 1 || h > MAX_SIDE || w > MAX_SIDE)
        return eng_fail(err, ENG_INVALID,
                        "config.json: preprocess.crop: must be an integer or [height, width], "
                        "each in [1, %d]",
                        MAX_SIDE);
    p->crop_height = (int)h;
    p->crop_width = (int)w;
    return 0;
}

/* "color": keep (the default) or srgb. */
static int get_color(json_t *obj, struct classify_preprocess *p, struct eng_error *err)
{
    json_t *v = json_object_get(obj, "color");
    if (!v || img_color_from_name(json_string_value(v), &p->color) == 0) return 0;
    return eng_fail(err, ENG_INVALID,
                    "config.json: preprocess.color: must be \"keep\" (the pixel values as stored, "
                    "as Pillow reads them) or \"srgb\" (converted to sRGB from the image's ICC "
                    "profile)");
}

/* "preprocess"; channels comes later, from the image input's shape. */
static int parse_preprocess(json_t *obj, struct classify_preprocess *p, struct eng_error *err)
{
    static const char *const fields[] = {
        "resize", "crop", "interpolation", "scale", "mean", "std", "channel_order", "color", NULL};
    *p = (struct classify_preprocess){.bilinear = 1, .scale = 1.0f / 255, .std = {1, 1, 1}};
    if (!json_is_object(obj))
        return eng_fail(err, ENG_INVALID, "config.json: preprocess: must be an object");
    long resize = 0;
    json_t *scale = json_object_get(obj, "scale");
    if (model_config_check_fields(obj, "preprocess.", fields, err) ||
        get_int(obj, "resize", "preprocess.resize", 1, MAX_SIDE, &resize, err) ||
        get_crop(obj, p, err) ||
        get_switch(obj, "interpolation", "preprocess.interpolation", "nearest", "bilinear",
                   &p->bilinear, err) ||
        model_config_get_triple(obj, "mean", "preprocess.mean", 0, p->mean, err) ||
        model_config_get_triple(obj, "std", "preprocess.std", 1, p->std, err) ||
        get_switch(obj, "channel_order", "preprocess.channel_order", "RGB", "BGR", &p->bgr, err) ||
        get_color(obj, p, err))
        return -1;
    if (scale && (!json_is_number(scale) || json_number_value(scale) <= 0))
        return eng_fail(err, ENG_INVALID, "config.json: preprocess.scale: must be a number > 0");
    if (scale) p->scale = (float)json_number_value(scale);
    p->resize = (int)resize;
    return 0;
}

/* The index of the tensor named by obj's key among count tensors (at(g, i)); *index keeps its
 * default (0, the first) when the key is absent. */
static int get_tensor(json_t *obj, const char *key, const struct nn_graph *g,
                      const struct nn_tensor_info *(*at)(const struct nn_graph *, size_t),
                      size_t count, size_t *index, struct eng_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    const char *name = json_string_value(v);
    for (size_t i = 0; name && i < count; i++)
        if (strcmp(at(g, i)->name, name) == 0) {
            *index = i;
            return 0;
        }
    return eng_fail(err, ENG_INVALID,
                    "config.json: %s: must name one of the model's %ss (the first is %s)", key, key,
                    count ? at(g, 0)->name : "none");
}

/* The channel count the image input takes from preprocessing: C of its NCHW or NHWC shape. */
static int set_channels(struct model *m, struct eng_error *err)
{
    const struct nn_tensor_info *in = nn_graph_input(m->graph, m->image_input);
    int64_t c = in->rank == 4 ? in->dims[m->preprocess.nhwc ? 3 : 1] : -1;
    if (c != 1 && c != 3)
        return eng_fail(
            err, ENG_INVALID,
            "config.json: preprocess: input %s needs a 4-dimensional %s shape with 1 or "
            "3 channels",
            in->name, m->preprocess.nhwc ? "NHWC" : "NCHW");
    m->preprocess.channels = (int)c;
    return 0;
}

int model_valid_file_name(const char *name)
{
    return name[0] && name[0] != '.' && !strchr(name, '/') && strcmp(name, "model.onnx") != 0 &&
           strcmp(name, "config.json") != 0;
}

/* Reads the labels file, one label per line ("\r\n" too); a symlink is refused, so the file cannot
 * point out of the folder. */
static int read_labels(struct model *m, const char *folder, const char *file, struct eng_error *err)
{
    char path[PATH_MAX];
    int fd = model_path_join(path, folder, file) == 0
                 ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                 : -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_LABELS_BYTES) {
        if (fd >= 0) close(fd);
        return eng_fail(err, ENG_INVALID,
                        "config.json: labels: %s is not a readable file of at most %d bytes", file,
                        MAX_LABELS_BYTES);
    }
    size_t n = (size_t)st.st_size;
    m->label_text = malloc(n + 1);
    ssize_t got = m->label_text ? read(fd, m->label_text, n) : -1;
    close(fd);
    if (got != (ssize_t)n)
        return eng_fail(err, ENG_INVALID, "config.json: labels: cannot read %s", file);
    m->label_text[n] = '\0';
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += m->label_text[i] == '\n';
    m->labels = malloc((lines + 1) * sizeof *m->labels);
    if (!m->labels) return eng_no_memory(err);
    for (char *line = m->label_text; *line;) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[len - 1] = '\0';
        m->labels[m->label_count++] = line;
        line = end ? end + 1 : line + len;
    }
    return 0;
}

/* Labels must match the class count when the scores output declares it. */
static int check_label_count(const struct model *m, const char *file, struct eng_error *err)
{
    const struct nn_tensor_info *out = nn_graph_output(m->graph, m->scores_output);
    int64_t classes = out->rank >= 1 ? out->dims[out->rank - 1] : -1;
    if (classes >= 0 && (size_t)classes != m->label_count)
        return eng_fail(err, ENG_INVALID,
                        "config.json: labels: %s holds %zu labels; output %s has %lld classes",
                        file, m->label_count, out->name, (long long)classes);
    return 0;
}

/* "dynamic_batching": {"max_delay_us"}; it needs max_batch. */
static int parse_batching(struct model *m, json_t *obj, struct eng_error *err)
{
    static const char *const fields[] = {"max_delay_us", NULL};
    if (!json_is_object(obj))
        return eng_fail(err, ENG_INVALID, "config.json: dynamic_batching: must be an object");
    if (m->max_batch < 1)
        return eng_fail(err, ENG_INVALID, "config.json: dynamic_batching: needs max_batch >= 1");
    long delay = 0;
    if (model_config_check_fields(obj, "dynamic_batching.", fields, err) ||
        get_int(obj, "max_delay_us", "dynamic_batching.max_delay_us", 0, MAX_DELAY_US, &delay, err))
        return -1;
    m->delay_us = delay;
    return 0;
}

int model_apply_config(struct model *m, json_t *doc, const char *folder, struct eng_error *err)
{
    static const char *const fields[] = {"input",      "output", "output_kind", "layout",
                                         "preprocess", "labels", "max_batch",   "dynamic_batching",
                                         "perceptual", NULL};
    if (!json_is_object(doc))
        return eng_fail(err, ENG_INVALID, "config.json: must be a JSON object");
    const struct nn_graph *g = m->graph;
    json_t *pre = json_object_get(doc, "preprocess"), *labels = json_object_get(doc, "labels");
    json_t *batching = json_object_get(doc, "dynamic_batching");
    if (model_config_check_fields(doc, "", fields, err) ||
        get_tensor(doc, "input", g, nn_graph_input, nn_graph_input_count(g), &m->image_input,
                   err) ||
        get_tensor(doc, "output", g, nn_graph_output, nn_graph_output_count(g), &m->scores_output,
                   err) ||
        get_switch(doc, "output_kind", "output_kind", "logits", "probabilities", &m->probabilities,
                   err) ||
        get_switch(doc, "layout", "layout", "NCHW", "NHWC", &m->preprocess.nhwc, err) ||
        get_int(doc, "max_batch", "max_batch", 0, INT32_MAX, &m->max_batch, err))
        return -1;
    if (pre) {
        int nhwc = m->preprocess.nhwc;
        if (parse_preprocess(pre, &m->preprocess, err)) return -1;
        m->preprocess.nhwc = nhwc;
        m->has_preprocess = 1;
        if (set_channels(m, err)) return -1;
    }
    if (labels) {
        const char *file = json_string_value(labels);
        if (!file || !model_valid_file_name(file))
            return eng_fail(err, ENG_INVALID,
                            "config.json: labels: must be the name of a file in the model's folder "
                            "(no '/', not starting with '.')");
        if (read_labels(m, folder, file, err) || check_label_count(m, file, err)) return -1;
    }
    m->perceptual_config = json_incref(json_object_get(doc, "perceptual"));
    m->config = json_incref(doc);
    return batching ? parse_batching(m, batching, err) : 0;
}

const json_t *model_config(const struct model *m)
{
    return m->config;
}

long model_max_batch(const struct model *m)
{
    return m->max_batch;
}

const struct classify_preprocess *model_preprocess(const struct model *m)
{
    return m->has_preprocess ? &m->preprocess : NULL;
}

size_t model_scores_output(const struct model *m)
{
    return m->scores_output;
}

int model_scores_are_probabilities(const struct model *m)
{
    return m->probabilities;
}

size_t model_label_count(const struct model *m)
{
    return m->label_count;
}

const char *model_label(const struct model *m, size_t i)
{
    return i < m->label_count ? m->labels[i] : NULL;
}

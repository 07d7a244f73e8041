#include "models.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics/metric.h"

/* Plans cached per model, one per input shape seen, at most MAX_PLANS; past that a request
 * compiles a plan for itself. */
#define MAX_PLANS        16
#define MAX_NAME_LENGTH  64
#define MAX_LABELS_BYTES (16 << 20)
#define MAX_SIDE         65536
#define MAX_DELAY_US     10000000L

struct cached_plan {
    struct nn_tensor_info *shapes; /* nn_graph_input_count entries; names unused */
    struct nn_plan *plan;
    pthread_mutex_t run_lock; /* a plan runs one call at a time (nn.h) */
    int tapped;               /* returns the perceptual taps after the outputs */
    struct cached_plan *next;
};

/* One model_infer call waiting in a batch; it lives on the caller's stack. */
struct call {
    const float *const *inputs;
    const struct nn_tensor_info *shapes;
    float **outputs;
    struct nn_tensor_info *output_info;
    struct eng_error *err;
    int64_t rows; /* its batch: the first dimension of its inputs */
    int rc;
    int done; /* under the batcher's lock: the leader has filled rc and the outputs */
};

/* The batch being gathered; it lives on its leader's stack (the call that opened it). */
struct batch {
    struct call **calls; /* max_batch entries */
    size_t count;
    int64_t rows; /* summed over calls */
};

struct model {
    char *name;
    struct models_settings settings; /* the repository's, copied: a model may outlive it */
    uint64_t files;                  /* folder_signature when it was loaded */
    struct nn_graph *graph;          /* NULL: unavailable */
    char *reason;
    long max_batch;
    size_t image_input, scores_output;
    int probabilities;
    int has_preprocess;
    struct model_preprocess preprocess;
    json_t *perceptual_config; /* config.json's "perceptual", until load_perceptual applies it */
    int has_perceptual;        /* it loaded: perceptual is served */
    struct model_perceptual perceptual; /* points into the three arrays below */
    char **tap_names;
    float **lin; /* per tap: the weights, or NULL for "lin": false */
    int *channels;
    char *perceptual_reason; /* why the section did not load */
    char *label_text;        /* the labels file, its newlines replaced by NULs */
    char **labels;
    size_t label_count;
    long delay_us;       /* dynamic_batching.max_delay_us; -1: none */
    atomic_int batching; /* dynamic batching applies; cleared if a batch's outputs cannot split */
    atomic_int refs;     /* the repository's reference plus one per models_acquire */
    atomic_ullong requests, executions;
    pthread_mutex_t plans_lock; /* guards plans and n_plans */
    struct cached_plan *plans;
    size_t n_plans;
    pthread_mutex_t batch_lock; /* guards open and every call's done */
    pthread_cond_t batch_cond;  /* a batch filled, closed or finished */
    struct batch *open;         /* the batch gathering calls, or NULL */
};

struct models {
    pthread_rwlock_t lock; /* guards items and count, and the folders under dir */
    struct model **items;
    size_t count;
    char *dir;
    struct models_settings settings;
};

/* ---- Configuration ---------------------------------------------------------------------------
 * config.json is validated strictly: an unknown field or a value out of range makes the model
 * unavailable, with a message naming the field. */

static int refuse(char *why, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(char *why, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
    return -1;
}

/* dir/file into out; -1 (errno ENAMETOOLONG) when it does not fit. */
static int join(char out[PATH_MAX], const char *dir, const char *file)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, file);
    if (n < 0 || n >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Refuses members of obj that are not in allowed (NULL-terminated); prefix names obj. */
static int check_fields(json_t *obj, const char *prefix, const char *const *allowed, char *why,
                        size_t size)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], key) != 0)
            i++;
        if (!allowed[i]) return refuse(why, size, "config.json: %s%s: unknown field", prefix, key);
    }
    return 0;
}

/* An integer member in [min, max] into *out, which keeps its default when the member is absent. */
static int get_int(json_t *obj, const char *key, const char *field, long min, long max, long *out,
                   char *why, size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return refuse(why, size, "config.json: %s: must be an integer in [%ld, %ld]", field, min,
                      max);
    *out = (long)json_integer_value(v);
    return 0;
}

/* A string member that is either off_value (*out 0) or on_value (*out 1); *out keeps its default
 * when the member is absent. */
static int get_switch(json_t *obj, const char *key, const char *field, const char *off_value,
                      const char *on_value, int *out, char *why, size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    const char *s = json_string_value(v);
    if (s && strcmp(s, off_value) == 0)
        *out = 0;
    else if (s && strcmp(s, on_value) == 0)
        *out = 1;
    else
        return refuse(why, size, "config.json: %s: must be \"%s\" or \"%s\"", field, off_value,
                      on_value);
    return 0;
}

/* A member holding 3 numbers (> 0 when positive) into out, which keeps its defaults when absent. */
static int get_triple(json_t *obj, const char *key, const char *field, int positive, float out[3],
                      char *why, size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_array(v) || json_array_size(v) != 3)
        return refuse(why, size, "config.json: %s: must be an array of 3 numbers", field);
    for (size_t i = 0; i < 3; i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_number(x) || (positive && json_number_value(x) <= 0))
            return refuse(why, size, "config.json: %s[%zu]: must be a number%s", field, i,
                          positive ? " > 0" : "");
        out[i] = (float)json_number_value(x);
    }
    return 0;
}

/* "crop": one side for a square, or [height, width]. */
static int get_crop(json_t *obj, struct model_preprocess *p, char *why, size_t size)
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
        return refuse(why, size,
                      "config.json: preprocess.crop: must be an integer or [height, width], "
                      "each in [1, %d]",
                      MAX_SIDE);
    p->crop_height = (int)h;
    p->crop_width = (int)w;
    return 0;
}

/* "preprocess"; channels comes later, from the image input's shape. */
static int parse_preprocess(json_t *obj, struct model_preprocess *p, char *why, size_t size)
{
    static const char *const fields[] = {"resize", "crop", "interpolation", "scale",
                                         "mean",   "std",  "channel_order", NULL};
    *p = (struct model_preprocess){.bilinear = 1, .scale = 1.0f / 255, .std = {1, 1, 1}};
    if (!json_is_object(obj))
        return refuse(why, size, "config.json: preprocess: must be an object");
    long resize = 0;
    json_t *scale = json_object_get(obj, "scale");
    if (check_fields(obj, "preprocess.", fields, why, size) ||
        get_int(obj, "resize", "preprocess.resize", 1, MAX_SIDE, &resize, why, size) ||
        get_crop(obj, p, why, size) ||
        get_switch(obj, "interpolation", "preprocess.interpolation", "nearest", "bilinear",
                   &p->bilinear, why, size) ||
        get_triple(obj, "mean", "preprocess.mean", 0, p->mean, why, size) ||
        get_triple(obj, "std", "preprocess.std", 1, p->std, why, size) ||
        get_switch(obj, "channel_order", "preprocess.channel_order", "RGB", "BGR", &p->bgr, why,
                   size))
        return -1;
    if (scale && (!json_is_number(scale) || json_number_value(scale) <= 0))
        return refuse(why, size, "config.json: preprocess.scale: must be a number > 0");
    if (scale) p->scale = (float)json_number_value(scale);
    p->resize = (int)resize;
    return 0;
}

/* The index of the tensor named by obj's key among count tensors (at(g, i)); *index keeps its
 * default (0, the first) when the key is absent. */
static int get_tensor(json_t *obj, const char *key, const struct nn_graph *g,
                      const struct nn_tensor_info *(*at)(const struct nn_graph *, size_t),
                      size_t count, size_t *index, char *why, size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    const char *name = json_string_value(v);
    for (size_t i = 0; name && i < count; i++)
        if (strcmp(at(g, i)->name, name) == 0) {
            *index = i;
            return 0;
        }
    return refuse(why, size, "config.json: %s: must name one of the model's %ss (the first is %s)",
                  key, key, count ? at(g, 0)->name : "none");
}

/* The channel count the image input takes from preprocessing: C of its NCHW or NHWC shape. */
static int set_channels(struct model *m, char *why, size_t size)
{
    const struct nn_tensor_info *in = nn_graph_input(m->graph, m->image_input);
    int64_t c = in->rank == 4 ? in->dims[m->preprocess.nhwc ? 3 : 1] : -1;
    if (c != 1 && c != 3)
        return refuse(why, size,
                      "config.json: preprocess: input %s needs a 4-dimensional %s shape with 1 or "
                      "3 channels",
                      in->name, m->preprocess.nhwc ? "NHWC" : "NCHW");
    m->preprocess.channels = (int)c;
    return 0;
}

/* Whether a labels file name stays in the model's folder and clear of the model's own files. */
static int valid_labels_name(const char *name)
{
    return name[0] && name[0] != '.' && !strchr(name, '/') && strcmp(name, "model.onnx") != 0 &&
           strcmp(name, "config.json") != 0;
}

/* Reads the labels file, one label per line ("\r\n" too); a symlink is refused, so the file cannot
 * point out of the folder. */
static int read_labels(struct model *m, const char *folder, const char *file, char *why,
                       size_t size)
{
    char path[PATH_MAX];
    int fd = join(path, folder, file) == 0 ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_LABELS_BYTES) {
        if (fd >= 0) close(fd);
        return refuse(why, size,
                      "config.json: labels: %s is not a readable file of at most %d bytes", file,
                      MAX_LABELS_BYTES);
    }
    size_t n = (size_t)st.st_size;
    m->label_text = malloc(n + 1);
    ssize_t got = m->label_text ? read(fd, m->label_text, n) : -1;
    close(fd);
    if (got != (ssize_t)n) return refuse(why, size, "config.json: labels: cannot read %s", file);
    m->label_text[n] = '\0';
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += m->label_text[i] == '\n';
    m->labels = malloc((lines + 1) * sizeof *m->labels);
    if (!m->labels) return refuse(why, size, "out of memory");
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
static int check_label_count(const struct model *m, const char *file, char *why, size_t size)
{
    const struct nn_tensor_info *out = nn_graph_output(m->graph, m->scores_output);
    int64_t classes = out->rank >= 1 ? out->dims[out->rank - 1] : -1;
    if (classes >= 0 && (size_t)classes != m->label_count)
        return refuse(why, size,
                      "config.json: labels: %s holds %zu labels; output %s has %lld classes", file,
                      m->label_count, out->name, (long long)classes);
    return 0;
}

/* "dynamic_batching": {"max_delay_us"}; it needs max_batch. */
static int parse_batching(struct model *m, json_t *obj, char *why, size_t size)
{
    static const char *const fields[] = {"max_delay_us", NULL};
    if (!json_is_object(obj))
        return refuse(why, size, "config.json: dynamic_batching: must be an object");
    if (m->max_batch < 1)
        return refuse(why, size, "config.json: dynamic_batching: needs max_batch >= 1");
    long delay = 0;
    if (check_fields(obj, "dynamic_batching.", fields, why, size) ||
        get_int(obj, "max_delay_us", "dynamic_batching.max_delay_us", 0, MAX_DELAY_US, &delay, why,
                size))
        return -1;
    m->delay_us = delay;
    return 0;
}

/* Applies config.json (doc) to m, whose graph is loaded. */
static int apply_config(struct model *m, json_t *doc, const char *folder, char *why, size_t size)
{
    static const char *const fields[] = {"input",      "output", "output_kind", "layout",
                                         "preprocess", "labels", "max_batch",   "dynamic_batching",
                                         "perceptual", NULL};
    if (!json_is_object(doc)) return refuse(why, size, "config.json: must be a JSON object");
    const struct nn_graph *g = m->graph;
    json_t *pre = json_object_get(doc, "preprocess"), *labels = json_object_get(doc, "labels");
    json_t *batching = json_object_get(doc, "dynamic_batching");
    if (check_fields(doc, "", fields, why, size) ||
        get_tensor(doc, "input", g, nn_graph_input, nn_graph_input_count(g), &m->image_input, why,
                   size) ||
        get_tensor(doc, "output", g, nn_graph_output, nn_graph_output_count(g), &m->scores_output,
                   why, size) ||
        get_switch(doc, "output_kind", "output_kind", "logits", "probabilities", &m->probabilities,
                   why, size) ||
        get_switch(doc, "layout", "layout", "NCHW", "NHWC", &m->preprocess.nhwc, why, size) ||
        get_int(doc, "max_batch", "max_batch", 0, INT32_MAX, &m->max_batch, why, size))
        return -1;
    if (pre) {
        int nhwc = m->preprocess.nhwc;
        if (parse_preprocess(pre, &m->preprocess, why, size)) return -1;
        m->preprocess.nhwc = nhwc;
        m->has_preprocess = 1;
        if (set_channels(m, why, size)) return -1;
    }
    if (labels) {
        const char *file = json_string_value(labels);
        if (!file || !valid_labels_name(file))
            return refuse(why, size,
                          "config.json: labels: must be the name of a file in the model's folder "
                          "(no '/', not starting with '.')");
        if (read_labels(m, folder, file, why, size) || check_label_count(m, file, why, size))
            return -1;
    }
    m->perceptual_config = json_incref(json_object_get(doc, "perceptual"));
    return batching ? parse_batching(m, batching, why, size) : 0;
}

static struct nn_plan *compile(const struct model *m, const struct nn_tensor_info *shapes,
                               int tapped, struct eng_error *err);

/* ---- Perceptual config -----------------------------------------------------------------------
 * config.json's "perceptual" makes the model a backbone for LPIPS: {"taps": [value names], "lin":
 * [one weights file per tap] or false, "shift": [3 numbers], "scale": [3 numbers]}. Checking it
 * needs the graph to run, so it is applied after the rest has loaded; a section that does not
 * load leaves the model serving everything else, and its reason is kept for the similarity API. */

#define MAX_TAPS       32
#define PROBE_MAX_SIDE 256 /* the largest image side tried when looking for the smallest */

static const float lpips_shift[3] = {-0.030f, -0.088f, -0.188f};
static const float lpips_scale[3] = {0.458f, 0.448f, 0.450f};

static void free_perceptual(struct model *m)
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
static int check_backbone_input(const struct model *m, char *why, size_t size)
{
    const struct nn_graph *g = m->graph;
    const struct nn_tensor_info *in = nn_graph_input_count(g) == 1 ? nn_graph_input(g, 0) : NULL;
    if (!in || in->rank != 4 || (in->dims[1] != 3 && in->dims[1] >= 0) || in->dims[2] >= 0 ||
        in->dims[3] >= 0)
        return refuse(why, size,
                      "config.json: perceptual: the model needs exactly one input, NCHW with 3 "
                      "channels and a symbolic height and width (dynamic_axes in "
                      "torch.onnx.export)");
    return 0;
}

/* "taps": every name must be a value of the graph; the unknown ones are listed together. */
static int parse_taps(struct model *m, json_t *taps, char *why, size_t size)
{
    size_t n = json_array_size(taps);
    if (!json_is_array(taps) || n < 1 || n > MAX_TAPS)
        return refuse(why, size,
                      "config.json: perceptual.taps: must be an array of 1 to %d value names",
                      MAX_TAPS);
    if (!(m->tap_names = calloc(n, sizeof *m->tap_names)))
        return refuse(why, size, "out of memory");
    m->perceptual.n_taps = n;
    char unknown[400] = "";
    size_t used = 0;
    for (size_t k = 0; k < n; k++) {
        const char *name = json_string_value(json_array_get(taps, k));
        if (!name)
            return refuse(why, size, "config.json: perceptual.taps[%zu]: must be a string", k);
        if (!(m->tap_names[k] = strdup(name))) return refuse(why, size, "out of memory");
        if (!produced(m->graph, name) && used < sizeof unknown)
            used += (size_t)snprintf(unknown + used, sizeof unknown - used, "%s%s",
                                     used ? ", " : "", name);
    }
    if (used)
        return refuse(why, size, "config.json: perceptual.taps: the model has no values named %s",
                      unknown);
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
    if (rc == 0 && !(plan = compile(m, &shape, 1, err))) rc = -1;
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
static int find_min_side(struct model *m, char *why, size_t size)
{
    struct eng_error err = {0};
    if (probe(m, PROBE_MAX_SIDE, m->channels, &err) != 0)
        return refuse(why, size, "perceptual: the taps do not run on a %dx%d image: %s",
                      PROBE_MAX_SIDE, PROBE_MAX_SIDE, err.message);
    int lo = 1, hi = PROBE_MAX_SIDE;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (probe(m, mid, m->channels, &err) == 0)
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
                        char *why, size_t size)
{
    char path[PATH_MAX];
    size_t len = strlen(file);
    int npy = len > 4 && strcmp(file + len - 4, ".npy") == 0;
    int js = len > 5 && strcmp(file + len - 5, ".json") == 0;
    if (!valid_labels_name(file) || (!npy && !js) || join(path, folder, file) != 0)
        return refuse(why, size, "%s: must name a .npy or .json file in the model's folder", file);
    if (npy) {
        struct eng_error err = {0};
        return metric_npy_read_file(path, values, count, &err)
                   ? refuse(why, size, "%s", err.message)
                   : 0;
    }
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
    return rc ? refuse(why, size, "%s: must be a JSON array of numbers", file) : 0;
}

/* Tap k's weights: one per channel, each finite and >= 0 (LPIPS is a sum of non-negative terms;
 * a negative weight would let it go below 0). */
static int load_lin(struct model *m, size_t k, const char *folder, const char *file, char *why,
                    size_t size)
{
    char inner[500];
    double *values = NULL;
    size_t count = 0;
    int rc = read_weights(folder, file, &values, &count, inner, sizeof inner);
    if (rc == 0 && count != (size_t)m->channels[k])
        rc = refuse(inner, sizeof inner, "%s holds %zu weights; tap %s has %d channels", file,
                    count, m->tap_names[k], m->channels[k]);
    for (size_t c = 0; rc == 0 && c < count; c++)
        if (!(values[c] >= 0) || !isfinite(values[c]))
            rc = refuse(inner, sizeof inner,
                        "%s: weight %zu is %g; linear weights must be finite and >= 0", file, c,
                        values[c]);
    if (rc == 0 && !(m->lin[k] = malloc(count * sizeof *m->lin[k])))
        rc = refuse(inner, sizeof inner, "out of memory");
    for (size_t c = 0; rc == 0 && c < count; c++)
        m->lin[k][c] = (float)values[c];
    free(values);
    return rc ? refuse(why, size, "config.json: perceptual.lin[%zu]: %s", k, inner) : 0;
}

/* "lin": false (every weight 1, the "baseline" LPIPS) or one weights file per tap. */
static int parse_lin(struct model *m, json_t *lin, const char *folder, char *why, size_t size)
{
    size_t n = m->perceptual.n_taps;
    if (json_is_false(lin)) return 0;
    if (!json_is_array(lin) || json_array_size(lin) != n)
        return refuse(why, size,
                      "config.json: perceptual.lin: must be false or an array of %zu file names, "
                      "one per tap",
                      n);
    for (size_t k = 0; k < n; k++) {
        const char *file = json_string_value(json_array_get(lin, k));
        if (!file)
            return refuse(why, size, "config.json: perceptual.lin[%zu]: must be a file name", k);
        if (load_lin(m, k, folder, file, why, size)) return -1;
    }
    return 0;
}

static int apply_perceptual(struct model *m, json_t *cfg, const char *folder, char *why,
                            size_t size)
{
    static const char *const fields[] = {"taps", "lin", "shift", "scale", NULL};
    struct model_perceptual *p = &m->perceptual;
    memcpy(p->shift, lpips_shift, sizeof p->shift);
    memcpy(p->scale, lpips_scale, sizeof p->scale);
    if (!json_is_object(cfg))
        return refuse(why, size, "config.json: perceptual: must be an object");
    json_t *lin = json_object_get(cfg, "lin");
    if (check_fields(cfg, "perceptual.", fields, why, size) ||
        get_triple(cfg, "shift", "perceptual.shift", 0, p->shift, why, size) ||
        get_triple(cfg, "scale", "perceptual.scale", 1, p->scale, why, size) ||
        check_backbone_input(m, why, size) ||
        parse_taps(m, json_object_get(cfg, "taps"), why, size))
        return -1;
    if (!lin)
        return refuse(why, size,
                      "config.json: perceptual.lin: required: false, or one weights file per tap");
    m->channels = calloc(p->n_taps, sizeof *m->channels);
    m->lin = calloc(p->n_taps, sizeof *m->lin);
    if (!m->channels || !m->lin) return refuse(why, size, "out of memory");
    if (find_min_side(m, why, size) || parse_lin(m, lin, folder, why, size)) return -1;
    p->channels = m->channels;
    p->weights = (const float *const *)m->lin;
    return 0;
}

/* ---- Loading --------------------------------------------------------------------------------- */

static void model_free(struct model *m)
{
    for (struct cached_plan *c = m->plans, *next; c; c = next) {
        next = c->next;
        nn_plan_free(c->plan);
        pthread_mutex_destroy(&c->run_lock);
        free(c->shapes);
        free(c);
    }
    pthread_mutex_destroy(&m->plans_lock);
    pthread_mutex_destroy(&m->batch_lock);
    pthread_cond_destroy(&m->batch_cond);
    nn_graph_free(m->graph);
    free(m->labels);
    free(m->label_text);
    free(m->name);
    free(m->reason);
    free_perceptual(m);
    free(m);
}

static struct model *model_new(const char *name)
{
    struct model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->name = strdup(name);
    m->delay_us = -1;
    atomic_init(&m->refs, 1);
    pthread_condattr_t attr;
    /* The batch deadline is on the monotonic clock, which wall-clock changes do not move. */
    int cond_ok = pthread_condattr_init(&attr) == 0;
    if (cond_ok) {
        cond_ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&m->batch_cond, &attr) == 0;
        pthread_condattr_destroy(&attr);
    }
    pthread_mutex_init(&m->plans_lock, NULL);
    pthread_mutex_init(&m->batch_lock, NULL);
    if (!m->name || !cond_ok) {
        if (cond_ok) pthread_cond_destroy(&m->batch_cond);
        pthread_mutex_destroy(&m->plans_lock);
        pthread_mutex_destroy(&m->batch_lock);
        free(m->name);
        free(m);
        return NULL;
    }
    return m;
}

static struct cached_plan *cached_plan(struct model *m, const struct nn_tensor_info *shapes,
                                       int tapped, int *failed, struct eng_error *err);
static void load_perceptual(struct model *m, const char *folder);

/* Calls batch only when inputs and outputs all have the batch as their first dimension (declared
 * dynamic, so each call's rows can be concatenated and the results split again). */
static int batchable(const struct nn_graph *g)
{
    for (size_t i = 0; i < nn_graph_input_count(g); i++)
        if (nn_graph_input(g, i)->rank < 1 || nn_graph_input(g, i)->dims[0] >= 0) return 0;
    for (size_t k = 0; k < nn_graph_output_count(g); k++)
        if (nn_graph_output(g, k)->rank < 1 || nn_graph_output(g, k)->dims[0] >= 0) return 0;
    return 1;
}

/* Compiles (and caches) the plan for batch 1 when the inputs are static apart from the batch, so
 * an unsupported op or inconsistent shapes make the model unavailable at load, not at its first
 * request. */
static int compile_batch_of_one(struct model *m, char *why, size_t size)
{
    size_t n = nn_graph_input_count(m->graph);
    struct nn_tensor_info *shapes = calloc(n + 1, sizeof *shapes);
    if (!shapes) return refuse(why, size, "out of memory");
    int known = 1;
    for (size_t i = 0; i < n; i++) {
        shapes[i] = *nn_graph_input(m->graph, i);
        if (shapes[i].rank > 0 && shapes[i].dims[0] < 0) shapes[i].dims[0] = 1;
        known &= shapes[i].rank >= 0;
        for (int d = 0; d < shapes[i].rank; d++)
            known &= shapes[i].dims[d] >= 0;
    }
    struct eng_error err = {0};
    int failed = 0;
    if (known) cached_plan(m, shapes, 0, &failed, &err);
    free(shapes);
    return failed ? refuse(why, size, "model.onnx: %s", err.message) : 0;
}

/* Reads folder's model.onnx and config.json into m. Returns -1 with why filled when the model
 * cannot serve. */
static int load_files(struct model *m, const char *folder, long long max_bytes, char *why,
                      size_t size)
{
    char path[PATH_MAX];
    struct stat st;
    if (join(path, folder, "model.onnx") != 0 || stat(path, &st) != 0)
        return refuse(why, size, "model.onnx: %s", strerror(errno));
    if (max_bytes > 0 && st.st_size > max_bytes)
        return refuse(why, size, "model.onnx is %lld bytes; max_model_bytes is %lld",
                      (long long)st.st_size, max_bytes);
    struct eng_error err = {0};
    m->graph = nn_graph_read_file(path, &err);
    if (!m->graph) return refuse(why, size, "model.onnx: %s", err.message);
    if (join(path, folder, "config.json") != 0)
        return refuse(why, size, "config.json: %s", strerror(errno));
    if (stat(path, &st) == 0 || errno != ENOENT) {
        json_error_t error;
        json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &error);
        if (!doc) return refuse(why, size, "config.json: line %d: %s", error.line, error.text);
        int rc = apply_config(m, doc, folder, why, size);
        json_decref(doc);
        if (rc) return -1;
    }
    atomic_init(&m->batching, m->delay_us >= 0 && batchable(m->graph));
    return compile_batch_of_one(m, why, size);
}

/* What the files directly in folder are (names, sizes, modification times, inodes), summed so that
 * the order readdir gives them in does not matter: a copy over model.onnx or an edit of
 * config.json changes it. 0 when the folder cannot be read. */
static uint64_t folder_signature(const char *folder)
{
    DIR *d = opendir(folder);
    if (!d) return 0;
    uint64_t sum = 0;
    struct dirent *entry;
    char path[PATH_MAX];
    struct stat st;
    while ((entry = readdir(d))) {
        if (join(path, folder, entry->d_name) != 0 || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        uint64_t h = 1469598103934665603u; /* FNV-1a */
        for (const char *c = entry->d_name; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211u;
        uint64_t facts[] = {(uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
                            (uint64_t)st.st_mtim.tv_nsec, (uint64_t)st.st_ino};
        for (size_t i = 0; i < sizeof facts / sizeof *facts; i++)
            h = (h ^ facts[i]) * 1099511628211u;
        sum += h;
    }
    closedir(d);
    return sum;
}

/* The model in folder, named name; one that cannot serve holds its reason and no graph. NULL only
 * when memory runs out. */
static struct model *model_load(const char *folder, const char *name,
                                const struct models_settings *settings)
{
    struct model *m = model_new(name);
    if (!m) return NULL;
    m->settings = *settings;
    m->files = folder_signature(folder);
    char why[600];
    if (load_files(m, folder, settings->max_model_bytes, why, sizeof why) == 0) {
        load_perceptual(m, folder);
        return m;
    }
    m->reason = strdup(why);
    nn_graph_free(m->graph);
    m->graph = NULL;
    m->has_preprocess = 0;
    m->label_count = 0;
    atomic_store(&m->batching, 0);
    if (!m->reason) {
        model_free(m);
        return NULL;
    }
    log_event("warn", "model_unavailable", "model %s: %s", name, m->reason);
    return m;
}

void model_release(struct model *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) model_free(m);
}

/* ---- The repository -------------------------------------------------------------------------- */

int models_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > MAX_NAME_LENGTH || name[0] == '.') return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* Appends m (its reference passes to the repository); the caller holds the write lock. */
static int append(struct models *ms, struct model *m)
{
    struct model **grown = realloc(ms->items, (ms->count + 1) * sizeof *grown);
    if (!grown) return -1;
    ms->items = grown;
    ms->items[ms->count++] = m;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Removes a folder and everything in it, without following symlinks. */
static int remove_tree(const char *path)
{
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Uploads and removals leave their dot-folders behind only when the process died mid-way. One
 * a day old is such a leftover even where several servers share models_dir; younger ones may
 * belong to another server's upload in progress, so they stay. */
#define LEFTOVER_AGE_S (24 * 3600)

static void remove_leftover(const char *dir, const char *leaf)
{
    char path[PATH_MAX];
    struct stat st;
    if ((strncmp(leaf, ".upload-", 8) != 0 && strncmp(leaf, ".deleted-", 9) != 0) ||
        join(path, dir, leaf) != 0 || lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) ||
        time(NULL) - st.st_mtime < LEFTOVER_AGE_S)
        return;
    if (remove_tree(path) == 0)
        log_event("info", "models", "removed %s, left by an upload or removal that did not finish",
                  path);
    else
        log_event("warn", "models", "cannot remove %s: %s", path, strerror(errno));
}

static size_t find_index(const struct models *ms, const char *name)
{
    size_t i = 0;
    while (i < ms->count && strcmp(ms->items[i]->name, name) != 0)
        i++;
    return i;
}

/* Whether a model of that name is listed (checked again when publishing; this spares the work). */
static int listed(struct models *ms, const char *name)
{
    pthread_rwlock_rdlock(&ms->lock);
    int found = find_index(ms, name) < ms->count;
    pthread_rwlock_unlock(&ms->lock);
    return found;
}

/* Loads and lists <dir>/<name>/model.onnx unless name is listed already (counting it in *added).
 * -1 only when memory runs out. */
static int add_folder(struct models *ms, const char *name, int *added)
{
    char folder[PATH_MAX], path[PATH_MAX];
    struct stat st;
    if (join(folder, ms->dir, name) != 0 || join(path, folder, "model.onnx") != 0 ||
        stat(path, &st) != 0 || listed(ms, name))
        return 0;
    struct model *m = model_load(folder, name, &ms->settings);
    if (!m) return -1;
    pthread_rwlock_wrlock(&ms->lock);
    int rc = find_index(ms, name) < ms->count ? 1 : append(ms, m);
    pthread_rwlock_unlock(&ms->lock);
    if (rc == 0)
        (*added)++;
    else
        model_release(m);
    return rc < 0 ? -1 : 0;
}

/* Lists every folder of models_dir with a model.onnx that is not listed yet. Folders starting
 * with '.' (uploads and deletions in progress) are skipped, and removed once they are old
 * leftovers. -1 only when memory runs out. */
static int add_unlisted(struct models *ms, int *added)
{
    DIR *d = opendir(ms->dir);
    if (!d) {
        log_event("info", "models", "models_dir %s: %s; no models are served", ms->dir,
                  strerror(errno));
        return 0;
    }
    struct dirent *entry;
    int rc = 0;
    while (rc == 0 && (entry = readdir(d))) {
        if (entry->d_name[0] == '.')
            remove_leftover(ms->dir, entry->d_name);
        else
            rc = add_folder(ms, entry->d_name, added);
    }
    closedir(d);
    return rc;
}

struct models *models_open(const char *dir, const struct models_settings *settings, char *err,
                           size_t err_size)
{
    struct models *ms = calloc(1, sizeof *ms);
    if (ms) ms->dir = strdup(dir);
    if (!ms || !ms->dir) {
        free(ms);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    pthread_rwlock_init(&ms->lock, NULL);
    if (settings) ms->settings = *settings;
    int added = 0;
    if (add_unlisted(ms, &added) != 0) {
        models_close(ms);
        snprintf(err, err_size, "out of memory while loading models from %s", dir);
        return NULL;
    }
    return ms;
}

void models_close(struct models *ms)
{
    if (!ms) return;
    for (size_t i = 0; i < ms->count; i++)
        model_release(ms->items[i]);
    pthread_rwlock_destroy(&ms->lock);
    free(ms->items);
    free(ms->dir);
    free(ms);
}

/* The index of the model named name, or count; the caller holds the lock. */
struct model *models_find(const struct models *ms, const char *name)
{
    if (!ms) return NULL;
    /* The lock is not part of the repository's value: taking it changes nothing a caller sees. */
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&ms->lock;
    pthread_rwlock_rdlock(lock);
    size_t i = find_index(ms, name);
    struct model *m = i < ms->count ? ms->items[i] : NULL;
    pthread_rwlock_unlock(lock);
    return m;
}

struct model *models_acquire(struct models *ms, const char *name)
{
    if (!ms) return NULL;
    pthread_rwlock_rdlock(&ms->lock);
    size_t i = find_index(ms, name);
    struct model *m = i < ms->count ? ms->items[i] : NULL;
    if (m) atomic_fetch_add(&m->refs, 1);
    pthread_rwlock_unlock(&ms->lock);
    return m;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(struct model *const *)a)->name, (*(struct model *const *)b)->name);
}

struct model **models_list(struct models *ms, size_t *count)
{
    *count = 0;
    pthread_rwlock_rdlock(&ms->lock);
    struct model **list = ms->count ? malloc(ms->count * sizeof *list) : NULL;
    if (list) {
        *count = ms->count;
        for (size_t i = 0; i < ms->count; i++) {
            list[i] = ms->items[i];
            atomic_fetch_add(&list[i]->refs, 1);
        }
    } else if (ms->count) {
        *count = (size_t)-1;
    }
    pthread_rwlock_unlock(&ms->lock);
    if (list) qsort(list, *count, sizeof *list, by_name);
    return list;
}

void models_list_free(struct model **list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        model_release(list[i]);
    free(list);
}

/* Writes one uploaded file, flushed to disk so the rename publishes whole files only. */
static int write_file(const char *folder, const char *file, const void *data, size_t size,
                      char *why, size_t why_size)
{
    char path[PATH_MAX];
    int fd = join(path, folder, file) == 0
                 ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)
                 : -1;
    const char *p = data;
    while (fd >= 0 && size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        p += n;
        size -= (size_t)n;
    }
    int ok = fd >= 0 && size == 0 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0) ok = 0;
    return ok ? 0 : refuse(why, why_size, "cannot write %s/%s: %s", folder, file, strerror(errno));
}

/* The file name config.json gives the labels, or NULL (a config the load will refuse anyway). */
static char *labels_file_name(const struct model_upload *up)
{
    json_t *doc = up->config ? json_loadb(up->config, up->config_size, 0, NULL) : NULL;
    const char *file = json_string_value(json_object_get(doc, "labels"));
    char *copy = file && valid_labels_name(file) ? strdup(file) : NULL;
    json_decref(doc);
    return copy;
}

/* Writes the upload's files into folder. */
static enum models_add_status write_upload(const char *folder, const struct model_upload *up,
                                           char *why, size_t size)
{
    if (write_file(folder, "model.onnx", up->onnx, up->onnx_size, why, size) ||
        (up->config && write_file(folder, "config.json", up->config, up->config_size, why, size)))
        return MODELS_FAILED;
    if (!up->labels) return MODELS_ADDED;
    char *file = labels_file_name(up);
    if (!file) {
        refuse(why, size, "labels: config.json's \"labels\" must name the labels file");
        return MODELS_REJECTED;
    }
    int rc = write_file(folder, file, up->labels, up->labels_size, why, size);
    free(file);
    return rc ? MODELS_FAILED : MODELS_ADDED;
}

/* Renames the loaded upload's folder to its name and lists m, under the write lock, so two uploads
 * of one name cannot both succeed. */
static enum models_add_status publish(struct models *ms, const char *tmp, struct model *m,
                                      char *why, size_t size)
{
    char final[PATH_MAX];
    struct stat st;
    if (join(final, ms->dir, m->name) != 0) {
        refuse(why, size, "models_dir %s: %s", ms->dir, strerror(errno));
        return MODELS_FAILED;
    }
    enum models_add_status status = MODELS_ADDED;
    pthread_rwlock_wrlock(&ms->lock);
    if (find_index(ms, m->name) < ms->count || lstat(final, &st) == 0) {
        refuse(why, size, "a model named %s exists", m->name);
        status = MODELS_EXISTS;
    } else if (append(ms, m) != 0) {
        refuse(why, size, "out of memory");
        status = MODELS_FAILED;
    } else if (rename(tmp, final) != 0) {
        refuse(why, size, "cannot move the model into %s: %s", final, strerror(errno));
        ms->count--;
        status = MODELS_FAILED;
    } else {
        atomic_fetch_add(&m->refs, 1); /* the caller's, besides the repository's */
    }
    pthread_rwlock_unlock(&ms->lock);
    return status;
}

/* Loads the written upload and lists it; the reason of a model that cannot serve is the
 * rejection. */
static enum models_add_status load_upload(struct models *ms, const char *tmp, const char *name,
                                          struct model **added, char *why, size_t size)
{
    struct model *m = model_load(tmp, name, &ms->settings);
    if (!m) {
        refuse(why, size, "out of memory");
        return MODELS_FAILED;
    }
    if (m->reason) {
        refuse(why, size, "%s", m->reason);
        model_release(m);
        return MODELS_REJECTED;
    }
    enum models_add_status status = publish(ms, tmp, m, why, size);
    if (status != MODELS_ADDED) {
        model_release(m);
        return status;
    }
    *added = m;
    return MODELS_ADDED;
}

enum models_add_status models_add(struct models *ms, const char *name,
                                  const struct model_upload *upload, struct model **added,
                                  char *why, size_t why_size)
{
    *added = NULL;
    if (!models_valid_name(name)) {
        refuse(why, why_size,
               "name: must be 1 to %d characters of A-Z, a-z, 0-9, '_', '.' and '-', not "
               "starting with '.'",
               MAX_NAME_LENGTH);
        return MODELS_REJECTED;
    }
    if (ms->settings.max_model_bytes > 0 &&
        upload->onnx_size > (unsigned long long)ms->settings.max_model_bytes) {
        refuse(why, why_size, "model: the file is %zu bytes; max_model_bytes is %lld",
               upload->onnx_size, ms->settings.max_model_bytes);
        return MODELS_TOO_LARGE;
    }
    if (listed(ms, name)) {
        refuse(why, why_size, "a model named %s exists", name);
        return MODELS_EXISTS;
    }
    char leaf[MAX_NAME_LENGTH + 32], tmp[PATH_MAX];
    snprintf(leaf, sizeof leaf, ".upload-%s-XXXXXX", name);
    if ((mkdir(ms->dir, 0755) != 0 && errno != EEXIST) || join(tmp, ms->dir, leaf) != 0 ||
        !mkdtemp(tmp)) {
        refuse(why, why_size, "cannot make a folder in models_dir %s: %s", ms->dir,
               strerror(errno));
        return MODELS_FAILED;
    }
    enum models_add_status status = write_upload(tmp, upload, why, why_size);
    if (status == MODELS_ADDED) status = load_upload(ms, tmp, name, added, why, why_size);
    if (status != MODELS_ADDED && remove_tree(tmp) != 0)
        log_event("warn", "models", "cannot remove %s: %s", tmp, strerror(errno));
    return status;
}

int models_remove(struct models *ms, const char *name, char *why, size_t why_size)
{
    char leaf[MAX_NAME_LENGTH + 32], folder[PATH_MAX], trash[PATH_MAX];
    snprintf(leaf, sizeof leaf, ".deleted-%.*s-XXXXXX", MAX_NAME_LENGTH, name);
    if (join(folder, ms->dir, name) != 0 || join(trash, ms->dir, leaf) != 0) {
        refuse(why, why_size, "models_dir %s: %s", ms->dir, strerror(errno));
        return -1;
    }
    pthread_rwlock_wrlock(&ms->lock);
    size_t i = find_index(ms, name);
    if (i == ms->count) {
        pthread_rwlock_unlock(&ms->lock);
        return 1;
    }
    /* Moved aside first (a rename onto the empty temporary folder), so the name is free on disk at
     * once and a crash mid-removal leaves only a dot-folder the next scan skips. */
    if (!mkdtemp(trash) || rename(folder, trash) != 0) {
        refuse(why, why_size, "cannot move %s aside: %s", folder, strerror(errno));
        rmdir(trash);
        pthread_rwlock_unlock(&ms->lock);
        return -1;
    }
    struct model *m = ms->items[i];
    memmove(&ms->items[i], &ms->items[i + 1], (ms->count - i - 1) * sizeof *ms->items);
    ms->count--;
    pthread_rwlock_unlock(&ms->lock);
    if (remove_tree(trash) != 0)
        log_event("warn", "models", "cannot remove %s: %s", trash, strerror(errno));
    model_release(m);
    return 0;
}

/* Serves the freshly loaded model fresh in place of old when old is still the one listed.
 * Returns whether it did; the caller releases whichever is left over. */
static int replace(struct models *ms, struct model *old, struct model *fresh)
{
    pthread_rwlock_wrlock(&ms->lock);
    size_t i = find_index(ms, old->name);
    int replaced = i < ms->count && ms->items[i] == old;
    if (replaced) ms->items[i] = fresh;
    pthread_rwlock_unlock(&ms->lock);
    return replaced;
}

/* Stops serving m when it is still listed and its folder is gone. Returns whether it did. */
static int drop_if_gone(struct models *ms, struct model *m, const char *folder)
{
    struct stat st;
    int dropped = 0;
    pthread_rwlock_wrlock(&ms->lock);
    size_t i = find_index(ms, m->name);
    if (i < ms->count && ms->items[i] == m && lstat(folder, &st) != 0) {
        memmove(&ms->items[i], &ms->items[i + 1], (ms->count - i - 1) * sizeof *ms->items);
        ms->count--;
        dropped = 1;
    }
    pthread_rwlock_unlock(&ms->lock);
    if (dropped) model_release(m);
    return dropped;
}

/* One listed model: dropped when its folder is gone, reloaded when its files changed. */
static void rescan_listed(struct models *ms, struct model *m, struct models_rescan *counts)
{
    char folder[PATH_MAX];
    if (join(folder, ms->dir, m->name) != 0) return;
    if (drop_if_gone(ms, m, folder)) {
        counts->dropped++;
        return;
    }
    if (folder_signature(folder) == m->files) return;
    struct model *fresh = model_load(folder, m->name, &ms->settings);
    if (!fresh) return;
    int replaced = replace(ms, m, fresh);
    counts->reloaded += replaced;
    model_release(replaced ? m : fresh);
}

struct models_rescan models_rescan(struct models *ms)
{
    struct models_rescan counts = {0};
    size_t n;
    struct model **list = models_list(ms, &n);
    for (size_t i = 0; i < n; i++)
        rescan_listed(ms, list[i], &counts);
    models_list_free(list, n);
    add_unlisted(ms, &counts.added); /* out of memory: the rest waits for the next rescan */
    return counts;
}

/* ---- Inference ------------------------------------------------------------------------------- */

static int same_shapes(const struct nn_tensor_info *a, const struct nn_tensor_info *b, size_t n,
                       int from_dim)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].rank != b[i].rank) return 0;
        for (int d = from_dim; d < a[i].rank; d++)
            if (a[i].dims[d] != b[i].dims[d]) return 0;
    }
    return 1;
}

/* A plan for these shapes; tapped adds the perceptual taps after the outputs. */
static struct nn_plan *compile(const struct model *m, const struct nn_tensor_info *shapes,
                               int tapped, struct eng_error *err)
{
    struct nn_plan_options options = {.threads = m->settings.threads,
                                      .direct_convolution = m->settings.direct_convolution};
    if (tapped) {
        options.taps = m->perceptual.taps;
        options.n_taps = m->perceptual.n_taps;
    }
    return nn_plan_compile_with(m->graph, shapes, nn_graph_input_count(m->graph), &options, err);
}

/* The cached plan for these shapes, compiling and caching it on first use. NULL with *failed set
 * (and err) when compiling fails; NULL with *failed 0 when the cache is full or memory for an
 * entry runs out, so the caller compiles an uncached plan. Compiling happens under plans_lock, so
 * concurrent first requests for one shape compile it once. */
static struct cached_plan *cached_plan(struct model *m, const struct nn_tensor_info *shapes,
                                       int tapped, int *failed, struct eng_error *err)
{
    *failed = 0;
    size_t n = nn_graph_input_count(m->graph);
    pthread_mutex_lock(&m->plans_lock);
    struct cached_plan *c = m->plans;
    while (c && (c->tapped != tapped || !same_shapes(c->shapes, shapes, n, 0)))
        c = c->next;
    if (!c && m->n_plans < MAX_PLANS && (c = calloc(1, sizeof *c))) {
        c->shapes = malloc((n ? n : 1) * sizeof *c->shapes);
        if (c->shapes) {
            memcpy(c->shapes, shapes, n * sizeof *shapes);
            c->plan = compile(m, shapes, tapped, err);
            c->tapped = tapped;
            *failed = !c->plan;
        }
        if (c->plan) {
            pthread_mutex_init(&c->run_lock, NULL);
            c->next = m->plans;
            m->plans = c;
            m->n_plans++;
        } else {
            free(c->shapes);
            free(c);
            c = NULL;
        }
    }
    pthread_mutex_unlock(&m->plans_lock);
    return c;
}

/* One execution of the network. Plans are cached per (model, input shapes) and freed with the
 * model; a cached plan may run on any worker thread because the executor owns its scratchpad
 * (dnnl_scratchpad_mode_user; oneDNN's default per-thread library scratchpad crashed when a plan
 * ran on a thread other than the one that compiled it). Runs of one plan are serialised by its
 * run_lock, as nn.h asks; requests for different shapes or models run in parallel. */
typedef int (*plan_fn)(struct nn_plan *plan, void *arg, struct eng_error *err);

/* Runs fn on the plan for these shapes (with the perceptual taps when tapped): the cached one,
 * under its run lock, so whatever fn reads of the plan's memory stays put; or, when the cache is
 * full, one compiled for this call. */
static int with_plan(struct model *m, const struct nn_tensor_info *shapes, int tapped, plan_fn fn,
                     void *arg, struct eng_error *err)
{
    atomic_fetch_add(&m->executions, 1);
    int failed;
    struct cached_plan *c = cached_plan(m, shapes, tapped, &failed, err);
    if (c) {
        pthread_mutex_lock(&c->run_lock);
        int rc = fn(c->plan, arg, err);
        pthread_mutex_unlock(&c->run_lock);
        return rc;
    }
    if (failed) return -1;
    struct nn_plan *plan = compile(m, shapes, tapped, err);
    if (!plan) return -1;
    int rc = fn(plan, arg, err);
    nn_plan_free(plan);
    return rc;
}

/* One execution without taps: what model_infer runs. */
struct execution {
    const float *const *inputs;
    float **outputs;
    struct nn_tensor_info *output_info;
};

static int run_copying(struct nn_plan *plan, void *arg, struct eng_error *err)
{
    struct execution *e = arg;
    return nn_plan_run(plan, e->inputs, e->outputs, e->output_info, err);
}

static int execute(struct model *m, const float *const *inputs, const struct nn_tensor_info *shapes,
                   float **outputs, struct nn_tensor_info *output_info, struct eng_error *err)
{
    struct execution e = {inputs, outputs, output_info};
    return with_plan(m, shapes, 0, run_copying, &e, err);
}

static int execute_call(struct model *m, struct call *c)
{
    return execute(m, c->inputs, c->shapes, c->outputs, c->output_info, c->err);
}

/* Elements of a shape past its first dimension: one batch row. */
static size_t row_elements(const struct nn_tensor_info *info)
{
    size_t n = 1;
    for (int d = 1; d < info->rank; d++)
        n *= (size_t)info->dims[d];
    return n;
}

/* The batch's inputs concatenated along the first dimension, into inputs and shapes (model input
 * order). */
static int concatenate(const struct model *m, const struct batch *b, float **inputs,
                       struct nn_tensor_info *shapes, struct eng_error *err)
{
    for (size_t i = 0; i < nn_graph_input_count(m->graph); i++) {
        shapes[i] = b->calls[0]->shapes[i];
        shapes[i].dims[0] = b->rows;
        size_t row = row_elements(&shapes[i]);
        size_t count = (size_t)b->rows * row;
        inputs[i] = malloc((count ? count : 1) * sizeof(float));
        if (!inputs[i]) return eng_fail(err, ENG_NO_MEMORY, "out of memory batching %s", m->name);
        float *at = inputs[i];
        for (size_t k = 0; k < b->count; k++) {
            size_t n = (size_t)b->calls[k]->rows * row;
            memcpy(at, b->calls[k]->inputs[i], n * sizeof(float));
            at += n;
        }
    }
    return 0;
}

/* Gives each call its own rows of the batch's outputs (first dimension b->rows). */
static void split(size_t n_outputs, const struct batch *b, float *const *outputs,
                  const struct nn_tensor_info *info)
{
    int64_t first = 0;
    for (size_t k = 0; k < b->count; k++) {
        struct call *c = b->calls[k];
        c->rc = 0;
        for (size_t o = 0; o < n_outputs; o++) {
            size_t n = (size_t)c->rows * row_elements(&info[o]);
            c->output_info[o] = info[o];
            c->output_info[o].dims[0] = c->rows;
            c->outputs[o] = malloc((n ? n : 1) * sizeof(float));
            if (c->outputs[o])
                memcpy(c->outputs[o], outputs[o] + (size_t)first * row_elements(&info[o]),
                       n * sizeof(float));
            else
                c->rc = eng_fail(c->err, ENG_NO_MEMORY, "out of memory splitting a batch");
        }
        if (c->rc != 0)
            for (size_t o = 0; o < n_outputs; o++) {
                free(c->outputs[o]);
                c->outputs[o] = NULL;
            }
        first += c->rows;
    }
}

/* Whether every output has the batch as its first dimension. */
static int splittable(size_t n_outputs, const struct nn_tensor_info *info, int64_t rows)
{
    for (size_t o = 0; o < n_outputs; o++)
        if (info[o].rank < 1 || info[o].dims[0] != rows) return 0;
    return 1;
}

/* Runs the batch as one and fills every call. Outputs that do not split by rows turn batching off
 * for the model, and each call then runs on its own. */
static void execute_batch(struct model *m, const struct batch *b)
{
    size_t n_in = nn_graph_input_count(m->graph), n_out = nn_graph_output_count(m->graph);
    float **inputs = calloc(n_in + 1, sizeof *inputs),
          **outputs = calloc(n_out + 1, sizeof *outputs);
    struct nn_tensor_info *shapes = calloc(n_in + 1, sizeof *shapes);
    struct nn_tensor_info *info = calloc(n_out + 1, sizeof *info);
    struct eng_error err = {0};
    int rc = inputs && outputs && shapes && info
                 ? concatenate(m, b, inputs, shapes, &err)
                 : eng_fail(&err, ENG_NO_MEMORY, "out of memory batching %s", m->name);
    if (rc == 0) rc = execute(m, (const float *const *)inputs, shapes, outputs, info, &err);
    if (rc == 0 && splittable(n_out, info, b->rows)) {
        split(n_out, b, outputs, info);
    } else if (rc == 0) {
        log_event("warn", "models", "model %s: outputs do not split by batch; not batching",
                  m->name);
        atomic_store(&m->batching, 0);
        for (size_t k = 0; k < b->count; k++)
            b->calls[k]->rc = execute_call(m, b->calls[k]);
    } else {
        for (size_t k = 0; k < b->count; k++) {
            *b->calls[k]->err = err;
            b->calls[k]->rc = -1;
        }
    }
    for (size_t i = 0; inputs && i < n_in; i++)
        free(inputs[i]);
    for (size_t o = 0; outputs && o < n_out; o++)
        free(outputs[o]);
    free(inputs);
    free(outputs);
    free(shapes);
    free(info);
}

/* The rows of a call: its inputs' common first dimension, or -1 when they have none. */
static int64_t call_rows(const struct model *m, const struct nn_tensor_info *shapes)
{
    int64_t rows = -1;
    for (size_t i = 0; i < nn_graph_input_count(m->graph); i++) {
        if (shapes[i].rank < 1 || (i > 0 && shapes[i].dims[0] != rows)) return -1;
        rows = shapes[i].dims[0];
    }
    return rows;
}

/* Whether c may join the open batch: the same shapes but for the batch, and room for its rows. */
static int fits(const struct model *m, const struct batch *b, const struct call *c)
{
    return b->rows + c->rows <= m->max_batch &&
           same_shapes(b->calls[0]->shapes, c->shapes, nn_graph_input_count(m->graph), 1);
}

static struct timespec deadline_after(long us)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += us / 1000000;
    t.tv_nsec += (us % 1000000) * 1000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    return t;
}

/* Opens a batch with c, gathers calls until it is full or the delay passed, runs it, and wakes
 * its calls. Entered and left with batch_lock held. */
static void lead_batch(struct model *m, struct call *c)
{
    struct batch b = {.calls = malloc((size_t)m->max_batch * sizeof *b.calls)};
    if (!b.calls) {
        c->rc = eng_fail(c->err, ENG_NO_MEMORY, "out of memory batching %s", m->name);
        return;
    }
    b.calls[b.count++] = c;
    b.rows = c->rows;
    m->open = &b;
    struct timespec deadline = deadline_after(m->delay_us);
    int waited = 0;
    while (b.rows < m->max_batch && waited != ETIMEDOUT)
        waited = pthread_cond_timedwait(&m->batch_cond, &m->batch_lock, &deadline);
    m->open = NULL;
    pthread_cond_broadcast(&m->batch_cond); /* calls that did not fit may open the next batch */
    pthread_mutex_unlock(&m->batch_lock);
    if (b.count == 1)
        c->rc = execute_call(m, c);
    else
        execute_batch(m, &b);
    pthread_mutex_lock(&m->batch_lock);
    for (size_t k = 0; k < b.count; k++)
        b.calls[k]->done = 1;
    pthread_cond_broadcast(&m->batch_cond);
    free(b.calls);
}

/* Joins the open batch when c fits, waits for the next one when it does not, and leads one when
 * none is open. */
static int infer_batched(struct model *m, struct call *c)
{
    pthread_mutex_lock(&m->batch_lock);
    while (m->open && !fits(m, m->open, c))
        pthread_cond_wait(&m->batch_cond, &m->batch_lock);
    if (m->open) {
        struct batch *b = m->open;
        b->calls[b->count++] = c;
        b->rows += c->rows;
        if (b->rows == m->max_batch) pthread_cond_broadcast(&m->batch_cond);
        while (!c->done)
            pthread_cond_wait(&m->batch_cond, &m->batch_lock);
    } else {
        lead_batch(m, c);
    }
    pthread_mutex_unlock(&m->batch_lock);
    return c->rc;
}

int model_infer(struct model *m, const float *const *inputs, const struct nn_tensor_info *shapes,
                float **outputs, struct nn_tensor_info *output_info, struct eng_error *err)
{
    if (!m->graph) return eng_fail(err, ENG_INVALID, "model %s is unavailable", m->name);
    atomic_fetch_add(&m->requests, 1);
    struct call c = {inputs, shapes, outputs, output_info, err, call_rows(m, shapes), 0, 0};
    /* A call as large as max_batch has nothing to gather, and an empty one nothing to split. */
    if (!atomic_load(&m->batching) || c.rows < 1 || c.rows >= m->max_batch)
        return execute_call(m, &c);
    return infer_batched(m, &c);
}

const char *models_datatype_name(enum nn_dtype dtype)
{
    switch (dtype) {
    case NN_UINT8:
        return "UINT8";
    case NN_INT8:
        return "INT8";
    case NN_INT32:
        return "INT32";
    case NN_INT64:
        return "INT64";
    case NN_BOOL:
        return "BOOL";
    case NN_DOUBLE:
        return "FP64";
    default:
        return "FP32"; /* NN_FLOAT, and undeclared types, which the executor runs as FP32 */
    }
}

/* Applies the "perceptual" section kept from config.json, once the model has loaded. */
static void load_perceptual(struct model *m, const char *folder)
{
    json_t *cfg = m->perceptual_config;
    if (!cfg) return;
    char why[600];
    if (apply_perceptual(m, cfg, folder, why, sizeof why) == 0) {
        m->has_perceptual = 1;
    } else {
        m->perceptual_reason = strdup(why);
        log_event("warn", "perceptual_unavailable", "model %s: %s", m->name, why);
    }
    json_decref(cfg);
    m->perceptual_config = NULL;
}

struct tap_visit {
    const struct model *m;
    const float *input;
    model_taps_fn fn;
    void *ctx;
};

/* Runs the plan on the input with the taps left in place, and hands them to the visitor. */
static int visit_taps(struct nn_plan *plan, void *arg, struct eng_error *err)
{
    const struct tap_visit *v = arg;
    size_t n_out = nn_plan_output_count(plan);
    const float **outputs = calloc(n_out, sizeof *outputs);
    struct nn_tensor_info *info = calloc(n_out, sizeof *info);
    size_t first = n_out - v->m->perceptual.n_taps;
    int rc = outputs && info ? nn_plan_run_borrowed(plan, &v->input, outputs, info, err)
                             : eng_fail(err, ENG_NO_MEMORY, "out of memory for the taps");
    if (rc == 0) rc = v->fn(v->ctx, outputs + first, info + first, err);
    free(outputs);
    free(info);
    return rc;
}

int model_features_visit(struct model *m, const float *input, const struct nn_tensor_info *shape,
                         model_taps_fn fn, void *ctx, struct eng_error *err)
{
    if (!m->has_perceptual)
        return eng_fail(err, ENG_INVALID, "model %s has no perceptual config", m->name);
    atomic_fetch_add(&m->requests, 1);
    struct tap_visit v = {m, input, fn, ctx};
    return with_plan(m, shape, 1, visit_taps, &v, err);
}

/* ---- Accessors ------------------------------------------------------------------------------- */

const char *model_name(const struct model *m)
{
    return m->name;
}

const struct nn_graph *model_graph(const struct model *m)
{
    return m->graph;
}

const char *model_reason(const struct model *m)
{
    return m->reason;
}

long model_max_batch(const struct model *m)
{
    return m->max_batch;
}

int model_threads(const struct model *m)
{
    return m->settings.threads;
}

const struct model_preprocess *model_preprocess(const struct model *m)
{
    return m->has_preprocess ? &m->preprocess : NULL;
}

size_t model_image_input(const struct model *m)
{
    return m->image_input;
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

long model_batch_delay_us(const struct model *m)
{
    return atomic_load(&m->batching) ? m->delay_us : -1;
}

struct model_stats model_stats(const struct model *m)
{
    return (struct model_stats){atomic_load(&m->requests), atomic_load(&m->executions)};
}

const struct model_perceptual *model_perceptual(const struct model *m)
{
    return m->has_perceptual ? &m->perceptual : NULL;
}

const char *model_perceptual_reason(const struct model *m)
{
    return m->perceptual_reason;
}

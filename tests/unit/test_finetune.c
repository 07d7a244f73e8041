/* engine/train's fine-tuning edits (train.h, "Fine-tuning"):
 * - every zoo model, repository test model and readable libonnx-testdata model copied through a
 *   graph builder writes the bytes the original writes;
 * - a new head on a zoo ResNet-20, on the predict fixtures (Gemm, Gemm then Softmax) and on a
 *   MatMul then Add head: its shapes, every other initializer byte for byte, the output's
 *   declared shape, the executor's output shape, and the law of the new values (nn.Linear's
 *   U(-1/sqrt(in), 1/sqrt(in)): mean 0, standard deviation bound/sqrt(3));
 * - refusals naming what was found; the frozen lists a job's "freeze" gives.
 * argv[1]: tests/parity/fixtures; argv[2]: libonnx-testdata's data folder (skipped when it is
 * missing). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/nn.h"
#include "train/train.h"
#include "testutil.h"

static const char *fixtures_dir, *testdata_dir;

static struct nn_graph *fixture(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fixtures_dir, rel);
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read_file(path, &err);
    if (!g) fail_msg("%s: %s", path, err.message);
    return g;
}

static void assert_same_bytes(const struct nn_graph *a, const struct nn_graph *b, const char *what)
{
    struct eng_error err = {0};
    void *x, *y;
    size_t nx, ny;
    assert_int_equal(nn_graph_write(a, &x, &nx, &err), 0);
    assert_int_equal(nn_graph_write(b, &y, &ny, &err), 0);
    if (nx != ny || memcmp(x, y, nx)) fail_msg("%s: the copy writes other bytes", what);
    free(x);
    free(y);
}

/* g copied through the builder writes g's bytes; what names it in failures. */
static void assert_copies(const struct nn_graph *g, const char *what)
{
    struct eng_error err = {0};
    struct nn_graph *c = train_model_copy(g, &err);
    if (!c) fail_msg("%s: %s", what, err.message);
    assert_same_bytes(g, c, what);
    nn_graph_free(c);
}

static void test_copy_zoo(void **state)
{
    (void)state;
    static const char *const models[] = {
        "{\"arch\": \"small-cnn\", \"classes\": 10}",
        "{\"arch\": \"resnet-20\", \"classes\": 10}",
        "{\"arch\": \"wrn-16-2\", \"classes\": 10, \"variant\": \"fixmatch\"}",
        "{\"arch\": \"resnet-18\", \"classes\": 5, \"size\": 32}",
    };
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        struct nn_graph *g = tu_zoo_model(models[i], 1);
        assert_copies(g, models[i]);
        nn_graph_free(g);
    }
}

/* Copies every model.onnx or *.onnx under dir (recursively) that nn_graph_read reads; returns
 * how many it copied. */
static size_t copy_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t copied = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st)) continue;
        size_t len = strlen(e->d_name);
        if (S_ISDIR(st.st_mode)) {
            copied += copy_tree(path);
        } else if (len > 5 && !strcmp(e->d_name + len - 5, ".onnx")) {
            struct eng_error err = {0};
            struct nn_graph *g = nn_graph_read_file(path, &err);
            if (!g) continue; /* hostile fixtures, types this IR does not hold */
            assert_copies(g, path);
            nn_graph_free(g);
            copied++;
        }
    }
    closedir(d);
    return copied;
}

static void test_copy_files(void **state)
{
    (void)state;
    /* predict/ and models/ hold 9 repository test models; onnx/ the reader's fixtures. */
    assert_true(copy_tree(fixtures_dir) >= 10);
    struct stat st;
    if (!testdata_dir || stat(testdata_dir, &st)) {
        print_message("libonnx-testdata missing: its models skipped\n");
        return;
    }
    /* Its node, pytorch-converted, pytorch-operator and simple models: a thousand and more, with
     * every attribute kind, other domains, value_info and initializers listed as inputs. */
    size_t copied = copy_tree(testdata_dir);
    print_message("%zu libonnx-testdata models copied\n", copied);
    assert_true(copied >= 900);
}

/* Initializers of a and b equal by name, dims and bytes, except those named in skip. */
static void assert_rest_equal(const struct nn_graph *a, const struct nn_graph *b,
                              const char *const skip[2])
{
    assert_int_equal(nn_graph_initializer_count(a), nn_graph_initializer_count(b));
    for (size_t i = 0; i < nn_graph_initializer_count(a); i++) {
        const struct nn_tensor *t = nn_graph_initializer_at(a, i);
        const struct nn_tensor *u = nn_graph_initializer_at(b, i);
        assert_string_equal(t->info.name, u->info.name);
        if (!strcmp(t->info.name, skip[0]) || !strcmp(t->info.name, skip[1])) continue;
        assert_int_equal(t->info.dtype, u->info.dtype);
        assert_int_equal(t->info.rank, u->info.rank);
        assert_memory_equal(t->info.dims, u->info.dims, (size_t)t->info.rank * sizeof(int64_t));
        assert_int_equal(t->count, u->count);
        if (t->count)
            assert_memory_equal(t->data, u->data, t->count * nn_dtype_size(t->info.dtype));
    }
    assert_int_equal(nn_graph_node_count(a), nn_graph_node_count(b));
    for (size_t i = 0; i < nn_graph_node_count(a); i++)
        assert_string_equal(nn_graph_node(a, i)->op_type, nn_graph_node(b, i)->op_type);
}

static void assert_dims(const struct nn_tensor *t, int rank, int64_t d0, int64_t d1)
{
    assert_non_null(t);
    assert_int_equal(t->info.rank, rank);
    assert_int_equal(t->info.dims[0], d0);
    if (rank > 1) assert_int_equal(t->info.dims[1], d1);
}

/* Every value within U(-bound, bound), with that law's mean 0 and standard deviation
 * bound/sqrt(3), each within 5 standard errors (count values, so the bounds are tight for a
 * large tensor and loose, but not vacuous, for a bias). */
static void assert_uniform(const struct nn_tensor *t, double bound)
{
    const float *v = nn_tensor_floats(t);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < t->count; i++) {
        assert_true(fabs(v[i]) <= bound);
        sum += v[i];
        sq += (double)v[i] * v[i];
    }
    double n = (double)t->count, mean = sum / n, sd = sqrt(sq / n);
    double want_sd = bound / sqrt(3);
    if (fabs(mean) > 5 * want_sd / sqrt(n))
        fail_msg("%s: mean %g; U(+-%g) has 0 within %g", t->info.name, mean, bound,
                 5 * want_sd / sqrt(n));
    /* The variance of x^2 under U(-b, b) is 4 b^4 / 45. */
    double sq_se = sqrt(4 * pow(bound, 4) / 45 / n);
    if (fabs(sd * sd - want_sd * want_sd) > 5 * sq_se)
        fail_msg("%s: variance %g; U(+-%g) has %g", t->info.name, sd * sd, bound,
                 want_sd * want_sd);
}

/* Runs g on a batch of zeros and ones shaped as its input with batch 2; checks the output is
 * [2, classes] and, when softmax, rows that sum to 1. */
static void assert_runs(const struct nn_graph *g, int64_t classes, bool softmax)
{
    struct nn_tensor_info shape = *nn_graph_input(g, 0);
    size_t count = 1;
    shape.dims[0] = 2;
    for (int d = 0; d < shape.rank; d++)
        count *= (size_t)shape.dims[d];
    float *x = malloc(count * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < count; i++)
        x[i] = (float)(i % 2);
    struct eng_error err = {0};
    struct nn_plan *p = nn_plan_compile(g, &shape, 1, &err);
    if (!p) fail_msg("%s", err.message);
    const float *in[1] = {x};
    float *out = NULL;
    struct nn_tensor_info info;
    if (nn_plan_run(p, in, &out, &info, &err)) fail_msg("%s", err.message);
    assert_int_equal(info.rank, 2);
    assert_int_equal(info.dims[0], 2);
    assert_int_equal(info.dims[1], classes);
    for (int r = 0; softmax && r < 2; r++) {
        double sum = 0;
        for (int64_t c = 0; c < classes; c++)
            sum += out[r * classes + c];
        assert_true(fabs(sum - 1) < 1e-5);
    }
    free(out);
    free(x);
    nn_plan_free(p);
}

static void test_new_head_resnet20(void **state)
{
    (void)state;
    struct nn_graph *g = tu_zoo_model("{\"arch\": \"resnet-20\", \"classes\": 10}", 1);
    struct eng_error err = {0};
    struct nn_graph *h = train_model_new_head(g, 100, 7, &err);
    if (!h) fail_msg("%s", err.message);
    /* ResNet-20's linear takes the 64 channels of its last stage: nn.Linear(64, 100). */
    const struct nn_tensor *w = nn_graph_initializer(h, "linear.weight");
    const struct nn_tensor *b = nn_graph_initializer(h, "linear.bias");
    assert_dims(w, 2, 100, 64);
    assert_dims(b, 1, 100, 0);
    assert_uniform(w, 1 / sqrt(64));
    assert_uniform(b, 1 / sqrt(64));
    static const char *const head[2] = {"linear.weight", "linear.bias"};
    assert_rest_equal(g, h, head);
    const struct nn_tensor_info *out = nn_graph_output(h, 0);
    assert_string_equal(out->name, "logits");
    assert_int_equal(out->dims[0], -1);
    assert_int_equal(out->dims[1], 100);
    assert_runs(h, 100, false);
    /* Its parameters: the old count less the old head (64 x 10 + 10), plus the new. */
    assert_int_equal(train_model_parameter_count(h), train_model_parameter_count(g) - 650 + 6500);

    /* The same seed gives the same head, another seed another. */
    struct nn_graph *again = train_model_new_head(g, 100, 7, &err);
    struct nn_graph *other = train_model_new_head(g, 100, 8, &err);
    assert_same_bytes(h, again, "the same seed");
    assert_memory_not_equal(nn_tensor_floats(nn_graph_initializer(other, "linear.weight")),
                            nn_tensor_floats(w), 6400 * sizeof(float));
    nn_graph_free(again);
    nn_graph_free(other);
    nn_graph_free(h);
    nn_graph_free(g);
}

static void test_new_head_fixtures(void **state)
{
    (void)state;
    /* tiny-cnn: Gemm(256 -> 5, transB 1) ends it; tiny-linear: Gemm(144 -> 5) then Softmax. */
    static const struct {
        const char *path;
        int64_t in;
        bool softmax;
    } cases[] = {
        {"predict/tiny-cnn/model.onnx", 256, false},
        {"predict/tiny-linear/model.onnx", 144, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct nn_graph *g = fixture(cases[i].path);
        struct eng_error err = {0};
        assert_int_equal(train_model_head_check(g, &err), 0);
        struct nn_graph *h = train_model_new_head(g, 3, 1, &err);
        if (!h) fail_msg("%s: %s", cases[i].path, err.message);
        assert_dims(nn_graph_initializer(h, "fc_w"), 2, 3, cases[i].in);
        assert_dims(nn_graph_initializer(h, "fc_b"), 1, 3, 0);
        assert_uniform(nn_graph_initializer(h, "fc_w"), 1 / sqrt((double)cases[i].in));
        static const char *const head[2] = {"fc_w", "fc_b"};
        assert_rest_equal(g, h, head);
        assert_int_equal(nn_graph_output(h, 0)->dims[1], 3);
        assert_runs(h, 3, cases[i].softmax);
        nn_graph_free(h);
        nn_graph_free(g);
    }
}

/* b's graph, which must be valid. */
static struct nn_graph *finish(struct nn_builder *b)
{
    struct eng_error err = {0};
    struct nn_graph *g = nn_builder_finish(b, &err);
    if (!g) fail_msg("%s", err.message);
    return g;
}

/* x [N, 4] -> MatMul(W [4, 3]) -> Add(B [3]) (B first when b_first) -> Softmax -> y [N, 3], with
 * a value_info hint for the MatMul's output. */
static struct nn_graph *matmul_add(bool b_first)
{
    struct nn_builder *b = nn_builder_new("matmul_add", 13);
    const char *batch[2] = {"N", NULL};
    int64_t x_dims[2] = {-1, 4}, y_dims[2] = {-1, 3}, w_dims[2] = {4, 3}, b_dims[1] = {3};
    static const float w[12] = {0}, bias[3] = {1, 2, 3};
    nn_builder_input(b, "x", NN_FLOAT, 2, x_dims, batch);
    nn_builder_initializer(b, "W", NN_FLOAT, 2, w_dims, w);
    nn_builder_initializer(b, "B", NN_FLOAT, 1, b_dims, bias);
    const char *mm_in[2] = {"x", "W"}, *mm = "mm",
               *add_in[2] = {b_first ? "B" : "mm", b_first ? "mm" : "B"};
    const char *z = "z", *y = "y";
    nn_builder_node(b, "MatMul", "fc_mm", 2, mm_in, 1, &mm);
    nn_builder_node(b, "Add", "fc_add", 2, add_in, 1, &z);
    nn_builder_node(b, "Softmax", "softmax", 1, &z, 1, &y);
    nn_builder_attr_int(b, "axis", 1);
    nn_builder_value_info(b, "mm", NN_FLOAT, 2, y_dims, batch);
    nn_builder_output(b, "y", NN_FLOAT, 2, y_dims, batch);
    return finish(b);
}

static void test_new_head_matmul(void **state)
{
    (void)state;
    for (int b_first = 0; b_first < 2; b_first++) {
        struct nn_graph *g = matmul_add(b_first);
        struct eng_error err = {0};
        assert_int_equal(train_model_head_check(g, &err), 0);
        struct nn_graph *h = train_model_new_head(g, 6, 2, &err);
        if (!h) fail_msg("%s", err.message);
        assert_dims(nn_graph_initializer(h, "W"), 2, 4, 6);
        assert_dims(nn_graph_initializer(h, "B"), 1, 6, 0);
        const char *const *names;
        const struct nn_tensor_info *hint = nn_graph_value(h, NN_VALUES_INFO, 0, &names);
        assert_string_equal(hint->name, "mm");
        assert_int_equal(hint->dims[1], 6);
        assert_string_equal(names[0], "N");
        assert_runs(h, 6, true);
        nn_graph_free(h);
        nn_graph_free(g);
    }
}

/* train_model_new_head refuses g; when for its head (ENG_UNSUPPORTED), train_model_head_check
 * (a job's check at submission) refuses it with the same message. */
static void assert_head_refused(const struct nn_graph *g, int classes, enum eng_code code,
                                const char *needle)
{
    struct eng_error err = {0}, check = {0};
    assert_null(train_model_new_head(g, classes, 1, &err));
    assert_int_equal(err.code, code);
    if (!strstr(err.message, needle)) fail_msg("'%s' lacks '%s'", err.message, needle);
    if (code != ENG_UNSUPPORTED) return;
    assert_int_equal(train_model_head_check(g, &check), -1);
    assert_int_equal(check.code, ENG_UNSUPPORTED);
    assert_string_equal(check.message, err.message);
}

/* x [N, 4] -> op "head" (x, second) -> h -> Identity -> y, the output (and h another when
 * n_outputs is 2); when shared, a MatMul by W comes before the head, which reads its output. */
static struct nn_graph *chain(size_t n_outputs, const char *op, const char *second, bool shared)
{
    struct nn_builder *b = nn_builder_new("chain", 13);
    int64_t x_dims[2] = {-1, 4}, w_dims[2] = {4, 4};
    static const float w[16] = {0};
    nn_builder_input(b, "x", NN_FLOAT, 2, x_dims, NULL);
    nn_builder_initializer(b, "W", NN_FLOAT, 2, w_dims, w);
    const char *pre_in[2] = {"x", "W"}, *pre = "p";
    if (shared) nn_builder_node(b, "MatMul", "pre", 2, pre_in, 1, &pre);
    const char *in[2] = {shared ? "p" : "x", second}, *h = "h", *y = "y";
    nn_builder_node(b, op, "head", second ? 2 : 1, in, 1, &h);
    nn_builder_node(b, "Identity", "id", 1, &h, 1, &y);
    nn_builder_output(b, "y", NN_FLOAT, 2, x_dims, NULL);
    if (n_outputs == 2) nn_builder_output(b, "h", NN_FLOAT, 2, x_dims, NULL);
    return finish(b);
}

static void test_head_refusals(void **state)
{
    (void)state;
    struct nn_graph *g = chain(2, "Gemm", "W", false);
    assert_head_refused(g, 3, ENG_UNSUPPORTED, "the model has 2 outputs");
    nn_graph_free(g);
    g = chain(1, "Relu", NULL, false);
    assert_head_refused(g, 3, ENG_UNSUPPORTED, "'h' is made by node 'head' (Relu)");
    nn_graph_free(g);
    g = chain(1, "Gemm", "x", false); /* its weight is the input, no initializer */
    assert_head_refused(g, 3, ENG_UNSUPPORTED, "no float initializer of rank 2");
    nn_graph_free(g);
    g = chain(1, "Gemm", "W", true); /* a MatMul before the Gemm reads W too */
    assert_head_refused(g, 3, ENG_UNSUPPORTED, "read by other nodes too");
    nn_graph_free(g);
    g = chain(1, "Add", "x", false);
    assert_head_refused(g, 3, ENG_UNSUPPORTED, "does not add an initializer to a MatMul");
    assert_head_refused(g, 0, ENG_INVALID, "classes is 0");
    nn_graph_free(g);
    g = fixture("predict/tiny-cnn/model.onnx");
    assert_head_refused(g, 100001, ENG_INVALID, "[1, 100000]");
    nn_graph_free(g);
}

/* The frozen names of freeze_json (NULL: the param absent) on g into *names; their count. */
static size_t frozen(const struct nn_graph *g, const char *freeze_json, const char ***names)
{
    json_t *freeze = freeze_json ? json_loads(freeze_json, JSON_DECODE_ANY, NULL) : NULL;
    size_t n = 99;
    struct eng_error err = {0};
    if (train_model_frozen(g, freeze, names, &n, &err)) fail_msg("%s", err.message);
    json_decref(freeze);
    return n;
}

static void assert_frozen_refused(const struct nn_graph *g, const char *freeze_json,
                                  const char *needle)
{
    json_t *freeze = json_loads(freeze_json, JSON_DECODE_ANY, NULL);
    assert_non_null(freeze);
    const char **names;
    size_t n;
    struct eng_error err = {0};
    assert_int_equal(train_model_frozen(g, freeze, &names, &n, &err), -1);
    assert_int_equal(err.code, ENG_INVALID);
    if (!strstr(err.message, needle)) fail_msg("'%s' lacks '%s'", err.message, needle);
    json_decref(freeze);
}

static void test_frozen(void **state)
{
    (void)state;
    struct nn_graph *g = tu_zoo_model("{\"arch\": \"resnet-20\", \"classes\": 10}", 1);
    const char **names;
    assert_int_equal(frozen(g, NULL, &names), 0);
    assert_null(names);
    assert_int_equal(frozen(g, "[]", &names), 0);
    free(names);

    /* conv1.weight, and layer1's three blocks of conv1.weight, bn1.weight, bn1.bias, conv2.weight,
     * bn2.weight, bn2.bias: 19, none of them a running statistic. */
    size_t n = frozen(g, "[\"conv1.\", \"layer1.\"]", &names);
    assert_int_equal(n, 19);
    assert_string_equal(names[0], "conv1.weight");
    for (size_t i = 0; i < n; i++) {
        assert_true(!strncmp(names[i], "conv1.", 6) || !strncmp(names[i], "layer1.", 7));
        assert_null(strstr(names[i], "running"));
    }
    free(names);

    /* Every parameter but the head's: their elements are the count less 64 x 10 + 10. */
    n = frozen(g, "\"all-but-head\"", &names);
    size_t elements = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(strncmp(names[i], "linear.", 7));
        elements += nn_graph_initializer(g, names[i])->count;
    }
    assert_int_equal(elements, train_model_parameter_count(g) - 650);
    free(names);

    /* Before layer3: conv1, bn1, and layer1's and layer2's three blocks of six (layer2.0's
     * shortcut.0.weight, shortcut.1.weight and .bias too): 1 + 2 + 18 + 18 + 3 = 42. */
    n = frozen(g, "{\"before\": \"layer3.\"}", &names);
    assert_int_equal(n, 42);
    for (size_t i = 0; i < n; i++)
        assert_true(strncmp(names[i], "layer3.", 7) && strncmp(names[i], "linear.", 7));
    free(names);
    /* Before the first parameter: none. */
    assert_int_equal(frozen(g, "{\"before\": \"conv1.\"}", &names), 0);
    free(names);

    assert_frozen_refused(g, "[\"layer9.\"]", "no parameter's name starts with 'layer9.'");
    assert_frozen_refused(g, "{\"before\": \"layer9.\"}", "freeze.before: no parameter");
    assert_frozen_refused(g, "{\"after\": \"layer1.\"}", "holds \"before\" alone");
    assert_frozen_refused(g, "[\"bn1.running_mean\"]", "starts with 'bn1.running_mean'");
    assert_frozen_refused(g, "\"all\"", "\"all\" is not accepted");
    assert_frozen_refused(g, "[\"\"]", "freeze[0] is not a non-empty string");
    assert_frozen_refused(g, "5", "\"all-but-head\", a list");
    nn_graph_free(g);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR [LIBONNX_TESTDATA_DIR]\n", argv[0]);
        return 2;
    }
    fixtures_dir = argv[1];
    testdata_dir = argc > 2 ? argv[2] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_zoo),
        cmocka_unit_test(test_copy_files),
        cmocka_unit_test(test_new_head_resnet20),
        cmocka_unit_test(test_new_head_fixtures),
        cmocka_unit_test(test_new_head_matmul),
        cmocka_unit_test(test_head_refusals),
        cmocka_unit_test(test_frozen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

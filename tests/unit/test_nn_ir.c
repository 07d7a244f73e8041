/* The ONNX reader and writer against python onnx's view of the same models (manifest.json, made
 * by tests/parity/gen_onnx.py), round trips, and hostile input.
 * argv[1]: tests/parity/fixtures/onnx; argv[2]: libonnx-testdata's data folder (its models are
 * skipped when it is missing). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/nn.h"

/* Written on every run so a developer can check it with `gen_onnx.py --check`. */
#define ROUNDTRIP_PATH "/tmp/nn_ir_roundtrip.onnx"

static const char *fixtures_dir, *testdata_dir;
static json_t *manifest;

static const char *code_name(enum eng_code code)
{
    switch (code) {
    case ENG_OK:
        return "OK";
    case ENG_INVALID:
        return "INVALID";
    case ENG_UNDECODABLE:
        return "UNDECODABLE";
    case ENG_UNSUPPORTED:
        return "UNSUPPORTED";
    case ENG_TOO_LARGE:
        return "TOO_LARGE";
    case ENG_NOT_FOUND:
        return "NOT_FOUND";
    case ENG_CONFLICT:
        return "CONFLICT";
    case ENG_CANCELLED:
        return "CANCELLED";
    case ENG_NO_MEMORY:
        return "NO_MEMORY";
    case ENG_INTERNAL:
        break;
    }
    return "INTERNAL";
}

static void sha256_hex(const void *data, size_t size, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    assert_int_equal(EVP_Digest(data ? data : "", size, md, &len, EVP_sha256(), NULL), 1);
    for (int k = 0; k < 32; k++)
        snprintf(out + 2 * k, 3, "%02x", md[k]);
}

static int testdata_present(void)
{
    struct stat st;
    return testdata_dir && stat(testdata_dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The model of a manifest entry, or NULL when it lives in a missing testdata folder. */
static struct nn_graph *load_entry(const json_t *entry)
{
    const char *source = json_string_value(json_object_get(entry, "source"));
    const char *rel = json_string_value(json_object_get(entry, "path"));
    assert_non_null(source);
    assert_non_null(rel);
    int testdata = !strcmp(source, "testdata");
    if (testdata && !testdata_present()) return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", testdata ? testdata_dir : fixtures_dir, rel);
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read_file(path, &err);
    if (!g) fail_msg("%s: %s", path, err.message);
    return g;
}

static void check_tensor(const struct nn_tensor *t, const json_t *want)
{
    assert_string_equal(t->info.name, json_string_value(json_object_get(want, "name")));
    assert_int_equal(t->info.dtype, json_integer_value(json_object_get(want, "dtype")));
    const json_t *dims = json_object_get(want, "dims");
    assert_int_equal(t->info.rank, json_array_size(dims));
    size_t count = 1;
    for (int d = 0; d < t->info.rank; d++) {
        assert_int_equal(t->info.dims[d], json_integer_value(json_array_get(dims, (size_t)d)));
        count *= (size_t)t->info.dims[d];
    }
    assert_int_equal(t->count, count);
    char hex[65];
    sha256_hex(t->data, t->count * nn_dtype_size(t->info.dtype), hex);
    assert_string_equal(hex, json_string_value(json_object_get(want, "sha256")));
}

static void check_attr(const struct nn_node *node, const json_t *want)
{
    const char *name = json_string_value(json_object_get(want, "name"));
    const char *type = json_string_value(json_object_get(want, "type"));
    const json_t *value = json_object_get(want, "value");
    const struct nn_attr *a = nn_node_attr(node, name);
    if (!a) fail_msg("node %s has no attribute %s", node->op_type, name);
    if (!strcmp(type, "int")) {
        assert_int_equal(a->type, NN_ATTR_INT);
        assert_int_equal(a->i, json_integer_value(value));
    } else if (!strcmp(type, "float")) {
        assert_int_equal(a->type, NN_ATTR_FLOAT);
        assert_true(a->f == (float)json_number_value(value));
    } else if (!strcmp(type, "string")) {
        assert_int_equal(a->type, NN_ATTR_STRING);
        assert_string_equal(a->s, json_string_value(value));
    } else if (!strcmp(type, "tensor")) {
        assert_int_equal(a->type, NN_ATTR_TENSOR);
        check_tensor(&a->t, value);
    } else if (!strcmp(type, "ints")) {
        assert_int_equal(a->type, NN_ATTR_INTS);
        assert_int_equal(a->count, json_array_size(value));
        for (size_t k = 0; k < a->count; k++)
            assert_int_equal(a->ints[k], json_integer_value(json_array_get(value, k)));
    } else if (!strcmp(type, "floats")) {
        assert_int_equal(a->type, NN_ATTR_FLOATS);
        assert_int_equal(a->count, json_array_size(value));
        for (size_t k = 0; k < a->count; k++)
            assert_true(a->floats[k] == (float)json_number_value(json_array_get(value, k)));
    } else if (!strcmp(type, "strings")) {
        assert_int_equal(a->type, NN_ATTR_STRINGS);
        assert_int_equal(a->count, json_array_size(value));
        for (size_t k = 0; k < a->count; k++)
            assert_string_equal(a->strings[k], json_string_value(json_array_get(value, k)));
    } else {
        fail_msg("unknown attribute type %s in the manifest", type);
    }
}

static void check_names(const char *const *names, size_t n, const json_t *want)
{
    assert_int_equal(n, json_array_size(want));
    for (size_t k = 0; k < n; k++)
        assert_string_equal(names[k], json_string_value(json_array_get(want, k)));
}

static void check_value(const struct nn_tensor_info *info, const json_t *want)
{
    assert_non_null(info);
    assert_string_equal(info->name, json_string_value(json_object_get(want, "name")));
    assert_int_equal(info->dtype, json_integer_value(json_object_get(want, "dtype")));
    const json_t *shape = json_object_get(want, "shape");
    if (json_is_null(shape)) {
        assert_int_equal(info->rank, -1);
        return;
    }
    assert_int_equal(info->rank, json_array_size(shape));
    for (int d = 0; d < info->rank; d++) {
        const json_t *dim = json_array_get(shape, (size_t)d);
        assert_int_equal(info->dims[d], json_is_null(dim) ? -1 : json_integer_value(dim));
    }
}

static void check_graph(const struct nn_graph *g, const json_t *want)
{
    assert_int_equal(nn_graph_ir_version(g),
                     json_integer_value(json_object_get(want, "ir_version")));
    assert_int_equal(nn_graph_opset(g), json_integer_value(json_object_get(want, "opset")));
    const json_t *nodes = json_object_get(want, "nodes");
    assert_int_equal(nn_graph_node_count(g), json_array_size(nodes));
    for (size_t i = 0; i < nn_graph_node_count(g); i++) {
        const struct nn_node *node = nn_graph_node(g, i);
        const json_t *wn = json_array_get(nodes, i);
        assert_string_equal(node->op_type, json_string_value(json_object_get(wn, "op_type")));
        check_names(node->inputs, node->n_inputs, json_object_get(wn, "inputs"));
        check_names(node->outputs, node->n_outputs, json_object_get(wn, "outputs"));
        const json_t *attrs = json_object_get(wn, "attributes");
        assert_int_equal(node->n_attrs, json_array_size(attrs));
        for (size_t k = 0; k < node->n_attrs; k++)
            check_attr(node, json_array_get(attrs, k));
    }
    const json_t *inputs = json_object_get(want, "inputs");
    assert_int_equal(nn_graph_input_count(g), json_array_size(inputs));
    for (size_t i = 0; i < nn_graph_input_count(g); i++)
        check_value(nn_graph_input(g, i), json_array_get(inputs, i));
    const json_t *outputs = json_object_get(want, "outputs");
    assert_int_equal(nn_graph_output_count(g), json_array_size(outputs));
    for (size_t i = 0; i < nn_graph_output_count(g); i++)
        check_value(nn_graph_output(g, i), json_array_get(outputs, i));
    const json_t *inits = json_object_get(want, "initializers");
    assert_int_equal(nn_graph_initializer_count(g), json_array_size(inits));
    for (size_t i = 0; i < json_array_size(inits); i++) {
        const json_t *wi = json_array_get(inits, i);
        const struct nn_tensor *t =
            nn_graph_initializer(g, json_string_value(json_object_get(wi, "name")));
        assert_non_null(t);
        assert_ptr_equal(t, nn_graph_initializer_at(g, i));
        check_tensor(t, wi);
    }
}

static void assert_info_equal(const struct nn_tensor_info *a, const struct nn_tensor_info *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->rank, b->rank);
    for (int d = 0; d < a->rank; d++)
        assert_int_equal(a->dims[d], b->dims[d]);
}

static void assert_tensor_equal(const struct nn_tensor *a, const struct nn_tensor *b)
{
    assert_info_equal(&a->info, &b->info);
    assert_int_equal(a->count, b->count);
    if (a->count) assert_memory_equal(a->data, b->data, a->count * nn_dtype_size(a->info.dtype));
}

static void assert_attr_equal(const struct nn_attr *a, const struct nn_attr *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->count, b->count);
    switch (a->type) {
    case NN_ATTR_FLOAT:
        assert_memory_equal(&a->f, &b->f, sizeof a->f);
        break;
    case NN_ATTR_INT:
        assert_int_equal(a->i, b->i);
        break;
    case NN_ATTR_STRING:
        assert_string_equal(a->s, b->s);
        break;
    case NN_ATTR_TENSOR:
        assert_tensor_equal(&a->t, &b->t);
        break;
    case NN_ATTR_FLOATS:
        if (a->count) assert_memory_equal(a->floats, b->floats, a->count * sizeof *a->floats);
        break;
    case NN_ATTR_INTS:
        if (a->count) assert_memory_equal(a->ints, b->ints, a->count * sizeof *a->ints);
        break;
    case NN_ATTR_STRINGS:
        for (size_t k = 0; k < a->count; k++)
            assert_string_equal(a->strings[k], b->strings[k]);
        break;
    }
}

/* Everything the API shows of two graphs is the same. */
static void assert_graph_equal(const struct nn_graph *a, const struct nn_graph *b)
{
    assert_int_equal(nn_graph_ir_version(a), nn_graph_ir_version(b));
    assert_int_equal(nn_graph_opset(a), nn_graph_opset(b));
    assert_int_equal(nn_graph_node_count(a), nn_graph_node_count(b));
    for (size_t i = 0; i < nn_graph_node_count(a); i++) {
        const struct nn_node *na = nn_graph_node(a, i), *nb = nn_graph_node(b, i);
        assert_string_equal(na->name, nb->name);
        assert_string_equal(na->op_type, nb->op_type);
        assert_string_equal(na->domain, nb->domain);
        assert_int_equal(na->n_inputs, nb->n_inputs);
        for (size_t k = 0; k < na->n_inputs; k++)
            assert_string_equal(na->inputs[k], nb->inputs[k]);
        assert_int_equal(na->n_outputs, nb->n_outputs);
        for (size_t k = 0; k < na->n_outputs; k++)
            assert_string_equal(na->outputs[k], nb->outputs[k]);
        assert_int_equal(na->n_attrs, nb->n_attrs);
        for (size_t k = 0; k < na->n_attrs; k++)
            assert_attr_equal(&na->attrs[k], &nb->attrs[k]);
    }
    assert_int_equal(nn_graph_input_count(a), nn_graph_input_count(b));
    for (size_t i = 0; i < nn_graph_input_count(a); i++)
        assert_info_equal(nn_graph_input(a, i), nn_graph_input(b, i));
    assert_int_equal(nn_graph_output_count(a), nn_graph_output_count(b));
    for (size_t i = 0; i < nn_graph_output_count(a); i++)
        assert_info_equal(nn_graph_output(a, i), nn_graph_output(b, i));
    assert_int_equal(nn_graph_initializer_count(a), nn_graph_initializer_count(b));
    for (size_t i = 0; i < nn_graph_initializer_count(a); i++)
        assert_tensor_equal(nn_graph_initializer_at(a, i), nn_graph_initializer_at(b, i));
}

/* Import -> export -> import gives the same graph, and exporting that gives the same bytes (which
 * also covers what the API does not show: symbolic dim names, value_info, producer). */
static void round_trip(const struct nn_graph *g, const char *save_as)
{
    struct eng_error err = {0};
    void *bytes = NULL, *again = NULL;
    size_t size = 0, size_again = 0;
    if (nn_graph_write(g, &bytes, &size, &err)) fail_msg("write: %s", err.message);
    struct nn_graph *g2 = nn_graph_read(bytes, size, &err);
    if (!g2) fail_msg("re-read: %s", err.message);
    assert_graph_equal(g, g2);
    if (nn_graph_write(g2, &again, &size_again, &err)) fail_msg("write: %s", err.message);
    assert_int_equal(size, size_again);
    assert_memory_equal(bytes, again, size);
    if (save_as) {
        FILE *f = fopen(save_as, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, size, f), size);
        assert_int_equal(fclose(f), 0);
    }
    free(bytes);
    free(again);
    nn_graph_free(g2);
}

static void test_models_match_onnx(void **state)
{
    const json_t *models = json_object_get(manifest, "models");
    size_t checked = 0, skipped = 0;
    assert_true(json_array_size(models) > 0);
    for (size_t i = 0; i < json_array_size(models); i++) {
        const json_t *entry = json_array_get(models, i);
        struct nn_graph *g = load_entry(entry);
        if (!g) {
            skipped++;
            continue;
        }
        check_graph(g, json_object_get(entry, "expect"));
        round_trip(g, NULL);
        nn_graph_free(g);
        checked++;
    }
    if (skipped)
        print_message("skipped %zu libonnx-testdata models: %s is missing (apt install "
                      "libonnx-testdata)\n",
                      skipped, testdata_dir ? testdata_dir : "(no folder given)");
    assert_true(checked > 0);
}

/* What the manifest cannot say: the data conversions and the initializer-as-input rule. */
static void test_mixed_details(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/mixed.onnx", fixtures_dir);
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read_file(path, &err);
    if (!g) fail_msg("%s", err.message);

    /* W is a graph input too, but an initializer, so not a model input. */
    assert_int_equal(nn_graph_input_count(g), 1);
    assert_string_equal(nn_graph_input(g, 0)->name, "x");
    assert_null(nn_graph_input(g, 1));
    assert_int_equal(nn_graph_input(g, 0)->dims[0], -1);

    const struct nn_tensor *w = nn_graph_initializer(g, "W");         /* raw_data */
    const struct nn_tensor *b = nn_graph_initializer(g, "B");         /* float_data */
    const struct nn_tensor *shape = nn_graph_initializer(g, "shape"); /* int64_data */
    assert_non_null(w);
    assert_non_null(b);
    assert_non_null(shape);
    assert_int_equal(w->count, 4 * 3 * 3 * 3);
    assert_non_null(nn_tensor_floats(w));
    assert_non_null(nn_tensor_floats(b));
    assert_null(nn_tensor_floats(shape));
    const int64_t *s = shape->data;
    assert_int_equal(s[0], -1);
    assert_int_equal(s[1], 144);
    assert_null(nn_graph_initializer(g, "missing"));

    const struct nn_node *conv = nn_graph_node(g, 0);
    assert_string_equal(conv->name, "conv");
    assert_string_equal(conv->domain, "");
    assert_null(nn_node_attr(conv, "group"));
    assert_string_equal(nn_graph_node(g, 3)->domain, "augserve.test");
    assert_null(nn_graph_node(g, 4));
    round_trip(g, ROUNDTRIP_PATH);
    nn_graph_free(g);
}

static void test_hostile_fixtures(void **state)
{
    const json_t *hostile = json_object_get(manifest, "hostile");
    assert_true(json_array_size(hostile) > 0);
    for (size_t i = 0; i < json_array_size(hostile); i++) {
        const json_t *entry = json_array_get(hostile, i);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", fixtures_dir,
                 json_string_value(json_object_get(entry, "path")));
        struct eng_error err = {0};
        struct nn_graph *g = nn_graph_read_file(path, &err);
        if (g) fail_msg("%s was accepted", path);
        assert_string_equal(code_name(err.code), json_string_value(json_object_get(entry, "code")));
        const char *want = json_string_value(json_object_get(entry, "message"));
        if (!strstr(err.message, want))
            fail_msg("%s: message '%s' lacks '%s'", path, err.message, want);
    }
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *size = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* Every prefix is read or refused without a crash; cutting the last byte splits a field. */
static void test_truncated(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/mixed.onnx", fixtures_dir);
    size_t size;
    unsigned char *buf = read_all(path, &size);
    for (size_t n = 0; n < size; n++) {
        struct eng_error err = {0};
        unsigned char *copy = malloc(n ? n : 1); /* exact size, so ASan sees overreads */
        assert_non_null(copy);
        memcpy(copy, buf, n);
        struct nn_graph *g = nn_graph_read(copy, n, &err);
        if (!g) assert_int_not_equal(err.code, ENG_OK);
        if (n == size - 1) {
            assert_null(g);
            assert_int_equal(err.code, ENG_UNDECODABLE);
        }
        nn_graph_free(g);
        free(copy);
    }
    free(buf);
}

static void test_random_bytes(void **state)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 500; round++) {
        size_t n = 1 + (size_t)(x % 2048);
        unsigned char *buf = malloc(n);
        assert_non_null(buf);
        for (size_t k = 0; k < n; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            buf[k] = (unsigned char)(x >> 56);
        }
        struct eng_error err = {0};
        struct nn_graph *g = nn_graph_read(buf, n, &err);
        if (!g) assert_true(err.code != ENG_OK && err.message[0]);
        nn_graph_free(g);
        free(buf);
    }
    /* Wire type 7 does not exist. */
    unsigned char bad[16];
    memset(bad, 0xff, sizeof bad);
    struct eng_error err = {0};
    assert_null(nn_graph_read(bad, sizeof bad, &err));
    assert_int_equal(err.code, ENG_UNDECODABLE);
}

/* Appends v as a protobuf varint. */
static size_t put_varint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static void test_limits(void **state)
{
    struct eng_error err = {0};
    unsigned char one = 0;
    /* Refused on the size alone, before anything is read. */
    assert_null(nn_graph_read(&one, NN_MAX_BYTES + 1, &err));
    assert_int_equal(err.code, ENG_TOO_LARGE);

    /* ModelProto.graph (field 7) holding NN_MAX_NODES + 1 empty nodes (field 1). */
    size_t nodes = NN_MAX_NODES + 1, graph_len = nodes * 2;
    unsigned char *buf = malloc(graph_len + 16);
    assert_non_null(buf);
    size_t n = 0;
    buf[n++] = 7 << 3 | 2;
    n += put_varint(buf + n, graph_len);
    for (size_t k = 0; k < nodes; k++) {
        buf[n++] = 1 << 3 | 2;
        buf[n++] = 0;
    }
    assert_null(nn_graph_read(buf, n, &err));
    assert_int_equal(err.code, ENG_TOO_LARGE);
    free(buf);

    /* Valid protobuf with no graph. */
    assert_null(nn_graph_read(&one, 0, &err));
    assert_int_equal(err.code, ENG_INVALID);

    assert_null(nn_graph_read_file("/nonexistent/model.onnx", &err));
    assert_non_null(strstr(err.message, "/nonexistent/model.onnx"));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR [LIBONNX_TESTDATA_DIR]\n", argv[0]);
        return 2;
    }
    fixtures_dir = argv[1];
    testdata_dir = argc > 2 ? argv[2] : NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", fixtures_dir);
    json_error_t jerr;
    manifest = json_load_file(path, 0, &jerr);
    if (!manifest) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_match_onnx), cmocka_unit_test(test_mixed_details),
        cmocka_unit_test(test_hostile_fixtures),  cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_random_bytes),      cmocka_unit_test(test_limits),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(manifest);
    return failed;
}

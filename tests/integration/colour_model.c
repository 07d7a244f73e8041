/* The colour model of the job kind tests (colour_model.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "colour_dataset.h"
#include "colour_model.h"
#include "harness.h"
#include "onnx_build.h"

/* model.onnx: GlobalAveragePool -> Flatten -> Gemm(W = SCALE x I, b = 0), any height and width. */
static void *colour_model(size_t *size)
{
    float w[CLASSES * CLASSES] = {0}, b[CLASSES] = {0};
    for (int k = 0; k < CLASSES; k++)
        w[k * CLASSES + k] = (float)COLOUR_MODEL_SCALE;
    int64_t w_dims[] = {CLASSES, CLASSES}, b_dims[] = {CLASSES};
    Onnx__TensorProto tw = onnx_float_tensor("W", 2, w_dims, w, CLASSES * CLASSES);
    Onnx__TensorProto tb = onnx_float_tensor("b", 1, b_dims, b, CLASSES);
    Onnx__TensorProto *inits[] = {&tw, &tb};
    Onnx__AttributeProto trans = onnx_int_attr("transB", 1);
    Onnx__AttributeProto *gemm_attrs[] = {&trans};
    char *x[] = {"x"}, *pooled[] = {"pooled"}, *flat[] = {"flat"};
    char *gemm_in[] = {"flat", "W", "b"}, *scores[] = {"scores"};
    Onnx__NodeProto nodes[3];
    onnx_node_init(&nodes[0], "GlobalAveragePool", 1, x, pooled);
    onnx_node_init(&nodes[1], "Flatten", 1, pooled, flat);
    onnx_node_init(&nodes[2], "Gemm", 3, gemm_in, scores);
    nodes[2].n_attribute = 1;
    nodes[2].attribute = gemm_attrs;
    Onnx__NodeProto *node_ptrs[] = {&nodes[0], &nodes[1], &nodes[2]};
    struct onnx_value_info in, out;
    onnx_value_info_init(&in, "x", 4, (int64_t[]){-1, 3, -1, -1});
    onnx_value_info_init(&out, "scores", 2, (int64_t[]){-1, CLASSES});
    Onnx__ValueInfoProto *inputs[] = {&in.info}, *outputs[] = {&out.info};
    Onnx__GraphProto graph = onnx_graph("colour", 3, node_ptrs, 2, inits, inputs, outputs);
    return onnx_pack_model(&graph, size);
}

void colour_model_write(const char *name, const char *config, const char *labels)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", harness_models_dir(), name);
    mkdir(path, 0755);
    size_t size;
    void *onnx = colour_model(&size);
    snprintf(path, sizeof path, "%s/%s/model.onnx", harness_models_dir(), name);
    write_file(path, onnx, size);
    free(onnx);
    snprintf(path, sizeof path, "%s/%s/config.json", harness_models_dir(), name);
    write_file(path, config, strlen(config));
    snprintf(path, sizeof path, "%s/%s/labels.txt", harness_models_dir(), name);
    write_file(path, labels, strlen(labels));
}

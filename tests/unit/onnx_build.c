#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "nn/nn.h"
#include "onnx_build.h"

Onnx__TensorProto onnx_float_tensor(char *name, size_t n_dims, int64_t *dims, float *data,
                                    size_t count)
{
    Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
    t.name = name;
    t.n_dims = n_dims;
    t.dims = dims;
    t.has_data_type = 1;
    t.data_type = NN_FLOAT;
    t.n_float_data = count;
    t.float_data = data;
    return t;
}

Onnx__TensorProto onnx_int64_tensor(char *name, size_t n_dims, int64_t *dims, int64_t *data,
                                    size_t count)
{
    Onnx__TensorProto t = onnx_float_tensor(name, n_dims, dims, NULL, 0);
    t.data_type = NN_INT64;
    t.n_int64_data = count;
    t.int64_data = data;
    return t;
}

static Onnx__AttributeProto attr(char *name, Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto a = ONNX__ATTRIBUTE_PROTO__INIT;
    a.name = name;
    a.has_type = 1;
    a.type = type;
    return a;
}

Onnx__AttributeProto onnx_int_attr(char *name, int64_t value)
{
    Onnx__AttributeProto a = attr(name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a.has_i = 1;
    a.i = value;
    return a;
}

Onnx__AttributeProto onnx_ints_attr(char *name, size_t n, int64_t *values)
{
    Onnx__AttributeProto a = attr(name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a.n_ints = n;
    a.ints = values;
    return a;
}

void onnx_node_init(Onnx__NodeProto *node, char *op_type, size_t n_in, char **in, char **out)
{
    Onnx__NodeProto init = ONNX__NODE_PROTO__INIT;
    *node = init;
    node->op_type = op_type;
    node->n_input = n_in;
    node->input = in;
    node->n_output = 1;
    node->output = out;
}

Onnx__GraphProto onnx_graph(char *name, size_t n_node, Onnx__NodeProto **nodes,
                            size_t n_initializer, Onnx__TensorProto **initializers,
                            Onnx__ValueInfoProto **input, Onnx__ValueInfoProto **output)
{
    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    graph.name = name;
    graph.n_node = n_node;
    graph.node = nodes;
    graph.n_initializer = n_initializer;
    graph.initializer = initializers;
    graph.n_input = 1;
    graph.input = input;
    graph.n_output = 1;
    graph.output = output;
    return graph;
}

void *onnx_pack_model(Onnx__GraphProto *graph, size_t *size)
{
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = 13;
    Onnx__OperatorSetIdProto *opsets[] = {&opset};
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    model.has_ir_version = 1;
    model.ir_version = 8;
    model.graph = graph;
    model.n_opset_import = 1;
    model.opset_import = opsets;
    *size = onnx__model_proto__get_packed_size(&model);
    uint8_t *buf = malloc(*size);
    assert_non_null(buf);
    assert_int_equal(onnx__model_proto__pack(&model, buf), *size);
    return buf;
}

void onnx_value_info_init(struct onnx_value_info *v, char *name, int rank, const int64_t *dims)
{
    Onnx__ValueInfoProto info = ONNX__VALUE_INFO_PROTO__INIT;
    Onnx__TypeProto type = ONNX__TYPE_PROTO__INIT;
    Onnx__TypeProto__Tensor tensor = ONNX__TYPE_PROTO__TENSOR__INIT;
    Onnx__TensorShapeProto shape = ONNX__TENSOR_SHAPE_PROTO__INIT;
    v->info = info;
    v->type = type;
    v->tensor = tensor;
    v->shape = shape;
    for (int d = 0; d < rank; d++) {
        Onnx__TensorShapeProto__Dimension dim = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        v->dims[d] = dim;
        if (dims[d] < 0) {
            v->dims[d].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            v->dims[d].dim_param = "N";
        } else {
            v->dims[d].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            v->dims[d].dim_value = dims[d];
        }
        v->dim_ptrs[d] = &v->dims[d];
    }
    v->shape.n_dim = (size_t)rank;
    v->shape.dim = v->dim_ptrs;
    v->tensor.has_elem_type = 1;
    v->tensor.elem_type = NN_FLOAT;
    v->tensor.shape = &v->shape;
    v->type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    v->type.tensor_type = &v->tensor;
    v->info.name = name;
    v->info.type = &v->type;
}

struct nn_graph *onnx_read_x_to_y(char *name, size_t n_node, Onnx__NodeProto **nodes, size_t n_init,
                                  Onnx__TensorProto **inits)
{
    Onnx__ValueInfoProto x = ONNX__VALUE_INFO_PROTO__INIT, y = ONNX__VALUE_INFO_PROTO__INIT;
    x.name = "x";
    y.name = "y";
    Onnx__ValueInfoProto *inputs[] = {&x}, *outputs[] = {&y};
    Onnx__GraphProto graph = onnx_graph(name, n_node, nodes, n_init, inits, inputs, outputs);
    size_t size;
    void *model = onnx_pack_model(&graph, &size);
    struct eng_error err = {0};
    struct nn_graph *g = nn_graph_read(model, size, &err);
    free(model);
    if (!g) fail_msg("%s", err.message);
    return g;
}

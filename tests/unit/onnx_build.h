/* Helpers for tests that write ONNX models with protobuf-c (onnx.pb-c.h, generated into the build
 * folder). The structs they fill point at the caller's arrays and strings, which must outlive
 * them; nothing here allocates but onnx_pack_model. */
#ifndef AUGSERVE_TEST_ONNX_BUILD_H
#define AUGSERVE_TEST_ONNX_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"
#include "onnx.pb-c.h"

/* A float initializer of count values. */
Onnx__TensorProto onnx_float_tensor(char *name, size_t n_dims, int64_t *dims, float *data,
                                    size_t count);
/* An int64 initializer of count values. */
Onnx__TensorProto onnx_int64_tensor(char *name, size_t n_dims, int64_t *dims, int64_t *data,
                                    size_t count);

/* An INT attribute, and an INTS attribute of n values. */
Onnx__AttributeProto onnx_int_attr(char *name, int64_t value);
Onnx__AttributeProto onnx_ints_attr(char *name, size_t n, int64_t *values);

/* A node with n_in inputs, one output and no attributes. */
void onnx_node_init(Onnx__NodeProto *node, char *op_type, size_t n_in, char **in, char **out);

/* A ValueInfoProto with a float tensor type; a dim < 0 is the symbolic "N". */
struct onnx_value_info {
    Onnx__ValueInfoProto info;
    Onnx__TypeProto type;
    Onnx__TypeProto__Tensor tensor;
    Onnx__TensorShapeProto shape;
    Onnx__TensorShapeProto__Dimension dims[4];
    Onnx__TensorShapeProto__Dimension *dim_ptrs[4];
};

void onnx_value_info_init(struct onnx_value_info *v, char *name, int rank, const int64_t *dims);

/* A graph with one input and one output. */
Onnx__GraphProto onnx_graph(char *name, size_t n_node, Onnx__NodeProto **nodes,
                            size_t n_initializer, Onnx__TensorProto **initializers,
                            Onnx__ValueInfoProto **input, Onnx__ValueInfoProto **output);

/* graph in a model (IR version 8, opset 13), serialised: *size bytes, malloc'd. Fails the running
 * cmocka test when packing goes wrong. */
void *onnx_pack_model(Onnx__GraphProto *graph, size_t *size);

/* The graph of nodes (and initializers) from input "x" to output "y" (no types or shapes),
 * serialised and read back as the executor reads a model file; fails the test when it is
 * refused. */
struct nn_graph *onnx_read_x_to_y(char *name, size_t n_node, Onnx__NodeProto **nodes, size_t n_init,
                                  Onnx__TensorProto **inits);

#endif

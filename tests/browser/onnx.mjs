// A tiny perceptual model written as ONNX protobuf by hand, so the Similarity page has an LPIPS
// model without Python: x [N, 3, H, W] -> Conv 3x3 (4) -> Relu "t0" -> Conv 3x3 stride 2 (4) ->
// Relu "t1", tapped at t0 and t1 with "lin": false. Weights come from a fixed LCG.

function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return out;
}
const int = (field, n) => [...varint(field << 3), ...varint(n)];
const bytes = (field, data) => [...varint((field << 3) | 2), ...varint(data.length), ...data];
const str = (field, s) => bytes(field, [...Buffer.from(s)]);

function tensor(name, dims, values) {
  const raw = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  return [...dims.flatMap((d) => int(1, d)), ...int(2, 1), ...str(8, name), ...bytes(9, [...raw])];
}

function valueInfo(name, dims) {
  const shape = dims.flatMap((d) => bytes(1, typeof d === 'string' ? str(2, d) : int(1, d)));
  const tensorType = [...int(1, 1), ...bytes(2, shape)];
  return [...str(1, name), ...bytes(2, bytes(1, tensorType))];
}

function conv(name, inputs, output, stride) {
  const ints = (attr, values) => bytes(5, [...str(1, attr), ...values.flatMap((v) => int(8, v)), ...int(20, 7)]);
  return [...inputs.flatMap((i) => str(1, i)), ...str(2, output), ...str(3, name), ...str(4, 'Conv'),
    ...ints('kernel_shape', [3, 3]), ...ints('pads', [1, 1, 1, 1]), ...ints('strides', [stride, stride])];
}

const relu = (name, input, output) => [...str(1, input), ...str(2, output), ...str(3, name), ...str(4, 'Relu')];

export function tinyPerceptualModel() {
  let seed = 12345;
  const random = (n) => Array.from({ length: n }, () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31 - 0.5;
  });
  const graph = [
    ...bytes(1, conv('conv0', ['x', 'w0', 'b0'], 'c0', 1)),
    ...bytes(1, relu('relu0', 'c0', 't0')),
    ...bytes(1, conv('conv1', ['t0', 'w1', 'b1'], 'c1', 2)),
    ...bytes(1, relu('relu1', 'c1', 't1')),
    ...str(2, 'tiny_perceptual'),
    ...bytes(5, tensor('w0', [4, 3, 3, 3], random(108))),
    ...bytes(5, tensor('b0', [4], random(4))),
    ...bytes(5, tensor('w1', [4, 4, 3, 3], random(144))),
    ...bytes(5, tensor('b1', [4], random(4))),
    ...bytes(11, valueInfo('x', ['N', 3, 'H', 'W'])),
    ...bytes(12, valueInfo('t1', ['N', 4, 'h', 'w'])),
  ];
  const model = [...int(1, 7), ...str(2, 'augserve-browser-test'), ...bytes(7, graph),
    ...bytes(8, [...str(1, ''), ...int(2, 13)])];
  return Buffer.from(model);
}

export const tinyPerceptualConfig = { perceptual: { taps: ['t0', 't1'], lin: false } };

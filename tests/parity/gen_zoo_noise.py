#!/usr/bin/python3
"""Checks the zoo's noise (engine/train/train.h, "Noise": dropout before the classifier,
stochastic depth on each residual branch) against PyTorch, on what tests/unit/test_zoo_noise.c
exports into a folder: per case the model (ONNX, its training graph), a batch, dL/dlogits, and
the engine's training-mode logits and every parameter's gradient after one step at (seed, step)
(manifest.json lists them).

The masks are the engine's own: each noise node draws from the Philox stream (seed, step & 2^32-1,
step >> 32, the node's index in the graph) (engine/core/rng.c, gen_noise.py's Philox, checked
there against Random123's known answers): Dropout one uniform per element of its input in
row-major order, StochasticDepth one per sample; an element or sample is dropped when its
uniform is below the ratio. With those masks, PyTorch (float64) runs gen_zoo.py's transcription
of the architecture with weights loaded by name and
  - Dropout as F.dropout computes it given its Bernoulli draw: x * keep / (1 - p);
  - stochastic depth as torchvision.ops.stochastic_depth(x, p, "row") computes it: a noise
    tensor [N, 1, 1, 1] of Bernoulli(1 - p) draws divided by 1 - p, times x, hooked on the
    branch's last module's output (the ResNets' last bn, WRN's conv2), before the Add.
That this is torchvision's function is checked first: with torch's generator seeded alike, the
noise tensor drawn here gives exactly torchvision.ops.stochastic_depth's output.

Asserted per case: the ratios of the StochasticDepth nodes follow p * l / L (Huang et al.'s
linear decay), the case drops some samples and keeps others, the logits and every parameter's
gradient are within 1e-5 of PyTorch's relative to the tensor's largest magnitude.

    /usr/bin/python3 tests/parity/gen_zoo_noise.py EXPORT_DIR

Exits 77 (ctest's skip) without python3-torch, torchvision or onnx.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# gen_zoo exits 77 itself without torch, numpy or onnx.
from gen_zoo import WrnBlock, check_cases, np, onnx, reference, torch  # noqa: E402
from gen_noise import MASK32, Philox, check_philox  # noqa: E402

try:
    import torchvision.ops
except ImportError as e:
    print("skipped: %s" % e)
    sys.exit(77)

TOLERANCE = 1e-5


def uniforms(seed, step, index, n):
    r = Philox(seed, step & MASK32, step >> 32, index)
    return np.array([r.uniform() for _ in range(n)])


def check_torchvision_formula():
    """Our gate is torchvision.ops.stochastic_depth given the same Bernoulli draws."""
    x = torch.randn(6, 3, 2, 2, dtype=torch.float64)
    for p in (0.25, 0.6):
        torch.manual_seed(7)
        want = torchvision.ops.stochastic_depth(x, p, "row", training=True)
        torch.manual_seed(7)
        noise = torch.empty([6, 1, 1, 1], dtype=torch.float64).bernoulli_(1 - p)
        got = gate(x, noise, p)
        assert torch.equal(got, want), "the gate is not torchvision's stochastic_depth"


def gate(x, keep, p):
    """torchvision.ops.stochastic_depth's arithmetic (mode "row", training) for a Bernoulli
    keep tensor [N, 1, 1, 1] of survival rate 1 - p."""
    return x * keep.div(1.0 - p)


def branch_end(module, block):
    """The module whose output is block's residual branch (the gate's input)."""
    m = module.get_submodule(block)
    if isinstance(m, WrnBlock):
        return m.conv2
    return m.bn3 if hasattr(m, "bn3") else m.bn2


def check_case(folder, case, failures):
    name, seed, step = case["name"], case["seed"], case["step"]
    n = case["input"][0]

    def fail(msg):
        failures.append("%s: %s" % (name, msg))

    m = onnx.load(os.path.join(folder, name + ".onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    torch.manual_seed(0)
    module, unused = reference(case["model"])
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in inits.items()},
                           strict=False)
    module.double().train()

    hooks, drops, keeps = [], 0, 0
    gates = [(i, node) for i, node in enumerate(m.graph.node) if node.op_type == "StochasticDepth"]
    p_last = case["model"].get("stochastic_depth", 0)
    for l, (index, node) in enumerate(gates, 1):
        ratio = onnx.helper.get_attribute_value(node.attribute[0])
        if node.domain != "ai.augserve" or abs(ratio - p_last * l / len(gates)) > 1e-7:
            fail("%s: ratio %g in %r; %g expected" % (node.name, ratio, node.domain,
                                                      p_last * l / len(gates)))
        keep = torch.from_numpy(uniforms(seed, step, index, n) >= ratio).double()
        drops += int((keep == 0).sum())
        keeps += int(keep.sum())
        block = node.name[:-len(".drop_path")]

        def hook(_mod, _inp, out, keep=keep.view(n, 1, 1, 1), ratio=ratio):
            return gate(out, keep, ratio)
        hooks.append(branch_end(module, block).register_forward_hook(hook))
    if gates and not (drops and keeps):
        fail("%d samples dropped and %d kept over the blocks: the case tests too little" %
             (drops, keeps))
    dropouts = [i for i, node in enumerate(m.graph.node) if node.op_type == "Dropout"]
    if len(dropouts) != ("dropout" in case["model"]):
        fail("%d Dropout nodes" % len(dropouts))
    for index in dropouts:
        p = case["model"]["dropout"]
        fc = [mod for mod in module.modules() if isinstance(mod, torch.nn.Linear)][-1]

        def pre(_mod, inp, p=p, index=index):
            x = inp[0]
            u = uniforms(seed, step, index, x.numel()).reshape(x.shape)
            keep = torch.from_numpy(u >= p).double()
            if not 0 < int(keep.sum()) < keep.numel():
                fail("Dropout keeps %d of %d: the case tests too little" %
                     (int(keep.sum()), keep.numel()))
            return (x * keep / (1 - p),)
        hooks.append(fc.register_forward_pre_hook(pre))

    shape = case["input"]
    x = np.fromfile(os.path.join(folder, name + ".input.f32"), dtype="<f4").reshape(shape)
    classes = case["classes"]
    dy = np.fromfile(os.path.join(folder, name + ".dlogits.f32"), dtype="<f4").reshape(n, classes)
    logits = module(torch.from_numpy(x).double())
    compare(fail, "logits", logits.detach().numpy(),
            np.fromfile(os.path.join(folder, name + ".logits.f32"), dtype="<f4"))
    (logits * torch.from_numpy(dy).double()).sum().backward()
    grads = np.fromfile(os.path.join(folder, name + ".grads.f32"), dtype="<f4")
    named = dict(module.named_parameters())
    if len(case["params"]) != len([k for k in named if k not in unused]):
        fail("%d parameters in the engine, %d in PyTorch" % (len(case["params"]), len(named)))
    for p in case["params"]:
        want = named[p["name"]].grad.numpy()
        compare(fail, p["name"], want, grads[p["offset"]:p["offset"] + want.size])
    for h in hooks:
        h.remove()
    print("%-26s %d gates (%d samples dropped, %d kept), %d parameters' gradients" %
          (name, len(gates), drops, keeps, len(case["params"])))


def compare(fail, what, want, got):
    want = want.ravel()
    scale = float(np.abs(want).max())
    worst = float(np.abs(want - got.astype(np.float64)).max())
    if not worst <= TOLERANCE * scale and not (scale == 0 and worst == 0):
        fail("%s differs by %g (scale %g)" % (what, worst, scale))


def main():
    check_philox()
    check_torchvision_formula()
    return check_cases(sys.argv[1], check_case)


if __name__ == "__main__":
    sys.exit(main())

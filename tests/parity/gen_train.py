#!/usr/bin/python3
"""One training step in PyTorch 1.13 for tests/unit/test_train_plan_parity.c: for each model, seeded
weights exported to ONNX (opset 14, in training mode, so BatchNormalization stays a node with its
running statistics as initializers), a batch, the logits of a training-mode forward, the
loss's gradient with respect to them (softmax cross-entropy over the batch: (softmax - onehot) /
N, computed here and given to both sides), every parameter's gradient, the input's gradient and
the BatchNorm running statistics after that forward. Then ten SGD steps (STEPS) from the same
weights on the same batch and labels: every parameter and buffer after them.

    /usr/bin/python3 tests/parity/gen_train.py OUT_DIR [--small]

ResNet-20 and WRN-16-2 are gen_zoo.py's transcriptions of the zoo's architectures, with their
references' initialisation.

Kink crossings. A ReLU's input that lies within float32 rounding of 0 lands on either side of it
depending on the summation order of the layers before (oneDNN's kernels against PyTorch's), and
its gradient then differs by a whole factor; before a BatchNorm, whose backward spreads a
change of one element over its channel, every gradient before it moves by up to ~5e-4 in norm
(ResNet-20's layer1 gradients do, from one input of -7.8e-8). That is rounding, not a wrong
backward pass, so for the zoo models (F.relu and F.leaky_relu calls) this script lists each
activation input within KINK_MARGIN x its tensor's root mean square of 0 (in float64) and writes,
per such kink, how every gradient moves when that element's slope is taken from the other side
(a float64 step with that one slope changed, minus one without). The test accepts PyTorch's
gradients plus the moves of the fewest kinks that explain its own (engine/train/README.md).

--small writes only the small CNN, whose files are a few kB: that output is checked in as
tests/parity/fixtures/train. ctest runs the script without it into the build folder for ResNet-20
and WRN-16-2, which take megabytes; without torch it writes a manifest saying why, and those
cases skip.

OUT_DIR/manifest.json lists the cases: the model, input, logits, dlogits and dinput files (raw
little-endian float32), and per parameter and buffer its ONNX name, shape and offset (in floats)
in the case's grads or buffers file; "kinks" lists the kinks (the activation call, in forward
order, the element and its float64 value) and "kinks_file" holds, per kink, the moves of every
parameter's gradient (in the grads file's order) then of the input's. "steps" gives the SGD
steps' settings, their labels file (int32) and their file (every parameter at its offset in the
grads file, then every buffer at its offset after them), each tensor's smallest move, the
activation input closest to a kink over the steps, and PyTorch's own float32 steps' gap to
float64. The test asserts the steps against these where no input comes within rounding of a
kink (the small CNN); for ResNet-20 and WRN-16-2 it records its own steps, which replay_train.py
asserts against a float64 replay of steps_of on the engine's sides of the kinks.
"""
import contextlib
import copy
import json
import os
import sys

import generated
from gen_torchvision import randomize_batchnorm


def small_cnn():
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2, bias=False), nn.BatchNorm2d(16),
        nn.ReLU6(), nn.AvgPool2d(2, count_include_pad=False), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Hardswish(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def resnet20():
    """engine/train's resnet-20 (He et al. 2016's CIFAR ResNet, option B shortcuts) as
    gen_zoo.py transcribes it (imported here, once torch is known to be there), with its
    reference's initialisation."""
    from gen_zoo import CifarResNet
    return CifarResNet(20, 10)


def wrn16_2():
    """engine/train's wrn-16-2 (Zagoruyko and Komodakis, as xternalz/WideResNet-pytorch) as
    gen_zoo.py transcribes it, with its reference's initialisation."""
    from gen_zoo import WideResNet
    return WideResNet(16, 2, 10, fixmatch=False)


# name, constructor, batch, image size
CASES = [("small", small_cnn, 4, 16), ("resnet20", resnet20, 8, 32), ("wrn16_2", wrn16_2, 8, 32)]


KINK_MARGIN = 1e-5


def kink_step(model, x, dlogits, flip=None):
    """A float64 training step of model on x with the gradient dlogits at the logits, every
    F.relu and F.leaky_relu (also a module's act attribute, as gen_zoo's WRN keeps one) through
    a function whose slope at element flip = (call, index) is taken from the other side. Returns
    the parameters' gradients then the input's, flattened into one vector, and each call's
    input."""
    import torch
    import torch.nn.functional as F

    class Kink(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t, alpha, index):
            up = t > 0
            slope = torch.where(up, torch.ones_like(t), torch.full_like(t, alpha))
            if index is not None:
                slope.view(-1)[index] = alpha if up.view(-1)[index] else 1.0
            ctx.save_for_backward(slope)
            return torch.where(up, t, t * alpha)

        @staticmethod
        def backward(ctx, g):
            return g * ctx.saved_tensors[0], None, None

    inputs = []

    def act(t, alpha):
        call = len(inputs)
        inputs.append(t.detach())
        return Kink.apply(t, alpha, flip[1] if flip and flip[0] == call else None)

    m = copy.deepcopy(model).double()
    m.train()
    m.zero_grad(set_to_none=True)
    xd = x.detach().double().requires_grad_(True)
    with activations(m, act):
        m(xd).backward(dlogits.double())
    grads = [p.grad.ravel() for p in m.parameters()] + [xd.grad.ravel()]
    return torch.cat(grads), inputs


@contextlib.contextmanager
def activations(model, act):
    """Routes every F.relu and F.leaky_relu call (also a module's act attribute, as gen_zoo's
    WRN keeps one) of model's forward through act(t, negative slope)."""
    import torch.nn.functional as F
    relu, leaky = F.relu, F.leaky_relu
    routed = [m for m in model.modules() if getattr(m, "act", None) is relu]
    for module in routed:
        module.act = lambda t: act(t, 0.0)
    F.relu = lambda t, inplace=False: act(t, 0.0)
    F.leaky_relu = lambda t, negative_slope=0.01, inplace=False: act(t, negative_slope)
    try:
        yield
    finally:
        F.relu, F.leaky_relu = relu, leaky
        for module in routed:
            module.act = relu


def kinks(model, x, dlogits):
    """The kinks (call, index, float64 value) within KINK_MARGIN of 0, and each one's move."""
    import torch
    base, inputs = kink_step(model, x, dlogits)
    found, moves = [], []
    for call, t in enumerate(inputs):
        near = (t.abs() < KINK_MARGIN * t.pow(2).mean().sqrt()).view(-1).nonzero().view(-1)
        for index in near.tolist():
            found.append({"call": call, "element": index, "value": float(t.view(-1)[index])})
            moves.append(kink_step(model, x, dlogits, (call, index))[0] - base)
    return found, moves


# The SGD steps (the "parameters after 10 SGD steps"). lr 0.05 with momentum 0.9 moves
# every tensor by far more than the test's 1e-4 of its largest magnitude, so a wrong weight
# decay, momentum or Nesterov term shows (the manifest's "smallest_move" says by how much), yet
# keeps 10 steps on one batch of 8 from diverging (0.1, the papers' rate, would be as fine).
STEPS = {"count": 10, "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}


def steps_of(m, x, labels, act):
    """STEPS["count"] training steps of the model m, in place, on the batch (x, labels): a
    training-mode forward, F.cross_entropy (mean), backward and torch.optim.SGD under STEPS, with
    every F.relu and F.leaky_relu call through act(t, negative slope, step, call), call counting
    from 0 in each step (activations()). Returns the parameters and the buffers after them."""
    import torch
    import torch.nn.functional as F
    opt = torch.optim.SGD(m.parameters(), lr=STEPS["lr"], momentum=STEPS["momentum"],
                          nesterov=STEPS["nesterov"], weight_decay=STEPS["weight_decay"])
    for step in range(STEPS["count"]):
        calls = []

        def routed(t, alpha):
            calls.append(t)
            return act(t, alpha, step, len(calls) - 1)

        opt.zero_grad(set_to_none=True)
        with activations(m, routed):
            loss = F.cross_entropy(m(x), labels)
        loss.backward()
        opt.step()
    params = [p.detach() for p in m.parameters()]
    return params + [b for k, b in m.named_buffers() if not k.endswith("num_batches_tracked")]


def sgd_steps(model, start, x, labels, dtype=None):
    """steps_of a copy of model from the state start in float32 (or dtype). Returns the
    parameters and the buffers after them, each tensor's move (max |after - before| / max
    |after|, the smallest of them), and the activation input closest to a kink over the steps
    (|t| / rms(t), with its step and call)."""
    import torch
    import torch.nn.functional as F
    m = copy.deepcopy(model)
    m.load_state_dict(start)
    m.to(dtype or torch.float32)
    m.train()
    before = [p.detach().clone() for p in m.parameters()]
    closest = {"margin": float("inf")}
    relu, leaky = F.relu, F.leaky_relu

    def act(t, alpha, step, call):
        margin = float((t.detach().abs().min() / t.detach().pow(2).mean().sqrt()))
        if margin < closest["margin"]:
            closest.update(margin=margin, step=step, call=call)
        return relu(t) if alpha == 0 else leaky(t, alpha)

    after = steps_of(m, x.detach().to(dtype or torch.float32), labels, act)
    moves = [float((a - b).abs().max() / a.abs().max()) for a, b in zip(after, before)]
    return after, min(moves), closest


def write(out_dir, name, tensors):
    import numpy as np
    flat = [t.detach().double().numpy().ravel() for t in tensors]
    (np.concatenate(flat) if flat else np.zeros(0)).astype("<f4").tofile(os.path.join(out_dir, name))


def export_training(model, x, path, start, input_name):
    """model as ONNX (opset 14, input input_name, output "logits", the batch symbolic) exported in
    training mode, as eval mode would fold BatchNorm into the convolutions. The export's own
    forward moves the running statistics before they are written, so the initializers are then
    set back to start (a state_dict), the state the step starts from."""
    import torch
    import onnx
    from onnx import numpy_helper
    torch.onnx.export(copy.deepcopy(model), x, path, opset_version=14, input_names=[input_name],
                      output_names=["logits"],
                      dynamic_axes={input_name: {0: "N"}, "logits": {0: "N"}},
                      do_constant_folding=False, training=torch.onnx.TrainingMode.TRAINING)
    exported = onnx.load(path)
    for init in exported.graph.initializer:
        if init.name in start:
            init.CopyFrom(numpy_helper.from_array(start[init.name].numpy(), init.name))
    onnx.save(exported, path)


def export_case(out_dir, name, ctor, batch, size):
    import torch
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(4321)
    model = ctor()
    # Random BatchNorm parameters and statistics, so that none of them is trivially 0 or 1.
    randomize_batchnorm(model, gen)
    x = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    labels = torch.randint(0, 10, (batch,), generator=gen)
    path = os.path.join(out_dir, name + ".onnx")
    start = {k: v.clone() for k, v in model.state_dict().items()}
    export_training(model, x, path, start, "x")
    model.train()
    x.requires_grad_(True)
    logits = model(x)
    p = torch.softmax(logits.detach().double(), 1)
    dlogits = ((p - torch.nn.functional.one_hot(labels, 10).double()) / batch).float()
    logits.backward(dlogits)
    case = {"name": name, "model": name + ".onnx", "input_shape": list(x.shape),
            "logits_shape": list(logits.shape), "params": [], "buffers": []}
    for kind, file, tensors in (("input", name + ".input", [x]),
                                ("logits", name + ".logits", [logits]),
                                ("dlogits", name + ".dlogits", [dlogits]),
                                ("dinput", name + ".dinput", [x.grad])):
        write(out_dir, file, tensors)
        case[kind] = file
    grads, buffers = [], []
    for key, value in model.named_parameters():
        case["params"].append({"name": key, "shape": list(value.shape),
                               "offset": sum(g.numel() for g in grads)})
        grads.append(value.grad)
    for key, value in model.named_buffers():
        if key.endswith("num_batches_tracked"):
            continue
        case["buffers"].append({"name": key, "shape": list(value.shape),
                                "offset": sum(b.numel() for b in buffers)})
        buffers.append(value)
    write(out_dir, name + ".grads", grads)
    write(out_dir, name + ".buffers", buffers)
    case["grads"], case["buffers_file"] = name + ".grads", name + ".buffers"
    if name != "small":  # its activations are modules, and its fixture is checked in
        # The step's start again: the model's forward above moved the running statistics.
        model.load_state_dict(start)
        case["kinks"], moves = kinks(model, x, dlogits)
        write(out_dir, name + ".kinks", moves)
        case["kinks_file"] = name + ".kinks"
    after, smallest, closest = sgd_steps(model, start, x.detach(), labels)
    # How far float32 rounding alone takes PyTorch's own steps: the largest, over the tensors,
    # of max |float32 - float64| / max |float64|.
    exact = sgd_steps(model, start, x.detach(), labels, torch.float64)[0]
    gap = max(float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(after, exact))
    labels.numpy().astype("<i4").tofile(os.path.join(out_dir, name + ".labels"))
    write(out_dir, name + ".steps", after)
    case["steps"] = dict(STEPS, labels=name + ".labels", file=name + ".steps",
                         smallest_move=smallest, closest_kink=closest, float64_gap=gap)
    return case


def main():
    args = [a for a in sys.argv[1:] if a != "--small"]
    small = "--small" in sys.argv
    out_dir = args[0] if args else "train-parity"
    if small:
        os.makedirs(out_dir, exist_ok=True)
        manifest_path, version = os.path.join(out_dir, "manifest.json"), None
    else:
        started = generated.start(__file__, out_dir, "manifest.json", "cases", ["torch"],
                                  "python3-torch is missing: ")
        if not started:
            return
        manifest_path, version = started
    import warnings
    warnings.filterwarnings("ignore")
    cases = [export_case(out_dir, *case) for case in CASES if small == (case[0] == "small")]
    manifest = {"cases": cases}
    if version:
        manifest["version"] = version
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()

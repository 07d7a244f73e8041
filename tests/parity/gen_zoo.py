#!/usr/bin/python3
"""Checks the engine's model zoo (engine/train) against PyTorch, on what tests/unit/test_zoo.c
exports into a folder: each case's ONNX model, a seeded input batch and the logits the engine's
executor gives for it (manifest.json lists them).

For each case:
  - onnx.checker.check_model(full_check=True) accepts the model, at opset 13 or later;
  - the same architecture, transcribed below from its reference PyTorch code (the table atop
    engine/train/train.h), has exactly the model's initializers as its state_dict keys (less
    num_batches_tracked, and the bn1s FixMatch's WRN never uses) and the same parameter count;
  - loaded with those initializers by name, it gives the engine's logits within 1e-5 (relative
    to the largest logit past 1), also for the "trained" cases, whose values (BatchNorm's
    statistics included) test_zoo.c moved off their initial ones;
  - a new head (the "new_head" cases, made by engine/train/finetune.c) is drawn as a fresh
    nn.Linear's, a law the test tells from the reference's own head law;
  - each initial weight (of the cases not "trained") follows the law the reference initialisation draws from: a two-sample
    Kolmogorov-Smirnov test against a fresh PyTorch module's tensor (p > 1e-5, 1e-3 over a
    model's hundred tensors; constant tensors equal exactly). The same test must reject a wrong
    law: PyTorch's default init where the reference uses another, and a uniform law with the
    reference's variance. (Checked by hand too: swapping a family's law in engine/train/zoo.c,
    e.g. WRN's convolutions to fan_in, fails this script.)

    /usr/bin/python3 tests/parity/gen_zoo.py EXPORT_DIR

Exits 77 (ctest's skip) without python3-torch, onnx or scipy.
"""
import json
import math
import os
import sys

# The architectures below need torch; scipy only the law checks, which import it themselves, so
# that gen_train.py and tests/bench/train_vs_torch.py can import the architectures without it.
try:
    import numpy as np
    import onnx
    import onnx.numpy_helper
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print("skipped: %s" % e)
    sys.exit(77)

# KS p-value below which a law is rejected: 1e-3 over the ~100 tensors of a model (Bonferroni),
# since each model's test holds a hundred tests against one PyTorch draw each.
P_MIN = 1e-5
KS_MIN_SIZE = 64  # tensors smaller than this are too small for the test to say anything


# ---- the reference architectures -------------------------------------------------------------

class SmallCNN(nn.Module):
    """engine/train's small-cnn, PyTorch's default initialisation."""

    def __init__(self, classes, channels=3):
        super().__init__()
        widths, c = [32, 64, 128], channels
        for i, w in enumerate(widths, 1):
            setattr(self, "conv%d" % i, nn.Conv2d(c, w, 3, padding=1, bias=False))
            setattr(self, "bn%d" % i, nn.BatchNorm2d(w))
            c = w
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        for i in (1, 2, 3):
            x = F.relu(getattr(self, "bn%d" % i)(getattr(self, "conv%d" % i)(x)))
            if i < 3:
                x = F.max_pool2d(x, 2)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class CifarBlock(nn.Module):
    """akamaster/pytorch_resnet_cifar10's BasicBlock with option B shortcuts."""

    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or inp != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth, classes):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        inp = 16
        for stage in range(3):
            planes = 16 << stage
            blocks = []
            for i in range(n):
                blocks.append(CifarBlock(inp, planes, 2 if i == 0 and stage > 0 else 1))
                inp = planes
            setattr(self, "layer%d" % (stage + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(64, classes)
        for m in self.modules():  # the reference's _weights_init
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class WrnBlock(nn.Module):
    """xternalz/WideResNet-pytorch's block, or kekmodel/FixMatch-pytorch's when fixmatch."""

    def __init__(self, inp, out, stride, fixmatch, activate_before_residual):
        super().__init__()
        momentum = 0.001 if fixmatch else 0.1
        self.act = (lambda t: F.leaky_relu(t, 0.1)) if fixmatch else F.relu
        self.bn1 = nn.BatchNorm2d(inp, momentum=momentum)
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out, momentum=momentum)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.equal = inp == out
        self.convShortcut = None if self.equal else nn.Conv2d(inp, out, 1, stride, 0, bias=False)
        # xternalz's blocks always activate x before a shortcut; kekmodel's only in block1.
        self.abr = activate_before_residual or not fixmatch

    def forward(self, x):
        if not self.equal and self.abr:
            x = self.act(self.bn1(x))
            out = x
        elif self.equal:
            out = self.act(self.bn1(x))
        else:
            out = x  # kekmodel computes act(bn1(x)) here and never uses it
        out = self.conv2(self.act(self.bn2(self.conv1(out))))
        return (x if self.equal else self.convShortcut(x)) + out


class WideResNet(nn.Module):
    def __init__(self, depth, k, classes, fixmatch):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        for stage in range(3):
            layer = nn.Sequential(*[
                WrnBlock(widths[stage] if i == 0 else widths[stage + 1], widths[stage + 1],
                         2 if i == 0 and stage > 0 else 1, fixmatch, stage == 0)
                for i in range(n)])
            block = nn.Module()
            block.layer = layer
            setattr(self, "block%d" % (stage + 1), block)
        self.bn1 = nn.BatchNorm2d(widths[3], momentum=0.001 if fixmatch else 0.1)
        self.act = (lambda t: F.leaky_relu(t, 0.1)) if fixmatch else F.relu
        self.fc = nn.Linear(widths[3], classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if fixmatch:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
                else:
                    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                    m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.Linear):
                if fixmatch:
                    nn.init.xavier_normal_(m.weight)
                nn.init.constant_(m.bias, 0.0)

    def forward(self, x):
        out = self.conv1(x)
        for stage in (1, 2, 3):
            out = getattr(self, "block%d" % stage).layer(out)
        out = self.act(self.bn1(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def reference(model):
    """The PyTorch module for a zoo model object, freshly initialised, and the state_dict keys
    the engine leaves out."""
    arch, classes = model["arch"], model["classes"]
    if arch == "small-cnn":
        return SmallCNN(classes), set()
    if arch.startswith("wrn-"):
        depth, k = map(int, arch[4:].split("-"))
        fixmatch = model.get("variant") == "fixmatch"
        m = WideResNet(depth, k, classes, fixmatch)
        unused = set()
        if fixmatch:
            for name, mod in m.named_modules():
                if isinstance(mod, WrnBlock) and not mod.equal and not mod.abr:
                    unused |= {name + ".bn1." + p for p in
                               ("weight", "bias", "running_mean", "running_var")}
        return m, unused
    depth = int(arch[7:])
    if depth in (20, 32, 44, 56, 110):
        return CifarResNet(depth, classes), set()
    import torchvision
    return getattr(torchvision.models, "resnet%d" % depth)(num_classes=classes), set()


# ---- checks ----------------------------------------------------------------------------------

def same_law(got, want):
    """Whether got's elements could come from want's law: equal when want is constant, else a
    two-sample KS test (None when the tensor is too small to test)."""
    want = want.detach().numpy().ravel()
    if np.all(want == want[0]):
        return bool(np.all(got == want[0]))
    if got.size < KS_MIN_SIZE:
        return None
    import scipy.stats
    return bool(scipy.stats.ks_2samp(got.ravel(), want).pvalue > P_MIN)


def check_case(folder, case, failures):
    name = case["name"]

    def fail(msg):
        failures.append("%s: %s" % (name, msg))

    path = os.path.join(folder, name + ".onnx")
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
    if not opset or opset[0] < 13:
        fail("opset %s; 13 or later expected" % opset)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}

    torch.manual_seed(0)
    module, unused = reference(case["model"])
    module.eval()
    fresh = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    if set(inits) != set(fresh) - unused:
        fail("initializers differ from the state_dict: only in ONNX %s, only in PyTorch %s" %
             (sorted(set(inits) - set(fresh)), sorted(set(fresh) - unused - set(inits))))
        return
    params = sum(p.numel() for n, p in module.named_parameters() if n not in unused)
    if params != case["parameters"]:
        fail("%d parameters in PyTorch, %d in the engine" % (params, case["parameters"]))

    if case.get("new_head"):
        check_new_head(module, inits, fresh, fail)
    if not case["trained"]:
        check_laws(name, inits, fresh, fail)
    compare_logits(folder, case, module, unused, inits, fail)


def check_new_head(module, inits, fresh, fail):
    """A head from train_model_new_head (engine/train/finetune.c) is drawn as a fresh
    nn.Linear, whatever law the architecture's reference gives its own classifier: fresh's head
    becomes such a Linear's for check_laws, and the new weight must fail the reference's law
    (the cases' references draw theirs otherwise), so the test tells the two apart."""
    fc = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)][-1]
    own = fresh[fc + ".weight"]
    linear = nn.Linear(own.shape[1], own.shape[0])
    fresh[fc + ".weight"], fresh[fc + ".bias"] = linear.weight, linear.bias
    if same_law(inits[fc + ".weight"], own) is not False:
        fail("the new head's weight is not told from the reference's own head law")


def check_laws(name, inits, fresh, fail):
    """The initial weights against the reference's laws, and the negative controls."""
    tested = 0
    for key, value in inits.items():
        if tuple(value.shape) != tuple(fresh[key].shape):
            fail("%s has shape %s, PyTorch %s" % (key, value.shape, tuple(fresh[key].shape)))
            continue
        verdict = same_law(value, fresh[key])
        if verdict is False:
            fail("%s does not follow the reference's initial law" % key)
        tested += verdict is not None
    if not tested:
        fail("no initializer was tested")
    print("%-26s %3d initial tensors follow the reference's laws" % (name, tested))

    # Negative controls: the test tells a wrong law from the right one on every weight large
    # enough, so its passes above mean something.
    for key, value in inits.items():
        if value.ndim != 4 or value.size < 9216:
            continue
        default = torch.empty(value.shape)
        nn.init.kaiming_uniform_(default, a=math.sqrt(5))  # PyTorch's default for a Conv2d
        if name != "small_cnn" and same_law(value, default):
            fail("%s: PyTorch's default law is not rejected" % key)
        std = float(fresh[key].std())
        uniform = (torch.rand(value.shape) * 2 - 1) * std * math.sqrt(3)
        if name != "small_cnn" and same_law(value, uniform):
            fail("%s: a uniform law of the same variance is not rejected" % key)



def compare_logits(folder, case, module, unused, inits, fail):
    """The engine's logits against PyTorch's with the model's initializers loaded by name."""
    name = case["name"]
    state = {k: torch.from_numpy(v.copy()) for k, v in inits.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected or set(k for k in missing if not k.endswith("num_batches_tracked")) != unused:
        fail("load_state_dict: missing %s, unexpected %s" % (missing, unexpected))
    shape = case["input"]
    x = np.fromfile(os.path.join(folder, name + ".input.f32"), dtype="<f4").reshape(shape)
    want = np.fromfile(os.path.join(folder, name + ".logits.f32"),
                       dtype="<f4").reshape(shape[0], case["classes"])
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    scale = max(1.0, float(np.abs(got).max()))
    worst = float(np.abs(got - want).max())
    print("%-26s logits within %.2e (scale %.2f)" % (name, worst, scale))
    if not worst <= 1e-5 * scale:
        fail("PyTorch's logits differ from the engine's by %g (scale %g)" % (worst, scale))


def main():
    try:
        import scipy.stats  # noqa: F401 (same_law's)
    except ImportError as e:
        print("skipped: %s" % e)
        sys.exit(77)
    return check_cases(sys.argv[1], check_case)


def check_cases(folder, check):
    """check(folder, case, failures) on each case of folder's manifest.json (gen_zoo_noise.py's
    too): the exit status, 1 when any failed or there were none."""
    with open(os.path.join(folder, "manifest.json")) as f:
        cases = json.load(f)
    torch.set_num_threads(2)
    failures = []
    for case in cases:
        check(folder, case, failures)
    for msg in failures:
        print("FAIL " + msg)
    return 1 if failures or not cases else 0


if __name__ == "__main__":
    sys.exit(main())

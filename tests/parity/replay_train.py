#!/usr/bin/python3
"""The ten SGD steps of ResNet-20 and WRN-16-2 (gen_train.py's cases with kinks) replayed in
float64 on the engine's sides of the ReLU kinks, against the engine's steps that
tests/unit/test_train_plan_parity.c recorded (ctest's parity.train.replay, after parity.train).

    /usr/bin/python3 tests/parity/replay_train.py DIR

Why. Each of those steps passes ~1-2.5 million activation inputs through a ReLU; a few lie within
float32 rounding of 0, two float32 implementations put them on different sides of the kink, and
the later steps amplify the difference: no float32 implementation stays within 1e-4 of another
one, nor of float64 (PyTorch's own float32 steps end 6e-3 from its float64 ones on WRN-16-2).
So the reference here takes each kink's side from the engine: every Relu and LeakyRelu of the
model (gen_train.py's activations(), in the graph's order, which is PyTorch's call order) applies
the engine's mask of that step (forward x * slope, backward dy * slope, the slope 1 where the
engine's input was > 0 and the negative slope elsewhere), with everything else in float64 from
the same initial weights (the ONNX file's), batch and labels: gen_train.py's steps_of
(F.cross_entropy, torch.optim.SGD under its STEPS settings, the manifest's "steps").

What it asserts, for each recorded run (DIR/engine_steps.json):
- parameters: every parameter and BatchNorm buffer after the steps within 1e-4 of the replay's
  tensor's largest magnitude (max |engine - replay| <= 1e-4 max |replay|, per tensor);
- the masks are right: wherever the engine's side differs from the sign of the replay's float64
  input x64 (a disagreement), |x64| <= BOUND x rms(x64), rms over that activation's input in that
  step, and there are at most MAX_DISAGREEMENTS of them in the run (both derived below).
The runs under the steps' settings (on blocked and on plain Conv) must pass; the engine's runs
with no weight decay, momentum 0.8 or no Nesterov must fail (each is printed with why).
Without torch (the manifest says skipped) it exits 77, ctest's skip.
"""
import json
import os
import sys

# BOUND: how far from the kink a disagreement may lie, as a fraction of the activation input's
# rms in that step. The engine's float32 input x32 differs from the replay's x64 by
# - this step's rounding: a Conv output sums K = C x 9 products (27 to 1152 here); with unit
#   round-off u = 2^-24 its error is at most about K u sum |w a| (Higham's gamma_K), and for
#   rounding errors of random signs, which add up as a random walk, about sqrt(K) u times the
#   output's rms (34 u = 2e-6 rms at K = 1152). BatchNorm scales the output and its error alike,
#   so relative to its output's rms the error stays, plus a few u of its own arithmetic;
# - the steps before: the engine's weights differ from the replay's by their rounding only (the
#   masks being the same), which ends within ~4e-6 of each tensor's magnitude, and moves x by
#   about as much relative to its rms.
# A disagreement needs |x64| < |x32 - x64|. BOUND = 2^-14 = 1024 u (6.1e-5 rms) is 30 times the
# typical error of the widest layer's step and above the trajectory's; the worst case K sqrt(K) u
# (4e4 u) needs every rounding of a sum to go the same way. The runs here disagree at 4e-8 to
# 1.4e-6 rms. A wrong mask (a ReLU wrong on any element not next to 0) lies far beyond.
BOUND = 2.0 ** -14
# MAX_DISAGREEMENTS: with a density of the inputs near 0 of at most 0.4 / rms (BatchNorm's outputs
# are close to normal, and 0.4 is a normal density's peak), a run of N inputs (10 steps of 1.5
# million for ResNet-20, of 2 million for WRN-16-2) has about N x 2 x 0.4 x E|x32 - x64| / rms
# disagreements: 2-5 here (an E|error| of ~3e-7 rms). 40 is ten times that; an error of 2e-6 rms
# on every input, the widest layer's estimate above, would give ~30. A wrong engine disagrees on
# hundreds (no weight decay) to tens of thousands (momentum 0.8, no Nesterov) of inputs.
MAX_DISAGREEMENTS = 40
# The "within 1e-4": max |engine - replay| <= TOLERANCE x max |replay|, per tensor, for
# every parameter and BatchNorm buffer (the C test's metric against PyTorch's float32 steps).
TOLERANCE = 1e-4


def load_case(case, out_dir):
    """The case's model (gen_train.py's constructor) in float64 with the ONNX file's initial
    weights, the batch and the labels."""
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    import gen_train
    ctor = {name: ctor for name, ctor, _, _ in gen_train.CASES}[case["name"]]
    model = ctor()
    weights = {init.name: torch.from_numpy(numpy_helper.to_array(init).copy())
               for init in onnx.load(os.path.join(out_dir, case["model"])).graph.initializer}
    state = model.state_dict()
    missing = [k for k in state if k not in weights and not k.endswith("num_batches_tracked")]
    if missing:
        sys.exit("%s: the ONNX file has no %s" % (case["name"], ", ".join(missing)))
    model.load_state_dict({k: weights.get(k, v) for k, v in state.items()})
    model.double().train()
    x = np.fromfile(os.path.join(out_dir, case["input"]), "<f4").reshape(case["input_shape"])
    labels = np.fromfile(os.path.join(out_dir, case["steps"]["labels"]), "<i4")
    return model, torch.from_numpy(x).double(), torch.from_numpy(labels).long()


def masks_of(run, out_dir, steps):
    """The run's masks: per step, per activation, a bool tensor (True: the engine's input > 0)."""
    import numpy as np
    import torch
    bits = np.fromfile(os.path.join(out_dir, run["masks"]), np.uint8)
    at, out = 0, []
    for _ in range(steps):
        step = []
        for act in run["activations"]:
            size = (act["count"] + 7) // 8
            mask = np.unpackbits(bits[at:at + size], bitorder="little")[:act["count"]]
            step.append(torch.from_numpy(mask.astype(bool)))
            at += size
        out.append(step)
    if at != bits.size:
        sys.exit("%s: %d bytes of masks, %d expected" % (run["masks"], bits.size, at))
    return out


class MasksFail(Exception):
    """Raised by the replay's activations once the masks fail their check (masks_fail)."""


def replay(model, x, labels, masks, alphas):
    """gen_train.py's steps_of (STEPS' SGD steps) on a copy of model in float64, each activation
    on the engine's side of its kink. Returns the parameters and buffers after them (None when
    the masks failed their check: the replay stops where they do, as a wrong engine's soon do),
    and the disagreements: (step, activation, element, |x64| / rms(x64)) where the engine's side
    is not x64's."""
    import copy

    import torch

    import gen_train

    class Masked(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t, slope):
            ctx.save_for_backward(slope)
            return t * slope

        @staticmethod
        def backward(ctx, g):
            return g * ctx.saved_tensors[0], None

    disagreements, calls = [], []

    def act(t, alpha, step, k):
        if k >= len(alphas) or abs(alpha - alphas[k]) > 1e-6:
            sys.exit("step %d: the model's activation %d (slope %g) is not the engine's" %
                     (step, k, alpha))
        calls.append(k)
        mask = masks[step][k].view(t.shape)
        x64 = t.detach().view(-1)
        where = (mask.view(-1) != (x64 > 0)).nonzero().view(-1)
        margins = (x64[where].abs() / x64.pow(2).mean().sqrt()).tolist()
        disagreements.extend((step, k, i, d) for i, d in zip(where.tolist(), margins))
        if masks_fail(disagreements):
            raise MasksFail()
        return Masked.apply(t, torch.where(mask, torch.ones_like(t), torch.full_like(t, alpha)))

    try:
        tensors = gen_train.steps_of(copy.deepcopy(model), x, labels, act)
    except MasksFail:
        return None, disagreements
    if len(calls) != len(masks) * len(alphas):
        sys.exit("the model called %d activations in %d steps, the engine's graph has %d" %
                 (len(calls), len(masks), len(alphas)))
    return tensors, disagreements


def masks_fail(disagreements):
    """Why the disagreements so far fail the masks' check (BOUND, MAX_DISAGREEMENTS), or None."""
    far = max(disagreements, key=lambda d: d[3], default=None)
    if far and far[3] > BOUND:
        return "step %d activation %d element %d is %.3g of its input's rms from the kink, " \
            "above %.3g" % (far[0], far[1], far[2], far[3], BOUND)
    if len(disagreements) > MAX_DISAGREEMENTS:
        return "%d disagreements by step %d, more than %d" % (len(disagreements),
                                                             disagreements[-1][0],
                                                             MAX_DISAGREEMENTS)
    return None


def check_run(case, run, model, x, labels, out_dir):
    """The run's verdict: None when it passes, else why not; prints what it found."""
    import numpy as np
    steps = case["steps"]
    alphas = [a["alpha"] for a in run["activations"]]
    ref, disagreements = replay(model, x, labels, masks_of(run, out_dir, steps["count"]), alphas)
    per_step = [sum(1 for d in disagreements if d[0] == k) for k in range(steps["count"])]
    per_act = {}
    for d in disagreements:
        per_act[d[1]] = per_act.get(d[1], 0) + 1
    print("%s %s: %d disagreements with the float64 signs (per step %s; per activation %s)%s" %
          (case["name"], run["run"], len(disagreements), per_step, per_act,
           "".join(" [step %d activation %d element %d: %.3g of its rms]" % d
                   for d in sorted(disagreements, key=lambda d: -d[3])[:3])))
    why = masks_fail(disagreements)
    if why:
        return why
    got = np.fromfile(os.path.join(out_dir, run["params"]), "<f4")
    names = [p["name"] for p in case["params"]] + [b["name"] for b in case["buffers"]]
    if got.size != sum(t.numel() for t in ref):
        sys.exit("%s: %d floats, %d expected" % (run["params"], got.size,
                                                 sum(t.numel() for t in ref)))
    worst, at = (0.0, None), 0
    for name, t in zip(names, ref):
        r = t.numpy().ravel()
        ours = got[at:at + r.size].astype(np.float64)
        at += r.size
        gap = np.abs(ours - r)
        i = int(gap.argmax())
        worst = max(worst, (float(gap[i] / np.abs(r).max()), (name, i, ours[i], r[i])))
    print("  the largest gap: %.3g of its tensor's largest magnitude (%s element %d: %.9g, the "
          "replay's %.9g)" % ((worst[0],) + worst[1]))
    if worst[0] > TOLERANCE:
        return "%s element %d is %.9g, the replay's %.9g: %.3g of the tensor's largest " \
            "magnitude, above %g" % (worst[1] + (worst[0], TOLERANCE))
    return None


def main():
    out_dir = sys.argv[1]
    with open(os.path.join(out_dir, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("skipped"):
        print("skipped: " + manifest["skipped"])
        sys.exit(77)
    with open(os.path.join(out_dir, "engine_steps.json")) as f:
        runs = json.load(f)["runs"]
    import torch
    torch.set_num_threads(1)  # ctest -j2 runs another test beside it
    failed = []
    for case in manifest["cases"]:
        if "kinks" not in case:
            continue
        import gen_train
        if any(case["steps"][k] != v for k, v in gen_train.STEPS.items()):
            sys.exit("%s: the manifest's steps are not gen_train.py's STEPS" % case["name"])
        model, x, labels = load_case(case, out_dir)
        mine = [r for r in runs if r["case"] == case["name"]]
        if sorted(r["run"] for r in mine) != sorted(
                ["blocked", "plain", "no-weight-decay", "momentum-0.8", "no-nesterov"]):
            sys.exit("%s: engine_steps.json has the runs %s" % (case["name"],
                                                                [r["run"] for r in mine]))
        for run in mine:
            why = check_run(case, run, model, x, labels, out_dir)
            right = run["run"] in ("blocked", "plain")
            if right and why:
                failed.append("%s %s: %s" % (case["name"], run["run"], why))
            elif not right and not why:
                failed.append("%s: the engine's steps with %s pass" % (case["name"], run["run"]))
            elif not right:
                print("  rejected as it must be: " + why)
    for f in failed:
        print("FAILED: " + f)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()

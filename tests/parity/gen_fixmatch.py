#!/usr/bin/python3
"""One FixMatch step in PyTorch 1.13 for tests/unit/test_fixmatch_parity.c: the reference step
(google-research/fixmatch's fixmatch.py, in kekmodel/FixMatch-pytorch's PyTorch form: train.py's
loss, its SGD with Nesterov momentum and the weight decay on every parameter but those named
"bias" or "bn", its cosine schedule and models/ema.py's ModelEMA) on a small CNN and a fixed
batch of labeled weak views, unlabeled weak views and their strong views, given as tensors.

    /usr/bin/python3 tests/parity/gen_fixmatch.py OUT_DIR

writes OUT_DIR/manifest.json and the case's files (raw little-endian float32, labels int32):
the model (ONNX, opset 14, exported in training mode so that BatchNormalization stays a node
with its running statistics as initializers, as gen_train.py does), the batch, and after the
step: the logits, the loss and its two terms, the pseudo-labels and the mask, every parameter's
gradient, every parameter and buffer after the optimiser's step, and the EMA's parameters and
buffers. The checked-in fixture is tests/parity/fixtures/fixmatch (a few tens of kB).

The model is the zoo's small-cnn (gen_zoo.py's SmallCNN: three Conv-BatchNorm-ReLU stages with
max pooling between them, global average pooling, a Linear head) at widths 8, 16, 16 instead of
32, 64, 128, so that the fixture stays small; its head is scaled (HEAD_SCALE) so that some weak
views clear tau = 0.95 and some do not, and the seed is the first from SEED on which
  - the mask has both values and no weak view's top probability is within TAU_MARGIN of tau
    (float32 rounding cannot move a row across the threshold), and
  - no ReLU input is within KINK_MARGIN x its tensor's root mean square of 0 (rounding cannot
    move an activation across the kink: gen_train.py's "Kink crossings"),
so that the engine's step must agree with this one to rounding.
"""
import copy
import json
import math
import os
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import onnx  # noqa: F401 (export_training's)
except ImportError as e:
    print("skipped: %s" % e)
    sys.exit(77)

from gen_torchvision import randomize_batchnorm
from gen_train import export_training

B, MU, CLASSES, SIZE = 2, 2, 10, 8
TAU, LAMBDA_U = 0.95, 1.0
LR, MOMENTUM, WEIGHT_DECAY, EMA = 0.03, 0.9, 5e-4, 0.999
STEP, TOTAL = 5, 16  # the schedule's step k of K: lr = LR cos(7 pi k / (16 K))
HEAD_SCALE = 12.0
SEED = 1
TAU_MARGIN = 1e-3
KINK_MARGIN = 1e-4


class TinyCNN(nn.Module):
    """gen_zoo.py's SmallCNN at widths 8, 16, 16."""

    def __init__(self, classes, widths=(8, 16, 16)):
        super().__init__()
        c = 3
        for i, w in enumerate(widths, 1):
            setattr(self, "conv%d" % i, nn.Conv2d(c, w, 3, padding=1, bias=False))
            setattr(self, "bn%d" % i, nn.BatchNorm2d(w))
            c = w
        self.fc = nn.Linear(c, classes)
        self.relu_inputs = None

    def forward(self, x):
        for i in (1, 2, 3):
            t = getattr(self, "bn%d" % i)(getattr(self, "conv%d" % i)(x))
            if self.relu_inputs is not None:
                self.relu_inputs.append(t.detach())
            x = F.relu(t)
            if i < 3:
                x = F.max_pool2d(x, 2)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def fixmatch_loss(logits, labels):
    """kekmodel/FixMatch-pytorch train.py's loss (T = 1, no interleave: one device)."""
    logits_x = logits[:B]
    logits_u_w, logits_u_s = logits[B:].chunk(2)
    lx = F.cross_entropy(logits_x, labels, reduction="mean")
    pseudo = torch.softmax(logits_u_w.detach(), dim=-1)
    max_probs, targets_u = torch.max(pseudo, dim=-1)
    mask = max_probs.ge(TAU).float()
    lu = (F.cross_entropy(logits_u_s, targets_u, reduction="none") * mask).mean()
    return lx + LAMBDA_U * lu, lx, lu, targets_u, mask, max_probs


def optimizer(model):
    """train.py's: no weight decay on parameters named bias or bn."""
    no_decay = ["bias", "bn"]
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
         "weight_decay": WEIGHT_DECAY},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)],
         "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM, nesterov=True)


def lr_at(step, total):
    """get_cosine_schedule_with_warmup(num_warmup_steps=0, num_cycles=7/16)'s factor."""
    return LR * max(0.0, math.cos(math.pi * (7.0 / 16.0) * float(step) / float(max(1, total))))


def candidate(seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    model = TinyCNN(CLASSES)
    randomize_batchnorm(model, gen)
    with torch.no_grad():
        model.fc.weight.mul_(HEAD_SCALE)
    x = torch.rand(B * (1 + 2 * MU), 3, SIZE, SIZE, generator=gen) * 2 - 1
    labels = torch.randint(0, CLASSES, (B,), generator=gen)
    probe = copy.deepcopy(model)
    probe.train()
    probe.relu_inputs = []
    with torch.no_grad():
        logits = probe(x)
    _, _, _, _, mask, top = fixmatch_loss(logits, labels)
    if not (0 < float(mask.sum()) < MU * B):
        return None
    if float((top.double() - TAU).abs().min()) < TAU_MARGIN:
        return None
    for t in probe.relu_inputs:
        if float((t.abs() / t.pow(2).mean().sqrt()).min()) < KINK_MARGIN:
            return None
    return model, x, labels


def write(out_dir, name, tensors):
    flat = [t.detach().float().reshape(-1) for t in tensors]
    torch.cat(flat).numpy().astype("<f4").tofile(os.path.join(out_dir, name))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "fixmatch-parity"
    os.makedirs(out_dir, exist_ok=True)
    for seed in range(SEED, SEED + 1000):
        found = candidate(seed)
        if found:
            break
    else:
        sys.exit("no seed gives a mixed mask away from the kinks")
    model, x, labels = found
    start = {k: v.clone() for k, v in model.state_dict().items()}
    export_training(model, x, os.path.join(out_dir, "model.onnx"), start, "input")

    model.load_state_dict(start)
    model.train()
    ema = copy.deepcopy(model)
    opt = optimizer(model)
    lr = lr_at(STEP, TOTAL)
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    logits = model(x)
    loss, lx, lu, pseudo, mask, top = fixmatch_loss(logits, labels)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    # models/ema.py's ModelEMA.update: parameters averaged, buffers copied.
    with torch.no_grad():
        msd, esd = model.state_dict(), ema.state_dict()
        param_keys = [k for k, _ in model.named_parameters()]
        buffer_keys = [k for k, _ in model.named_buffers() if not k.endswith("num_batches_tracked")]
        for k in param_keys:
            esd[k].copy_(esd[k] * EMA + (1.0 - EMA) * msd[k].detach())
        for k in buffer_keys:
            esd[k].copy_(msd[k])

    params = dict(model.named_parameters())
    buffers = {k: v for k, v in model.named_buffers() if k in buffer_keys}
    case = {"batch": B, "mu": MU, "classes": CLASSES, "size": SIZE, "tau": TAU,
            "lambda_u": LAMBDA_U, "lr": LR, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY,
            "ema": EMA, "step": STEP, "total": TOTAL, "step_lr": lr, "seed": seed,
            "loss": float(loss), "labeled_loss": float(lx), "unlabeled_loss": float(lu),
            "pseudo": pseudo.tolist(), "mask": mask.tolist(), "top": top.tolist(),
            "model": "model.onnx", "input": "input.f32", "labels": "labels.i32",
            "logits": "logits.f32", "grads": "grads.f32", "after": "after.f32", "ema_file": "ema.f32",
            "params": [], "buffers": []}
    offset = 0
    for k in param_keys:
        case["params"].append({"name": k, "count": params[k].numel(), "offset": offset,
                               "no_decay": any(nd in k for nd in ("bias", "bn"))})
        offset += params[k].numel()
    for k in buffer_keys:
        case["buffers"].append({"name": k, "count": buffers[k].numel(), "offset": offset})
        offset += buffers[k].numel()
    # How far the step moves each parameter (relative to its norm): the test's tolerance must be
    # far below it, or a wrong update would pass.
    case["smallest_move"] = min(float((params[k].detach() - start[k]).norm() / start[k].norm())
                                for k in param_keys)
    write(out_dir, "input.f32", [x])
    labels.numpy().astype("<i4").tofile(os.path.join(out_dir, "labels.i32"))
    write(out_dir, "logits.f32", [logits])
    write(out_dir, "grads.f32", grads)
    write(out_dir, "after.f32", [params[k] for k in param_keys] + [buffers[k] for k in buffer_keys])
    write(out_dir, "ema.f32", [esd[k] for k in param_keys] + [esd[k] for k in buffer_keys])
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    print("seed %d: loss %.6f (Lx %.6f, Lu %.6f), mask %s, lr %.6f, smallest move %.3g"
          % (seed, float(loss), float(lx), float(lu), mask.tolist(), lr, case["smallest_move"]))


if __name__ == "__main__":
    main()

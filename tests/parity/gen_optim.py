"""Parity fixtures for engine/train's optimisers, schedules, clipping, EMA and losses, checked by
tests/unit/test_train_parity.c.

References (PyTorch 1.13, Debian's python3-torch):
- optim.json: torch.optim.SGD (momentum, Nesterov, weight decay; no_decay tensors in a second
  param group with weight_decay 0, as FixMatch groups them) and torch.optim.AdamW, foreach=False,
  10 steps over a few float32 tensors with given gradients and a learning rate set per step; a
  gradient of null is a frozen step (p.grad = None). Every step's parameters are recorded.
- schedule.json: the learning rate PyTorch's schedulers give at each step: StepLR, MultiStepLR,
  CosineAnnealingLR (T_max = total), FixMatch's LambdaLR (kekmodel/FixMatch-pytorch, train.py,
  num_cycles 7/16, warm-up), and warm-up followed by MultiStepLR or CosineAnnealingLR through
  SequentialLR (a LambdaLR warm-up, step / warmup, then the scheduler over total - warmup steps).
- clip.json: torch.nn.utils.clip_grad_norm_ (norm_type 2): the total norm and the gradients after.
- ema.json: FixMatch's ModelEMA.update (models/ema.py: parameters averaged with decay, buffers
  copied) over a Conv2d + BatchNorm2d model trained a few SGD steps in training mode.
- loss.json: F.cross_entropy with label_smoothing (class indices, and probabilities), FixMatch's
  masked mean (F.cross_entropy(..., reduction='none') * mask).mean(), and AugMix's JSD
  (google-research/augmix, cifar.py); values and gradients by autograd in float64 on the float32
  logits.

Re-run with Debian's Python, which has torch (the pyenv python3 on PATH has none):

    /usr/bin/python3 tests/parity/gen_optim.py

It is deterministic: it rewrites tests/parity/fixtures/optim/*.json with the same content.
"""
import json
import math
import os
import warnings

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "optim")


def floats(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def optim_case(name, config, shapes, no_decay, steps, seed, frozen=()):
    """frozen: (step, tensor) pairs whose gradient is None at that step."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=g).requires_grad_() for s in shapes]
    init = [floats(p) for p in params]
    kind = config["kind"]
    wd = config["weight_decay"]
    groups = [{"params": [p for p, nd in zip(params, no_decay) if not (nd and config["exclude_no_decay"])]},
              {"params": [p for p, nd in zip(params, no_decay) if nd and config["exclude_no_decay"]],
               "weight_decay": 0.0}]
    groups = [gr for gr in groups if gr["params"]]
    if kind == "sgd":
        opt = torch.optim.SGD(groups, lr=0.1, momentum=config["momentum"],
                              nesterov=config["nesterov"], weight_decay=wd, foreach=False)
    else:
        opt = torch.optim.AdamW(groups, lr=0.1, betas=(config["beta1"], config["beta2"]),
                                eps=config["eps"], weight_decay=wd, foreach=False)
    lrs, grads, expected = [], [], []
    for k in range(steps):
        lr = 0.05 + 0.05 * math.cos(math.pi * k / steps)  # a rate that changes every step
        for group in opt.param_groups:
            group["lr"] = lr
        step_grads = []
        for i, p in enumerate(params):
            if (k, i) in frozen:
                p.grad = None
                step_grads.append(None)
            else:
                p.grad = torch.randn(p.shape, generator=g)
                step_grads.append(floats(p.grad))
        opt.step()
        lrs.append(lr)
        grads.append(step_grads)
        expected.append([floats(p) for p in params])
    return {"name": name, "config": config, "lrs": lrs,
            "params": [{"name": "t%d" % i, "no_decay": nd, "init": v}
                       for i, (nd, v) in enumerate(zip(no_decay, init))],
            "grads": grads, "expected": expected}


def optim_cases():
    sgd = {"kind": "sgd", "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4,
           "exclude_no_decay": False}
    adamw = {"kind": "adamw", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01,
             "exclude_no_decay": False}
    shapes = [(4, 3), (3,), (2, 2, 2)]
    no_decay = [False, True, True]
    return [
        optim_case("sgd plain", dict(sgd, momentum=0.0, weight_decay=0.0), shapes, no_decay, 10, 1),
        optim_case("sgd momentum", sgd, shapes, no_decay, 10, 2),
        optim_case("sgd nesterov", dict(sgd, nesterov=True), shapes, no_decay, 10, 3),
        optim_case("sgd nesterov no_decay excluded", dict(sgd, nesterov=True, weight_decay=0.05,
                                                          exclude_no_decay=True),
                   shapes, no_decay, 10, 4),
        optim_case("sgd nesterov frozen steps", dict(sgd, nesterov=True), shapes, no_decay, 10, 5,
                   frozen={(0, 1), (3, 1), (4, 2)}),
        optim_case("adamw", adamw, shapes, no_decay, 10, 6),
        optim_case("adamw no_decay excluded", dict(adamw, weight_decay=0.1, exclude_no_decay=True),
                   shapes, no_decay, 10, 7),
        optim_case("adamw frozen steps", dict(adamw, beta1=0.8, beta2=0.99, eps=1e-6), shapes,
                   no_decay, 10, 8, frozen={(0, 0), (1, 0), (5, 2)}),
    ]


def lrs_of(make, total, lr=0.1):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def fixmatch_lambda(warmup, total):
    """kekmodel/FixMatch-pytorch train.py's get_cosine_schedule_with_warmup, num_cycles 7/16."""
    def f(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        no_progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0., math.cos(math.pi * (7. / 16.) * no_progress))
    return f


def warmed(make, warmup):
    def build(opt):
        ramp = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: s / warmup)
        return torch.optim.lr_scheduler.SequentialLR(opt, [ramp, make(opt)], milestones=[warmup])
    return build


def schedule_cases():
    sched = torch.optim.lr_scheduler
    base = {"lr": 0.1, "warmup": 0, "step_size": 0, "milestones": [], "gamma": 1.0, "min_lr": 0.0}
    cases = [
        (dict(base, kind="constant"), 5, lambda o: sched.LambdaLR(o, lambda s: 1.0)),
        (dict(base, kind="step", step_size=3, gamma=0.5), 10,
         lambda o: sched.StepLR(o, step_size=3, gamma=0.5)),
        (dict(base, kind="multistep", milestones=[2, 5, 7], gamma=0.1), 10,
         lambda o: sched.MultiStepLR(o, milestones=[2, 5, 7], gamma=0.1)),
        (dict(base, kind="cosine", min_lr=0.001), 12,
         lambda o: sched.CosineAnnealingLR(o, T_max=12, eta_min=0.001)),
        (dict(base, kind="fixmatch"), 20, lambda o: sched.LambdaLR(o, fixmatch_lambda(0, 20))),
        (dict(base, kind="fixmatch", warmup=3), 20,
         lambda o: sched.LambdaLR(o, fixmatch_lambda(3, 20))),
        (dict(base, kind="cosine", warmup=4), 16,
         warmed(lambda o: sched.CosineAnnealingLR(o, T_max=12), 4)),
        (dict(base, kind="multistep", warmup=2, milestones=[3, 6], gamma=0.2), 12,
         warmed(lambda o: sched.MultiStepLR(o, milestones=[3, 6], gamma=0.2), 2)),
    ]
    return [{"config": c, "total": total, "expected": lrs_of(make, total)}
            for c, total, make in cases]


def clip_cases():
    g = torch.Generator().manual_seed(11)
    out = []
    for max_norm, scale, frozen in ((1.0, 1.0, None), (100.0, 1.0, None), (0.5, 3.0, 1)):
        params = [torch.zeros(s, requires_grad=True) for s in ((5, 2), (7,), (3, 3))]
        for i, p in enumerate(params):
            p.grad = None if i == frozen else torch.randn(p.shape, generator=g) * scale
        grads = [None if p.grad is None else floats(p.grad) for p in params]
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        out.append({"max_norm": max_norm, "grads": grads, "total_norm": float(norm),
                    "expected": [None if p.grad is None else floats(p.grad) for p in params]})
    return out


class ModelEMA:
    """kekmodel/FixMatch-pytorch models/ema.py's update: parameters averaged, buffers copied."""

    def __init__(self, model, decay):
        import copy
        self.ema = copy.deepcopy(model)
        self.decay = decay
        self.param_keys = [k for k, _ in self.ema.named_parameters()]
        self.buffer_keys = [k for k, _ in self.ema.named_buffers()]

    def update(self, model):
        with torch.no_grad():
            msd = model.state_dict()
            esd = self.ema.state_dict()
            for k in self.param_keys:
                esd[k].copy_(esd[k] * self.decay + (1. - self.decay) * msd[k].detach())
            for k in self.buffer_keys:
                esd[k].copy_(msd[k])


def ema_case():
    torch.manual_seed(12)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3, momentum=0.3))
    model.train()
    ema = ModelEMA(model, 0.9)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    params = [k for k, _ in model.named_parameters()]
    buffers = [k for k, v in model.named_buffers() if v.is_floating_point()]
    state = lambda sd, keys: [floats(sd[k]) for k in keys]
    case = {"decay": 0.9, "params": params, "buffers": buffers,
            "init": state(model.state_dict(), params + buffers), "steps": []}
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(4, 2, 5, 5)).square().mean().backward()
        opt.step()
        ema.update(model)
        case["steps"].append({"model": state(model.state_dict(), params + buffers),
                              "expected": state(ema.ema.state_dict(), params + buffers)})
    return case


def loss_cases():
    g = torch.Generator().manual_seed(13)
    out = []

    def logits_of(batch, classes, scale):
        return (torch.randn(batch, classes, generator=g) * scale).float()

    def ce(name, z, target, smoothing, mask=None):
        x = z.double().requires_grad_()
        t = target.double() if target.is_floating_point() else target
        if mask is None:
            loss = F.cross_entropy(x, t, label_smoothing=smoothing)
        else:
            loss = (F.cross_entropy(x, t, reduction="none", label_smoothing=smoothing) *
                    mask.double()).mean()
        loss.backward()
        case = {"kind": "ce", "name": name, "batch": z.shape[0], "classes": z.shape[1],
                "logits": floats(z), "smoothing": smoothing, "loss": loss.item(),
                "grad": x.grad.reshape(-1).tolist()}
        if target.is_floating_point():
            case["probs"] = floats(target)
        else:
            case["labels"] = target.tolist()
        if mask is not None:
            case["weights"] = floats(mask)
        out.append(case)

    z = logits_of(6, 5, 2.0)
    labels = torch.randint(0, 5, (6,), generator=g)
    ce("labels", z, labels, 0.0)
    ce("labels smoothed", z, labels, 0.1)
    ce("large logits", logits_of(4, 10, 40.0), torch.randint(0, 10, (4,), generator=g), 0.0)
    probs = torch.softmax(torch.randn(6, 5, generator=g), dim=1).float()
    ce("probabilities smoothed", z, probs, 0.2)
    mask = (torch.rand(6, generator=g) > 0.4).float()
    ce("FixMatch mask", z, labels, 0.0, mask)

    def jsd(name, views):
        xs = [v.double().requires_grad_() for v in views]
        p_clean, p_aug1, p_aug2 = (F.softmax(x, dim=1) for x in xs)
        p_mixture = torch.clamp((p_clean + p_aug1 + p_aug2) / 3., 1e-7, 1).log()
        clamped = int(((p_clean + p_aug1 + p_aug2) / 3. < 1e-7).sum())
        assert (clamped > 0) == ("clamped" in name), name
        loss = 12 * (F.kl_div(p_mixture, p_clean, reduction='batchmean') +
                     F.kl_div(p_mixture, p_aug1, reduction='batchmean') +
                     F.kl_div(p_mixture, p_aug2, reduction='batchmean')) / 3.
        loss.backward()
        out.append({"kind": "jsd", "name": name, "batch": views[0].shape[0],
                    "classes": views[0].shape[1], "weight": 12.0,
                    "logits": [floats(v) for v in views], "loss": loss.item(),
                    "grad": [x.grad.reshape(-1).tolist() for x in xs]})

    jsd("views", [logits_of(5, 7, 1.5) for _ in range(3)])
    # Confident, disagreeing views: part of the mixture falls under 1e-7 and is clamped.
    jsd("clamped mixture", [logits_of(3, 6, 12.0) for _ in range(3)])
    return out


def main():
    warnings.filterwarnings("ignore")  # SequentialLR's own deprecation warning
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    files = {"optim.json": {"cases": optim_cases()}, "schedule.json": {"cases": schedule_cases()},
             "clip.json": {"cases": clip_cases()}, "ema.json": ema_case(),
             "loss.json": {"cases": loss_cases()}}
    for name, doc in files.items():
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(doc, f, indent=None, separators=(",", ":"))
            f.write("\n")
    print("wrote", ", ".join(sorted(files)), "to", OUT)


if __name__ == "__main__":
    main()

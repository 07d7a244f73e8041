#!/usr/bin/python3
"""Writes fixtures/presets/presets.json from torchvision 0.14 (Debian's python3-torchvision):
the AutoAugment sub-policy tables, and for RandAugment (31 bins), AutoAugment (10 bins),
TrivialAugmentWide (31 bins) and AugMix (10 bins) the argument every op receives at every magnitude bin, after the
transformation _apply_op makes (1 + m for enhance factors, int(m) for translations), for a
W x H image. test_policy checks the presets against it entry by entry.

Run from the repository root:  /usr/bin/python3 tests/parity/gen_presets.py
"""
import json
import os

from torchvision.transforms.autoaugment import (AugMix, AutoAugment, AutoAugmentPolicy,
                                                RandAugment, TrivialAugmentWide)

OUT = os.path.join(os.path.dirname(__file__), "fixtures", "presets", "presets.json")
WIDTH, HEIGHT = 57, 41  # odd sizes, so translation ranges are not round numbers


def argument(op, m):
    """What _apply_op hands the op for magnitude m (before any sign)."""
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        return 1.0 + m
    if op in ("TranslateX", "TranslateY", "Posterize"):
        return int(m)
    return m


def space(space_dict):
    table = {}
    for op, (mags, signed) in space_dict.items():
        if mags.ndim == 0:
            table[op] = {"signed": bool(signed), "args": None}
        else:
            table[op] = {"signed": bool(signed),
                         "args": [argument(op, float(v)) for v in mags.tolist()]}
    return table


def main():
    doc = {"width": WIDTH, "height": HEIGHT}
    ra = RandAugment()
    doc["randaugment"] = {"bins": 31, "ops": list(ra._augmentation_space(31, (HEIGHT, WIDTH))),
                          "space": space(ra._augmentation_space(31, (HEIGHT, WIDTH)))}
    ta = TrivialAugmentWide()
    doc["trivialaugment-wide"] = {"bins": 31,
                                  "ops": list(ta._augmentation_space(31)),
                                  "space": space(ta._augmentation_space(31))}
    for policy in AutoAugmentPolicy:
        aa = AutoAugment(policy)
        doc["autoaugment-" + policy.value] = {
            "bins": 10,
            "space": space(aa._augmentation_space(10, (HEIGHT, WIDTH))),
            "policies": [[[op, p, bin] for (op, p, bin) in sub] for sub in aa.policies],
        }
    am = AugMix()
    doc["augmix"] = {"bins": am._PARAMETER_MAX, "severity": am.severity,
                     "space": space(am._augmentation_space(am._PARAMETER_MAX, (HEIGHT, WIDTH)))}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

"""Shared by the generators whose output is too large to check in (gen_lpips.py,
gen_torchvision.py): ctest runs them into the build folder, and a re-run with the same script is
a no-op; without the Python packages they need, they write a manifest saying why, which the
tests take as a skip."""
import hashlib
import importlib
import json
import os


def start(script, out_dir, manifest_name, list_key, modules, missing):
    """Creates out_dir and returns (manifest path, the script's version: the sha256 of its text)
    when there is work to do. None when the manifest there already has that version, or when
    one of modules (names to import, in order) is missing: the manifest then says so (missing
    followed by the ImportError) and has an empty list_key."""
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, manifest_name)
    with open(script, "rb") as f:
        version = hashlib.sha256(f.read()).hexdigest()
    try:
        with open(manifest_path) as f:
            if json.load(f).get("version") == version:
                return None
    except (OSError, ValueError):
        pass
    try:
        for name in modules:
            importlib.import_module(name)
    except ImportError as e:
        with open(manifest_path, "w") as f:
            json.dump({"version": version, "skipped": missing + str(e), list_key: []}, f)
        return None
    # torch.onnx's tracer and deprecation warnings would bury the ctest log.
    import warnings
    warnings.filterwarnings("ignore")
    return manifest_path, version

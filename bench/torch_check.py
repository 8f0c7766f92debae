"""Checks bench/torch_nets.py against the baseline fixtures recorded from the official code (run with a python3
that has torch; the project itself never needs Python):

    /usr/bin/python3 bench/torch_check.py [--fixtures test/fixtures/baselines] [--no-full]

For each network it builds the class from `<net>_config.json` (`constructor_args`, TransBTS's
`module_patches`), checks the parameter count, the state-dict keys and their order against the fixture
weights (loaded with strict=True but for the relative_position_index buffers the repo's SwinUNETR copy
trimmed, which are then compared with nothing), and compares in eval mode:
  - `logits` of `<net>_forward.safetensors` (SwinUNETR also `second.logits`; TransBTS with its dropout3d
    at p = 0, the fixture's deterministic path, and `stochastic.logits` replayed from the recorded mask);
  - the training step of `<net>_train.safetensors` in train mode with the stochastic parts off, as the
    fixture ran it: `logits`, the DiceCE `loss` and dLoss/dlogits (`grad.logits`),
each within the fixture's per-tensor tol_abs (baseline_tolerances*.json). Then, unless --no-full, it builds
the four official full configurations and asserts their parameter counts. Prints one line per comparison
with the max abs error; exits 1 if any is out of tolerance.
"""
import argparse
import json
import os
import struct
import sys

import torch

from torch_nets import CLASSES, OFFICIAL, InitConv, build, count, deterministic, dice_ce

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--fixtures", default=os.path.join(HERE, "..", "test", "fixtures", "baselines"))
ap.add_argument("--no-full", action="store_true", help="skip building the full-size networks (about 1.3 GB)")
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
FIX = args.fixtures
DTYPES = {"F32": torch.float32, "I64": torch.int64}


def read_safetensors(path):
    """8-byte LE header length, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for key, v in header.items():
        if key == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[key] = torch.frombuffer(bytearray(raw[8 + n + a : 8 + n + b]), dtype=DTYPES[v["dtype"]]).reshape(v["shape"])
    return out


def tolerances():
    tol = {}
    for name in ("baseline_tolerances.json", "baseline_tolerances_nnformer_transbts.json"):
        with open(os.path.join(FIX, name)) as f:
            tol.update(json.load(f)["files"])
    return tol


TOL = tolerances()
failures = []


def compare(net, file, key, got):
    ref = read_safetensors(os.path.join(FIX, file))[key] if isinstance(file, str) else file[key]
    name = file if isinstance(file, str) else file["__name__"]
    tol = TOL[name][key]["tol_abs"]
    err = (got.detach().float() - ref).abs().max().item() if got.shape == ref.shape else float("inf")
    ok = err <= tol
    print(f"{net}: {name.split('.')[0]}:{key} max abs err {err:.3g} (tol {tol:.3g}, max |ref| {ref.abs().max().item():.3g}) {'ok' if ok else 'FAIL'}", flush=True)
    if not ok:
        failures.append(f"{net} {key}")


def load(name):
    path = os.path.join(FIX, name)
    if os.path.exists(path + ".safetensors"):
        return read_safetensors(path + ".safetensors")
    return torch.load(path + ".pth")


def check(net):
    with open(os.path.join(FIX, f"{net}_config.json")) as f:
        cfg = json.load(f)
    kwargs = dict(cfg["constructor_args"])
    kwargs.update({k: v for k, v in cfg.get("module_patches", {}).items() if k == "unet_base_channels"})
    model = CLASSES[net](**kwargs)
    assert count(model) == cfg["param_count"], f"{net}: {count(model)} parameters, the fixture has {cfg['param_count']}"
    keys = list(model.state_dict())
    assert len(keys) == cfg["state_dict_keys"], f"{net}: {len(keys)} state-dict keys, the fixture has {cfg['state_dict_keys']}"
    weights = load(f"{net}_weights")
    # the repo's SwinUNETR copy dropped its int64 relative_position_index buffers (PROVENANCE.md): recomputed here
    trimmed = [k for k in keys if k not in weights]
    assert all(k.endswith("relative_position_index") for k in trimmed), f"{net}: fixture lacks {trimmed[:3]}"
    assert [k for k in keys if k in weights] == list(weights), f"{net}: state-dict keys or order differ from the fixture"
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert sorted(missing) == sorted(trimmed) and not unexpected
    for k in keys:  # int64 buffers, where the fixture carries them, must equal what the constructor computes
        if k in weights and weights[k].dtype == torch.int64 and "relative_position_index" in k:
            assert torch.equal(model.state_dict()[k], weights[k]), f"{net}: {k} differs"
    print(f"{net}: {count(model):,} parameters, {len(keys)} keys in the official order ({len(trimmed)} trimmed buffers recomputed)", flush=True)

    fwd_name = f"{net}_forward.safetensors"
    fwd = read_safetensors(os.path.join(FIX, fwd_name))
    fwd["__name__"] = fwd_name
    inits = [m for m in model.modules() if isinstance(m, InitConv)]
    for m in inits:  # the fixtures' deterministic path: TransBTS's always-on dropout3d at p = 0
        m.p = 0.0
    model.eval()
    with torch.no_grad():
        compare(net, fwd, "logits", model(fwd["input"]))
        if "second.input" in fwd:
            compare(net, fwd, "second.logits", model(fwd["second.input"]))
        if inits:  # the official stochastic eval forward, replayed from its recorded (N, C) keep-mask
            inits[0].p, inits[0].mask = 0.2, fwd["stochastic.dropout3d_mask"]
            compare(net, fwd, "stochastic.logits", model(fwd["input"]))
            inits[0].p, inits[0].mask = 0.0, None

    train_name = f"{net}_train.safetensors"
    tr = read_safetensors(os.path.join(FIX, train_name))
    tr["__name__"] = train_name
    deterministic(model).train()
    logits = model(tr["input"])
    logits.retain_grad()
    loss = dice_ce(logits, tr["label"].long())
    loss.backward()
    compare(net, tr, "logits", logits)
    compare(net, tr, "loss", loss.reshape(1))
    compare(net, tr, "grad.logits", logits.grad)


for net in ("swin_unetr", "unetr", "nnformer", "transbts"):
    check(net)
if not args.no_full:
    for net in OFFICIAL:
        n = count(build(net))  # build() asserts the official count
        print(f"{net}: official FLARE configuration {n:,} parameters (asserted)", flush=True)
    n = count(CLASSES["transbts"](num_classes=4))  # TransBTS(dataset='flare') itself: the code's 4 classes
    assert n == 31577268, f"transbts: {n} parameters at 4 classes, the official factory has 31,577,268"
    print(f"transbts: TransBTS(dataset='flare') (4 classes) {n:,} parameters (asserted)", flush=True)
if failures:
    print(f"FAILED: {', '.join(failures)}", file=sys.stderr)
    sys.exit(1)
print("all within the fixtures' tolerances")

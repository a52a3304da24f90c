#!/usr/bin/env python3
"""PyTorch side of `thermalizer bench train`: wall ms per training update of the emulator UNet,
PyTorch eager on the CPU, for each (model, threads).

Model: the authors' "ModernUnet" exactly as src/nn/unet.rs builds it (adapted by them from PDEArena's
  twod_unet): image_proj 3x3 conv C -> h; encoder level i: `blocks` residual blocks to h*m_1*...*m_i
  channels, then (except at the last level) a stride-2 3x3 conv halving the grid; middle: 2 residual
  blocks; decoder level i (reversed): `blocks` blocks at the level's width c fed cat(x, skip)
  (2c -> c), one more (c + c/m_i -> c/m_i), then (except at the first level) a 4x4 stride-2
  ConvTranspose2d (padding 1) doubling the grid; final: GELU then 3x3 conv to C. A residual block is
  conv3x3(GELU(conv3x3(GELU(x)))) + shortcut(x), the shortcut a 1x1 conv when the width changes; exact
  (erf) GELU; no norm, no attention, no time embedding. Every 3x3 conv pads circularly by one point
  (padding_mode="circular"). PyTorch's default initialisation (as ours).
One update: opt.zero_grad(); loss = mse(model(x), target); loss.backward();
  clip_grad_norm_(params, 1.0); AdamW(lr 5e-5, weight_decay 0.05).step(); x, target ~ N(0, 1),
  float32, [B, C, N, N], fixed across updates.
Method (as src/bench/train.rs): per (model, threads): torch.set_num_threads(threads) (interop threads
  1, set once), seed 0, 2 warm-up updates, one probe update, k = ceil(--seconds / probe) updates per
  timed block, --repeats blocks; report the median ms/update (and the min) and samples/s =
  batch / (median s/update). Run with OMP_NUM_THREADS unset (torch.set_num_threads governs).
  With --device cuda the model and data live on the GPU and each timed block ends with
  torch.cuda.synchronize() (as ours).
  Differences from ours that are part of what is compared: torch.optim.AdamW's default CPU path
  (a loop over parameter tensors) against our AdamW over one flat gradient (which at one rank also
  goes through the MPI sum), and torch's Python/autograd overhead.

Usage (python from scripts/setup-torch-bench.sh):
  python scripts/bench_torch_train.py --models '[{"name":"qs","hidden":16,"dim_mults":[1,2,2],"blocks":1,
      "channels":1,"grid":64,"batch":32}]' --threads 1 2 [--seconds 1.0] [--repeats 3] [--json OUT]
  python scripts/bench_torch_train.py --self-check     # parameter count and shapes of the paper's UNet
  python scripts/bench_torch_train.py --flops --models ... [--levels 1000] [--json OUT]
      # FLOPs per sample of each model (no timing), as JSON on stdout
--models takes a JSON list (or the path of a file holding one) of
  {"name", "hidden", "dim_mults", "blocks", "channels", "grid", "batch"}.
JSON: a list of {"code": "pytorch", "model": name, "threads": t, "batch": B, "ms_per_update": x,
  "samples_per_s": y, "parameters": n, "ranks": 1, ...extras}.
FLOPs (--flops): per sample, PyTorch's FlopCounterMode convention: 2 x multiply-adds of every
  convolution, transposed convolution and linear layer (2 * prod(weight shape) * output points, or
  input points for a transposed conv), nothing for GELU, additions, padding or concatenation; counted
  by forward hooks, and checked against torch.utils.flop_counter.FlopCounterMode where it exists
  (torch >= 2.1). Rows {"model", "grid", "channels", "levels", "forward_flops" (one UNet forward: the
  emulator step and a denoising pass of `bench rollout`), "classifier_flops" (the thermalizer's
  encoder, middle and classifier head, as src/nn/classifier.rs: GELU, 3x3 conv at the bottleneck
  width, GELU, 1x1 conv to f = round(4096 / s^2) filters, Linear(f s^2 -> levels), GELU,
  Linear(levels -> levels)), "train_flops" (3 x forward_flops: the usual forward + backward
  convention; AdamW and the loss are not counted), "flop_counter": FlopCounterMode's forward and
  classifier counts, or null without it}; exit status 1 (after writing) where it disagrees.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_MODELS = [dict(name="quickstart", hidden=16, dim_mults=[1, 2, 2], blocks=1, channels=1, grid=64, batch=32)]
# The paper's emulator (hidden 64, dim_mults [2, 2, 2], 2 blocks, 1 channel) and its parameter count,
# the same as src/nn/unet.rs's.
PAPER_SHAPE = dict(hidden=64, dim_mults=[2, 2, 2], blocks=2, channels=1)
PAPER_PARAMS = 45_820_801


def conv3(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="circular")


class ResidualBlock(nn.Module):
    """Wide residual block (pre-activation, GELU, no norm); 1x1 shortcut when the width changes."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1 = conv3(c_in, c_out)
        self.conv2 = conv3(c_out, c_out)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.gelu(x))
        h = self.conv2(F.gelu(h))
        return h + self.shortcut(x)


class Unet(nn.Module):
    """ModernUnet as src/nn/unet.rs: [B, C, N, N] -> [B, C, N, N]."""

    def __init__(self, channels, hidden, dim_mults, blocks):
        super().__init__()
        levels = len(dim_mults)
        self.image_proj = conv3(channels, hidden)
        self.down = nn.ModuleList()
        c = hidden
        for i, m in enumerate(dim_mults):
            c_out = c * m
            for _ in range(blocks):
                self.down.append(ResidualBlock(c, c_out))
                c = c_out
            if i + 1 < levels:
                self.down.append(conv3(c, c, stride=2))
        self.middle = nn.ModuleList([ResidualBlock(c, c), ResidualBlock(c, c)])
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            for _ in range(blocks):
                self.up.append(ResidualBlock(2 * c, c))
            c_out = c // dim_mults[i]
            self.up.append(ResidualBlock(c + c_out, c_out))
            c = c_out
            if i > 0:
                self.up.append(nn.ConvTranspose2d(c, c, 4, stride=2, padding=1))
        self.final = conv3(c, channels)

    def encode(self, x):
        """Encoder and middle blocks: the bottleneck map and the skips."""
        x = self.image_proj(x)
        skips = [x]
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        for block in self.middle:
            x = block(x)
        return x, skips

    def forward(self, x):
        x, skips = self.encode(x)
        for layer in self.up:
            if isinstance(layer, ResidualBlock):
                x = layer(torch.cat([x, skips.pop()], dim=1))
            else:
                x = layer(x)
        assert not skips, "one skip per decoder block"
        return self.final(F.gelu(x))


class ClassifierHead(nn.Module):
    """The thermalizer's noise-level head on an s x s bottleneck of c channels (src/nn/classifier.rs)."""

    def __init__(self, c, s, levels):
        super().__init__()
        filters = max(1, round(4096 / (s * s)))   # never a tie for integer s: 4096 / s^2 = k + 1/2 has no solution
        self.conv1 = conv3(c, c)
        self.conv2 = nn.Conv2d(c, filters, 1)
        self.linear1 = nn.Linear(filters * s * s, levels)
        self.linear2 = nn.Linear(levels, levels)

    def forward(self, x):
        h = self.conv2(F.gelu(self.conv1(F.gelu(x)))).flatten(1)
        return self.linear2(F.gelu(self.linear1(h)))


def build(spec):
    return Unet(spec["channels"], spec["hidden"], list(spec["dim_mults"]), spec["blocks"])


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def check_grid(spec):
    levels = len(spec["dim_mults"])
    factor = 1 << (levels - 1)
    n = spec["grid"]
    if levels == 0 or n % factor or n // factor < 2:
        raise SystemExit(f"model {spec['name']}: {levels} levels need a grid that is a multiple of {factor} "
                         f"and at least {2 * factor}, got {n}")


def bench(spec, threads, seconds, repeats, seed=0, device="cpu"):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = build(spec).to(device)
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.05)
    b, c, n = spec["batch"], spec["channels"], spec["grid"]
    x = torch.randn(b, c, n, n, device=device)
    target = torch.randn(b, c, n, n, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def update():
        opt.zero_grad()
        loss = F.mse_loss(model(x), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.detach()

    update()                                               # 2 warm-ups (allocations, oneDNN primitives)
    update()
    sync()
    t0 = time.perf_counter()
    loss = update()                                        # probe: updates per block, as `bench train`
    sync()
    k = max(1, math.ceil(seconds / (time.perf_counter() - t0)))
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(k):
            loss = update()
        sync()                                             # a GPU's queued kernels count in the block
        wall.append((time.perf_counter() - t0) / k * 1e3)
        cpu.append((time.process_time() - c0) / k * 1e3)
    ms = statistics.median(wall)
    return dict(code="pytorch", model=spec["name"], threads=threads, ranks=1, batch=b, ms_per_update=ms,
                samples_per_s=b / (ms / 1e3), parameters=n_params(model), ms_min=min(wall),
                cpu_ms_per_update=statistics.median(cpu), updates_per_block=k, blocks=repeats, grid=n,
                loss=float(loss), load1=float(open("/proc/loadavg").read().split()[0]),
                device=device, version=f"torch {torch.__version__}")


def hook_flops(model, run):
    """FLOPs of `run()` by the conv, transposed-conv and linear layers of `model` (FlopCounterMode's
    convention: 2 * prod(weight shape) * points of the output, or of the input for a transposed conv)."""
    total = [0]

    def count(layer, inputs, output):
        w = layer.weight.shape
        if isinstance(layer, nn.ConvTranspose2d):
            points = inputs[0].shape[0] * math.prod(inputs[0].shape[2:])
        elif isinstance(layer, nn.Conv2d):
            points = output.shape[0] * math.prod(output.shape[2:])
        else:
            points = math.prod(output.shape[:-1])
        total[0] += 2 * math.prod(w) * points

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return total[0]


def flops(spec, levels):
    """FLOPs per sample of `spec` (the --flops row): forward, classifier and training."""
    unet = build(spec)
    levels_down = len(spec["dim_mults"]) - 1
    s = spec["grid"] >> levels_down
    width = spec["hidden"] * math.prod(spec["dim_mults"])
    head = ClassifierHead(width, s, levels)
    model = nn.ModuleDict(dict(unet=unet, head=head))
    x = torch.randn(1, spec["channels"], spec["grid"], spec["grid"])
    runs = dict(forward_flops=lambda: unet(x), classifier_flops=lambda: head(unet.encode(x)[0]))
    row = dict(model=spec["name"], grid=spec["grid"], channels=spec["channels"], levels=levels)
    row.update({k: hook_flops(model, f) for k, f in runs.items()})
    row["train_flops"] = 3 * row["forward_flops"]
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:                # torch < 2.1: the hooks' count stands alone
        row["flop_counter"] = None
    else:
        row["flop_counter"] = {}
        for k, f in runs.items():
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                f()
            row["flop_counter"][k] = counter.get_total_flops()
    return row


def self_check():
    ok = True
    model = build(PAPER_SHAPE)
    n = n_params(model)
    print(f"paper UNet (hidden 64, dim_mults [2, 2, 2], blocks 2, 1 channel): {n:,} parameters, "
          f"expected {PAPER_PARAMS:,}: {'ok' if n == PAPER_PARAMS else 'MISMATCH'}")
    ok &= n == PAPER_PARAMS
    n_tensors = len(list(model.parameters()))
    print(f"  {n_tensors} parameter tensors, {len(model.down)} down layers, {len(model.up)} up layers")
    # shapes (small grid: 3 levels halve twice, 8 -> 2 at the bottleneck), and one update on a tiny model
    torch.manual_seed(0)
    with torch.no_grad():
        y = model(torch.randn(2, 1, 8, 8))
    print(f"  forward [2, 1, 8, 8] -> {list(y.shape)}")
    ok &= list(y.shape) == [2, 1, 8, 8] and bool(torch.isfinite(y).all())
    tiny = dict(name="tiny", hidden=8, dim_mults=[1, 2], blocks=1, channels=2, grid=8, batch=2)
    r = bench(tiny, 1, 0.0, 1)
    print(f"  tiny model ({r['parameters']:,} parameters), one timed update: loss {r['loss']:.4f}, "
          f"{r['ms_per_update']:.2f} ms")
    ok &= r["loss"] == r["loss"]
    print("self-check:", "ok" if ok else "FAILED")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=None, help="JSON list of model specs, or a file holding one")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=5.0, help="target wall seconds per timed block")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks per (model, threads)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (timed blocks end with a synchronize)")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--self-check", action="store_true", help="check the paper UNet's parameter count and exit")
    p.add_argument("--flops", action="store_true", help="print FLOPs per sample of each model as JSON and exit")
    p.add_argument("--levels", type=int, default=1000, help="--flops: classes of the classifier head "
                   "(bench rollout --levels)")
    a = p.parse_args()

    torch.set_num_interop_threads(1)      # once, before any parallel work
    if a.self_check:
        return self_check()
    if a.models is None:
        models = DEFAULT_MODELS
    else:
        text = a.models if a.models.lstrip().startswith("[") else open(a.models).read()
        models = json.loads(text)
    keys = {"name", "hidden", "dim_mults", "blocks", "channels", "grid", "batch"}
    for m in models:
        missing = keys - set(m)
        if missing:
            raise SystemExit(f"model spec {m} lacks {sorted(missing)}")
        check_grid(m)
    if any(t < 1 for t in a.threads) or a.repeats < 1:
        raise SystemExit("--threads and --repeats must be >= 1")
    if a.flops:
        if a.levels < 1:
            raise SystemExit(f"--levels {a.levels}: must be >= 1")
        rows = [flops(m, a.levels) for m in models]
        print(json.dumps(rows, indent=1))
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(rows, fh, indent=1)
        wrong = [f"{r['model']} {k}: {r[k]} by hooks, {n} by FlopCounterMode"
                 for r in rows for k, n in (r["flop_counter"] or {}).items() if n != r[k]]
        for w in wrong:
            print(f"error: {w}", file=sys.stderr)
        return 1 if wrong else 0

    omp = os.environ.get("OMP_NUM_THREADS")
    print(f"# torch {torch.__version__} (eager, {a.device}, float32), mkldnn {torch.backends.mkldnn.is_available()}, "
          f"interop threads {torch.get_num_interop_threads()}, OMP_NUM_THREADS={omp or 'unset'}, "
          f"{os.cpu_count()} CPUs, load1 {open('/proc/loadavg').read().split()[0]}", flush=True)
    print(f"{'model':14} {'threads':>7} {'batch':>5} {'ms/update':>10} {'samples/s':>10} "
          f"{'min ms':>9} {'cpu ms':>9} {'params':>11} {'k':>4} {'load1':>5}", flush=True)
    rows = []
    for m in models:
        for t in a.threads:
            r = bench(m, t, a.seconds, a.repeats, device=a.device)
            rows.append(r)
            print(f"{r['model']:14} {t:7d} {r['batch']:5d} {r['ms_per_update']:10.2f} {r['samples_per_s']:10.1f} "
                  f"{r['ms_min']:9.2f} {r['cpu_ms_per_update']:9.2f} {r['parameters']:11,d} "
                  f"{r['updates_per_block']:4d} {r['load1']:5.2f}", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0 if all(r["loss"] == r["loss"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

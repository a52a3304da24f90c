#!/usr/bin/env python3
"""Hardware efficiency of the benchmarks: achieved bandwidth and FLOP/s against the device's peaks,
as one Markdown table (docs/performance.md, "How measured", defines every number).

  hardware-table.py device --device cuda [--copy-mib 1024] [--repeats 5] [--json device.json]
      needs torch: the device's name, its nominal peaks (the datasheet table below; unknown devices
      and CPUs: none) and a measured copy bandwidth, 2 x bytes / time of a device-to-device copy
      of --copy-mib MiB (median of --repeats after one warm-up): the practical ceiling.
  hardware-table.py table --device-json device.json --flops flops.json [--solver S.json ...]
                          [--train T.json ...] [--rollout R.json ...] [--goal-ratio 4]
      needs no torch: one Markdown table on stdout from the JSON of
      `thermalizer bench solver --device D --json` (its batched rows), `bench train --json` and
      `scripts/bench_torch_train.py --json` (samples/s), `bench rollout --json` (member-steps/s) and
      `scripts/bench_torch_train.py --flops` (FLOPs per sample of each model).

Conventions: GB/s = 1e9 bytes/s; TFLOP/s = 1e12 FLOP/s, a FLOP being half a multiply-add
(FlopCounterMode's count). Solver bandwidth is *effective*: the bytes of the step's real 2D FFTs at
their minimum (`bytes_per_member_step`), so its % of peak is a lower bound. Training counts
3 x forward FLOPs per sample; a thermalized member-step counts emulator + classifier + passes x
denoiser forward FLOPs. Float32 rows are compared with the TF32 tensor-core peak (libtorch runs
float32 convolutions in TF32 on Ampere and later by default), bf16 and f16 rows with that precision's
dense tensor-core peak. Rollout rows are those of the largest batch of each model and precision.
"""
import argparse
import json
import statistics
import sys
import time

# Dense (no sparsity) peaks from NVIDIA's datasheets: memory bandwidth in GB/s, FP32 (CUDA cores)
# and TF32 / BF16 / FP16 tensor-core TFLOP/s. The datasheets quote tensor-core figures "with
# sparsity" (*): the dense figure is half of it.
#   H100 and H100 NVL: "NVIDIA H100 Tensor Core GPU" datasheet (SXM: 3.35 TB/s, FP32 67, TF32 989*,
#     BF16/FP16 1979*; PCIe: 2 TB/s, 51, 756*, 1513*; NVL: 3.9 TB/s, 60, 835*, 1671*).
#   H200: "NVIDIA H200 Tensor Core GPU" datasheet (SXM: 4.8 TB/s, FP32 67, TF32 989*, BF16/FP16
#     1979*; NVL: 4.8 TB/s, 60, 835*, 1671*).
#   A100: "NVIDIA A100 Tensor Core GPU" datasheet (FP32 19.5, TF32 312*, BF16/FP16 624*; 40GB PCIe
#     and SXM 1555 GB/s, 80GB PCIe 1935 GB/s, 80GB SXM 2039 GB/s).
#   L40S: "NVIDIA L40S GPU" datasheet, which gives dense figures too (864 GB/s, FP32 91.6,
#     TF32 183 | 366*, BF16/FP16 362.05 | 733*).
# Keyed by words of torch.cuda.get_device_name() (lower case, '-' read as a space); the first entry
# whose words all occur wins, so the more specific entries come first.
PEAKS = [
    (("h100", "nvl"), "H100 NVL", 3900, 60, 417.5, 835.5, 835.5),
    (("h100", "pcie"), "H100 PCIe", 2000, 51, 378, 756.5, 756.5),
    (("h100",), "H100 SXM", 3350, 67, 494.5, 989.5, 989.5),
    (("h200", "nvl"), "H200 NVL", 4800, 60, 417.5, 835.5, 835.5),
    (("h200",), "H200 SXM", 4800, 67, 494.5, 989.5, 989.5),
    (("a100", "80gb", "pcie"), "A100 80GB PCIe", 1935, 19.5, 156, 312, 312),
    (("a100", "pcie"), "A100 40GB PCIe", 1555, 19.5, 156, 312, 312),
    (("a100", "80gb"), "A100 80GB SXM", 2039, 19.5, 156, 312, 312),
    (("a100",), "A100 40GB SXM", 1555, 19.5, 156, 312, 312),
    (("l40s",), "L40S", 864, 91.6, 183, 362.05, 362.05),
]
PEAK_KEYS = ("memory_gb_per_s", "fp32_tflops", "tf32_tflops", "bf16_tflops", "fp16_tflops")
# The peak each inference precision is compared with (float32: TF32 tensor cores, see above).
PRECISION_PEAK = {"f32": "tf32_tflops", "bf16": "bf16_tflops", "f16": "fp16_tflops"}


def nominal_peaks(name):
    """(datasheet entry, {PEAK_KEYS: value}) for a torch device name, or (None, None)."""
    words = name.lower().replace("-", " ").split()
    for keys, entry, *values in PEAKS:
        if all(k in words for k in keys):
            return entry, dict(zip(PEAK_KEYS, values))
    return None, None


def measure_device(device, copy_mib, repeats):
    """The device JSON: name, nominal peaks and the measured copy bandwidth."""
    import torch

    if device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device")
        name = torch.cuda.get_device_name()
        sync = torch.cuda.synchronize
    elif device == "cpu":
        name = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name")), "cpu")
        sync = lambda: None  # noqa: E731
    else:
        raise SystemExit(f"--device {device}: must be cpu or cuda")
    entry, peak = nominal_peaks(name) if device == "cuda" else (None, None)
    n = copy_mib * 2**20
    src = torch.empty(n, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    times = []
    for i in range(repeats + 1):             # the first copy warms up (allocation, page faults)
        sync()
        t0 = time.perf_counter()
        dst.copy_(src)
        sync()
        if i:
            times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    return dict(kind=device, name=name, torch=torch.__version__, threads=torch.get_num_threads(),
                peak_entry=entry, peak=peak, copy_mib=copy_mib, copy_repeats=repeats,
                copy_ms=seconds * 1e3, copy_gb_per_s=2 * n / seconds / 1e9)


def load(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: {e}")


def field(path, row, key):
    if key not in row:
        raise SystemExit(f"{path}: a row has no key {key!r}: {row}")
    return row[key]


def same_device(path, row, dev):
    """A benchmark row must come from the device the peaks describe."""
    kind = field(path, row, "device").split(":")[0]
    if kind != dev["kind"]:
        raise SystemExit(f"{path}: key 'device' is {row['device']!r}, but the device JSON measured {dev['kind']!r}")


def model_flops(flops, path, row, levels=None):
    """The --flops row of a benchmark row's model (same grid and, for rollout, same levels)."""
    name = field(path, row, "model")
    f = flops.get(name)
    if f is None:
        raise SystemExit(f"{path}: key 'model' is {name!r}, which the FLOPs JSON does not list")
    if "grid" in row and row["grid"] != f["grid"]:
        raise SystemExit(f"{path}: model {name!r} key 'grid' is {row['grid']}, the FLOPs JSON's {f['grid']}")
    if levels is not None and levels != f["levels"]:
        raise SystemExit(f"{path}: model {name!r} key 'levels' is {levels}, the FLOPs JSON's {f['levels']} "
                         "(bench_torch_train.py --flops --levels)")
    return f


def pct(x, of):
    return f"{100 * x / of:.1f} %" if of else "-"


def table(a):
    dev = load(a.device_json)
    flops = {}
    for r in load(a.flops):
        flops[r["model"]] = r
    peak = dev.get("peak") or {}
    copy = dev["copy_gb_per_s"]
    rows = []

    def add(what, rate, achieved, peak_key, goal="-"):
        """`achieved` in GB/s for peak_key memory_gb_per_s, else in TFLOP/s."""
        p = peak.get(peak_key)
        bw = peak_key == "memory_gb_per_s"
        unit = "GB/s" if bw else "TFLOP/s"
        name = {"memory_gb_per_s": "memory"}.get(peak_key, peak_key.split("_")[0].upper())
        rows.append([dev["name"], what, rate, f"{achieved:.3g} {unit}" + (" (eff.)" if bw else ""),
                     f"{p:g} {unit} {name}" if p else "-", pct(achieved, p),
                     pct(achieved, copy) if bw else "-", goal])

    for path in a.solver:
        for r in load(path):
            if field(path, r, "solver") != "batched":
                continue
            same_device(path, r, dev)
            n, rate = r["grid"], r["member_steps_per_s"]
            system = r["system"] + (f" ({r['dealias']})" if r.get("dealias") else "")
            eff = r["eff_gb_per_s"]
            goal = "-"
            if n >= 256:
                p = peak.get("memory_gb_per_s")
                goal = ("≥ 50 % of peak: " + ("met" if eff >= 0.5 * p else "not met")) if p else "≥ 50 % of peak: -"
            add(f"solver {system} {n}² {r['precision']}, batch {r['batch']}", f"{rate:.4g} member-steps/s", eff,
                "memory_gb_per_s", goal)
    for path in a.train:
        for r in load(path):
            same_device(path, r, dev)
            f = model_flops(flops, path, r)
            rate = field(path, r, "samples_per_s")
            ranks = field(path, r, "ranks")
            what = f"train {r['model']} ({r['code']}), batch {r['batch']}" + (f", {ranks} ranks" if ranks > 1 else "")
            add(what, f"{rate:.4g} samples/s", f["train_flops"] * rate / 1e12, "tf32_tflops")
    for path in a.rollout:
        largest = {}
        for r in load(path):
            same_device(path, r, dev)
            key = (field(path, r, "model"), field(path, r, "precision"))
            if key not in largest or r["batch"] > largest[key]["batch"]:
                largest[key] = r
        for (model, precision), r in largest.items():
            f = model_flops(flops, path, r, field(path, r, "levels"))
            peak_key = PRECISION_PEAK[precision]
            what = f"rollout {model} {precision}, batch {r['batch']}"
            rate = r["emulator_member_steps_per_s"]
            add(f"{what}, emulator", f"{rate:.4g} member-steps/s", f["forward_flops"] * rate / 1e12, peak_key)
            passes, ratio = r["passes"], r["thermalized_over_emulator"]
            per_step = (1 + passes) * f["forward_flops"] + f["classifier_flops"]
            rate = r["thermalized_member_steps_per_s"]
            goal = f"{ratio:.2f}× emulator (goal ≤ {a.goal_ratio:g}×): " + ("met" if ratio <= a.goal_ratio else "not met")
            add(f"{what}, thermalized ({passes} passes)", f"{rate:.4g} member-steps/s", per_step * rate / 1e12,
                peak_key, goal)
    if not rows:
        raise SystemExit("no rows: give --solver (with batched rows), --train or --rollout JSON")
    head = ["device", "what", "rate", "achieved", "nominal peak", "% of peak", "% of copy", "goal"]
    print(f"Measured copy bandwidth of {dev['name']} ({dev['kind']}): {copy:.3g} GB/s "
          f"({dev['copy_mib']} MiB, torch {dev['torch']}); nominal peaks: {dev.get('peak_entry') or 'unknown'}.")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("device", help="name, nominal peaks and measured copy bandwidth (needs torch)")
    d.add_argument("--device", default="cuda", help="cpu or cuda")
    d.add_argument("--copy-mib", type=int, default=1024, help="MiB copied per timed copy")
    d.add_argument("--repeats", type=int, default=5, help="timed copies (the median is kept)")
    d.add_argument("--json", default=None, help="also write the device JSON to this file")
    t = sub.add_parser("table", help="the Markdown table from the benchmarks' JSON")
    t.add_argument("--device-json", required=True)
    t.add_argument("--flops", required=True, help="scripts/bench_torch_train.py --flops --json output")
    t.add_argument("--solver", nargs="*", default=[])
    t.add_argument("--train", nargs="*", default=[])
    t.add_argument("--rollout", nargs="*", default=[])
    t.add_argument("--goal-ratio", type=float, default=4.0, help="thermalized/emulator cost goal")
    a = p.parse_args()
    if a.command == "device":
        if a.copy_mib < 1 or a.repeats < 1:
            raise SystemExit(f"--copy-mib {a.copy_mib} and --repeats {a.repeats}: must be >= 1")
        row = measure_device(a.device, a.copy_mib, a.repeats)
        print(json.dumps(row, indent=1))
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(row, fh, indent=1)
    else:
        table(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())

//! The hardware-efficiency table (`scripts/hardware-table.py`, the last step of
//! scripts/gpu-checks.sh) on the CPU: short runs of `bench solver --device cpu`, `bench train`,
//! `bench rollout` and the PyTorch twin with `--json`, the twin's FLOPs per sample, the measured
//! copy bandwidth, then the table, whose numbers are checked against the JSON and hand counts.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Two levels, so that the count covers the stride-2 conv and the transposed conv too.
const TINY: &str = r#"[{"name":"tiny","hidden":2,"dim_mults":[1,1],"blocks":1,"channels":1,"grid":8,"batch":2}]"#;
const LEVELS: i64 = 4;
const PASSES: f64 = 6.0;
const SHORT: [&str; 4] = ["--seconds", "0.05", "--repeats", "1"];

/// 2 × multiply-adds of a conv with `c_in → c_out` channels, `k × k` kernel, at `points` points
/// of its output (of its input for the transposed conv).
fn conv(c_in: i64, c_out: i64, k: i64, points: i64) -> i64 {
    2 * c_in * c_out * k * k * points
}

/// The tiny UNet's encoder and middle (hidden 2 on 8², then 4² after the stride-2 conv).
fn encoder_flops() -> i64 {
    let res_2_2 = |points| 2 * conv(2, 2, 3, points);
    conv(1, 2, 3, 64) + res_2_2(64) + conv(2, 2, 3, 16) + res_2_2(16) + 2 * res_2_2(16)
}

/// The whole forward pass: the encoder, then per level two blocks fed 4 channels (conv 4 → 2,
/// conv 2 → 2, 1×1 shortcut 4 → 2), the 4×4 transposed conv on the 4² map, and the final conv.
fn forward_flops() -> i64 {
    let res_4_2 = |points| conv(4, 2, 3, points) + conv(2, 2, 3, points) + conv(4, 2, 1, points);
    encoder_flops() + 2 * res_4_2(16) + conv(2, 2, 4, 16) + 2 * res_4_2(64) + conv(2, 1, 3, 64)
}

/// The classifier: encoder, then the head on the 4² bottleneck (conv 2 → 2, 1×1 conv to
/// 4096/16 = 256 filters, Linear 256·16 → 4, Linear 4 → 4).
fn classifier_flops() -> i64 {
    encoder_flops() + conv(2, 2, 3, 16) + conv(2, 256, 1, 16) + 2 * 256 * 16 * LEVELS + 2 * LEVELS * LEVELS
}

fn python(args: &[&str]) -> Output {
    let py = std::env::var("THERMALIZER_TORCH_PYTHON").expect("THERMALIZER_TORCH_PYTHON (set by scripts/test.sh)");
    Command::new(py).args(args).env("OMP_NUM_THREADS", "1").output().expect("start python")
}

fn script(name: &str) -> String {
    format!("{ROOT}/scripts/{name}")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rows(path: &Path) -> Vec<Value> {
    read_json(path).as_array().unwrap().clone()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no number {key} in {v}"))
}

/// The leading number of a table cell ("12.3 GB/s (eff.)", "4.5 %").
fn number(cell: &str) -> f64 {
    cell.split_whitespace().next().unwrap().parse().unwrap_or_else(|_| panic!("no number in {cell:?}"))
}

/// `got` printed with 3 significant digits (`%.3g`) is `want`.
fn close3(got: &str, want: f64) {
    let g = number(got);
    assert!((g - want).abs() <= 6e-3 * want.abs(), "{got:?} printed for {want}");
}

#[test]
fn hardware_table_from_cpu_benchmarks() {
    let dir = scratch("hardware-table");
    let p = |name: &str| dir.join(name).display().to_string();
    let bench = |args: &[&str], json: &str| {
        let mut a: Vec<&str> = [&["bench"], args, &SHORT, &["--device", "cpu", "--json"]].concat();
        let path = p(json);
        a.push(&path);
        assert_ok(&run(0, &a));
    };
    bench(&["solver", "--grids", "16", "--precision", "f32", "--batch", "2"], "solver.json");
    let qg =
        ["solver", "--system", "qg", "--dealias", "two_thirds", "--grids", "32", "--precision", "f64", "--batch", "2"];
    bench(&qg, "solver-qg.json");
    bench(&["train", "--models", TINY, "--threads", "1"], "train.json");
    let levels = LEVELS.to_string();
    let rollout =
        ["rollout", "--models", TINY, "--batches", "1", "2", "--precisions", "f32", "bf16", "--levels", &levels];
    bench(&[&rollout[..], &["--passes", "6"]].concat(), "rollout.json");
    let twin = script("bench_torch_train.py");
    assert_ok(&python(&[
        &twin,
        "--models",
        TINY,
        "--threads",
        "1",
        "--seconds",
        "0.05",
        "--repeats",
        "1",
        "--json",
        &p("train-torch.json"),
    ]));
    assert_ok(&python(&[&twin, "--flops", "--models", TINY, "--levels", &levels, "--json", &p("flops.json")]));
    let hw = script("hardware-table.py");
    assert_ok(&python(&[
        &hw,
        "device",
        "--device",
        "cpu",
        "--copy-mib",
        "16",
        "--repeats",
        "3",
        "--json",
        &p("device.json"),
    ]));

    // FLOPs per sample against the hand count.
    let flops = &rows(&dir.join("flops.json"))[0];
    assert_eq!(flops["forward_flops"].as_i64(), Some(forward_flops()), "{flops}");
    assert_eq!(flops["classifier_flops"].as_i64(), Some(classifier_flops()), "{flops}");
    assert_eq!(flops["train_flops"].as_i64(), Some(3 * forward_flops()), "{flops}");

    // Solver rows: the native one, then the batched one with its effective bytes (one 2D FFT
    // reads n² reals and writes n·(n/2 + 1) complex, or the reverse): 20 per Kolmogorov step,
    // 10 per QG step (both layers).
    let batched = |file: &str, ffts: f64, n: f64, bytes: f64| {
        let r = rows(&dir.join(file));
        assert_eq!(r.iter().map(|x| x["solver"].as_str().unwrap()).collect::<Vec<_>>(), ["native", "batched"]);
        let b = r[1].clone();
        assert_eq!(f(&b, "bytes_per_member_step"), ffts * bytes * (n * n + 2.0 * n * (n / 2.0 + 1.0)), "{b}");
        let rate = f(&b, "member_steps_per_s");
        assert!((rate * f(&b, "ms_per_member_step") - 1e3).abs() < 1e-9, "{b}");
        assert!((f(&b, "eff_gb_per_s") - f(&b, "bytes_per_member_step") * rate / 1e9).abs() < 1e-12 * rate, "{b}");
        assert!(f(&b, "vs_native") < 1e-3, "{b}");
        b
    };
    let kolmogorov = batched("solver.json", 20.0, 16.0, 4.0);
    let qg_row = batched("solver-qg.json", 10.0, 32.0, 8.0);

    let table = |device: &str| {
        let mut a: Vec<String> = ["table", "--device-json", device, "--flops", &p("flops.json"), "--solver"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend([p("solver.json"), p("solver-qg.json"), "--train".into(), p("train.json"), p("train-torch.json")]);
        a.extend(["--rollout".into(), p("rollout.json")]);
        let mut all = vec![hw.as_str()];
        all.extend(a.iter().map(String::as_str));
        python(&all)
    };
    let out = table(&p("device.json"));
    assert_ok(&out);
    let md = String::from_utf8(out.stdout).unwrap();
    println!("{md}");
    let device = read_json(&dir.join("device.json"));
    let copy = f(&device, "copy_gb_per_s");
    assert!(copy > 0.1 && device["peak"].is_null(), "{device}");
    let lines: Vec<Vec<&str>> = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| device"))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    let row = |what: &str| {
        let r = lines.iter().find(|r| r[1] == what).unwrap_or_else(|| panic!("no row {what:?} in\n{md}"));
        assert_eq!(r[0], device["name"].as_str().unwrap());
        assert_eq!((r[4], r[5]), ("-", "-"), "no nominal peak on a CPU: {r:?}");
        r.clone()
    };
    assert_eq!(lines.len(), 8, "2 solver, 2 train, 2 × 2 rollout rows:\n{md}");
    for (what, b) in
        [("solver kolmogorov 16² f32, batch 2", &kolmogorov), ("solver qg (two_thirds) 32² f64, batch 2", &qg_row)]
    {
        let r = row(what);
        close3(r[2], f(b, "member_steps_per_s"));
        close3(r[3], f(b, "eff_gb_per_s"));
        assert!((number(r[6]) - 100.0 * f(b, "eff_gb_per_s") / copy).abs() <= 0.051, "{r:?}");
    }
    for (file, code) in [("train.json", "thermalizer"), ("train-torch.json", "pytorch")] {
        let t = &rows(&dir.join(file))[0];
        let r = row(&format!("train tiny ({code}), batch 2"));
        close3(r[2], f(t, "samples_per_s"));
        close3(r[3], 3.0 * forward_flops() as f64 * f(t, "samples_per_s") / 1e12);
    }
    let rollout_rows = rows(&dir.join("rollout.json"));
    assert_eq!(rollout_rows.len(), 4);
    for prec in ["f32", "bf16"] {
        let j = rollout_rows.iter().find(|r| r["precision"] == prec && r["batch"] == 2).unwrap();
        let therm = f(j, "emulator_ms") + f(j, "classifier_ms") + PASSES * f(j, "denoise_ms");
        assert!((f(j, "thermalized_ms") - therm).abs() < 1e-9 * therm, "{j}");
        let e = row(&format!("rollout tiny {prec}, batch 2, emulator"));
        close3(e[2], f(j, "emulator_member_steps_per_s"));
        close3(e[3], forward_flops() as f64 * f(j, "emulator_member_steps_per_s") / 1e12);
        let t = row(&format!("rollout tiny {prec}, batch 2, thermalized (6 passes)"));
        close3(t[2], 1e3 / therm);
        let per_step = (1.0 + PASSES) * forward_flops() as f64 + classifier_flops() as f64;
        close3(t[3], per_step * f(j, "thermalized_member_steps_per_s") / 1e12);
        let ratio = f(j, "thermalized_over_emulator");
        let verdict = if ratio <= 4.0 { "met" } else { "not met" };
        assert_eq!(t[7], format!("{ratio:.2}× emulator (goal ≤ 4×): {verdict}"));
    }

    // Benchmarks of another device than the one measured: one line naming the file and key.
    let cuda = dir.join("device-cuda.json");
    let mut other = device.clone();
    other["kind"] = "cuda".into();
    std::fs::write(&cuda, other.to_string()).unwrap();
    let out = table(&cuda.display().to_string());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("solver.json: key 'device' is 'cpu'"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

//! The two-layer QG model against pyqg itself (pyqg 0.7.2 `QGModel`, float64, its exponential
//! filter), from the same smooth initial PV: relative L2 difference after 100 steps < 1e-6.
//! pyqg runs in its own venv (`scripts/setup-pyqg.sh`, path in `THERMALIZER_PYQG_PYTHON`).

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use num_complex::Complex;
use rand::Rng;
use thermalizer::rng::{member_stream, Purpose};
use thermalizer::solver::qg::{Qg, QgParams};

/// Writes a float64 C-order `.npy` file.
fn write_npy(path: &Path, shape: &[usize], data: &[f64]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({},), }}", dims.join(", "));
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    for v in data {
        f.write_all(&v.to_le_bytes()).unwrap();
    }
}

/// Reads a float64 C-order `.npy` file (version 1).
fn read_npy(path: &Path) -> Vec<f64> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).unwrap().read_to_end(&mut bytes).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'<f8'") && header.contains("False"), "{header}");
    bytes[10 + header_len..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Smooth random PV of both layers (modes |k| ≤ 6), ~1e-5 s⁻¹ upper, ~1e-6 lower: `[layer][y][x]`.
fn initial_pv(n: usize, member: u64) -> Vec<f64> {
    let mut rng = member_stream(11, Purpose::InitialCondition, member);
    let mut q = vec![0.0; 2 * n * n];
    for layer in 0..2 {
        let amp = if layer == 0 { 1e-5 } else { 1.5e-6 };
        for _ in 0..10 {
            let (kx, ky) = (rng.random_range(-6..=6) as f64, rng.random_range(-6..=6) as f64);
            let (a, ph): (f64, f64) = (rng.random_range(0.1..0.4), rng.random_range(0.0..std::f64::consts::TAU));
            for j in 0..n {
                for i in 0..n {
                    let arg = 2.0 * std::f64::consts::PI * (kx * i as f64 + ky * j as f64) / n as f64;
                    q[layer * n * n + j * n + i] += amp * a * (arg + ph).cos();
                }
            }
        }
    }
    q
}

fn compare(smagorinsky: Option<f64>) {
    let python = std::env::var("THERMALIZER_PYQG_PYTHON").expect("THERMALIZER_PYQG_PYTHON (set by scripts/test.sh)");
    let (n, members, steps) = (64usize, 2usize, 100usize);
    let dir = std::env::temp_dir().join(format!("thermalizer-pyqg-{}-{}", std::process::id(), smagorinsky.is_some()));
    std::fs::create_dir_all(&dir).unwrap();
    let ic: Vec<f64> = (0..members).flat_map(|m| initial_pv(n, m as u64)).collect();
    write_npy(&dir.join("ic.npy"), &[members, 2, n, n], &ic);
    let p = QgParams { smagorinsky: smagorinsky.unwrap_or(0.0), ..QgParams::eddy() };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/pyqg_reference.py");
    let mut cmd = Command::new(&python);
    cmd.arg(script).arg(dir.join("ic.npy")).arg(dir.join("out.npz"));
    for (k, v) in [
        ("L", p.length),
        ("beta", p.beta),
        ("rd", p.rd),
        ("delta", p.delta),
        ("U1", p.u1),
        ("U2", p.u2),
        ("rek", p.rek),
        ("dt", 3600.0),
    ] {
        cmd.arg(format!("--{k}")).arg(v.to_string());
    }
    cmd.args(["--samples", "2", "--steps-per-sample", &steps.to_string()]);
    if let Some(cs) = smagorinsky {
        cmd.args(["--smagorinsky", &cs.to_string()]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "pyqg failed: {}", String::from_utf8_lossy(&out.stderr));
    let convert = format!(
        "import numpy as np; np.save(r'{}', np.ascontiguousarray(np.load(r'{}')['q'][:, -1]))",
        dir.join("final.npy").display(),
        dir.join("out.npz").display()
    );
    assert!(Command::new(&python).args(["-c", &convert]).status().unwrap().success());
    let reference = read_npy(&dir.join("final.npy"));

    let model = Qg::<f64>::new(n, p);
    let g = model.grid();
    let len = g.spec_len();
    let mut work = model.work();
    for m in 0..members {
        let mut q = vec![Complex::default(); 2 * len];
        for layer in 0..2 {
            let field = &ic[(m * 2 + layer) * n * n..(m * 2 + layer + 1) * n * n];
            g.forward(field, &mut q[layer * len..(layer + 1) * len], g.nkx, &mut g.scratch());
        }
        let mut state = model.state(q);
        for _ in 0..steps {
            model.step(&mut state, 3600.0, &mut work);
        }
        for layer in 0..2 {
            let mut ours = vec![0.0; n * n];
            g.to_real(&state.q[layer * len..(layer + 1) * len], &mut ours, &mut g.scratch());
            let theirs = &reference[(m * 2 + layer) * n * n..(m * 2 + layer + 1) * n * n];
            let init = &ic[(m * 2 + layer) * n * n..(m * 2 + layer + 1) * n * n];
            let norm = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
            let size = theirs.iter().map(|x| x * x).sum::<f64>().sqrt();
            let err = norm(&ours, theirs) / size;
            let moved = norm(init, theirs) / size;
            println!("member {m} layer {} (smagorinsky {smagorinsky:?}): relative L2 {err:.2e}, change over the run {moved:.2}", layer + 1);
            assert!(err < 1e-6, "member {m} layer {}: relative L2 difference {err:e}", layer + 1);
            assert!(moved > 0.1, "the flow barely evolved ({moved}): the comparison would be weak");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn matches_pyqg_after_100_steps() {
    compare(None);
}

#[test]
fn matches_pyqg_with_smagorinsky_after_100_steps() {
    compare(Some(0.1));
}

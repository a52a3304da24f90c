//! The models' shapes and the diffusion schedule against the numbers of paper.md §3–4.

mod common;

use common::seeded_torch;
use tch::nn::{Module, VarStore};
use tch::{Device, Kind, Tensor};
use thermalizer::nn::classifier::Thermalizer;
use thermalizer::nn::diffusion::Schedule;
use thermalizer::nn::parameter_count;
use thermalizer::nn::unet::{Unet, UnetShape};

fn paper_shape(channels: i64) -> UnetShape {
    UnetShape { in_channels: channels, out_channels: channels, hidden: 64, dim_mults: vec![2, 2, 2], blocks: 2 }
}

#[test]
fn paper_unet_and_thermalizer_have_the_derived_parameter_counts() {
    let _torch = seeded_torch(0);
    let vs = VarStore::new(Device::Cpu);
    let _ = Unet::new(&vs.root(), &paper_shape(1));
    assert_eq!(parameter_count(&vs), 45_820_801);
    let vs = VarStore::new(Device::Cpu);
    let _ = Thermalizer::new(&vs.root(), &paper_shape(1), 64, 1000);
    assert_eq!(parameter_count(&vs), 53_286_817);
}

#[test]
fn variable_names_follow_the_authors_state_dict() {
    let _torch = seeded_torch(0);
    let vs = VarStore::new(Device::Cpu);
    let _ = Thermalizer::new(&vs.root(), &paper_shape(2), 64, 1000);
    let names = vs.variables();
    for n in [
        "image_proj.weight",
        "down.0.res.conv1.weight",
        "down.2.conv.bias",
        "middle.res2.conv2.weight",
        "up.3.conv.weight",
        "up.4.res.shortcut.weight",
        "final.bias",
        "regressor_block.linear2.weight",
    ] {
        assert!(names.contains_key(n), "missing {n}; have e.g. {:?}", names.keys().take(5).collect::<Vec<_>>());
    }
}

#[test]
fn unet_keeps_the_shape_and_its_convolutions_are_periodic() {
    let _torch = seeded_torch(3);
    let x = Tensor::randn([2, 2, 16, 16], (Kind::Float, Device::Cpu));
    let vs = VarStore::new(Device::Cpu);
    let deep = UnetShape { in_channels: 2, out_channels: 2, hidden: 4, dim_mults: vec![1, 2, 2], blocks: 1 };
    assert_eq!(Unet::new(&vs.root(), &deep).forward(&x).size(), vec![2, 2, 16, 16]);
    // One level has no resampling: circular padding makes it commute with periodic shifts
    // exactly (the transposed convolutions between levels crop, as in the authors' model).
    let vs = VarStore::new(Device::Cpu);
    let shape = UnetShape { in_channels: 2, out_channels: 2, hidden: 4, dim_mults: vec![2], blocks: 2 };
    let net = Unet::new(&vs.root(), &shape);
    let y = net.forward(&x);
    let shifted = net.forward(&x.roll([3, -5], [2, 3]));
    let diff = (shifted - y.roll([3, -5], [2, 3])).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "periodic shift changed the output by {diff}");
}

#[test]
fn grid_check_refuses_too_many_levels() {
    let shape = UnetShape { in_channels: 1, out_channels: 1, hidden: 8, dim_mults: vec![2; 7], blocks: 1 };
    let e = shape.check_grid(64).unwrap_err().to_string();
    assert!(e.contains("7 levels") && e.contains("64²"), "{e}");
    assert!(paper_shape(1).check_grid(64).is_ok());
    assert!(paper_shape(1).check_grid(30).is_err());
}

#[test]
fn cosine_schedule_matches_the_table_of_paper_md() {
    let s = Schedule::cosine(1000);
    // √(1−ᾱ_t) from paper.md §4 (rounded there to 2–3 significant digits).
    for (t, want) in
        [(0, 0.0064), (4, 0.0160), (6, 0.0198), (10, 0.0269), (20, 0.0434), (50, 0.0910), (100, 0.169), (400, 0.595)]
    {
        let got = s.noise_std(t);
        assert!((got - want).abs() / want < 0.01, "t = {t}: √(1−ᾱ) = {got}, paper.md {want}");
    }
    assert!(s.beta.iter().all(|&b| b > 0.0 && b <= 0.999));
    assert_eq!(s.beta[999], 0.999, "the last β is clipped");
}

#[test]
fn reverse_step_inverts_noising_given_the_exact_noise() {
    let _torch = seeded_torch(4);
    // With ε̂ the true noise and z = 0, the DDPM mean maps x_t to the x_{t−1} of the same ε up to
    // the schedule's algebra: check against the closed form for one level.
    let s = Schedule::cosine(1000);
    let x0 = Tensor::randn([3, 1, 8, 8], (Kind::Double, Device::Cpu));
    let eps = Tensor::randn([3, 1, 8, 8], (Kind::Double, Device::Cpu));
    let t = 7;
    let xt = s.noised(&x0, &[t; 3], &eps);
    let zero = eps.zeros_like();
    let back = s.reverse_step(&xt, t, &eps, &zero);
    // Posterior mean μ̃ = (√ᾱ_{t−1} β_t x0 + √α_t (1−ᾱ_{t−1}) x_t) / (1−ᾱ_t).
    let (ab, abm, b) = (s.alpha_bar[t], s.alpha_bar[t - 1], s.beta[t]);
    let want = (&x0 * (abm.sqrt() * b) + &xt * ((1.0 - b).sqrt() * (1.0 - abm))) / (1.0 - ab);
    let err = (back - want).abs().max().double_value(&[]);
    assert!(err < 1e-12, "reverse step differs from the posterior mean by {err}");
}

#[test]
fn circular_pad_equals_atens_circular_mode() {
    let _torch = seeded_torch(5);
    let x = Tensor::randn([2, 3, 8, 6], (Kind::Float, Device::Cpu));
    let ours = thermalizer::nn::unet::circular_pad(&x, 2);
    let aten = x.pad([2i64, 2, 2, 2].as_slice(), "circular", None);
    assert_eq!(ours.size(), vec![2, 3, 12, 10]);
    assert!(ours.equal(&aten));
}

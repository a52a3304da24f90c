//! The "ModernUnet" of the paper (adapted by the authors from PDEArena's `twod_unet`): wide
//! residual blocks with GELU, no normalisation, no attention, no time embedding.
//!
//! With `hidden = h`, `dim_mults = [m_1..m_L]` and `blocks = b`:
//! - `image_proj`: 3×3 conv, C_in → h;
//! - encoder level i: b residual blocks to `h·m_1⋯m_i` channels, then (except at the last level)
//!   a stride-2 3×3 conv halving the grid;
//! - `middle`: two residual blocks at the bottleneck width;
//! - decoder level i (reversed): b blocks at the level's width and one more that divides it by
//!   m_i, each fed the concatenation of the current map and the matching encoder output; a
//!   4×4 stride-2 transposed conv doubles the grid between levels;
//! - `final`: GELU then 3×3 conv to C_out.
//!
//! A residual block is `conv3×3(GELU(conv3×3(GELU(x)))) + shortcut(x)`, the shortcut a 1×1 conv
//! when the width changes. Every 3×3 conv pads circularly by one point. The transposed conv
//! crops one point per side as PyTorch's `padding=1` (the periodic wrap-around is not
//! represented there, as in the authors' model).

use tch::nn::{self, ConvConfig, Module};
use tch::Tensor;

use crate::error::{Error, Result};

/// Shape of a UNet.
#[derive(Clone, Debug, PartialEq)]
pub struct UnetShape {
    pub in_channels: i64,
    pub out_channels: i64,
    /// Width after the input projection.
    pub hidden: i64,
    /// Channel multiplier per level (the number of levels is its length).
    pub dim_mults: Vec<i64>,
    /// Residual blocks per encoder level (the decoder has one more).
    pub blocks: usize,
}

impl UnetShape {
    /// Channels at the bottleneck.
    pub fn bottleneck_channels(&self) -> i64 {
        self.hidden * self.dim_mults.iter().product::<i64>()
    }

    /// Grid side at the bottleneck for an `image`-point input.
    pub fn bottleneck_size(&self, image: i64) -> i64 {
        image >> (self.dim_mults.len().saturating_sub(1))
    }

    /// Why this shape cannot run on an `image`² grid, if it cannot: each downsampling halves
    /// the grid exactly, and the bottleneck must keep at least 2 points for circular padding.
    pub fn check_grid(&self, image: i64) -> Result<()> {
        let levels = self.dim_mults.len();
        if levels == 0 {
            return Err(Error::input("dim_mults is empty: need at least one level"));
        }
        let factor = 1i64 << (levels - 1);
        if image % factor != 0 || image / factor < 2 {
            return Err(Error::Input(format!(
                "{levels} levels halve the grid {} times, which a {image}² grid does not allow (needs a multiple of {} \
                 and at least {}); use fewer levels",
                levels - 1,
                factor,
                2 * factor
            )));
        }
        Ok(())
    }
}

/// PyTorch's default initialisation of conv and linear layers: weights and biases uniform in
/// ±1/√fan_in (kaiming_uniform with a = √5), so a fresh model starts as a PyTorch one does.
pub fn torch_default_init(fan_in: i64) -> nn::Init {
    let b = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform { lo: -b, up: b }
}

/// Periodic extension of `[B, C, y, x]` by `p` points on each side of both grid axes.
///
/// Two concatenations (x, then y) instead of ATen's `pad(mode="circular")`, which copies piece
/// by piece: the same values, about 1.6× faster forward and backward (measured on
/// `[32, 64, 64, 64]`, one thread).
pub fn circular_pad(x: &Tensor, p: i64) -> Tensor {
    if p == 0 {
        return x.shallow_clone();
    }
    let wrap = |x: &Tensor, dim: i64| {
        let n = x.size()[dim as usize];
        Tensor::cat(&[x.narrow(dim, n - p, p), x.shallow_clone(), x.narrow(dim, 0, p)], dim)
    };
    wrap(&wrap(x, 3), 2)
}

/// A k×k convolution on the torus: circular padding by k/2, then a valid convolution; PyTorch's
/// initialisation. Equivalent to PyTorch's `Conv2d(padding=k//2, padding_mode="circular")`.
#[derive(Debug)]
pub struct PeriodicConv {
    conv: nn::Conv2D,
    pad: i64,
}

impl Module for PeriodicConv {
    fn forward(&self, x: &Tensor) -> Tensor {
        circular_pad(x, self.pad).apply(&self.conv)
    }
}

/// A k×k periodic convolution from `c_in` to `c_out` channels (variables `weight`, `bias`).
pub fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> PeriodicConv {
    let init = torch_default_init(c_in * k * k);
    let cfg = ConvConfig { stride, padding: 0, ws_init: init, bs_init: init, ..Default::default() };
    PeriodicConv { conv: nn::conv2d(p, c_in, c_out, k, cfg), pad: k / 2 }
}

fn conv3(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> PeriodicConv {
    conv(p, c_in, c_out, 3, stride)
}

/// Wide residual block (pre-activation, GELU).
#[derive(Debug)]
struct ResidualBlock {
    conv1: PeriodicConv,
    conv2: PeriodicConv,
    shortcut: Option<PeriodicConv>,
}

impl ResidualBlock {
    fn new(p: nn::Path, c_in: i64, c_out: i64) -> Self {
        let shortcut = (c_in != c_out).then(|| conv(&p / "shortcut", c_in, c_out, 1, 1));
        ResidualBlock {
            conv1: conv3(&p / "conv1", c_in, c_out, 1),
            conv2: conv3(&p / "conv2", c_out, c_out, 1),
            shortcut,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let h = x.gelu("none").apply(&self.conv1);
        let h = h.gelu("none").apply(&self.conv2);
        match &self.shortcut {
            Some(s) => h + x.apply(s),
            None => h + x,
        }
    }
}

/// A residual block is three times the size of a convolution: boxed, so that the layer lists
/// do not pad every convolution to its size.
#[derive(Debug)]
enum DownLayer {
    Res(Box<ResidualBlock>),
    Downsample(PeriodicConv),
}

#[derive(Debug)]
enum UpLayer {
    Res(Box<ResidualBlock>),
    Upsample(nn::ConvTranspose2D),
}

/// The UNet; `forward` maps `[B, C_in, N, N]` to `[B, C_out, N, N]`.
#[derive(Debug)]
pub struct Unet {
    image_proj: PeriodicConv,
    down: Vec<DownLayer>,
    middle: [ResidualBlock; 2],
    up: Vec<UpLayer>,
    last: PeriodicConv,
}

/// What the encoder hands to the decoder: the bottleneck map and the skip connections.
pub struct Encoded {
    pub bottleneck: Tensor,
    skips: Vec<Tensor>,
}

impl Unet {
    /// Creates the variables under `p` (names as the authors' PyTorch module).
    pub fn new(p: &nn::Path, s: &UnetShape) -> Unet {
        let image_proj = conv3(p / "image_proj", s.in_channels, s.hidden, 1);
        let levels = s.dim_mults.len();
        let mut down = Vec::new();
        let dp = p / "down";
        let mut c_in = s.hidden;
        for (i, m) in s.dim_mults.iter().enumerate() {
            let c_out = c_in * m;
            for _ in 0..s.blocks {
                let k = down.len();
                down.push(DownLayer::Res(Box::new(ResidualBlock::new(&dp / k / "res", c_in, c_out))));
                c_in = c_out;
            }
            if i + 1 < levels {
                let k = down.len();
                down.push(DownLayer::Downsample(conv3(&dp / k / "conv", c_in, c_in, 2)));
            }
        }
        let mp = p / "middle";
        let middle = [ResidualBlock::new(&mp / "res1", c_in, c_in), ResidualBlock::new(&mp / "res2", c_in, c_in)];
        let mut up = Vec::new();
        let upp = p / "up";
        for i in (0..levels).rev() {
            for _ in 0..s.blocks {
                let k = up.len();
                up.push(UpLayer::Res(Box::new(ResidualBlock::new(&upp / k / "res", 2 * c_in, c_in))));
            }
            let c_out = c_in / s.dim_mults[i];
            let k = up.len();
            up.push(UpLayer::Res(Box::new(ResidualBlock::new(&upp / k / "res", c_in + c_out, c_out))));
            c_in = c_out;
            if i > 0 {
                let k = up.len();
                // PyTorch's fan-in of a transposed conv is weight.size(1)·k² = c_out·16.
                let init = torch_default_init(c_in * 16);
                let cfg = nn::ConvTransposeConfig {
                    stride: 2,
                    padding: 1,
                    ws_init: init,
                    bs_init: init,
                    ..Default::default()
                };
                up.push(UpLayer::Upsample(nn::conv_transpose2d(&upp / k / "conv", c_in, c_in, 4, cfg)));
            }
        }
        let last = conv3(p / "final", c_in, s.out_channels, 1);
        Unet { image_proj, down, middle, up, last }
    }

    /// Encoder and middle block.
    pub fn encode(&self, x: &Tensor) -> Encoded {
        let mut x = x.apply(&self.image_proj);
        let mut skips = vec![x.shallow_clone()];
        for layer in &self.down {
            x = match layer {
                DownLayer::Res(b) => b.forward(&x),
                DownLayer::Downsample(c) => x.apply(c),
            };
            skips.push(x.shallow_clone());
        }
        for b in &self.middle {
            x = b.forward(&x);
        }
        Encoded { bottleneck: x, skips }
    }

    /// Decoder and output projection.
    pub fn decode(&self, e: Encoded) -> Tensor {
        let Encoded { bottleneck: mut x, mut skips } = e;
        for layer in &self.up {
            x = match layer {
                UpLayer::Upsample(c) => x.apply(c),
                UpLayer::Res(b) => {
                    let s = skips.pop().expect("one skip per decoder block");
                    b.forward(&Tensor::cat(&[x, s], 1))
                }
            };
        }
        x.gelu("none").apply(&self.last)
    }
}

impl Module for Unet {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.decode(self.encode(x))
    }
}

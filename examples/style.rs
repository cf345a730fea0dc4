//! Texture synthesis and style transfer with Gram matrices (Gatys et al.
//! 2015, 2016) on colour images, with a *random* convolutional network as
//! the feature extractor (no pretrained VGG is available here; Ustyuzhaninov
//! et al. 2017 show that random networks are usable texture models).
//!
//! ```text
//! scripts/fetch-foolbox                                  # once: data/foolbox/*.jpg
//! cargo run --release --example style                    # 128×128, writes style_out/*.png
//! cargo run --release --example style -- --size 256 --texture my.png --content a.jpg --style b.jpg
//! cargo run --release --example style -- --smoke         # 64×64, a few seconds
//! ```
//!
//! **Features.** [`Feat128`] (and its 64 and 256 twins: shapes are types, so
//! one network per image size) is four 3×3 convolutions with ReLU, each
//! after a 2×2 average pool but the first: `f1` 32 channels at full
//! resolution, `f2` 64 at ½, `f3` 128 at ¼, `f4` 128 at ⅛ (receptive fields
//! 3, 8, 18 and 38 pixels: the scales of the texture model). Its weights
//! are kiln's default initialisation (Kaiming-uniform) drawn from `--seed`
//! and never trained. The network sees the image minus 0.5.
//!
//! **Losses.** Gram matrices `G = F Fᵀ / (H·W)` of `f1`…`f4`
//! ([`kiln::loss::gram`]); layer `l`'s style loss is
//! `‖G_l(x) − G_l(s)‖² / ‖G_l(s)‖²` (the relative squared error of its Gram
//! matrix, [`kiln::loss::StyleTarget`] with weight `1/‖T_l‖²`), summed over
//! the four layers. Style transfer adds `α ‖f3(x) − f3(c)‖² / ‖f3(c)‖²`
//! ([`kiln::loss::ContentTarget`], `α` = `--content-weight`) and the total
//! variation of the image times `--tv-weight` per pixel
//! ([`kiln::loss::total_variation`]). The gradients reach the image through
//! the network's generated backward with `tape.input_grads = true`: the
//! network has the four feature maps as outputs, so one backward pass takes
//! all four Gram gradients (and the content gradient) at once.
//!
//! **Optimiser.** The pixels are a plain host buffer optimised by Adam
//! written here ([`PixelAdam`], the usual update with bias correction),
//! projected back onto `[0, 1]` after each step. Texture synthesis starts
//! from uniform noise in `[0.4, 0.6]`; style transfer from the content image.
//!
//! Outputs (`--out-dir`): `texture.png` (the source texture | the synthesis)
//! and `style_transfer.png` (content | style | result).

use clap::Parser;
use kiln::loss::{total_variation, ContentTarget, StyleTarget};
use kiln::prelude::*;
use kiln::Kernels;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Texture synthesis and style transfer with Gram matrices of a random CNN.
#[derive(Parser, Debug, Clone)]
#[command(about = "Texture synthesis and style transfer with Gram matrices of a random CNN")]
pub struct Args {
    /// Side of the square images (64, 128 or 256): inputs are centre-cropped and resized.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// The texture to synthesise (JPEG or PNG).
    #[arg(long, default_value = "data/foolbox/imagenet_04_949.jpg")]
    pub texture: PathBuf,
    /// The content image of the style transfer.
    #[arg(long, default_value = "data/foolbox/imagenet_00_243.jpg")]
    pub content: PathBuf,
    /// The style image of the style transfer.
    #[arg(long, default_value = "data/foolbox/imagenet_12_741.jpg")]
    pub style: PathBuf,
    /// Adam steps of the texture synthesis.
    #[arg(long, default_value_t = 400)]
    pub texture_steps: usize,
    /// Adam steps of the style transfer.
    #[arg(long, default_value_t = 300)]
    pub style_steps: usize,
    /// Adam's learning rate on pixels in [0, 1].
    #[arg(long, default_value_t = 0.02)]
    pub lr: f64,
    /// α, the weight of the (relative) content loss against the sum of the four style losses.
    #[arg(long, default_value_t = 0.1)]
    pub content_weight: f64,
    /// Weight of the total variation per pixel (the sum is divided by 3·size²).
    #[arg(long, default_value_t = 2.0)]
    pub tv_weight: f64,
    /// Seed of the random network and of the initial noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (0: rayon's default, one per core); `main` sets them, not `run`.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Directory for the PNGs (created if missing).
    #[arg(long, default_value = "style_out")]
    pub out_dir: PathBuf,
    /// A quick run for CI: 64×64, 60 steps each.
    #[arg(long)]
    pub smoke: bool,
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// The texture synthesis's style loss at every step (before the step).
    pub texture_losses: Vec<f64>,
    /// The style transfer's style part at every step.
    pub transfer_style: Vec<f64>,
    /// The style transfer's content part at every step (α included).
    pub transfer_content: Vec<f64>,
    /// The smallest and largest pixel of both results.
    pub pixel_range: (f32, f32),
    /// Seconds per step of the texture synthesis.
    pub secs_per_step: f64,
    /// The PNGs written.
    pub files: Vec<PathBuf>,
}

/// Reads a JPEG or PNG, centre-crops it to a square and resizes it to
/// `n × n` (Lanczos); returns the three colour planes, `[3, n, n]` in `[0, 1]`.
pub fn load_square(path: &Path, n: usize) -> kiln::Result<Vec<f32>> {
    let img = image::open(path)
        .map_err(|e| kiln::Error::invalid("load image", format!("{}: {e}", path.display())))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let side = w.min(h);
    if side == 0 {
        return Err(kiln::Error::invalid(
            "load image",
            format!("{} is empty", path.display()),
        ));
    }
    let crop =
        image::imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side).to_image();
    let small = image::imageops::resize(
        &crop,
        n as u32,
        n as u32,
        image::imageops::FilterType::Lanczos3,
    );
    let mut planes = vec![0.0f32; 3 * n * n];
    for (i, p) in small.pixels().enumerate() {
        for c in 0..3 {
            planes[c * n * n + i] = p[c] as f32 / 255.0;
        }
    }
    Ok(planes)
}

/// Writes `[3, n, n]` images side by side (8 pixels apart) as one PNG.
pub fn write_row(path: &Path, images: &[&[f32]], n: usize) -> kiln::Result<()> {
    let gap = 8;
    let w = images.len() * (n + gap) - gap;
    let mut rgb = vec![255u8; w * n * 3];
    for (k, img) in images.iter().enumerate() {
        for r in 0..n {
            for col in 0..n {
                let o = (r * w + k * (n + gap) + col) * 3;
                for c in 0..3 {
                    let v = img[c * n * n + r * n + col];
                    rgb[o + c] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    std::fs::write(
        path,
        kiln::train::plot::encode_png(w as u32, n as u32, &rgb),
    )
    .map_err(|source| kiln::Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Adam on a plain buffer of pixels, projected onto `[0, 1]` after each step:
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `x ← clamp(x − lr · m̂ / (√v̂ + ε), 0, 1)` with `m̂ = m/(1−β₁ᵗ)`, `v̂ = v/(1−β₂ᵗ)`.
pub struct PixelAdam {
    lr: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl PixelAdam {
    /// Zero moments for `n` pixels.
    pub fn new(n: usize, lr: f64) -> Self {
        PixelAdam {
            lr,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }
    /// One step of `x` along the gradient `g` (β₁ = 0.9, β₂ = 0.999, ε = 1e-8).
    pub fn step(&mut self, x: &mut [f32], g: &[f32]) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for (((x, &g), m), v) in x.iter_mut().zip(g).zip(&mut self.m).zip(&mut self.v) {
            let g = g as f64;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let upd = self.lr * (*m / c1) / ((*v / c2).sqrt() + eps);
            *x = (*x as f64 - upd).clamp(0.0, 1.0) as f32;
        }
    }
}

/// The loss of one step, by part.
#[derive(Clone, Copy, Debug, Default)]
pub struct Parts {
    /// Σ over the four layers of the relative Gram error.
    pub style: f64,
    /// α · the relative content error (0 for texture synthesis).
    pub content: f64,
    /// The weighted total variation.
    pub tv: f64,
}

/// Declares the feature network for one image size and the code that needs
/// its concrete types: the targets, one loss-and-gradient evaluation and the
/// two optimisations.
macro_rules! sized {
    ($module:ident, $net:ident, $tape:ident, $n:tt, $n2:tt, $n4:tt, $n8:tt) => {
        /// The feature network and its optimisation loops at one image size.
        pub mod $module {
            use super::*;

            kiln::network! {
                /// The random multi-scale feature network (see the example's doc):
                /// four 3×3 convolutions with ReLU, average pools between them,
                /// every stage an output.
                pub struct $net {
                    input x: [3, $n, $n],
                    let f1 = x |> conv1: Conv2d(32, kernel = 3, padding = 1) |> relu;
                    let f2 = f1 |> AvgPool2d(2) |> conv2: Conv2d(64, kernel = 3, padding = 1) |> relu;
                    let f3 = f2 |> AvgPool2d(2) |> conv3: Conv2d(128, kernel = 3, padding = 1) |> relu;
                    let f4 = f3 |> AvgPool2d(2) |> conv4: Conv2d(128, kernel = 3, padding = 1) |> relu;
                    output f1;
                    output f2;
                    output f3;
                    output f4;
                }
            }

            /// Side of the images.
            pub const N: usize = $n;

            /// The Gram targets of the four layers with their weights
            /// `1/‖T_l‖²`, and optionally the content target of `f3` with
            /// its weight `α/‖P‖²`.
            pub struct Targets<D: Kernels<f32>> {
                s1: StyleTarget<32, f32, D>,
                s2: StyleTarget<64, f32, D>,
                s3: StyleTarget<128, f32, D>,
                s4: StyleTarget<128, f32, D>,
                w: [f64; 4],
                content: Option<(ContentTarget<S3<128, $n4, $n4>, f32, D>, f64)>,
            }

            /// The network and the buffers one evaluation reuses.
            pub struct Model<D: Kernels<f32>> {
                /// The random feature network.
                pub net: $net<f32, D>,
                tape: $tape<f32, D>,
                grads: <$net<f32, D> as Module<f32, D>>::Grads,
                x: Tensor<S3<3, $n, $n>, f32, D>,
                d1: Tensor<S3<32, $n, $n>, f32, D>,
                d2: Tensor<S3<64, $n2, $n2>, f32, D>,
                d3: Tensor<S3<128, $n4, $n4>, f32, D>,
                d4: Tensor<S3<128, $n8, $n8>, f32, D>,
                centred: Vec<f32>,
                grad: Vec<f32>,
            }

            impl<D: Kernels<f32>> Model<D> {
                /// The network with weights drawn from `seed`, on `dev`.
                pub fn new(dev: &D, seed: u64) -> kiln::Result<Self> {
                    let net = $net::<f32, D>::init(dev, &mut rng(seed))?;
                    let mut tape = net.tape()?;
                    tape.input_grads = true;
                    Ok(Model {
                        grads: net.grads()?,
                        tape,
                        net,
                        x: Tensor::zeros(dev, 1)?,
                        d1: Tensor::zeros(dev, 1)?,
                        d2: Tensor::zeros(dev, 1)?,
                        d3: Tensor::zeros(dev, 1)?,
                        d4: Tensor::zeros(dev, 1)?,
                        centred: vec![0.0; 3 * N * N],
                        grad: vec![0.0; 3 * N * N],
                    })
                }

                fn upload(&mut self, img: &[f32]) -> kiln::Result<()> {
                    for (c, &p) in self.centred.iter_mut().zip(img) {
                        *c = p - 0.5;
                    }
                    self.x.copy_from_slice(&self.centred)
                }

                /// The Gram targets of `style` and, with `content`, the
                /// content target of weight `alpha` (relative, see `Targets`).
                pub fn targets(
                    &mut self,
                    style: &[f32],
                    content: Option<(&[f32], f64)>,
                ) -> kiln::Result<Targets<D>> {
                    self.upload(style)?;
                    let (f1, f2, f3, f4) = self.net.forward_with(&self.x, &mut self.tape)?;
                    let (s1, s2, s3, s4) = (
                        StyleTarget::new(f1)?,
                        StyleTarget::new(f2)?,
                        StyleTarget::new(f3)?,
                        StyleTarget::new(f4)?,
                    );
                    let w = [
                        inv_sq(s1.gram())?,
                        inv_sq(s2.gram())?,
                        inv_sq(s3.gram())?,
                        inv_sq(s4.gram())?,
                    ];
                    let content = match content {
                        Some((img, alpha)) => {
                            self.upload(img)?;
                            let f3 = self.net.forward_with(&self.x, &mut self.tape)?.2;
                            Some((ContentTarget::new(f3)?, alpha * inv_sq(f3)?))
                        }
                        None => None,
                    };
                    Ok(Targets { s1, s2, s3, s4, w, content })
                }

                /// The loss at `img` by part, and its gradient with respect
                /// to the pixels (returned; valid until the next call).
                pub fn loss_grad(
                    &mut self,
                    t: &mut Targets<D>,
                    img: &[f32],
                    tv_weight: f64,
                ) -> kiln::Result<(Parts, &[f32])> {
                    self.upload(img)?;
                    let set = Acc::Set;
                    let (f1, f2, f3, f4) = self.net.forward_train(&self.x, &mut self.tape)?;
                    let mut parts = Parts {
                        style: t.s1.loss(f1, t.w[0], Some((&mut self.d1, set)))?
                            + t.s2.loss(f2, t.w[1], Some((&mut self.d2, set)))?
                            + t.s3.loss(f3, t.w[2], Some((&mut self.d3, set)))?
                            + t.s4.loss(f4, t.w[3], Some((&mut self.d4, set)))?,
                        ..Parts::default()
                    };
                    if let Some((c, wc)) = &mut t.content {
                        parts.content = c.loss(f3, *wc, Some((&mut self.d3, Acc::Add)))?;
                    }
                    self.net.backward(
                        &mut self.tape,
                        &self.d1,
                        &self.d2,
                        &self.d3,
                        &self.d4,
                        &mut self.grads,
                    )?;
                    self.tape.grad_x.copy_to_slice(&mut self.grad)?;
                    // Per pixel: the sum of squared differences over 3·N² values.
                    let tv_w = tv_weight / (3 * N * N) as f64;
                    parts.tv = total_variation(img, [3, N, N], tv_w, Some((&mut self.grad, Acc::Add)))?;
                    Ok((parts, &self.grad))
                }
            }

            /// Optimises `img` for `steps` Adam steps against `targets`;
            /// returns the loss parts before each step.
            pub fn optimise<D: Kernels<f32>>(
                model: &mut Model<D>,
                targets: &mut Targets<D>,
                img: &mut [f32],
                steps: usize,
                lr: f64,
                tv_weight: f64,
                label: &str,
            ) -> kiln::Result<Vec<Parts>> {
                let mut adam = PixelAdam::new(img.len(), lr);
                let mut out = Vec::with_capacity(steps);
                let every = (steps / 10).max(1);
                for step in 0..steps {
                    let (parts, g) = model.loss_grad(targets, img, tv_weight)?;
                    adam.step(img, g);
                    if step % every == 0 || step + 1 == steps {
                        println!(
                            "{label} step {step:>4}/{steps}  style {:.4}  content {:.4}  tv {:.4}",
                            parts.style, parts.content, parts.tv
                        );
                    }
                    out.push(parts);
                }
                Ok(out)
            }

            /// Texture synthesis and style transfer at this size on the CPU.
            pub fn run(args: &Args, steps: (usize, usize)) -> kiln::Result<Outcome> {
                let dev = Cpu;
                let mut model = Model::new(&dev, args.seed)?;
                let texture = load_square(&args.texture, N)?;
                let content = load_square(&args.content, N)?;
                let style = load_square(&args.style, N)?;

                // Texture synthesis from noise.
                let mut r = rng(args.seed ^ 0x5eed);
                let mut img: Vec<f32> =
                    (0..3 * N * N).map(|_| 0.4 + 0.2 * r.random::<f32>()).collect();
                let mut targets = model.targets(&texture, None)?;
                let t0 = Instant::now();
                let tex = optimise(&mut model, &mut targets, &mut img, steps.0, args.lr, 0.0, "texture")?;
                let secs_per_step = t0.elapsed().as_secs_f64() / steps.0.max(1) as f64;
                println!("texture synthesis: {:.3} s per step ({N}×{N}, machine shared)", secs_per_step);
                let tex_path = args.out_dir.join("texture.png");
                write_row(&tex_path, &[&texture, &img], N)?;
                let mut range = range_of(&img);

                // Style transfer from the content image.
                let mut out = content.clone();
                let mut targets = model.targets(&style, Some((&content, args.content_weight)))?;
                let tr = optimise(&mut model, &mut targets, &mut out, steps.1, args.lr, args.tv_weight, "style")?;
                let st_path = args.out_dir.join("style_transfer.png");
                write_row(&st_path, &[&content, &style, &out], N)?;
                let r2 = range_of(&out);
                range = (range.0.min(r2.0), range.1.max(r2.1));
                Ok(Outcome {
                    texture_losses: tex.iter().map(|p| p.style).collect(),
                    transfer_style: tr.iter().map(|p| p.style).collect(),
                    transfer_content: tr.iter().map(|p| p.content).collect(),
                    pixel_range: range,
                    secs_per_step,
                    files: vec![tex_path, st_path],
                })
            }
        }
    };
}

sized!(size64, Feat64, Feat64Tape, 64, 32, 16, 8);
sized!(size128, Feat128, Feat128Tape, 128, 64, 32, 16);
sized!(size256, Feat256, Feat256Tape, 256, 128, 64, 32);

/// `1 / ‖t‖²` (the weight that makes a squared error relative to `t`).
fn inv_sq<S: Shape, D: Kernels<f32>>(t: &Tensor<S, f32, D>) -> kiln::Result<f64> {
    let s = t.device().sum_sq(t.buf(), t.numel())?;
    Ok(1.0 / s.max(1e-30))
}

fn range_of(img: &[f32]) -> (f32, f32) {
    img.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Checks the arguments, then runs the size asked for.
pub fn run(args: &Args) -> kiln::Result<Outcome> {
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(kiln::Error::invalid(
            "--lr",
            format!("must be a positive number, got {}", args.lr),
        ));
    }
    for (flag, v) in [
        ("--content-weight", args.content_weight),
        ("--tv-weight", args.tv_weight),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(kiln::Error::invalid(
                flag,
                format!("must be a number ≥ 0, got {v}"),
            ));
        }
    }
    for (flag, p) in [
        ("--texture", &args.texture),
        ("--content", &args.content),
        ("--style", &args.style),
    ] {
        if !p.is_file() {
            return Err(kiln::Error::invalid(
                flag,
                format!(
                    "{} is not a file (the default images come from scripts/fetch-foolbox)",
                    p.display()
                ),
            ));
        }
    }
    std::fs::create_dir_all(&args.out_dir).map_err(|source| kiln::Error::Io {
        path: args.out_dir.clone(),
        source,
    })?;
    let (size, steps) = if args.smoke {
        (64, (60, 60))
    } else {
        (args.size, (args.texture_steps, args.style_steps))
    };
    match size {
        64 => size64::run(args, steps),
        128 => size128::run(args, steps),
        256 => size256::run(args, steps),
        n => Err(kiln::Error::invalid(
            "--size",
            format!("{n} is not one of the compiled sizes 64, 128, 256"),
        )),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The threads are set here, not in `run`, which a smoke test calls in a
    // process whose pool may be running already (`set_threads` works once).
    match kiln::set_threads(args.threads).and_then(|()| run(&args)) {
        Ok(out) => {
            let (a, b) = (
                out.texture_losses.first().copied().unwrap_or(f64::NAN),
                out.texture_losses.last().copied().unwrap_or(f64::NAN),
            );
            println!("texture: style loss {a:.4} → {b:.4}");
            let (c, d) = (
                out.transfer_style.first().copied().unwrap_or(f64::NAN),
                out.transfer_style.last().copied().unwrap_or(f64::NAN),
            );
            println!("style transfer: style loss {c:.4} → {d:.4}");
            for f in &out.files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

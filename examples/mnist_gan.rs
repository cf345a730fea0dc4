//! A DCGAN (Radford, Metz & Chintala, 2016) on MNIST, with the generator
//! trained through the discriminator's gradient with respect to its input.
//!
//! ```text
//! scripts/fetch-mnist                                   # once: data/mnist/
//! cargo run --release --example mnist_gan -- --threads 2
//! cargo run --release --example mnist_gan -- --lenet lenet.safetensors --out-dir /tmp/gan
//! cargo run --release --example mnist_gan -- --smoke    # 100 steps (docs/gan.md: its time)
//! ```
//!
//! **Networks** (the course's guidelines: strided convolutions in D,
//! transposed convolutions in G, batch norm in both, ReLU in G with a tanh
//! output, LeakyReLU 0.2 in D; weights drawn from `N(0, 0.02²)` as in the
//! paper):
//!
//! * G: `z` (64 numbers, `N(0, I)`) → Linear 6272 → `[128, 7, 7]` → BN → ReLU
//!   → ConvTranspose 4×4 stride 2 → `[64, 14, 14]` → BN → ReLU →
//!   ConvTranspose 4×4 stride 2 → `[1, 28, 28]` → tanh (images in `[−1, 1]`).
//! * D: `[1, 28, 28]` → Conv 4×4 stride 2 → `[64, 14, 14]` → LeakyReLU →
//!   Conv 4×4 stride 2 → `[128, 7, 7]` → BN → LeakyReLU → Linear 1 (a logit).
//!
//! **One step**, with `ℓ(s, t) = max(s, 0) − s t + log(1 + e^{−|s|})` the
//! binary cross-entropy on a logit (`bce_with_logits`, a batch mean):
//!
//! 1. `x̃ = G(z)` (training mode).
//! 2. D: `L_D = ℓ(D(x), 1) + ℓ(D(x̃), 0)`. Two forward passes (each batch
//!    normalised with its own statistics, as PyTorch's DCGAN example does),
//!    two backward passes into one set of gradients (the second with
//!    `backward_acc(…, Acc::Add)`), one Adam step.
//! 3. G, the non-saturating loss `L_G = ℓ(D(x̃), 1) = −log σ(D(x̃))`, through
//!    the updated D: D's tape has `input_grads = true`, so its backward
//!    leaves `∂L_G/∂x̃` in `tape.grad_x`, which is the output gradient of G's
//!    backward; then one Adam step of G. D's parameter gradients from this
//!    pass are not used.
//!
//! Both optimizers are Adam with β₁ = 0.5 (β₂ = 0.999), learning rate 2e-4
//! (`--lr-decay-epochs N`: decayed linearly to 0 over the last N epochs).
//! Training stops after `--epochs` or when `--budget-mins` of training time
//! is spent, whichever comes first (the epoch in progress is cut short).
//!
//! **Averaged G** (`--ema-decay d`, 0.999; 0 turns it off): after every G
//! step `θ̄ ← d·θ̄ + (1 − d)·θ` over G's parameters and batch-norm buffers
//! (`kiln::optim::Ema`; Yazıcı et al. 2019). The averaged G is saved and
//! resumed with the run. It samples the grids; before it samples, its batch
//! norms get **standing statistics**: running mean and variance recomputed
//! for the averaged weights from 5,000 noise vectors (the averaged buffers
//! are averages of statistics of earlier weights). Both are scored.
//!
//! **Outputs** in `--out-dir`: `gan_epoch_NN.png` (8×8 samples from the same
//! 64 noise vectors after every epoch; `gan_epoch_00.png` is the untrained
//! G; later ones from the averaged G when there is one), `gan_samples.png`
//! (the last of them), `gan_losses.png`/`.svg` (both
//! losses, means over 50 steps) and `gan_history.jsonl` (per epoch).
//!
//! **Evaluation** with a LeNet-5 (`kiln::models::LeNet5`'s layers and
//! parameter names, with the 84 penultimate features as a second output):
//! `--lenet PATH` loads it from a checkpoint (`mnist_lenet --save PATH`,
//! trained without `--normalize`: the classifier reads pixels in `[0, 1]`);
//! if PATH does not exist, or no `--lenet` is given, it is trained here
//! (`--lenet-epochs`, Adam 2e-3 with cosine decay, batch 64) and, with
//! `--lenet`, saved to PATH for the next run (not by `--smoke`, whose LeNet
//! trains for 150 steps only). On `--eval-samples` generated
//! digits (G in evaluation mode: batch norm with its running statistics) the
//! program prints the mean maximum class probability (confidence), the
//! entropy of the histogram of predicted classes (diversity, `log 10 ≈ 2.303`
//! at most) and the Fréchet distance between the LeNet features of the
//! generated digits and of the 10,000 test digits; beside them the same
//! numbers for real digits: confidence and entropy on the test digits, and
//! the Fréchet distance between as many training digits and the test digits
//! (the floor a perfect generator would reach).

use clap::Parser;
use kiln::checkpoint::Checkpoint;
use kiln::data::loader::batch_rng;
use kiln::data::{Batch, DataLoader};
use kiln::optim::Ema;
use kiln::prelude::*;
use kiln::schedule::Schedule;
use kiln::train::plot::{plot_panels, Panel};
use kiln::train::{Checkpointed, Control, Feed, Record, StepCtx, StepOut, Trainer};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Numbers in the generator's noise input.
pub const Z: usize = 64;
/// GAN steps of `--smoke`.
pub const SMOKE_STEPS: usize = 100;
/// Generated (and real training) digits scored by `--smoke`.
pub const SMOKE_EVAL: usize = 1000;
/// Mixed into `--seed` for the noise of the training steps.
const NOISE: u64 = 0x006e_6f69_7365;
/// Mixed into `--seed` for the noise of the standing statistics.
const STANDING: u64 = 0x0073_7461_6e64;
/// Noise vectors (batches of 500) behind the standing statistics of the
/// averaged G's batch norms.
pub const STANDING_N: usize = 5000;

kiln::network! {
    /// The generator: `z` → 28×28 image in `[−1, 1]`.
    pub struct Generator {
        input: [64],
        fc: Linear(6272, bias = false, init = normal(0.02)),
        reshape([128, 7, 7]),
        bn0: BatchNorm2d,
        relu,
        up1: ConvTranspose2d(64, kernel = 4, stride = 2, padding = 1, bias = false, init = normal(0.02)),
        bn1: BatchNorm2d,
        relu,
        up2: ConvTranspose2d(1, kernel = 4, stride = 2, padding = 1, init = normal(0.02)),
        tanh,
    }
}

kiln::network! {
    /// The discriminator: image → logit of "real".
    pub struct Discriminator {
        input: [1, 28, 28],
        c1: Conv2d(64, kernel = 4, stride = 2, padding = 1, init = normal(0.02)),
        LeakyRelu(0.2),
        c2: Conv2d(128, kernel = 4, stride = 2, padding = 1, bias = false, init = normal(0.02)),
        bn: BatchNorm2d,
        LeakyRelu(0.2),
        flatten,
        fc: Linear(1, init = normal(0.02)),
    }
}

#[path = "mnist_gan/lenet.rs"]
mod lenet;
pub use lenet::LeNetFeatures;
use lenet::{lenet, lenet_read, score};
#[path = "mnist_gan/sampling.rs"]
mod sampling;
use sampling::{generate, with_standing_stats};

/// Train a DCGAN on MNIST.
#[derive(Parser, Debug)]
#[command(about = "Train a DCGAN on MNIST with kiln and score its digits with a LeNet")]
pub struct Args {
    /// Passes over the 60,000 training images (30: about 25 minutes on 2
    /// cores, inside the 30-minute budget; the averaged G's confidence
    /// crosses 0.9 from epoch 26, `docs/gan.md`).
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Stop training after this many minutes (the epoch in progress is cut short).
    #[arg(long, default_value_t = 30.0)]
    pub budget_mins: f64,
    /// Images (real and generated each) per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Learning rate of both Adam optimizers.
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Decay both learning rates linearly to 0 over the last N of --epochs
    /// (0: constant).
    #[arg(long, default_value_t = 0)]
    pub lr_decay_epochs: usize,
    /// β₁ of both Adam optimizers.
    #[arg(long, default_value_t = 0.5)]
    pub beta1: f64,
    /// Seed of the weights, the shuffling and the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (0: one per core); `main` sets them, not `run`.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// LeNet checkpoint: loaded if it exists, else written after training one.
    #[arg(long, value_name = "PATH")]
    pub lenet: Option<PathBuf>,
    /// Epochs of the LeNet trained when none is loaded.
    #[arg(long, default_value_t = 4)]
    pub lenet_epochs: usize,
    /// Generated digits scored by the LeNet.
    #[arg(long, default_value_t = 10_000)]
    pub eval_samples: usize,
    /// Decay of the exponential moving average of G's weights that samples
    /// and is scored beside the live G (0: no average).
    #[arg(long, default_value_t = 0.999)]
    pub ema_decay: f64,
    /// Also score the live and the averaged G after every epoch (in the
    /// history as `conf`, `conf_ema`, `fd`, `fd_ema`; costs time).
    #[arg(long)]
    pub score_epochs: bool,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Where to write the PNGs, the plot and the history.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// Write the run (both networks, both optimizers, the position) to PATH after every epoch.
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    /// Continue the run saved in PATH (same flags; --epochs may grow).
    #[arg(long, value_name = "PATH")]
    pub resume: Option<PathBuf>,
    /// Stop after this many steps, saving first with --save (to try --resume).
    #[arg(long, value_name = "STEPS")]
    pub stop_after: Option<u64>,
    /// A quick check: 100 GAN steps on 6,400 images, a LeNet of 150 steps,
    /// 1,000 samples scored (and as many training digits for the floor).
    #[arg(long)]
    pub smoke: bool,
}

/// Scores of a set of digits read through the LeNet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scores {
    /// Mean maximum class probability.
    pub confidence: f64,
    /// Entropy (nats) of the histogram of predicted classes.
    pub class_entropy: f64,
    /// Fréchet distance of the LeNet features to the test digits'.
    pub frechet: f64,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// D's loss `ℓ(D(x), 1) + ℓ(D(G(z)), 0)` of every step.
    pub d_losses: Vec<f32>,
    /// G's loss `ℓ(D(G(z)), 1)` of every step.
    pub g_losses: Vec<f32>,
    /// D's mean `σ(D(x))` on the real batch of every step.
    pub d_real: Vec<f32>,
    /// The LeNet's test accuracy.
    pub lenet_accuracy: f64,
    /// Generated digits before training.
    pub initial: Scores,
    /// Generated digits after training (the live G).
    pub generated: Scores,
    /// Generated digits of the averaged G (`--ema-decay` > 0), its batch
    /// norms with standing statistics.
    pub ema: Option<Scores>,
    /// The same averaged G with the averaged running statistics instead.
    pub ema_averaged_bn: Option<Scores>,
    /// The live G with standing batch-norm statistics (instead of its
    /// running ones).
    pub live_standing: Scores,
    /// Real digits (test set; Fréchet: training digits against the test set).
    pub real: Scores,
    /// Seconds of every (possibly cut-short) epoch.
    pub epoch_secs: Vec<f64>,
    /// Steps taken.
    pub steps: usize,
    /// Seconds of GAN training.
    pub train_secs: f64,
}

/// Everything the GAN trains with.
struct Gan {
    g: Generator<f32, Cpu>,
    d: Discriminator<f32, Cpu>,
    gt: GeneratorTape<f32, Cpu>,
    dt: DiscriminatorTape<f32, Cpu>,
    gg: GeneratorGrads<f32, Cpu>,
    dg: DiscriminatorGrads<f32, Cpu>,
    gopt: Adam,
    dopt: Adam,
    x: Tensor<S3<1, 28, 28>>,
    z: Tensor<S1<Z>>,
    ones: Tensor<S1<1>>,
    zeros: Tensor<S1<1>>,
    dlogit: Tensor<S1<1>>,
}

/// Losses of one step.
struct StepLosses {
    d: f32,
    g: f32,
    d_real: f32,
}

impl Gan {
    fn new(rng: &mut Rng, lr: f64, beta1: f64) -> kiln::Result<Gan> {
        let g = Generator::<f32, Cpu>::init(&Cpu, rng)?;
        let d = Discriminator::<f32, Cpu>::init(&Cpu, rng)?;
        let mut dt = d.tape()?;
        dt.input_grads = true;
        Ok(Gan {
            gt: g.tape()?,
            gg: g.grads()?,
            dg: d.grads()?,
            dt,
            g,
            d,
            gopt: Adam::new(lr).betas(beta1, 0.999),
            dopt: Adam::new(lr).betas(beta1, 0.999),
            x: Tensor::zeros(&Cpu, 1)?,
            z: Tensor::zeros(&Cpu, 1)?,
            ones: Tensor::zeros(&Cpu, 1)?,
            zeros: Tensor::zeros(&Cpu, 1)?,
            dlogit: Tensor::zeros(&Cpu, 1)?,
        })
    }

    /// One D step and one G step on real images `x` (in `[−1, 1]`) and noise `z`.
    fn step(&mut self, x: &[f32], z: &[f32], n: usize) -> kiln::Result<StepLosses> {
        self.x.set_batch(n)?;
        self.x.copy_from_slice(x)?;
        self.z.set_batch(n)?;
        self.z.copy_from_slice(z)?;
        if self.ones.batch() != n {
            self.ones = Tensor::from_vec(&Cpu, n, vec![1.0; n])?;
            self.zeros = Tensor::zeros(&Cpu, n)?;
        }
        // x̃ = G(z); it stays in G's tape (`out_y`) for both uses below.
        self.g.forward_train(&self.z, &mut self.gt)?;
        let fake = &self.gt.out_y;

        // D: ℓ(D(x), 1) + ℓ(D(x̃), 0), gradients summed.
        let real_logits = self.d.forward_train(&self.x, &mut self.dt)?;
        let d_real = mean_sigmoid(&real_logits.to_vec()?);
        let l_real = bce_with_logits(real_logits, &self.ones, Some(&mut self.dlogit))?;
        self.d.backward(&mut self.dt, &self.dlogit, &mut self.dg)?;
        let fake_logits = self.d.forward_train(fake, &mut self.dt)?;
        let l_fake = bce_with_logits(fake_logits, &self.zeros, Some(&mut self.dlogit))?;
        self.d
            .backward_acc(&mut self.dt, &self.dlogit, &mut self.dg, Acc::Add)?;
        self.dopt.step(&mut self.d, &self.dg)?;

        // G: ℓ(D(x̃), 1) through the updated D; ∂L_G/∂x̃ is D's input gradient.
        let logits = self.d.forward_train(fake, &mut self.dt)?;
        let l_g = bce_with_logits(logits, &self.ones, Some(&mut self.dlogit))?;
        self.d.backward(&mut self.dt, &self.dlogit, &mut self.dg)?;
        self.g
            .backward(&mut self.gt, &self.dt.grad_x, &mut self.gg)?;
        self.gopt.step(&mut self.g, &self.gg)?;
        Ok(StepLosses {
            d: l_real + l_fake,
            g: l_g,
            d_real,
        })
    }
}

/// The GAN as the runner trains it: the networks and their optimizers
/// (saved and resumed through [`Checkpointed`]), the noise buffer, and the
/// per-step losses (kept for the plot; a resumed run's lists start at the
/// resume).
struct GanRun {
    gan: Gan,
    avg: Option<Averaged>,
    z: Vec<f32>,
    noise_seed: u64,
    d_losses: Vec<f32>,
    g_losses: Vec<f32>,
    d_real: Vec<f32>,
    since: usize,
}

impl GanRun {
    /// One D step and one G step on a loader batch (pixels already in
    /// `[−1, 1]`); the noise is drawn from the batch's own generator
    /// (`batch_rng(seed, epoch, index)`), so a resumed run draws the same.
    fn step(&mut self, batch: &Batch, lr: f64) -> kiln::Result<StepOut> {
        self.gan.gopt.set_lr(lr);
        self.gan.dopt.set_lr(lr);
        let n = batch.len();
        let mut g = batch_rng(self.noise_seed, batch.epoch, batch.index);
        kiln::init::fill_normal(&mut g, &mut self.z[..n * Z], 0.0, 1.0)?;
        let l = self.gan.step(&batch.x, &self.z[..n * Z], n)?;
        if let Some(a) = &mut self.avg {
            a.ema.update(&mut a.g, &self.gan.g)?;
        }
        self.d_losses.push(l.d);
        self.g_losses.push(l.g);
        self.d_real.push(l.d_real);
        Ok(StepOut {
            loss: l.d as f64,
            correct: None,
            stepped: true,
            lr: self.gan.gopt.lr(),
        })
    }
    /// Means of G's loss and of `σ(D(x))` since the previous call.
    fn means_since_last(&mut self) -> (f64, f64) {
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
        let r = (
            mean(&self.g_losses[self.since..]),
            mean(&self.d_real[self.since..]),
        );
        self.since = self.g_losses.len();
        r
    }
}

/// The exponential moving average of G's weights (`--ema-decay`): `g`
/// holds `θ̄ ← d·θ̄ + (1 − d)·θ` after every G step, batch-norm running
/// statistics averaged the same way (`kiln::optim::Ema`).
struct Averaged {
    g: Generator<f32, Cpu>,
    ema: Ema<f32, Cpu>,
}

impl Checkpointed for GanRun {
    fn problems(&self, c: &Checkpoint) -> Vec<String> {
        let mut p = c.training_part_problems("g", &self.gan.g);
        p.extend(c.training_part_problems("d", &self.gan.d));
        // A checkpoint with an average must hold one of this decay (one
        // without starts the average at the resume: see `load_from`).
        if let (Some(a), Some(saved)) = (&self.avg, c.metadata.get("ema.decay")) {
            if *saved != format!("{:?}", a.ema.decay()) {
                p.push(format!(
                    "--ema-decay: {saved} in the checkpoint, {:?} now",
                    a.ema.decay()
                ));
            }
            p.extend(c.module_problems("ema", &a.g));
        }
        p
    }
    fn save_to(&self, c: &mut Checkpoint) -> kiln::Result<()> {
        let gan = &self.gan;
        c.add_training_part("g", &gan.g, &gan.gopt, &gan.gt.ctx.rng)?;
        c.add_training_part("d", &gan.d, &gan.dopt, &gan.dt.ctx.rng)?;
        if let Some(a) = &self.avg {
            c.add_module("ema", &a.g)?;
            c.set_meta("ema.decay", format!("{:?}", a.ema.decay()));
            c.set_meta("ema.updates", a.ema.updates());
        }
        Ok(())
    }
    fn load_from(&mut self, c: &Checkpoint, path: &Path) -> kiln::Result<()> {
        let Gan {
            g,
            d,
            gt,
            dt,
            gopt,
            dopt,
            ..
        } = &mut self.gan;
        c.load_training_part("g", g, gopt, &mut gt.ctx.rng, path)?;
        c.load_training_part("d", d, dopt, &mut dt.ctx.rng, path)?;
        if let Some(a) = &mut self.avg {
            if c.metadata.contains_key("ema.updates") {
                c.load_module("ema", &mut a.g, path)?;
                a.ema
                    .set_updates(c.meta("ema.updates").map_err(|e| e.in_file(path))?);
            } else {
                println!(
                    "{} holds no average of G: it starts here (its first update copies G)",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

fn mean_sigmoid(v: &[f32]) -> f32 {
    v.iter().map(|&s| 1.0 / (1.0 + (-s).exp())).sum::<f32>() / v.len().max(1) as f32
}

/// A grid of 28×28 images (`images`: n × 784 values in `[0, 1]`) in rows of
/// `cols`, scaled ×2 with grey borders (`kiln::train::plot::write_image_grid`).
fn write_grid(path: &Path, images: &[f32], cols: usize) -> kiln::Result<()> {
    kiln::train::plot::write_image_grid(path, images, (28, 28), cols, 2)
}

/// Means of `v` over windows of `w` steps, as (epoch, value) points.
fn windows(v: &[f32], w: usize, steps_per_epoch: usize) -> Vec<(f64, f64)> {
    v.chunks(w)
        .enumerate()
        .map(|(i, c)| {
            let mid = (i * w) as f64 + c.len() as f64 / 2.0;
            (
                mid / steps_per_epoch.max(1) as f64,
                c.iter().map(|&x| x as f64).sum::<f64>() / c.len() as f64,
            )
        })
        .collect()
}

/// Both learning rates by step: `--lr` until the last `--lr-decay-epochs`
/// of `--epochs` (of `per_epoch` steps), then a linear decay that reaches 0
/// at the end (`kiln::schedule::LinearLr`; a constant `LinearLr` before).
fn lr_schedule(args: &Args, per_epoch: u64) -> kiln::Result<kiln::schedule::Sequential> {
    use kiln::schedule::{LinearLr, Sequential};
    let constant = Box::new(LinearLr::new(args.lr, 1.0, 1.0, 1)?);
    if args.lr_decay_epochs == 0 {
        return Sequential::new(vec![constant], vec![]);
    }
    let decay = Box::new(LinearLr::new(
        args.lr,
        1.0,
        0.0,
        (args.lr_decay_epochs as u64 * per_epoch).max(1),
    )?);
    let start = args.epochs.saturating_sub(args.lr_decay_epochs) as u64 * per_epoch;
    if start == 0 {
        Sequential::new(vec![decay], vec![])
    } else {
        Sequential::new(vec![constant, decay], vec![start])
    }
}

/// Checks the flags, loads MNIST, trains the LeNet (or loads it) and the
/// GAN, and scores the generated digits.
pub fn run(args: &Args) -> kiln::Result<Outcome> {
    if args.batch_size < 2 {
        return Err(kiln::Error::invalid(
            "--batch-size",
            "must be at least 2 (batch norm)",
        ));
    }
    for (flag, v) in [("--lr", args.lr), ("--budget-mins", args.budget_mins)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(kiln::Error::invalid(
                flag,
                format!("must be a positive number, got {v}"),
            ));
        }
    }
    if !(0.0..1.0).contains(&args.beta1) {
        return Err(kiln::Error::invalid(
            "--beta1",
            format!("must be in [0, 1), got {}", args.beta1),
        ));
    }
    if args.lr_decay_epochs > args.epochs {
        return Err(kiln::Error::invalid(
            "--lr-decay-epochs",
            format!(
                "must be at most --epochs ({}), got {}",
                args.epochs, args.lr_decay_epochs
            ),
        ));
    }
    if !(0.0..1.0).contains(&args.ema_decay) {
        return Err(kiln::Error::invalid(
            "--ema-decay",
            format!("must be in [0, 1), got {}", args.ema_decay),
        ));
    }
    if args.eval_samples < 2 {
        return Err(kiln::Error::invalid("--eval-samples", "must be at least 2"));
    }
    if !args.smoke && args.lenet_epochs == 0 && !args.lenet.as_ref().is_some_and(|p| p.exists()) {
        return Err(kiln::Error::invalid(
            "--lenet-epochs",
            "must be at least 1 when no --lenet checkpoint is loaded",
        ));
    }
    for f in ["gan_samples.png", "gan_losses.png", "gan_history.jsonl"] {
        kiln::train::check_output_path("--out-dir", &args.out_dir.join(f))?;
    }
    let data = Mnist::load(&args.data_dir)?;
    if data.train.dim != 784 || data.test.dim != 784 || data.test.len() < 2 {
        return Err(kiln::Error::invalid(
            "Mnist::load",
            "expected 28×28 images and at least 2 test images",
        ));
    }
    let mut out = Outcome::default();
    let (lenet, acc) = lenet(args, &data)?;
    out.lenet_accuracy = acc;

    // Reference features (test digits) and the real-digit scores.
    let eval_n = if args.smoke {
        SMOKE_EVAL
    } else {
        args.eval_samples
    };
    let (_, _, test_feats) = lenet_read(&lenet, &data.test.x)?;
    let real_train = &data.train.x[..eval_n.min(data.train.len()) * 784];
    out.real = Scores {
        frechet: score(&lenet, real_train, &test_feats)?.frechet,
        ..score(&lenet, &data.test.x, &test_feats)?
    };

    let mut gen = rng(args.seed);
    let gan = Gan::new(&mut gen, args.lr, args.beta1)?;
    let mut eval_rng = rng(args.seed ^ 0x6576_616c);
    let mut fixed = vec![0f32; 64 * Z];
    kiln::init::fill_normal(&mut eval_rng, &mut fixed, 0.0, 1.0)?;
    let mut eval_z = vec![0f32; eval_n * Z];
    kiln::init::fill_normal(&mut eval_rng, &mut eval_z, 0.0, 1.0)?;
    let mut standing_z = vec![0f32; if args.smoke { SMOKE_EVAL } else { STANDING_N } * Z];
    kiln::init::fill_normal(&mut rng(args.seed ^ STANDING), &mut standing_z, 0.0, 1.0)?;
    out.initial = score(&lenet, &generate(&gan.g, &eval_z)?, &test_feats)?;
    write_grid(
        &args.out_dir.join("gan_epoch_00.png"),
        &generate(&gan.g, &fixed)?,
        8,
    )?;

    let b = args.batch_size;
    let train_n = if args.smoke {
        SMOKE_STEPS * b
    } else {
        data.train.len()
    };
    let train_set = data.train.take(train_n.min(data.train.len()));
    // Pixels to [−1, 1] (tanh's range): (x − 0.5) / 0.5. Full batches only
    // (batch norm needs two samples; the runner's epochs stay aligned).
    let train = DataLoader::new(train_set, b)
        .shuffle(args.seed)
        .drop_last(true)
        .image(1, 28, 28)
        .normalize(&[0.5], &[0.5])
        .prefetch(2);
    let steps_per_epoch = train.batches_per_epoch();
    let sched = lr_schedule(args, steps_per_epoch as u64)?;
    let mut trainer = Trainer::new()
        .log(args.out_dir.join("gan_history.jsonl"))
        .fingerprint("batch_size", b)
        .fingerprint("lr", format!("{:?}", args.lr))
        .fingerprint("beta1", format!("{:?}", args.beta1))
        .fingerprint("lr_decay_epochs", args.lr_decay_epochs)
        .fingerprint("seed", args.seed);
    trainer = if args.smoke {
        trainer.steps(SMOKE_STEPS as u64).quiet(true)
    } else {
        trainer.epochs(args.epochs as u64)
    };
    if let Some(p) = &args.save {
        trainer = trainer.save(p);
    }
    if let Some(p) = &args.resume {
        trainer = trainer.resume(p);
    }
    if let Some(n) = args.stop_after {
        trainer = trainer.stop_after(n);
    }
    println!(
        "DCGAN: z {Z}, batch {b}, Adam {} β₁ {}, {} epochs of {steps_per_epoch} steps (budget {} min), seed {}",
        args.lr, args.beta1, args.epochs, args.budget_mins, args.seed
    );
    let budget = args.budget_mins * 60.0;
    let t_train = Instant::now();
    let avg = if args.ema_decay > 0.0 {
        Some(Averaged {
            g: Generator::<f32, Cpu>::init(&Cpu, &mut rng(args.seed ^ STANDING))?,
            ema: Ema::new(args.ema_decay)?,
        })
    } else {
        None
    };
    // G as it samples: the average with standing statistics, or the live G.
    let sampler = |r: &GanRun| -> kiln::Result<Option<Generator<f32, Cpu>>> {
        r.avg
            .as_ref()
            .map(|a| with_standing_stats(&a.g, &standing_z))
            .transpose()
    };
    let mut run = GanRun {
        gan,
        avg,
        z: vec![0f32; b * Z],
        noise_seed: args.seed ^ NOISE,
        d_losses: Vec::new(),
        g_losses: Vec::new(),
        d_real: Vec::new(),
        since: 0,
    };
    let report = trainer
        .on_step(|_| {
            Ok(if t_train.elapsed().as_secs_f64() > budget {
                println!("time budget of {} min reached", args.budget_mins);
                Control::Stop
            } else {
                Control::Continue
            })
        })
        .run(
            &mut run,
            Feed::Loader(&train),
            &mut |r: &mut GanRun, batch: &Batch, c: &StepCtx| r.step(batch, sched.lr_at(c.step)),
            &mut |r: &mut GanRun, rec: &mut Record| {
                let (g, dr) = r.means_since_last();
                rec.set("g_loss", g);
                rec.set("d_real", dr);
                let avg = sampler(r)?;
                if args.score_epochs {
                    let s = score(&lenet, &generate(&r.gan.g, &eval_z)?, &test_feats)?;
                    rec.set("conf", s.confidence);
                    rec.set("fd", s.frechet);
                    if let Some(a) = &avg {
                        let s = score(&lenet, &generate(a, &eval_z)?, &test_feats)?;
                        rec.set("conf_ema", s.confidence);
                        rec.set("fd_ema", s.frechet);
                    }
                }
                let path = args.out_dir.join(format!("gan_epoch_{:02}.png", rec.epoch));
                write_grid(
                    &path,
                    &generate(avg.as_ref().unwrap_or(&r.gan.g), &fixed)?,
                    8,
                )
            },
        )?;
    let avg = sampler(&run)?;
    let standing = with_standing_stats(&run.gan.g, &standing_z)?;
    out.live_standing = score(&lenet, &generate(&standing, &eval_z)?, &test_feats)?;
    if let (Some(a), Some(s)) = (&run.avg, &avg) {
        out.ema = Some(score(&lenet, &generate(s, &eval_z)?, &test_feats)?);
        out.ema_averaged_bn = Some(score(&lenet, &generate(&a.g, &eval_z)?, &test_feats)?);
    }
    let gan = run.gan;
    out.steps = report.steps as usize;
    out.epoch_secs = report.history.series("secs").iter().map(|p| p.1).collect();
    out.train_secs = out.epoch_secs.iter().sum();
    (out.d_losses, out.g_losses, out.d_real) = (run.d_losses, run.g_losses, run.d_real);
    write_grid(
        &args.out_dir.join("gan_samples.png"),
        &generate(avg.as_ref().unwrap_or(&gan.g), &fixed)?,
        8,
    )?;
    let w = 50.min(out.steps.max(1));
    plot_panels(
        &[Panel {
            title: "DCGAN losses (means over 50 steps)".into(),
            y_label: "loss".into(),
            series: vec![
                ("D".into(), windows(&out.d_losses, w, steps_per_epoch)),
                ("G".into(), windows(&out.g_losses, w, steps_per_epoch)),
            ],
        }],
        args.out_dir.join("gan_losses"),
        800,
        420,
    )?;
    out.generated = score(&lenet, &generate(&gan.g, &eval_z)?, &test_feats)?;
    Ok(out)
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let args = Args::parse();
    let t0 = Instant::now();
    // The threads are set here, not in `run`, which a smoke test calls in a
    // process whose pool may be running already (`set_threads` works once).
    match kiln::set_threads(args.threads).and_then(|()| run(&args)) {
        Ok(o) => {
            let n = if args.smoke {
                SMOKE_EVAL
            } else {
                args.eval_samples
            };
            println!("LeNet test accuracy {:.4}", o.lenet_accuracy);
            println!("                      confidence  class entropy  Fréchet (LeNet features)");
            let mut rows = vec![
                (format!("{n} generated"), o.generated),
                ("  (standing BN stats)".to_string(), o.live_standing),
            ];
            if let (Some(e), Some(b)) = (o.ema, o.ema_averaged_bn) {
                rows.push(("  averaged G".to_string(), e));
                rows.push(("  (averaged BN stats)".to_string(), b));
            }
            rows.push(("untrained G".to_string(), o.initial));
            rows.push(("real digits".to_string(), o.real));
            for (name, s) in rows {
                println!(
                    "{name:<22}{:>10.4}{:>15.4}{:>12.3}",
                    s.confidence, s.class_entropy, s.frechet
                );
            }
            println!("(real: test digits; Fréchet: {n} training digits against the test digits)");
            let per: Vec<String> = o.epoch_secs.iter().map(|s| format!("{s:.0}")).collect();
            println!(
                "{} steps, training {:.1} s (epochs: {} s), total {:.1} s; wrote gan_epoch_NN.png, gan_samples.png, gan_losses.png, gan_history.jsonl in {}",
                o.steps,
                o.train_secs,
                per.join(", "),
                t0.elapsed().as_secs_f64(),
                args.out_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

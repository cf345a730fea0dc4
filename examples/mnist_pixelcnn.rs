//! A PixelCNN (van den Oord et al., 2016) on dynamically binarised MNIST:
//! an autoregressive model `p(x) = Π_i p(x_i | x_<i)` over the 784 pixels in
//! raster order, each factor a Bernoulli whose logit a stack of masked
//! convolutions computes from the pixels above and to the left.
//!
//! ```text
//! scripts/fetch-mnist                                        # once: data/mnist/
//! cargo run --release --example mnist_pixelcnn -- --threads 2               # 30 minutes of training
//! cargo run --release --example mnist_pixelcnn -- --minutes 5 --channels 64
//! cargo run --release --example mnist_pixelcnn -- --smoke                   # under a minute
//! ```
//!
//! The network: a 7×7 type-A [`MaskedConv2d`](kiln::layers::MaskedConv2d)
//! (the pixel itself excluded) to `C` channels (`--channels`: 32 by default,
//! 64 or 16),
//! 8 residual blocks `h + MaskedConv2d_B,3×3(relu(h))` (type B: the centre,
//! which by then only saw earlier pixels, included), then ReLU, a 1×1
//! convolution, ReLU and a 1×1 convolution to one logit per pixel. Its
//! receptive field is the pixels before each one in raster order (the blind
//! spot of the stacked masks aside); `tests/pixelcnn_autoregressive.rs`
//! checks that no output depends on its own or a later pixel.
//!
//! The loss of an image is its negative log-likelihood in nats, the
//! Bernoulli cross-entropy of the 784 logits summed
//! ([`bce_with_logits_sum`]); for the test set it is the exact NLL of the
//! model (no bound: the factors are normalised). Training images are
//! binarised afresh at every visit (each pixel 1 with probability its grey
//! level, seeded); the test set once, with [`TEST_BINARISATION_SEED`], as in
//! `mnist_vae`, so their test figures compare. The PixelCNN paper's 81.3
//! nats is on the fixed binarisation of Larochelle and Murray, which no
//! package ships, so ours compares only roughly.
//!
//! Training runs Adam on mini-batches until `--minutes` of training time
//! (evaluations not counted) or `--epochs` passes, whichever comes first; it
//! prints the training loss every 100 steps, the test NLL every
//! `--eval-every` minutes of training and at the end of every epoch, and at
//! the end draws `--samples` images pixel by pixel (784 forward passes of the
//! batch, each pixel drawn from its Bernoulli) into `pixelcnn_samples.png`
//! in `--out-dir`.

use clap::Parser;
use kiln::prelude::*;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

pub use kiln::data::mnist::{binarise, TEST_BINARISATION_SEED};

/// Train a PixelCNN on MNIST.
#[derive(Parser, Debug, Clone)]
#[command(about = "Train a PixelCNN on binarised MNIST with kiln")]
pub struct Args {
    /// Minutes of training (evaluations not counted).
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Most passes over the 60,000 training images.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Channels of the masked convolutions: 64, 32 or 16 (32 by default: on
    /// the shared 2-core machine a 64-channel step took 3.7× as long, see
    /// docs/pixelcnn.md).
    #[arg(long, default_value_t = 32)]
    pub channels: usize,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Learning rate of Adam (2e-3: in the same 30 minutes it reached 90.58
    /// nats where 1e-3 reached 93.84, docs/pixelcnn.md).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Seed of the weights, the shuffling, the binarisation and the samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (0: rayon's default, one per core); `main` sets them, not `run`.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Test NLL every this many minutes of training (0: only per epoch and at the end).
    #[arg(long, default_value_t = 5.0)]
    pub eval_every: f64,
    /// Test images evaluated (at most 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub test_images: usize,
    /// Images drawn at the end (0: none).
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Where to write the PNG.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// A quick check: 16 channels, 150 steps of 32, 500 test images, 4 samples.
    #[arg(long)]
    pub smoke: bool,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Training NLL (nats per image) of every step.
    pub losses: Vec<f32>,
    /// Test NLL before training.
    pub initial_nll: f64,
    /// (training seconds, epoch, test NLL) of every evaluation.
    pub evals: Vec<(f64, usize, f64)>,
    /// Final test NLL (nats per image).
    pub nll: f64,
    /// Test images evaluated.
    pub test_images: usize,
    /// Seconds of training.
    pub train_secs: f64,
    /// Training steps taken.
    pub steps: usize,
    /// Seconds the sampling took.
    pub sample_secs: f64,
    /// CPU seconds (all threads) the training steps took, where the system
    /// reports them (Linux): on a shared machine, `cpu / threads` is about
    /// what the training would take on dedicated cores.
    pub train_cpu_secs: Option<f64>,
}

/// A PixelCNN of one width with its training state.
pub trait PixelModel: Sized {
    /// Channels of the masked convolutions.
    const CHANNELS: usize;
    /// A fresh network (weights from `rng`) and Adam at rate `lr`.
    fn new(rng: &mut Rng, lr: f64) -> kiln::Result<Self>;
    /// One Adam step on `n` binarised images: returns their mean NLL.
    fn train_step(&mut self, x: &[f32], n: usize) -> kiln::Result<f32>;
    /// The 784 logits of each of `n` images (evaluation mode).
    fn logits(&mut self, x: &[f32], n: usize) -> kiln::Result<Vec<f32>>;
    /// The mean NLL of `n` binarised images (evaluation mode).
    fn nll(&mut self, x: &[f32], n: usize) -> kiln::Result<f64>;
}

macro_rules! pixelcnn {
    ($module:ident, $ch:tt) => {
        /// The PixelCNN at this width.
        pub mod $module {
            use super::*;

            kiln::network! {
                /// A residual block: `h + MaskedConv2d_B(relu(h))`.
                pub struct Block {
                    input h: [$ch, 28, 28],
                    let r = h |> relu |> conv: MaskedConv2d($ch, kernel = 3, mask = "B", padding = 1);
                    output h + r;
                }
            }

            kiln::network! {
                /// 7×7 type A, 8 residual type-B blocks, two 1×1 convolutions
                /// to one Bernoulli logit per pixel.
                pub struct PixelCnn {
                    input: [1, 28, 28],
                    inp: MaskedConv2d($ch, kernel = 7, mask = "A", padding = 3),
                    b1: Block -> [$ch, 28, 28],
                    b2: Block -> [$ch, 28, 28],
                    b3: Block -> [$ch, 28, 28],
                    b4: Block -> [$ch, 28, 28],
                    b5: Block -> [$ch, 28, 28],
                    b6: Block -> [$ch, 28, 28],
                    b7: Block -> [$ch, 28, 28],
                    b8: Block -> [$ch, 28, 28],
                    relu,
                    out1: Conv2d($ch, kernel = 1),
                    relu,
                    out2: Conv2d(1, kernel = 1),
                }
            }

            /// The network, its tapes, gradients and optimizer.
            pub struct Model {
                /// The network.
                pub net: PixelCnn<f32, Cpu>,
                tape: PixelCnnTape<f32, Cpu>,
                eval_tape: PixelCnnTape<f32, Cpu>,
                grads: PixelCnnGrads<f32, Cpu>,
                opt: Adam,
                x: Tensor<S3<1, 28, 28>>,
                dlogits: Tensor<S3<1, 28, 28>>,
            }

            impl PixelModel for Model {
                const CHANNELS: usize = $ch;
                fn new(rng: &mut Rng, lr: f64) -> kiln::Result<Self> {
                    let net = PixelCnn::<f32, Cpu>::init(&Cpu, rng)?;
                    Ok(Model {
                        tape: net.tape()?,
                        eval_tape: net.tape()?,
                        grads: net.grads()?,
                        net,
                        opt: Adam::new(lr),
                        x: Tensor::zeros(&Cpu, 1)?,
                        dlogits: Tensor::zeros(&Cpu, 1)?,
                    })
                }
                fn train_step(&mut self, x: &[f32], n: usize) -> kiln::Result<f32> {
                    self.x.set_batch(n)?;
                    self.x.copy_from_slice(x)?;
                    let logits = self.net.forward_train(&self.x, &mut self.tape)?;
                    let loss = bce_with_logits_sum(logits, &self.x, Some(&mut self.dlogits))?;
                    self.net
                        .backward(&mut self.tape, &self.dlogits, &mut self.grads)?;
                    self.opt.step(&mut self.net, &self.grads)?;
                    Ok(loss)
                }
                fn logits(&mut self, x: &[f32], n: usize) -> kiln::Result<Vec<f32>> {
                    self.x.set_batch(n)?;
                    self.x.copy_from_slice(x)?;
                    self.net.forward_with(&self.x, &mut self.eval_tape)?.to_vec()
                }
                fn nll(&mut self, x: &[f32], n: usize) -> kiln::Result<f64> {
                    self.x.set_batch(n)?;
                    self.x.copy_from_slice(x)?;
                    let logits = self.net.forward_with(&self.x, &mut self.eval_tape)?;
                    Ok(bce_with_logits_sum(logits, &self.x, None)? as f64)
                }
            }
        }
    };
}

pixelcnn!(c64, 64);
pixelcnn!(c32, 32);
pixelcnn!(c16, 16);

/// Images per evaluation forward pass.
const EVAL_BATCH: usize = 100;

/// Test NLL over `x` (binarised), nats per image.
pub fn test_nll<M: PixelModel>(m: &mut M, x: &[f32]) -> kiln::Result<f64> {
    let n_all = x.len() / 784;
    let mut total = 0.0;
    for start in (0..n_all).step_by(EVAL_BATCH) {
        let n = (n_all - start).min(EVAL_BATCH);
        total += m.nll(&x[start * 784..(start + n) * 784], n)? * n as f64;
    }
    Ok(total / n_all.max(1) as f64)
}

/// Draws `n` images pixel by pixel in raster order: 784 forward passes, each
/// setting pixel `i` of every image to 1 with probability `σ(logit_i)`.
pub fn sample<M: PixelModel>(m: &mut M, n: usize, rng: &mut Rng) -> kiln::Result<Vec<f32>> {
    let mut x = vec![0.0f32; n * 784];
    for i in 0..784 {
        let logits = m.logits(&x, n)?;
        for s in 0..n {
            let p = 1.0 / (1.0 + (-logits[s * 784 + i]).exp());
            x[s * 784 + i] = if rng.random::<f32>() < p { 1.0 } else { 0.0 };
        }
    }
    Ok(x)
}

/// `"N CPU-s"` of the training so far, or `"CPU time unknown"`.
fn cpu_note(cpu: Option<f64>) -> String {
    cpu.map_or("CPU time unknown".into(), |c| format!("{c:.1} CPU-s"))
}

/// Trains and evaluates at width `M::CHANNELS`.
fn train<M: PixelModel>(args: &Args, data: &Mnist, png: &Path) -> kiln::Result<Outcome> {
    let mut test_x = data.test.x.clone();
    binarise(&mut test_x, &mut rng(TEST_BINARISATION_SEED));
    let test_n = if args.smoke { 500 } else { args.test_images };
    test_x.truncate(test_n.min(data.test.len()) * 784);
    let mut gen = rng(args.seed);
    let mut m = M::new(&mut gen, args.lr)?;
    let mut out = Outcome {
        test_images: test_x.len() / 784,
        ..Outcome::default()
    };
    let t0 = Instant::now();
    out.initial_nll = test_nll(&mut m, &test_x)?;
    let eval_secs = t0.elapsed().as_secs_f64();
    let (b, epochs) = if args.smoke {
        (32, 1)
    } else {
        (args.batch_size, args.epochs)
    };
    println!(
        "PixelCNN, {} channels, Adam {}, batch {b}, at most {epochs} epochs or {} min of training, seed {}; \
         test NLL before training {:.2} nats ({} images, {eval_secs:.1} s)",
        M::CHANNELS,
        args.lr,
        args.minutes,
        args.seed,
        out.initial_nll,
        out.test_images
    );
    let budget = args.minutes * 60.0;
    let max_steps = if args.smoke { 150 } else { usize::MAX };
    let mut next_eval = if args.eval_every > 0.0 {
        args.eval_every * 60.0
    } else {
        f64::INFINITY
    };
    let train = &data.train;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut hx, mut hy) = (Vec::with_capacity(b * 784), Vec::with_capacity(b));
    let mut out_of_time = false;
    for epoch in 1..=epochs {
        order.shuffle(&mut gen);
        let (mut sum, mut seen, mut epoch_secs) = (0.0f64, 0usize, 0.0f64);
        let mut window = (0.0f64, 0usize, 0.0f64);
        for idx in order.chunks(b).take(max_steps) {
            let n = idx.len();
            train.gather(idx, &mut hx, &mut hy);
            binarise(&mut hx, &mut gen);
            let (ts, c0) = (Instant::now(), kiln::train::cpu_secs());
            let loss = m.train_step(&hx, n)?;
            let dt = ts.elapsed().as_secs_f64();
            out.train_cpu_secs = match (out.train_cpu_secs, c0, kiln::train::cpu_secs()) {
                (acc, Some(a), Some(b)) => Some(acc.unwrap_or(0.0) + b - a),
                _ => None,
            };
            out.train_secs += dt;
            epoch_secs += dt;
            out.steps += 1;
            out.losses.push(loss);
            sum += loss as f64 * n as f64;
            seen += n;
            window = (window.0 + loss as f64, window.1 + 1, window.2 + dt);
            if out.steps.is_multiple_of(100) {
                println!(
                    "  step {:>6}  train NLL {:.2}  {:.0} ms/step  ({:.1} min of training)",
                    out.steps,
                    window.0 / window.1 as f64,
                    1e3 * window.2 / window.1 as f64,
                    out.train_secs / 60.0
                );
                window = (0.0, 0, 0.0);
            }
            if out.train_secs >= budget {
                out_of_time = true;
                break;
            }
            if out.train_secs >= next_eval {
                let t = test_nll(&mut m, &test_x)?;
                out.evals.push((out.train_secs, epoch, t));
                println!(
                    "  after {:.1} min of training ({}): test NLL {t:.2} nats",
                    out.train_secs / 60.0,
                    cpu_note(out.train_cpu_secs)
                );
                next_eval += args.eval_every * 60.0;
            }
        }
        let t = test_nll(&mut m, &test_x)?;
        out.evals.push((out.train_secs, epoch, t));
        println!(
            "epoch {epoch:>2}{}  train NLL {:.2}  test NLL {t:.2} nats  {:.0} images/s ({epoch_secs:.1} s of training, {} images; {} in all)",
            if out_of_time { " (stopped: time budget)" } else { "" },
            sum / seen.max(1) as f64,
            seen as f64 / epoch_secs.max(1e-9),
            seen,
            cpu_note(out.train_cpu_secs),
        );
        if out_of_time {
            break;
        }
    }
    out.nll = out.evals.last().map_or(out.initial_nll, |e| e.2);
    if args.samples > 0 {
        let t0 = Instant::now();
        let mut srng = rng(args.seed ^ 0x5a4d_706c);
        let x = sample(&mut m, args.samples, &mut srng)?;
        out.sample_secs = t0.elapsed().as_secs_f64();
        let cols = (args.samples as f64).sqrt().ceil() as usize;
        kiln::train::plot::write_image_grid(png, &x, (28, 28), cols, 2)?;
        println!(
            "sampled {} images pixel by pixel in {:.1} s; wrote {}",
            args.samples,
            out.sample_secs,
            png.display()
        );
    }
    Ok(out)
}

/// Checks the flags, loads MNIST, trains and evaluates.
pub fn run(args: &Args) -> kiln::Result<Outcome> {
    if args.batch_size == 0 {
        return Err(kiln::Error::invalid("--batch-size", "must be at least 1"));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(kiln::Error::invalid(
            "--lr",
            format!("must be a positive number, got {}", args.lr),
        ));
    }
    if !(args.minutes.is_finite() && args.minutes > 0.0) {
        return Err(kiln::Error::invalid(
            "--minutes",
            format!("must be a positive number, got {}", args.minutes),
        ));
    }
    if !(args.eval_every.is_finite() && args.eval_every >= 0.0) {
        return Err(kiln::Error::invalid(
            "--eval-every",
            format!("must be 0 or a positive number, got {}", args.eval_every),
        ));
    }
    if args.test_images == 0 {
        return Err(kiln::Error::invalid("--test-images", "must be at least 1"));
    }
    let channels = if args.smoke { 16 } else { args.channels };
    if ![64, 32, 16].contains(&channels) {
        return Err(kiln::Error::invalid(
            "--channels",
            format!("must be 64, 32 or 16, got {channels}"),
        ));
    }
    let png = args.out_dir.join("pixelcnn_samples.png");
    if args.samples > 0 {
        kiln::train::check_output_path("--out-dir", &png)?;
    }
    let data = Mnist::load(&args.data_dir)?;
    if data.train.dim != 784 || data.test.dim != 784 || data.test.len() < 500 {
        return Err(kiln::Error::invalid(
            "Mnist::load",
            "expected 28×28 images and at least 500 test images",
        ));
    }
    let mut args = args.clone();
    if args.smoke {
        args.samples = 4;
    }
    let args = &args;
    match channels {
        64 => train::<c64::Model>(args, &data, &png),
        32 => train::<c32::Model>(args, &data, &png),
        _ => train::<c16::Model>(args, &data, &png),
    }
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let args = Args::parse();
    let t0 = Instant::now();
    // The threads are set here, not in `run`, which a smoke test calls in a
    // process whose pool may be running already (`set_threads` works once).
    match kiln::set_threads(args.threads).and_then(|()| run(&args)) {
        Ok(o) => {
            println!(
                "PixelCNN NLL {:.2} nats per image ({} binarised test images; the paper: 81.3); \
                 {} steps, training {:.1} s ({}), total {:.1} s",
                o.nll,
                o.test_images,
                o.steps,
                o.train_secs,
                cpu_note(o.train_cpu_secs),
                t0.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

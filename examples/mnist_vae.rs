//! A variational autoencoder (Kingma & Welling) on dynamically binarised MNIST.
//!
//! ```text
//! scripts/fetch-mnist                                   # once: data/mnist/
//! cargo run --release --example mnist_vae -- --threads 2
//! cargo run --release --example mnist_vae -- --latent 2 --out-dir /tmp/vae
//! cargo run --release --example mnist_vae -- --smoke    # a few seconds
//! ```
//!
//! The encoder is a graph network with two outputs, μ and log σ² (MLP
//! 784–512–256–L with ReLU, L = `--latent`); the decoder is an MLP
//! L–256–512–784 giving Bernoulli logits. The latent code is drawn by the
//! reparameterisation `z = μ + exp(½ log σ²) ⊙ ε`, `ε ~ N(0, I)` from kiln's
//! seeded generator; its backward is written out here
//! ([`reparam_kl_backward`]): `dμ = dz + μ/B`,
//! `d log σ² = dz ⊙ ε ⊙ ½σ + ½(σ² − 1)/B`, the second terms being the
//! gradient of the closed-form KL to `N(0, I)`, `½ Σ (μ² + σ² − log σ² − 1)`.
//!
//! The loss per image is the negative ELBO in nats: the Bernoulli negative
//! log-likelihood summed over the 784 pixels ([`bce_with_logits_sum`]) plus
//! the KL term. Training images are binarised afresh at every visit (each
//! pixel is 1 with probability its grey level, seeded); the test set is
//! binarised once with a fixed seed ([`TEST_BINARISATION_SEED`]), whatever
//! `--seed` is. Published figures use a fixed binarisation that no package
//! ships, so numbers here are comparable between kiln runs, and only roughly
//! with papers.
//!
//! Each epoch prints the test negative ELBO (one ε per image). At the end the
//! program prints the negative ELBO and an importance-weighted estimate of the
//! test negative log-likelihood with k = 100 samples (IWAE:
//! `−log (1/k) Σ p(x|z_i) p(z_i) / q(z_i|x)`, by log-sum-exp), which is not
//! above the negative ELBO, and writes `vae_samples.png` (decoded draws from
//! the prior), `vae_reconstructions.png` (test images in odd rows, the
//! decoded means of their codes in even rows) and, with `--latent 2`,
//! `vae_traversal.png` (a grid of decoded codes over `[−2.5, 2.5]²`) to
//! `--out-dir`.

use clap::Parser;
use kiln::prelude::*;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

pub use kiln::data::mnist::{binarise, TEST_BINARISATION_SEED};

/// Train a variational autoencoder on MNIST.
#[derive(Parser, Debug)]
#[command(about = "Train a variational autoencoder on binarised MNIST with kiln")]
pub struct Args {
    /// Passes over the 60,000 training images.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Size of the latent code: 20 or 2 (2 also writes a traversal grid).
    #[arg(long, default_value_t = 20)]
    pub latent: usize,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Learning rate of Adam.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed of the weights, the shuffling, the binarisation and ε.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (0: rayon's default, one per core); `main` sets them, not `run`.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Importance samples per test image for the final estimate.
    #[arg(long, default_value_t = 100)]
    pub iwae_k: usize,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Where to write the PNGs.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// A quick check: 1 epoch of 150 steps, evaluation on 500 test images.
    #[arg(long)]
    pub smoke: bool,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Training negative ELBO (nats per image) of every step.
    pub losses: Vec<f32>,
    /// Test negative ELBO before training.
    pub initial_nelbo: f64,
    /// Test negative ELBO after every epoch.
    pub epoch_nelbo: Vec<f64>,
    /// Final test negative ELBO (nats per image).
    pub nelbo: f64,
    /// Final IWAE estimate of the test negative log-likelihood.
    pub iwae_nll: f64,
    /// Test images evaluated.
    pub test_images: usize,
    /// Seconds of training.
    pub train_secs: f64,
}

/// `z = μ + exp(½ log σ²) ⊙ ε`.
pub fn reparam(mu: &[f64], lv: &[f64], eps: &[f64], z: &mut [f64]) {
    for (((z, m), l), e) in z.iter_mut().zip(mu).zip(lv).zip(eps) {
        *z = m + (0.5 * l).exp() * e;
    }
}

/// Closed-form KL of each row's `N(μ, σ²)` to `N(0, I)`:
/// `½ Σ (μ² + σ² − log σ² − 1)`, one value per row of `latent` numbers.
pub fn kl_rows(mu: &[f64], lv: &[f64], latent: usize) -> Vec<f64> {
    mu.chunks(latent)
        .zip(lv.chunks(latent))
        .map(|(m, l)| {
            0.5 * m
                .iter()
                .zip(l)
                .map(|(m, l)| m * m + l.exp() - l - 1.0)
                .sum::<f64>()
        })
        .collect()
}

/// Backward of [`reparam`] plus `kl_scale ×` the summed KL ([`kl_rows`]):
/// from `dz` to `dμ = dz + s μ` and `d log σ² = dz ⊙ ε ⊙ ½σ + s ½(σ² − 1)`.
pub fn reparam_kl_backward(
    mu: &[f64],
    lv: &[f64],
    eps: &[f64],
    dz: &[f64],
    kl_scale: f64,
    dmu: &mut [f64],
    dlv: &mut [f64],
) {
    for i in 0..mu.len() {
        let sigma = (0.5 * lv[i]).exp();
        dmu[i] = dz[i] + kl_scale * mu[i];
        dlv[i] = dz[i] * eps[i] * 0.5 * sigma + kl_scale * 0.5 * (sigma * sigma - 1.0);
    }
}

/// A standard normal draw (Box–Muller) from kiln's generator.
fn normal(rng: &mut Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Bernoulli negative log-likelihood of each row of 784 logits.
fn bce_rows(logits: &[f32], x: &[f32]) -> Vec<f64> {
    logits
        .chunks(784)
        .zip(x.chunks(784))
        .map(|(l, t)| {
            l.iter()
                .zip(t)
                .map(|(&l, &t)| {
                    let (l, t) = (l as f64, t as f64);
                    l.max(0.0) - l * t + (-l.abs()).exp().ln_1p()
                })
                .sum()
        })
        .collect()
}

fn to_f64(v: Vec<f32>) -> Vec<f64> {
    v.into_iter().map(|x| x as f64).collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// The encoder, decoder, their tapes, gradients and optimizers, for one size
/// of latent code.
pub trait Vae: Sized {
    /// Numbers in the latent code.
    const LATENT: usize;
    /// Fresh networks.
    fn new(rng: &mut Rng, lr: f64) -> kiln::Result<Self>;
    /// Encodes `n` images (training mode when `train`): (μ, log σ²).
    fn encode(&mut self, x: &[f32], n: usize, train: bool) -> kiln::Result<(Vec<f64>, Vec<f64>)>;
    /// Decodes `n` codes to logits (evaluation mode).
    fn decode(&mut self, z: &[f64], n: usize) -> kiln::Result<Vec<f32>>;
    /// Training pass of the decoder on codes `z` against targets `x`:
    /// the summed-over-pixels BCE averaged over the batch, and `dz`.
    fn decode_train(&mut self, z: &[f64], x: &[f32], n: usize) -> kiln::Result<(f32, Vec<f64>)>;
    /// Backward through the encoder from (dμ, d log σ²), then one Adam step
    /// of both networks.
    fn step(&mut self, dmu: &[f64], dlv: &[f64], n: usize) -> kiln::Result<()>;
}

macro_rules! vae {
    ($module:ident, $latent:tt) => {
        /// Networks for a latent code of this size.
        pub mod $module {
            use super::*;

            kiln::network! {
                /// 784 → 512 → 256 → (μ, log σ²).
                pub struct Encoder {
                    input x: [784],
                    let h = x |> fc1: Linear(512) |> relu |> fc2: Linear(256) |> relu;
                    output mu = h |> fc_mu: Linear($latent);
                    output logvar = h |> fc_lv: Linear($latent);
                }
            }

            kiln::network! {
                /// z → 256 → 512 → 784 Bernoulli logits.
                pub struct Decoder {
                    input z: [$latent],
                    let h = z |> fc1: Linear(256) |> relu |> fc2: Linear(512) |> relu;
                    output logits = h |> fc_out: Linear(784);
                }
            }

            /// Both networks and their training state.
            pub struct Nets {
                enc: Encoder<f32, Cpu>,
                dec: Decoder<f32, Cpu>,
                et: EncoderTape<f32, Cpu>,
                dt: DecoderTape<f32, Cpu>,
                eval_et: EncoderTape<f32, Cpu>,
                eval_dt: DecoderTape<f32, Cpu>,
                eg: EncoderGrads<f32, Cpu>,
                dg: DecoderGrads<f32, Cpu>,
                eopt: Adam,
                dopt: Adam,
                x: Tensor<S1<784>>,
                z: Tensor<S1<$latent>>,
                dlogits: Tensor<S1<784>>,
                dmu: Tensor<S1<$latent>>,
                dlv: Tensor<S1<$latent>>,
            }

            impl Vae for Nets {
                const LATENT: usize = $latent;
                fn new(rng: &mut Rng, lr: f64) -> kiln::Result<Self> {
                    let enc = Encoder::<f32, Cpu>::init(&Cpu, rng)?;
                    let dec = Decoder::<f32, Cpu>::init(&Cpu, rng)?;
                    let mut dt = dec.tape()?;
                    dt.input_grads = true;
                    Ok(Nets {
                        et: enc.tape()?,
                        eval_et: enc.tape()?,
                        eval_dt: dec.tape()?,
                        eg: enc.grads()?,
                        dg: dec.grads()?,
                        dt,
                        enc,
                        dec,
                        eopt: Adam::new(lr),
                        dopt: Adam::new(lr),
                        x: Tensor::zeros(&Cpu, 1)?,
                        z: Tensor::zeros(&Cpu, 1)?,
                        dlogits: Tensor::zeros(&Cpu, 1)?,
                        dmu: Tensor::zeros(&Cpu, 1)?,
                        dlv: Tensor::zeros(&Cpu, 1)?,
                    })
                }
                fn encode(
                    &mut self,
                    x: &[f32],
                    n: usize,
                    train: bool,
                ) -> kiln::Result<(Vec<f64>, Vec<f64>)> {
                    self.x.set_batch(n)?;
                    self.x.copy_from_slice(x)?;
                    let (mu, lv) = if train {
                        self.enc.forward_train(&self.x, &mut self.et)?
                    } else {
                        self.enc.forward_with(&self.x, &mut self.eval_et)?
                    };
                    Ok((to_f64(mu.to_vec()?), to_f64(lv.to_vec()?)))
                }
                fn decode(&mut self, z: &[f64], n: usize) -> kiln::Result<Vec<f32>> {
                    self.z.set_batch(n)?;
                    self.z.copy_from_slice(&to_f32(z))?;
                    self.dec.forward_with(&self.z, &mut self.eval_dt)?.to_vec()
                }
                fn decode_train(
                    &mut self,
                    z: &[f64],
                    x: &[f32],
                    n: usize,
                ) -> kiln::Result<(f32, Vec<f64>)> {
                    self.z.set_batch(n)?;
                    self.z.copy_from_slice(&to_f32(z))?;
                    self.x.set_batch(n)?;
                    self.x.copy_from_slice(x)?;
                    let logits = self.dec.forward_train(&self.z, &mut self.dt)?;
                    let rec = bce_with_logits_sum(logits, &self.x, Some(&mut self.dlogits))?;
                    self.dec
                        .backward(&mut self.dt, &self.dlogits, &mut self.dg)?;
                    Ok((rec, to_f64(self.dt.grad_z.to_vec()?)))
                }
                fn step(&mut self, dmu: &[f64], dlv: &[f64], n: usize) -> kiln::Result<()> {
                    self.dmu.set_batch(n)?;
                    self.dmu.copy_from_slice(&to_f32(dmu))?;
                    self.dlv.set_batch(n)?;
                    self.dlv.copy_from_slice(&to_f32(dlv))?;
                    self.enc
                        .backward(&mut self.et, &self.dmu, &self.dlv, &mut self.eg)?;
                    self.eopt.step(&mut self.enc, &self.eg)?;
                    self.dopt.step(&mut self.dec, &self.dg)?;
                    Ok(())
                }
            }
        }
    };
}

vae!(latent20, 20);
vae!(latent2, 2);

/// Test negative ELBO (one ε per image) over `x` (binarised), nats per image.
fn test_nelbo<V: Vae>(nets: &mut V, x: &[f32], rng: &mut Rng) -> kiln::Result<f64> {
    let l = V::LATENT;
    let mut total = 0.0;
    let n_all = x.len() / 784;
    for start in (0..n_all).step_by(1000) {
        let n = (n_all - start).min(1000);
        let xb = &x[start * 784..(start + n) * 784];
        let (mu, lv) = nets.encode(xb, n, false)?;
        let eps: Vec<f64> = (0..n * l).map(|_| normal(rng)).collect();
        let mut z = vec![0.0; n * l];
        reparam(&mu, &lv, &eps, &mut z);
        let logits = nets.decode(&z, n)?;
        total += bce_rows(&logits, xb).iter().sum::<f64>();
        total += kl_rows(&mu, &lv, l).iter().sum::<f64>();
    }
    Ok(total / n_all.max(1) as f64)
}

/// IWAE estimate of the test negative log-likelihood with `k` samples.
fn test_iwae<V: Vae>(nets: &mut V, x: &[f32], k: usize, rng: &mut Rng) -> kiln::Result<f64> {
    let l = V::LATENT;
    let n_all = x.len() / 784;
    // Images per decoder call: about 1,000 rows.
    let per = (1000 / k).max(1);
    let mut total = 0.0;
    let mut xr = Vec::with_capacity(per * k * 784);
    for start in (0..n_all).step_by(per) {
        let n = (n_all - start).min(per);
        let xb = &x[start * 784..(start + n) * 784];
        let (mu, lv) = nets.encode(xb, n, false)?;
        let mut z = vec![0.0; n * k * l];
        // log p(z) − log q(z|x) for every sample (the ln 2π terms cancel).
        let mut log_ratio = vec![0.0; n * k];
        xr.clear();
        for i in 0..n {
            for j in 0..k {
                let row = i * k + j;
                let mut lr = 0.0;
                for d in 0..l {
                    let e = normal(rng);
                    let (m, v) = (mu[i * l + d], lv[i * l + d]);
                    let zz = m + (0.5 * v).exp() * e;
                    z[row * l + d] = zz;
                    lr += -0.5 * zz * zz + 0.5 * (e * e + v);
                }
                log_ratio[row] = lr;
                xr.extend_from_slice(&xb[i * 784..(i + 1) * 784]);
            }
        }
        let logits = nets.decode(&z, n * k)?;
        let nll = bce_rows(&logits, &xr);
        for i in 0..n {
            let w: Vec<f64> = (0..k)
                .map(|j| log_ratio[i * k + j] - nll[i * k + j])
                .collect();
            let m = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + (w.iter().map(|v| (v - m).exp()).sum::<f64>() / k as f64).ln();
            total -= lse;
        }
    }
    Ok(total / n_all.max(1) as f64)
}

/// A grid of 28×28 images (`images`: n × 784 values in `[0, 1]`) in rows of
/// `cols`, scaled ×2 with grey borders.
fn write_grid(path: &Path, images: &[f32], cols: usize) -> kiln::Result<()> {
    kiln::train::plot::write_image_grid(path, images, (28, 28), cols, 2)
}

fn sigmoid(v: Vec<f32>) -> Vec<f32> {
    v.into_iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect()
}

/// Trains and evaluates with `--latent` = `V::LATENT`.
fn train<V: Vae>(args: &Args, data: &Mnist, paths: &[PathBuf]) -> kiln::Result<Outcome> {
    let l = V::LATENT;
    let train = &data.train;
    let mut test_x = data.test.x.clone();
    binarise(&mut test_x, &mut rng(TEST_BINARISATION_SEED));
    if args.smoke {
        test_x.truncate(500 * 784);
    }
    let mut gen = rng(args.seed);
    let mut nets = V::new(&mut gen, args.lr)?;
    let mut eval_rng = rng(args.seed ^ 0x6576_616c);
    let mut out = Outcome {
        test_images: test_x.len() / 784,
        ..Outcome::default()
    };
    out.initial_nelbo = test_nelbo(&mut nets, &test_x, &mut eval_rng)?;
    println!(
        "latent {l}, Adam {}, batch {}, epochs {}, seed {}; test negative ELBO before training {:.2}",
        args.lr,
        args.batch_size,
        if args.smoke { 1 } else { args.epochs },
        args.seed,
        out.initial_nelbo
    );
    let b = args.batch_size;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut hx, mut hy) = (Vec::with_capacity(b * 784), Vec::with_capacity(b));
    let max_steps = if args.smoke { 150 } else { usize::MAX };
    let epochs = if args.smoke { 1 } else { args.epochs };
    for epoch in 1..=epochs {
        order.shuffle(&mut gen);
        let t0 = Instant::now();
        let (mut sum, mut seen) = (0.0f64, 0usize);
        for idx in order.chunks(b).take(max_steps) {
            let n = idx.len();
            train.gather(idx, &mut hx, &mut hy);
            binarise(&mut hx, &mut gen);
            let (mu, lv) = nets.encode(&hx, n, true)?;
            let eps: Vec<f64> = (0..n * l).map(|_| normal(&mut gen)).collect();
            let mut z = vec![0.0; n * l];
            reparam(&mu, &lv, &eps, &mut z);
            let (rec, dz) = nets.decode_train(&z, &hx, n)?;
            let kl = kl_rows(&mu, &lv, l).iter().sum::<f64>() / n as f64;
            let (mut dmu, mut dlv) = (vec![0.0; n * l], vec![0.0; n * l]);
            reparam_kl_backward(&mu, &lv, &eps, &dz, 1.0 / n as f64, &mut dmu, &mut dlv);
            nets.step(&dmu, &dlv, n)?;
            let loss = rec as f64 + kl;
            out.losses.push(loss as f32);
            sum += loss * n as f64;
            seen += n;
        }
        let secs = t0.elapsed().as_secs_f64();
        out.train_secs += secs;
        let t = test_nelbo(&mut nets, &test_x, &mut eval_rng)?;
        out.epoch_nelbo.push(t);
        println!(
            "epoch {epoch:>2}/{epochs}  train -ELBO {:.2}  test -ELBO {t:.2} nats  {:.0} samples/s ({secs:.1} s)",
            sum / seen.max(1) as f64,
            seen as f64 / secs,
        );
    }
    out.nelbo = test_nelbo(&mut nets, &test_x, &mut eval_rng)?;
    let t0 = Instant::now();
    out.iwae_nll = test_iwae(&mut nets, &test_x, args.iwae_k, &mut eval_rng)?;
    println!(
        "IWAE (k = {}) over {} test images in {:.1} s",
        args.iwae_k,
        out.test_images,
        t0.elapsed().as_secs_f64()
    );

    // Samples from the prior.
    let z: Vec<f64> = (0..64 * l).map(|_| normal(&mut eval_rng)).collect();
    write_grid(&paths[0], &sigmoid(nets.decode(&z, 64)?), 8)?;
    // Reconstructions: 32 test images, each above the decoded mean code.
    let xs = &test_x[..32 * 784];
    let (mu, _) = nets.encode(xs, 32, false)?;
    let rec = sigmoid(nets.decode(&mu, 32)?);
    let mut grid = Vec::with_capacity(64 * 784);
    for row in 0..2 {
        let r = row * 16..(row + 1) * 16;
        grid.extend_from_slice(&xs[r.start * 784..r.end * 784]);
        grid.extend_from_slice(&rec[r.start * 784..r.end * 784]);
    }
    write_grid(&paths[1], &grid, 16)?;
    if l == 2 {
        const N: usize = 15;
        let mut z = Vec::with_capacity(N * N * 2);
        for r in 0..N {
            for c in 0..N {
                z.push(-2.5 + 5.0 * c as f64 / (N - 1) as f64);
                z.push(2.5 - 5.0 * r as f64 / (N - 1) as f64);
            }
        }
        write_grid(&paths[2], &sigmoid(nets.decode(&z, N * N)?), N)?;
    }
    for p in &paths[..if l == 2 { 3 } else { 2 }] {
        println!("wrote {}", p.display());
    }
    Ok(out)
}

/// Checks the flags, loads MNIST, trains and evaluates.
pub fn run(args: &Args) -> kiln::Result<Outcome> {
    if args.batch_size == 0 {
        return Err(kiln::Error::invalid("--batch-size", "must be at least 1"));
    }
    if args.iwae_k == 0 {
        return Err(kiln::Error::invalid("--iwae-k", "must be at least 1"));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(kiln::Error::invalid(
            "--lr",
            format!("must be a positive number, got {}", args.lr),
        ));
    }
    if args.latent != 20 && args.latent != 2 {
        return Err(kiln::Error::invalid(
            "--latent",
            format!("must be 20 or 2, got {}", args.latent),
        ));
    }
    let paths: Vec<PathBuf> = [
        "vae_samples.png",
        "vae_reconstructions.png",
        "vae_traversal.png",
    ]
    .iter()
    .map(|f| args.out_dir.join(f))
    .collect();
    for p in &paths[..if args.latent == 2 { 3 } else { 2 }] {
        kiln::train::check_output_path("--out-dir", p)?;
    }
    let data = Mnist::load(&args.data_dir)?;
    if data.train.dim != 784 || data.test.dim != 784 || data.test.len() < 500 {
        return Err(kiln::Error::invalid(
            "Mnist::load",
            "expected 28×28 images and at least 500 test images",
        ));
    }
    match args.latent {
        20 => train::<latent20::Nets>(args, &data, &paths),
        2 => train::<latent2::Nets>(args, &data, &paths),
        n => Err(kiln::Error::invalid(
            "--latent",
            format!("must be 20 or 2, got {n}"),
        )),
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
                "test negative ELBO {:.2} nats; IWAE (k = {}) negative log-likelihood {:.2} nats ({} test images)",
                o.nelbo, args.iwae_k, o.iwae_nll, o.test_images
            );
            println!(
                "training {:.1} s, total {:.1} s",
                o.train_secs,
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

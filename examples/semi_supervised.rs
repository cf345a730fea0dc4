//! Semi-supervised learning on MNIST with 100 labels (course lesson 18):
//! FixMatch-style pseudo-labelling (Sohn et al. 2020) beside the same
//! network trained on the 100 labels alone.
//!
//! ```text
//! scripts/fetch-mnist                                      # once: data/mnist/
//! cargo run --release --example semi_supervised            # 3 seeds, the figures of docs/few_labels.md
//! cargo run --release --example semi_supervised -- --smoke # ≤ 60 s
//! ```
//!
//! * **Labels**: 10 images per class, a seeded choice (`--seed`) among the
//!   60,000 training images; every training image is also in the unlabelled
//!   pool (its label is never read).
//! * **Each step**: `--batch` labelled images and `μ·batch` unlabelled ones
//!   (μ = `--mu`, 7 as FixMatch). Labelled images get the weak view and the
//!   cross-entropy. Each unlabelled image gets a weak view (a random
//!   translation of up to 3 pixels, no flips: they change digits) and a
//!   strong view (the weak translation, then two of rotation ±30°, shear
//!   ±30°, translation ±4 px, contrast ×[0.3, 1.7], drawn as RandAugment
//!   does, then Cutout of a 4–12 px square); the network's prediction on the
//!   weak view, in evaluation mode and without gradient, becomes the target
//!   of the strong view where its confidence reaches `--threshold` (0.95),
//!   [`kiln::loss::PseudoLabel`]. The two losses' gradients add (λ_u = 1).
//! * **Evaluation** with an exponential moving average of the weights
//!   ([`kiln::optim::Ema`], decay 0.999) on the 10,000 test images.
//! * **Baseline**: the same network, steps, labelled batches and EMA with
//!   the unlabelled term left out.
//!
//! The network is LeNet-5 (`kiln::models::LeNet5`); Adam at `--lr`. The
//! loop is `kiln::train::Trainer::run` with a custom step, fed labelled
//! batches by a `Feed::Sample` closure seeded by the step.

use clap::Parser;
use kiln::checkpoint::Checkpoint;
use kiln::data::augment::{self, Affine, ImageShape};
use kiln::data::{Batch, DataLoader, Dataset};
use kiln::loss::PseudoLabel;
use kiln::models::{LeNet5, LeNet5Grads, LeNet5Tape};
use kiln::optim::Ema;
use kiln::prelude::*;
use kiln::train::{evaluate, Checkpointed, Classify, Feed, Record, StepCtx, StepOut, Trainer};
use kiln::{Acc, Cpu};
use std::path::{Path, PathBuf};
use std::time::Instant;

const IMG: ImageShape = ImageShape { c: 1, h: 28, w: 28 };
const PIX: usize = 784;

/// FixMatch-style pseudo-labelling on MNIST with 100 labels.
#[derive(Parser, Debug, Clone)]
#[command(about = "Semi-supervised MNIST with 100 labels: pseudo-labelling vs labels alone")]
pub struct Args {
    /// Tiny budget for CI: 1 seed, 300 steps, EMA decay 0.99, 2,000 test images.
    #[arg(long)]
    pub smoke: bool,
    /// Seeds (each trains with and without the unlabelled images).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Optimizer steps per run.
    #[arg(long, default_value_t = 4000)]
    pub steps: u64,
    /// Labelled images per class.
    #[arg(long, default_value_t = 10)]
    pub per_class: usize,
    /// Labelled images per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Unlabelled images per labelled image in a step.
    #[arg(long, default_value_t = 7)]
    pub mu: usize,
    /// Confidence a pseudo-label needs.
    #[arg(long, default_value_t = 0.95)]
    pub threshold: f64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Decay of the weights' moving average.
    #[arg(long, default_value_t = 0.999)]
    pub ema: f64,
    /// Evaluate every N steps (and at the end).
    #[arg(long, default_value_t = 1000)]
    pub eval_every: u64,
    /// Test images used (the first N of the 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub test_size: usize,
    /// Skip the runs on the labels alone.
    #[arg(long)]
    pub no_baseline: bool,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Worker threads (0: all cores); `main` sets them, not `run`.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// One run's result.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Test accuracy of the moving average at the end.
    pub ema_acc: f64,
    /// Test accuracy of the trained weights at the end.
    pub live_acc: f64,
    /// Per-step training loss (labelled + unlabelled).
    pub losses: Vec<f64>,
    /// Per-step share of unlabelled images whose pseudo-label was used.
    pub mask_rate: Vec<f64>,
    /// Per-step share of those pseudo-labels that were right (read from the
    /// hidden labels, for the report only).
    pub pseudo_acc: Vec<f64>,
    /// Seconds per step.
    pub step_s: f64,
}

/// What the program measured, per seed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// With pseudo-labelling.
    pub fixmatch: Vec<RunResult>,
    /// On the labels alone (empty with `--no-baseline`).
    pub labels_only: Vec<RunResult>,
}

/// `per_class` indices of each class, a seeded choice.
pub fn choose_labelled(y: &[u32], per_class: usize, seed: u64) -> Vec<usize> {
    let mut r = rng(seed ^ 0x01ab_e1ed);
    let mut out = Vec::new();
    for c in 0..10u32 {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        for k in 0..per_class.min(idx.len()) {
            let j = r.random_range(k..idx.len());
            idx.swap(k, j);
            out.push(idx[k]);
        }
    }
    out
}

/// The weak view: a random translation of up to 3 pixels.
fn weak(img: &mut [f32], r: &mut kiln::Rng, scratch: &mut Vec<f32>) {
    let (dy, dx) = (r.random_range(0..=6), r.random_range(0..=6));
    augment::shift_crop(img, IMG, 3, dy, dx, scratch);
}

/// The strong view of an image already weakly augmented: two transforms
/// drawn from rotation, shear, translation and contrast, then Cutout.
fn strong(img: &mut [f32], r: &mut kiln::Rng, scratch: &mut Vec<f32>) {
    for _ in 0..2 {
        let none = Affine {
            angle: 0.0,
            shear: 0.0,
            tx: 0.0,
            ty: 0.0,
        };
        match r.random_range(0..4) {
            0 => {
                let a = Affine {
                    angle: r.random_range(-30.0..=30.0),
                    ..none
                };
                augment::affine(img, IMG, a, scratch)
            }
            1 => {
                let a = Affine {
                    shear: r.random_range(-30.0..=30.0),
                    ..none
                };
                augment::affine(img, IMG, a, scratch)
            }
            2 => {
                let a = Affine {
                    tx: r.random_range(-4i32..=4) as f32,
                    ty: r.random_range(-4i32..=4) as f32,
                    ..none
                };
                augment::affine(img, IMG, a, scratch)
            }
            _ => augment::contrast(img, IMG, r.random_range(0.3..=1.7)),
        }
    }
    let size = r.random_range(4..=12);
    let (cy, cx) = (r.random_range(0..28), r.random_range(0..28));
    augment::cutout(img, IMG, cy, cx, size, 0.0);
}

/// The state of one run.
struct Run<'d> {
    net: LeNet5<f32, Cpu>,
    shadow: LeNet5<f32, Cpu>,
    ema: Ema<f32, Cpu>,
    opt: Adam,
    tape: LeNet5Tape<f32, Cpu>,
    tape_u: LeNet5Tape<f32, Cpu>,
    tape_w: LeNet5Tape<f32, Cpu>,
    grads: LeNet5Grads<f32, Cpu>,
    pl: PseudoLabel<10, f32, Cpu>,
    x: Tensor<S3<1, 28, 28>>,
    xw: Tensor<S3<1, 28, 28>>,
    xs: Tensor<S3<1, 28, 28>>,
    y: Labels<10>,
    d: Tensor<S1<10>>,
    /// The unlabelled pool (`None`: labels alone).
    pool: Option<&'d Dataset>,
    mu: usize,
    seed: u64,
    host_w: Vec<f32>,
    host_s: Vec<f32>,
    host_logits: Vec<f32>,
    targets: Vec<f32>,
    scratch: Vec<f32>,
    out: RunResult,
}

impl Run<'_> {
    fn step(&mut self, b: &Batch, c: &StepCtx) -> kiln::Result<StepOut> {
        self.x.set_batch(b.len())?;
        self.x.copy_from_slice(&b.x)?;
        self.y.set::<f32>(&b.y)?;
        let out = self.net.forward_train(&self.x, &mut self.tape)?;
        let mut loss = cross_entropy(out, &self.y, Some(&mut self.d))? as f64;
        self.net
            .backward(&mut self.tape, &self.d, &mut self.grads)?;
        if let Some(pool) = self.pool {
            let n = self.mu * b.len();
            let mut r = rng(self.seed.wrapping_mul(1_000_003) ^ (c.step << 1 | 1));
            self.host_w.resize(n * PIX, 0.0);
            self.host_s.resize(n * PIX, 0.0);
            let mut hidden = Vec::with_capacity(n);
            for k in 0..n {
                let i = r.random_range(0..pool.len());
                hidden.push(pool.y[i]);
                let w = &mut self.host_w[k * PIX..(k + 1) * PIX];
                w.copy_from_slice(&pool.x[i * PIX..(i + 1) * PIX]);
                weak(w, &mut r, &mut self.scratch);
                let s = &mut self.host_s[k * PIX..(k + 1) * PIX];
                s.copy_from_slice(&self.host_w[k * PIX..(k + 1) * PIX]);
                strong(s, &mut r, &mut self.scratch);
            }
            self.xw.set_batch(n)?;
            self.xw.copy_from_slice(&self.host_w)?;
            self.xs.set_batch(n)?;
            self.xs.copy_from_slice(&self.host_s)?;
            let wl = self.net.forward_with(&self.xw, &mut self.tape_w)?;
            let sl = self.net.forward_train(&self.xs, &mut self.tape_u)?;
            let (lu, used) = self.pl.loss(sl, wl, Some(&mut self.d))?;
            // Right pseudo-labels, for the report (the hidden labels are not trained on).
            self.host_logits.resize(n * 10, 0.0);
            wl.copy_to_slice(&mut self.host_logits)?;
            kiln::loss::confident_targets(
                &self.host_logits,
                10,
                self.pl_threshold(),
                &mut self.targets,
            );
            let right = (0..n)
                .filter(|&k| self.targets[k * 10 + hidden[k] as usize] == 1.0)
                .count();
            self.out.mask_rate.push(used as f64 / n as f64);
            self.out.pseudo_acc.push(if used > 0 {
                right as f64 / used as f64
            } else {
                f64::NAN
            });
            loss += lu as f64;
            self.net
                .backward_acc(&mut self.tape_u, &self.d, &mut self.grads, Acc::Add)?;
        }
        self.opt.step(&mut self.net, &self.grads)?;
        self.ema.update(&mut self.shadow, &self.net)?;
        self.out.losses.push(loss);
        Ok(StepOut {
            loss,
            correct: None,
            stepped: true,
            lr: self.opt.lr(),
        })
    }

    fn pl_threshold(&self) -> f64 {
        self.pl.threshold()
    }
}

impl Checkpointed for Run<'_> {
    fn problems(&self, c: &Checkpoint) -> Vec<String> {
        let mut p = c.training_part_problems("model", &self.net);
        p.extend(c.module_problems("ema", &self.shadow));
        p
    }
    fn save_to(&self, c: &mut Checkpoint) -> kiln::Result<()> {
        c.add_training_part("model", &self.net, &self.opt, &self.tape.ctx.rng)?;
        c.add_module("ema", &self.shadow)?;
        c.set_meta("ema.updates", self.ema.updates());
        Ok(())
    }
    fn load_from(&mut self, c: &Checkpoint, path: &Path) -> kiln::Result<()> {
        let Run {
            net,
            opt,
            tape,
            shadow,
            ema,
            ..
        } = self;
        c.load_training_part("model", net, opt, &mut tape.ctx.rng, path)?;
        c.load_module("ema", shadow, path)?;
        ema.set_updates(c.meta("ema.updates")?);
        Ok(())
    }
}

/// One run: with the unlabelled pool when `pool` is given.
fn train(
    a: &Args,
    seed: u64,
    labelled: &Dataset,
    pool: Option<&Dataset>,
    test: &DataLoader,
) -> kiln::Result<RunResult> {
    let net = LeNet5::<f32, Cpu>::init(&Cpu, &mut rng(100 + seed))?;
    let mut run = Run {
        shadow: LeNet5::<f32, Cpu>::init(&Cpu, &mut rng(100 + seed))?,
        ema: Ema::new(a.ema)?,
        opt: Adam::new(a.lr),
        tape: net.tape_seeded(seed)?,
        tape_u: net.tape_seeded(seed + 1)?,
        tape_w: net.tape()?,
        grads: net.grads()?,
        net,
        pl: PseudoLabel::new(&Cpu, a.threshold)?,
        x: Tensor::empty(&Cpu)?,
        xw: Tensor::empty(&Cpu)?,
        xs: Tensor::empty(&Cpu)?,
        y: Labels::empty::<f32>(&Cpu)?,
        d: Tensor::empty(&Cpu)?,
        pool,
        mu: a.mu,
        seed,
        host_w: Vec::new(),
        host_s: Vec::new(),
        host_logits: Vec::new(),
        targets: Vec::new(),
        scratch: Vec::new(),
        out: RunResult {
            ema_acc: f64::NAN,
            live_acc: f64::NAN,
            losses: Vec::new(),
            mask_rate: Vec::new(),
            pseudo_acc: Vec::new(),
            step_s: f64::NAN,
        },
    };
    let bsz = a.batch.min(labelled.len());
    let mut scratch = Vec::new();
    let sample = move |step: u64, b: &mut Batch| -> kiln::Result<()> {
        let mut r = rng(seed.wrapping_mul(7_919) ^ (step << 1));
        b.x.resize(bsz * PIX, 0.0);
        b.y.resize(bsz, 0);
        for k in 0..bsz {
            let i = r.random_range(0..labelled.len());
            b.y[k] = labelled.y[i];
            let x = &mut b.x[k * PIX..(k + 1) * PIX];
            x.copy_from_slice(&labelled.x[i * PIX..(i + 1) * PIX]);
            weak(x, &mut r, &mut scratch);
        }
        Ok(())
    };
    let tag = if pool.is_some() {
        "pseudo-labels"
    } else {
        "labels only"
    };
    let start = Instant::now();
    Trainer::new()
        .steps(a.steps)
        .eval_every(a.eval_every)
        .quiet(true)
        .run(
            &mut run,
            Feed::Sample {
                f: Box::new(sample),
                per_epoch: a.eval_every as usize,
            },
            &mut |r: &mut Run, b: &Batch, c: &StepCtx| r.step(b, c),
            &mut |r: &mut Run, rec: &mut Record| {
                let ema = evaluate(&r.shadow, test, &mut Classify::new())?.accuracy.unwrap_or(f64::NAN);
                let live = evaluate(&r.net, test, &mut Classify::new())?.accuracy.unwrap_or(f64::NAN);
                let steps = r.out.losses.len();
                let tail = |v: &[f64]| {
                    let t: Vec<f64> = v[v.len().saturating_sub(100)..].iter().copied().filter(|x| x.is_finite()).collect();
                    t.iter().sum::<f64>() / t.len().max(1) as f64
                };
                let unlabelled = if r.pool.is_some() {
                    format!(
                        ", pseudo-labels used {:.2}, right {:.3}",
                        tail(&r.out.mask_rate),
                        tail(&r.out.pseudo_acc)
                    )
                } else {
                    String::new()
                };
                println!(
                    "  seed {seed} {tag}: step {steps}: loss {:.4}, test acc EMA {ema:.4}, live {live:.4}{unlabelled} ({:.0} s)",
                    tail(&r.out.losses),
                    start.elapsed().as_secs_f64()
                );
                rec.set("test_acc", ema);
                r.out.ema_acc = ema;
                r.out.live_acc = live;
                Ok(())
            },
        )?;
    run.out.step_s = start.elapsed().as_secs_f64() / a.steps.max(1) as f64;
    Ok(run.out)
}

/// Mean and standard error of the mean.
pub fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, f64::NAN);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// The whole experiment (the program's `main` and the smoke test call it).
pub fn run(args: &Args) -> kiln::Result<Outcome> {
    let mut a = args.clone();
    if a.smoke {
        (a.seeds, a.steps, a.eval_every, a.test_size, a.ema) = (1, 300, 150, 2000, 0.99);
    }
    let data = Mnist::load(&a.data_dir)?;
    let test = DataLoader::new(data.test.take(a.test_size.min(data.test.len())), 1000);
    println!(
        "MNIST, {} labels per class, batch {} labelled + {} unlabelled, threshold {}, {} steps, EMA {}",
        a.per_class,
        a.batch,
        a.mu * a.batch,
        a.threshold,
        a.steps,
        a.ema
    );
    let mut out = Outcome {
        fixmatch: Vec::new(),
        labels_only: Vec::new(),
    };
    for seed in a.seed..a.seed + a.seeds {
        let labelled = data
            .train
            .subset(&choose_labelled(&data.train.y, a.per_class, seed))?;
        if !a.no_baseline {
            let r = train(&a, seed, &labelled, None, &test)?;
            println!(
                "seed {seed}: labels only:   test accuracy {:.4} (EMA), {:.4} (live); {:.3} s/step",
                r.ema_acc, r.live_acc, r.step_s
            );
            out.labels_only.push(r);
        }
        let r = train(&a, seed, &labelled, Some(&data.train), &test)?;
        println!(
            "seed {seed}: pseudo-labels: test accuracy {:.4} (EMA), {:.4} (live); {:.3} s/step",
            r.ema_acc, r.live_acc, r.step_s
        );
        out.fixmatch.push(r);
    }
    let accs = |v: &[RunResult]| v.iter().map(|r| r.ema_acc).collect::<Vec<_>>();
    if !out.labels_only.is_empty() {
        let (m, se) = mean_se(&accs(&out.labels_only));
        println!(
            "labels only ({} labels):   mean test accuracy {m:.4} ± {se:.4} (SE, {} seeds)",
            10 * a.per_class,
            a.seeds
        );
    }
    let (m, se) = mean_se(&accs(&out.fixmatch));
    println!(
        "pseudo-labels ({} labels): mean test accuracy {m:.4} ± {se:.4} (SE, {} seeds)",
        10 * a.per_class,
        a.seeds
    );
    Ok(out)
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // The threads are set here, not in `run`, which a smoke test calls in a
    // process whose pool may be running already (`set_threads` works once).
    match kiln::set_threads(args.threads).and_then(|()| run(&args)) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

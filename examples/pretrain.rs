//! Self-supervised pretraining on Fashion-MNIST (course lesson 18): an
//! encoder pretrained without labels by rotation prediction (Gidaris et al.
//! 2018) or by contrastive learning (SimCLR, Chen et al. 2020: two
//! augmented views, a projection head, NT-Xent with the other images of the
//! batch as negatives), then judged by a **linear probe**: the encoder
//! frozen, one `Linear` trained on its features with the labels.
//!
//! ```text
//! scripts/fetch-fashion-mnist                               # once: data/fashion-mnist/
//! cargo run --release --example pretrain                    # every method, the table of docs/few_labels.md
//! cargo run --release --example pretrain -- --method contrastive
//! cargo run --release --example pretrain -- --smoke         # ≤ 60 s
//! ```
//!
//! `--method` (default `all`, in this order):
//!
//! * `pixels`: logistic regression on the raw pixels (standardised per
//!   pixel), the floor any feature must beat;
//! * `random`: the probe on the features of the encoder at its random
//!   initialisation (same architecture and width);
//! * `rotation`: the encoder plus `Linear(4)` trained to tell the four
//!   quarter turns of each image apart (`augment::rotation_task`), then the
//!   probe on the encoder;
//! * `contrastive`: the encoder plus a projection head `Linear(128) → ReLU →
//!   Linear(64)` (`--head bn`: `Linear(128) → BatchNorm1d → ReLU →
//!   Linear(64)`, as in SimCLR's code) trained with [`kiln::loss::NtXent`] on two views of each
//!   image (random resized crop of 50–100 % of the area, `--min-crop`;
//!   horizontal flip, brightness and contrast jitter), Adam at 4e-3 unless
//!   `--lr` says otherwise, then the probe on the encoder (the head is
//!   dropped, as in SimCLR);
//! * `supervised`: the same encoder plus `Linear(10)` trained end to end on
//!   all the labels (15 epochs, flips, the rate on a cosine from `--lr` to 0),
//!   the ceiling;
//! * `probe` (not part of `all`): the linear probe alone, on an encoder that
//!   `--save-dir DIR` saved after pretraining (`--encoder
//!   DIR/contrastive_encoder.safetensors`), to try probes without
//!   pretraining again.
//!
//! The encoder: three 3×3 convolutions (32, 64, 128 channels), each followed
//! by batch norm and ReLU, 2×2 max pooling after the first two (the
//! network [`Trunk`]), global average pooling: 128 features, which the
//! pretext heads read. The probe
//! reads (`--readout avg-max`, the default) the last block's 128 × 7 × 7
//! map pooled two ways, its average and its maximum per channel (256
//! features, the network [`AvgMax`] with the encoder's trunk), or
//! (`--readout gap`) the encoder's 128 outputs; standardised
//! with the training set's mean and deviation per feature, it trains
//! `Linear(10)` with Adam (`--probe-epochs`, `--probe-lr`, `--probe-schedule`,
//! batch 256) on all 60,000 training images; the figure is its accuracy on
//! the 10,000 test images after the last epoch.
//! Pretraining stops after `--epochs` or `--budget-cpu-mins` of CPU time
//! (all threads of the process, `kiln::train::cpu_secs`; wall time × threads
//! where the system does not report it), whichever comes first. The default,
//! 34 CPU-minutes, is 17 minutes of both cores of a 2-core machine, so that
//! each run (pretraining, features and probe) stays within 20 minutes there.
//! A budget of work rather than of wall time makes the figures independent
//! of what else the machine runs (on a shared machine a run takes longer on
//! the clock, not fewer steps), and of `--threads`.
//!
//! This file holds the networks, the flags and the methods; the pretext
//! tasks and the pretraining loop are in `pretrain/pretext.rs`, the linear
//! probe in `pretrain/probe.rs`.

use clap::Parser;
use kiln::data::augment::ImageShape;
use kiln::data::{DataLoader, Dataset};
use kiln::prelude::*;
use kiln::schedule::CosineAnnealingLr;
use kiln::train::{evaluate, Classify, Control, Trainer};
use kiln::Cpu;
use std::path::PathBuf;
use std::time::Instant;

#[path = "pretrain/pretext.rs"]
mod pretext;
#[path = "pretrain/probe.rs"]
mod probe;
use pretext::{pretrain, Contrastive, ContrastiveBn, Rotation};
pub use probe::avg_max;
use probe::{probe, probe_encoder};

const IMG: ImageShape = ImageShape { c: 1, h: 28, w: 28 };
const PIX: usize = 784;
/// Fashion-MNIST's mean and standard deviation over the training pixels.
const MEAN: f32 = 0.2860;
const STD: f32 = 0.3530;

kiln::network! {
    /// The encoder's convolutions: conv–BN–ReLU ×3 (32, 64, 128 channels),
    /// max pooling after the first two: a 128 × 7 × 7 map.
    pub struct Trunk {
        input: [1, 28, 28],
        c1: Conv2d(32, kernel = 3, padding = 1, bias = false), bn1: BatchNorm2d, relu, p1: MaxPool2d(2),
        c2: Conv2d(64, kernel = 3, padding = 1, bias = false), bn2: BatchNorm2d, relu, p2: MaxPool2d(2),
        c3: Conv2d(128, kernel = 3, padding = 1, bias = false), bn3: BatchNorm2d, relu,
    }
}

kiln::network! {
    /// The encoder: the [`Trunk`] and global average pooling, 128 features
    /// (what the pretext heads read).
    pub struct Encoder {
        input: [1, 28, 28],
        trunk: Trunk -> [128, 7, 7],
        gap: GlobalAvgPool,
    }
}

kiln::network! {
    /// What the probe reads with `--readout avg-max` (the default): the
    /// [`Trunk`]'s map pooled two ways, the average and the maximum of each
    /// channel, 256 features (fastai's `AdaptiveConcatPool2d`);
    /// [`probe::avg_max`] copies an [`Encoder`]'s trunk into it.
    pub struct AvgMax {
        input x: [1, 28, 28],
        let m = x |> trunk: Trunk -> [128, 7, 7];
        output concat(m |> GlobalAvgPool, m |> MaxPool2d(7) |> flatten);
    }
}

kiln::network! {
    /// SimCLR with batch norm in the projection head (`--head bn`:
    /// `Linear → BatchNorm1d → ReLU → Linear`, as in SimCLR's own code).
    pub struct SimClrBn {
        input: [1, 28, 28],
        enc: Encoder -> [128],
        proj1: Linear(128), bnh: BatchNorm1d, relu,
        proj2: Linear(64),
    }
}

kiln::network! {
    /// SimCLR: the encoder and a projection head (`--head plain`, the
    /// default).
    pub struct SimClr {
        input: [1, 28, 28],
        enc: Encoder -> [128],
        proj1: Linear(128), relu,
        proj2: Linear(64),
    }
}

kiln::network! {
    /// The rotation pretext task: the encoder and four logits.
    pub struct RotNet {
        input: [1, 28, 28],
        enc: Encoder -> [128],
        head: Linear(4),
    }
}

kiln::network! {
    /// The supervised ceiling: the encoder and ten logits.
    pub struct Supervised {
        input: [1, 28, 28],
        enc: Encoder -> [128],
        head: Linear(10),
    }
}

kiln::network! {
    /// The linear probe on 128 features (`--readout gap`).
    pub struct Probe { input: [128], fc: Linear(10) }
}

kiln::network! {
    /// The linear probe on 256 features (`--readout avg-max`).
    pub struct ProbeAvgMax { input: [256], fc: Linear(10) }
}

kiln::network! {
    /// Logistic regression on the pixels.
    pub struct PixelProbe { input: [784], fc: Linear(10) }
}

/// Self-supervised pretraining and linear probes on Fashion-MNIST.
#[derive(Parser, Debug, Clone)]
#[command(about = "Rotation and contrastive pretraining on Fashion-MNIST, judged by linear probes")]
pub struct Args {
    /// pixels, random, rotation, contrastive, supervised or all.
    #[arg(long, default_value = "all")]
    pub method: String,
    /// Pretraining epochs (at most; the time budget may stop it first).
    #[arg(long, default_value_t = 30)]
    pub epochs: u64,
    /// CPU-minutes of pretraining per method (all threads; 34 = 17 minutes on 2 cores).
    #[arg(long, default_value_t = 34.0)]
    pub budget_cpu_mins: f64,
    /// Images per pretraining batch (contrastive: each twice; rotation: each four times).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Adam's learning rate for pretraining and the supervised network
    /// (default: 4e-3 for `contrastive`, the best measured; 1e-3 for
    /// `rotation` and `supervised`, and for `contrastive` before
    /// 2026-12-03). See [`Args::rate`].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Pretraining rate schedule: `constant` (`--lr` throughout) or
    /// `cosine` (from `--lr` to 0 over the CPU budget, or over `--epochs`
    /// if that ends first).
    #[arg(long, default_value = "constant")]
    pub lr_schedule: String,
    /// NT-Xent's temperature.
    #[arg(long, default_value_t = 0.5)]
    pub temperature: f64,
    /// The contrastive projection head: `plain` (`Linear(128) → ReLU →
    /// Linear(64)`, the head of every figure before 2026-12-02's last
    /// session) or `bn` (`Linear(128) → BatchNorm1d → ReLU → Linear(64)`,
    /// as SimCLR's own code has it).
    #[arg(long, default_value = "plain")]
    pub head: String,
    /// Smallest share of the image's area a contrastive crop keeps (0.3
    /// before 2026-12-03).
    #[arg(long, default_value_t = 0.5)]
    pub min_crop: f64,
    /// Epochs of the supervised network.
    #[arg(long, default_value_t = 15)]
    pub supervised_epochs: u64,
    /// What the probes read of an encoder: `avg-max` (the last block's map
    /// pooled by average and by maximum per channel, 256 features; the
    /// default since 2026-12-03) or `gap` (the encoder's output, its global
    /// average pooling, 128 features; every figure before then).
    #[arg(long, default_value = "avg-max")]
    pub readout: String,
    /// Epochs of each linear probe.
    #[arg(long, default_value_t = 30)]
    pub probe_epochs: u64,
    /// Adam's learning rate for the linear probes.
    #[arg(long, default_value_t = 1e-3)]
    pub probe_lr: f64,
    /// The probes' rate schedule: `constant` (`--probe-lr` throughout) or
    /// `cosine` (from `--probe-lr` to 0 over `--probe-epochs`).
    #[arg(long, default_value = "constant")]
    pub probe_schedule: String,
    /// Directory where `rotation` and `contrastive` save their pretrained
    /// encoder (`METHOD_encoder.safetensors`, `kiln::checkpoint::save`).
    #[arg(long)]
    pub save_dir: Option<PathBuf>,
    /// An encoder saved by `--save-dir`, for `--method probe`: its linear
    /// probe alone, without pretraining.
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// Hold out the last 10,000 of the training images (of `--train-size`)
    /// and report accuracy on them instead of the test set: for choosing
    /// settings without reading the test images.
    #[arg(long)]
    pub validate: bool,
    /// Training images used (the first N of the 60,000).
    #[arg(long, default_value_t = 60_000)]
    pub train_size: usize,
    /// Test images used (the first N of the 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub test_size: usize,
    /// Seed of the weights, the shuffling and the augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the four Fashion-MNIST idx files.
    #[arg(long, default_value = "data/fashion-mnist")]
    pub data_dir: PathBuf,
    /// Worker threads (0: all cores); `main` sets them, not `run`.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// A quick check: 4,096 training and 2,000 test images, one short epoch of each pretraining.
    #[arg(long)]
    pub smoke: bool,
}

impl Args {
    /// Adam's rate for `method`: `--lr`, or its default (4e-3 for
    /// `contrastive`, 1e-3 for the others).
    pub fn rate(&self, method: &str) -> f64 {
        self.lr
            .unwrap_or(if method == "contrastive" { 4e-3 } else { 1e-3 })
    }
}

/// One method's result.
#[derive(Debug, Clone)]
pub struct MethodResult {
    /// `pixels`, `random`, `rotation`, `contrastive` or `supervised`.
    pub method: String,
    /// Test accuracy of the probe (of the whole network for `supervised`).
    pub test_acc: f64,
    /// Pretraining loss per step (empty for `pixels` and `random`).
    pub losses: Vec<f64>,
    /// Pretraining (or supervised training) steps taken.
    pub steps: u64,
    /// Seconds of pretraining, of feature extraction and probe, in all.
    pub pretrain_secs: f64,
    /// Seconds of the probe (features included).
    pub probe_secs: f64,
    /// CPU seconds (all threads) of the pretraining, where the system
    /// reports them (`kiln::train::cpu_secs`): on a shared machine,
    /// `cpu / threads` is about what it would take on dedicated cores.
    pub pretrain_cpu_secs: Option<f64>,
}

/// Standardises `x` in place (images as pixels in `[0, 1]`).
fn normalise(x: &mut [f32]) {
    for v in x {
        *v = (*v - MEAN) / STD;
    }
}

/// Whether a schedule flag (`--lr-schedule`, `--probe-schedule`) asks for
/// the cosine: `constant` or `cosine`, anything else an error naming the
/// flag. [`run`] checks both before any work, so a typo costs no training.
fn cosine_schedule(flag: &'static str, value: &str) -> kiln::Result<bool> {
    match value {
        "constant" => Ok(false),
        "cosine" => Ok(true),
        other => Err(kiln::Error::invalid(
            flag,
            format!("`{other}`: expected constant or cosine"),
        )),
    }
}

/// One method, by name.
fn method(a: &Args, name: &str, train: &Dataset, test: &Dataset) -> kiln::Result<MethodResult> {
    let (t, cpu0) = (Instant::now(), kiln::train::cpu_secs());
    let simple = |test_acc, steps, pretrain_secs| MethodResult {
        method: name.into(),
        test_acc,
        losses: Vec::new(),
        steps,
        pretrain_secs,
        probe_secs: t.elapsed().as_secs_f64() - pretrain_secs,
        pretrain_cpu_secs: kiln::train::cpu_secs().zip(cpu0).map(|(c1, c0)| c1 - c0),
    };
    match name {
        "pixels" => {
            let acc = probe::<784, PixelProbe<f32, Cpu>>(a, train.clone(), test.clone(), name)?;
            Ok(simple(acc, 0, 0.0))
        }
        "probe" => {
            let Some(path) = &a.encoder else {
                return Err(kiln::Error::invalid(
                    "--method probe",
                    "needs --encoder PATH (an encoder saved by --save-dir)",
                ));
            };
            let mut enc = Encoder::<f32, Cpu>::init(&Cpu, &mut rng(a.seed))?;
            kiln::checkpoint::load(&mut enc, path)?;
            let acc = probe_encoder(a, &enc, train, test, name)?;
            Ok(simple(acc, 0, 0.0))
        }
        "random" => {
            let enc = Encoder::<f32, Cpu>::init(&Cpu, &mut rng(a.seed))?;
            let acc = probe_encoder(a, &enc, train, test, name)?;
            Ok(simple(acc, 0, 0.0))
        }
        "rotation" => pretrain(a, name, Rotation::new(a)?, train, test),
        "contrastive" => match a.head.as_str() {
            "bn" => pretrain(a, name, ContrastiveBn::new(a)?, train, test),
            _ => pretrain(a, name, Contrastive::new(a)?, train, test),
        },
        "supervised" => {
            let mut net = Supervised::<f32, Cpu>::init(&Cpu, &mut rng(a.seed))?;
            let loader = DataLoader::new(train.clone(), 128)
                .shuffle(a.seed)
                .image(1, 28, 28)
                .random_flip(0.5)
                .normalize(&[MEAN], &[STD]);
            let test_loader = DataLoader::new(test.clone(), 1000)
                .image(1, 28, 28)
                .normalize(&[MEAN], &[STD]);
            let steps = a.supervised_epochs * loader.batches_per_epoch() as u64;
            let report = Trainer::new()
                .epochs(a.supervised_epochs)
                .schedule(CosineAnnealingLr::new(a.rate(name), steps.max(1), 0.0)?)
                .quiet(true)
                .validate(&test_loader)
                .on_eval(|rec| {
                    println!(
                        "  supervised: epoch {}: train loss {:.4}, train accuracy {:.4}, test accuracy {:.4}",
                        rec.epoch,
                        rec.get("train_loss").unwrap_or(f64::NAN),
                        rec.get("train_acc").unwrap_or(f64::NAN),
                        rec.get("test_acc").unwrap_or(f64::NAN)
                    );
                    Ok(Control::Continue)
                })
                .fit(&mut net, &mut Adam::new(a.rate(name)), &loader, Classify::new())?;
            let secs = t.elapsed().as_secs_f64();
            let acc = evaluate(&net, &test_loader, &mut Classify::new())?
                .accuracy
                .unwrap_or(f64::NAN);
            println!(
                "  supervised: test accuracy {acc:.4} ({} epochs, {:.0} s)",
                a.supervised_epochs, secs
            );
            Ok(simple(acc, report.steps, secs))
        }
        other => Err(kiln::Error::invalid(
            "--method",
            format!("unknown method `{other}`: pixels, random, rotation, contrastive, supervised, probe or all"),
        )),
    }
}

/// The whole program (`main` and the smoke test call it).
pub fn run(args: &Args) -> kiln::Result<Vec<MethodResult>> {
    let mut a = args.clone();
    if a.smoke {
        (a.train_size, a.test_size, a.epochs, a.batch) = (4096, 2000, 1, 128);
        (a.probe_epochs, a.supervised_epochs) = (10, 1);
    }
    // Flags that would otherwise fail only after a pretraining.
    cosine_schedule("--lr-schedule", &a.lr_schedule)?;
    cosine_schedule("--probe-schedule", &a.probe_schedule)?;
    if !matches!(a.head.as_str(), "plain" | "bn") {
        return Err(kiln::Error::invalid(
            "--head",
            format!("`{}`: expected plain or bn", a.head),
        ));
    }
    if !matches!(a.readout.as_str(), "avg-max" | "gap") {
        return Err(kiln::Error::invalid(
            "--readout",
            format!("`{}`: expected avg-max or gap", a.readout),
        ));
    }
    if a.encoder.is_some() && a.method != "probe" {
        return Err(kiln::Error::invalid(
            "--encoder",
            format!(
                "is read only by --method probe, not by --method {}",
                a.method
            ),
        ));
    }
    if let Some(dir) = &a.save_dir {
        std::fs::create_dir_all(dir).map_err(|source| kiln::Error::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let data = Mnist::load_fashion(&a.data_dir)?;
    let (train, test) = if a.validate {
        let all = data.train.take(a.train_size);
        if all.len() <= 10_000 {
            return Err(kiln::Error::invalid(
                "--validate",
                format!("holds out 10,000 training images and needs more than that; --train-size gives {}", all.len()),
            ));
        }
        let keep = all.len() - 10_000;
        let held = all.subset(&(keep..all.len()).collect::<Vec<_>>())?;
        println!(
            "--validate: {} training images, the last {} held out as the test set",
            keep,
            held.len()
        );
        (all.take(keep), held)
    } else {
        (data.train.take(a.train_size), data.test.take(a.test_size))
    };
    let methods: Vec<&str> = if a.method == "all" {
        vec!["pixels", "random", "rotation", "contrastive", "supervised"]
    } else {
        vec![a.method.as_str()]
    };
    println!(
        "Fashion-MNIST: {} training images (labels read only by the probes and `supervised`), {} test images; pretraining: batch {}, Adam {}, ≤ {} epochs, ≤ {} CPU-min",
        train.len(),
        test.len(),
        a.batch,
        a.lr.map_or("4e-3 for contrastive, 1e-3 otherwise".into(), |lr| lr.to_string()),
        a.epochs,
        a.budget_cpu_mins
    );
    let mut out = Vec::new();
    for m in methods {
        let r = method(&a, m, &train, &test)?;
        println!(
            "{m}: test accuracy {:.4} ({} steps, {:.0} s training, {} CPU-s, {:.0} s probe)",
            r.test_acc,
            r.steps,
            r.pretrain_secs,
            cpu(r.pretrain_cpu_secs),
            r.probe_secs
        );
        out.push(r);
    }
    if out.len() > 1 {
        println!("\n| method | linear-probe test accuracy | steps | training s | training CPU-s | probe s |");
        println!("|---|---|---|---|---|---|");
        for r in &out {
            println!(
                "| {} | {:.4} | {} | {:.0} | {} | {:.0} |",
                r.method,
                r.test_acc,
                r.steps,
                r.pretrain_secs,
                cpu(r.pretrain_cpu_secs),
                r.probe_secs
            );
        }
    }
    Ok(out)
}

/// CPU seconds for the report.
fn cpu(c: Option<f64>) -> String {
    c.map_or("–".into(), |c| format!("{c:.0}"))
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

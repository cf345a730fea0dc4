//! Knowledge distillation on MNIST (course lesson 12; Hinton, Vinyals & Dean
//! 2015): a LeNet-5 teacher, then a small 784–64–10 student trained on the
//! teacher's soft targets at temperature `T` (the KL between the softened
//! distributions, times `T²`) plus the hard labels with weight `α`
//! ([`kiln::loss::Distill`]), beside the same student trained on the labels
//! alone with the same seeds (initial weights, shuffling) and budget.
//!
//! ```text
//! scripts/fetch-mnist                                   # once: data/mnist/
//! cargo run --release --example distill                 # 5 seeds, the figures of docs/few_labels.md
//! cargo run --release --example distill -- --smoke      # ≤ 60 s: 1 seed, tiny budget
//! ```
//!
//! Both networks see the first `--train-size` training images only (a
//! small-data regime, where a student gains most from a teacher and a gap is
//! measurable in a few epochs on a CPU); accuracy is measured on the 10,000
//! test images. The teacher is trained once (`--teacher-epochs`), saved to
//! `--out-dir/distill_teacher.safetensors` and loaded back from there for
//! the students (`--teacher PATH` reuses a saved one). Every training loop
//! is `kiln::train::Trainer`: `fit` for the teacher, `run` with a custom
//! step (teacher forward in evaluation mode, student forward, the combined
//! loss, student backward, Adam) for the students.
//!
//! The last lines print the test accuracy of every seed, the means, and the
//! mean of the paired gains (distilled − plain) with its standard error.

use clap::Parser;
use kiln::checkpoint::Checkpoint;
use kiln::data::{Batch, DataLoader};
use kiln::loss::Distill;
use kiln::models::LeNet5;
use kiln::prelude::*;
use kiln::train::{evaluate, Checkpointed, Classify, Feed, Record, StepCtx, StepOut, Trainer};
use kiln::Cpu;
use std::path::{Path, PathBuf};
use std::time::Instant;

kiln::network! {
    /// The student: a 784–64–10 perceptron with ReLU.
    pub struct Student {
        input: [784],
        fc1: Linear(64),
        relu,
        fc2: Linear(10),
    }
}

/// Distil a LeNet-5 teacher into a 784-64-10 student on MNIST.
#[derive(Parser, Debug, Clone)]
#[command(about = "Knowledge distillation on MNIST: LeNet-5 teacher, 784-64-10 student")]
pub struct Args {
    /// Tiny budget for CI: 1 seed, teacher 2 epochs on 10,000 images, students
    /// 2 epochs on 2,000, 2,000 test images.
    #[arg(long)]
    pub smoke: bool,
    /// Student seeds (each trains a plain and a distilled student).
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Training images used (the first N of the 60,000).
    #[arg(long, default_value_t = 10_000)]
    pub train_size: usize,
    /// Training images of the teacher (the first N of the 60,000).
    #[arg(long, default_value_t = 60_000)]
    pub teacher_train_size: usize,
    /// Test images used (the first N of the 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub test_size: usize,
    /// Epochs of the teacher.
    #[arg(long, default_value_t = 2)]
    pub teacher_epochs: u64,
    /// Epochs of each student.
    #[arg(long, default_value_t = 5)]
    pub epochs: u64,
    /// Batch size of every loader.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam's learning rate of the students (0.001, 0.003 and 0.01 are
    /// compared in docs/few_labels.md).
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Adam's learning rate of the teacher.
    #[arg(long, default_value_t = 1e-3)]
    pub teacher_lr: f64,
    /// Distillation temperature T.
    #[arg(long, default_value_t = 4.0)]
    pub temperature: f64,
    /// Weight α of the hard-label loss (1 − α on the soft targets).
    #[arg(long, default_value_t = 0.3)]
    pub alpha: f64,
    /// Load the teacher from this checkpoint instead of training one.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Where the trained teacher is saved.
    #[arg(long, default_value = "target/distill")]
    pub out_dir: PathBuf,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Worker threads (0: all cores); `main` sets them, not `run`.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The teacher's test accuracy.
    pub teacher_acc: f64,
    /// Test accuracy of the plain student, per seed.
    pub plain: Vec<f64>,
    /// Test accuracy of the distilled student, per seed.
    pub distilled: Vec<f64>,
    /// Per-step training loss of the first distilled student.
    pub distill_losses: Vec<f64>,
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

/// The teacher and its activation buffers.
type Teacher<'t> = (&'t LeNet5<f32, Cpu>, kiln::models::LeNet5Tape<f32, Cpu>);

/// One student's run: the network, its optimizer and buffers, and the
/// teacher (`None`: the labels alone).
struct Run<'t> {
    net: Student<f32, Cpu>,
    opt: Adam,
    tape: StudentTape<f32, Cpu>,
    grads: StudentGrads<f32, Cpu>,
    teacher: Option<Teacher<'t>>,
    distill: Distill<10, f32, Cpu>,
    x: Tensor<S1<784>>,
    xi: Tensor<S3<1, 28, 28>>,
    y: Labels<10>,
    d: Tensor<S1<10>>,
    losses: Vec<f64>,
}

impl Run<'_> {
    fn step(&mut self, b: &Batch) -> kiln::Result<StepOut> {
        self.x.set_batch(b.len())?;
        self.x.copy_from_slice(&b.x)?;
        self.y.set::<f32>(&b.y)?;
        let out = self.net.forward_train(&self.x, &mut self.tape)?;
        let loss = match &mut self.teacher {
            Some((t, ttape)) => {
                self.xi.set_batch(b.len())?;
                self.xi.copy_from_slice(&b.x)?;
                let soft = t.forward_with(&self.xi, ttape)?;
                self.distill.loss(out, soft, &self.y, Some(&mut self.d))?
            }
            None => cross_entropy(out, &self.y, Some(&mut self.d))?,
        };
        let pred = kiln::metrics::argmax_rows(&out.to_vec()?, 10);
        let correct = pred.iter().zip(&b.y).filter(|(p, y)| **p == **y).count();
        self.net
            .backward(&mut self.tape, &self.d, &mut self.grads)?;
        self.opt.step(&mut self.net, &self.grads)?;
        self.losses.push(loss as f64);
        Ok(StepOut {
            loss: loss as f64,
            correct: Some(correct),
            stepped: true,
            lr: self.opt.lr(),
        })
    }
}

impl Checkpointed for Run<'_> {
    fn problems(&self, c: &Checkpoint) -> Vec<String> {
        c.training_part_problems("student", &self.net)
    }
    fn save_to(&self, c: &mut Checkpoint) -> kiln::Result<()> {
        c.add_training_part("student", &self.net, &self.opt, &self.tape.ctx.rng)
    }
    fn load_from(&mut self, c: &Checkpoint, path: &Path) -> kiln::Result<()> {
        let Run { net, opt, tape, .. } = self;
        c.load_training_part("student", net, opt, &mut tape.ctx.rng, path)
    }
}

/// Trains one student (distilled when `teacher` is given) and returns its
/// test accuracy and per-step losses.
fn train_student(
    a: &Args,
    seed: u64,
    train: &DataLoader,
    test: &DataLoader,
    teacher: Option<&LeNet5<f32, Cpu>>,
) -> kiln::Result<(f64, Vec<f64>)> {
    let net = Student::<f32, Cpu>::init(&Cpu, &mut rng(1000 + seed))?;
    let mut run = Run {
        tape: net.tape_seeded(seed)?,
        grads: net.grads()?,
        net,
        opt: Adam::new(a.lr),
        teacher: match teacher {
            Some(t) => Some((t, t.tape()?)),
            None => None,
        },
        distill: Distill::new(&Cpu, a.temperature, a.alpha)?,
        x: Tensor::empty(&Cpu)?,
        xi: Tensor::empty(&Cpu)?,
        y: Labels::empty::<f32>(&Cpu)?,
        d: Tensor::empty(&Cpu)?,
        losses: Vec::new(),
    };
    let train = train.clone().shuffle(seed);
    let rep = Trainer::new().epochs(a.epochs).quiet(true).run(
        &mut run,
        Feed::Loader(&train),
        &mut |r: &mut Run, b: &Batch, _: &StepCtx| r.step(b),
        &mut |r: &mut Run, rec: &mut Record| {
            let e = evaluate(&r.net, test, &mut Classify::new())?;
            rec.set("test_acc", e.accuracy.unwrap_or(f64::NAN));
            Ok(())
        },
    )?;
    let acc = rep.last("test_acc").unwrap_or(f64::NAN);
    Ok((acc, run.losses))
}

/// The teacher: loaded from `--teacher`, or trained, saved and loaded back.
fn teacher(a: &Args, train: DataLoader, test: &DataLoader) -> kiln::Result<LeNet5<f32, Cpu>> {
    let mut t = LeNet5::<f32, Cpu>::init(&Cpu, &mut rng(7))?;
    let path = match &a.teacher {
        Some(p) => p.clone(),
        None => {
            let start = Instant::now();
            let mut net = LeNet5::<f32, Cpu>::init(&Cpu, &mut rng(7))?;
            Trainer::new()
                .epochs(a.teacher_epochs)
                .quiet(true)
                .validate(test)
                .on_eval(|r| {
                    println!(
                        "teacher epoch: train loss {:.4}, test acc {:.4}",
                        r.get("train_loss").unwrap_or(f64::NAN),
                        r.get("test_acc").unwrap_or(f64::NAN)
                    );
                    Ok(kiln::train::Control::Continue)
                })
                .fit(
                    &mut net,
                    &mut Adam::new(a.teacher_lr),
                    &train.shuffle(7),
                    Classify::new(),
                )?;
            println!(
                "teacher trained: {} epochs in {:.1} s",
                a.teacher_epochs,
                start.elapsed().as_secs_f64()
            );
            std::fs::create_dir_all(&a.out_dir).map_err(|source| kiln::Error::Io {
                path: a.out_dir.clone(),
                source,
            })?;
            let p = a.out_dir.join("distill_teacher.safetensors");
            kiln::checkpoint::save(&net, &p)?;
            p
        }
    };
    kiln::checkpoint::load(&mut t, &path)?;
    Ok(t)
}

/// The whole experiment (the program's `main` and the smoke test call it).
pub fn run(args: &Args) -> kiln::Result<Outcome> {
    let mut a = args.clone();
    if a.smoke {
        (a.seeds, a.train_size, a.test_size, a.teacher_train_size) = (1, 2000, 2000, 10_000);
        (a.teacher_epochs, a.epochs) = (2, 2);
    }
    let data = Mnist::load(&a.data_dir)?;
    let n = a.train_size.min(data.train.len());
    let train = DataLoader::new(data.train.take(n), a.batch_size);
    let test = DataLoader::new(data.test.take(a.test_size.min(data.test.len())), 1000);
    println!(
        "MNIST: {n} training images for the students, {} test images; student 784-64-10 ({} parameters), T = {}, α = {}",
        test.samples_per_epoch(),
        Student::<f32, Cpu>::PARAMS,
        a.temperature,
        a.alpha
    );
    let nt = a.teacher_train_size.min(data.train.len());
    let t = teacher(
        &a,
        DataLoader::new(data.train.take(nt), a.batch_size),
        &test,
    )?;
    let teacher_acc = evaluate(&t, &test, &mut Classify::new())?
        .accuracy
        .unwrap_or(f64::NAN);
    println!("teacher (LeNet-5, {nt} training images) test accuracy: {teacher_acc:.4}");
    let mut out = Outcome {
        teacher_acc,
        plain: Vec::new(),
        distilled: Vec::new(),
        distill_losses: Vec::new(),
    };
    for seed in 0..a.seeds {
        let start = Instant::now();
        let (plain, _) = train_student(&a, seed, &train, &test, None)?;
        let tp = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let (dist, losses) = train_student(&a, seed, &train, &test, Some(&t))?;
        let td = start.elapsed().as_secs_f64();
        println!(
            "seed {seed}: plain {plain:.4} ({tp:.1} s), distilled {dist:.4} ({td:.1} s), gain {:+.4}",
            dist - plain
        );
        out.plain.push(plain);
        out.distilled.push(dist);
        if seed == 0 {
            out.distill_losses = losses;
        }
    }
    let (mp, sp) = mean_se(&out.plain);
    let (md, sd) = mean_se(&out.distilled);
    let gains: Vec<f64> = out
        .distilled
        .iter()
        .zip(&out.plain)
        .map(|(d, p)| d - p)
        .collect();
    let (mg, sg) = mean_se(&gains);
    println!(
        "plain student:     mean test accuracy {mp:.4} ± {sp:.4} (SE, {} seeds)",
        a.seeds
    );
    println!(
        "distilled student: mean test accuracy {md:.4} ± {sd:.4} (SE, {} seeds)",
        a.seeds
    );
    println!(
        "gain (paired):     {mg:+.4} ± {sg:.4} (SE); gain / SE = {:.1}",
        mg / sg
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

//! Trains a multilayer perceptron on MNIST on the CPU.
//!
//! ```text
//! scripts/fetch-mnist                              # once: data/mnist/
//! cargo run --release --example mnist_mlp          # defaults reach ≥ 98% on t10k
//! cargo run --release --example mnist_mlp -- --optimizer nesterov --lr 0.05 --epochs 10
//! ```
//!
//! Each epoch prints the mean training loss, the accuracy on the training
//! batches as they were seen, the accuracy on the 10,000 test images and the
//! training throughput. The last line is
//! `test accuracy (MNIST t10k, 10000 images): 0.9xxx`.
//!
//! The training loop allocates its buffers once (input batch, labels, tape,
//! gradients, the gradient of the loss); every later step reuses them.

use clap::{Parser, ValueEnum};
use kiln::prelude::*;
use rand::seq::SliceRandom;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

kiln::network! {
    /// A 784–512–256–10 perceptron with ReLU.
    pub struct Mlp {
        input: [784],
        fc1: Linear(512),
        relu,
        fc2: Linear(256),
        relu,
        fc3: Linear(10),
    }
}

/// Which optimizer trains the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OptKind {
    /// Plain SGD.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// SGD with Nesterov momentum 0.9.
    Nesterov,
    /// Adam (β = 0.9, 0.999).
    Adam,
}

/// How the learning rate changes over training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Schedule {
    /// The same learning rate throughout.
    Constant,
    /// Cosine decay from `--lr` to 0 over all steps.
    Cosine,
}

/// Train an MLP on MNIST.
#[derive(Parser, Debug)]
#[command(about = "Train a 784-512-256-10 MLP on MNIST with kiln")]
struct Args {
    /// Passes over the 60,000 training images.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Learning rate (the default suits Adam; try 0.05 for momentum/Nesterov, 0.1 for SGD).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptKind::Adam)]
    optimizer: OptKind,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = Schedule::Cosine)]
    schedule: Schedule,
    /// CPU threads (0: rayon's default, one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Seed of the initial weights and of the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    data_dir: PathBuf,
}

/// The optimizers share a trait with a generic method, so the choice made on
/// the command line is an enum rather than a trait object.
enum Opt {
    Sgd(Sgd),
    Adam(Adam),
}

impl Opt {
    fn new(kind: OptKind, lr: f64) -> Opt {
        match kind {
            OptKind::Sgd => Opt::Sgd(Sgd::new(lr)),
            OptKind::Momentum => Opt::Sgd(Sgd::new(lr).momentum(0.9)),
            OptKind::Nesterov => Opt::Sgd(Sgd::new(lr).nesterov(0.9)),
            OptKind::Adam => Opt::Adam(Adam::new(lr)),
        }
    }
    fn step(&mut self, net: &mut Mlp<f32, Cpu>, grads: &MlpGrads<f32, Cpu>) -> kiln::Result<()> {
        match self {
            Opt::Sgd(o) => o.step(net, grads),
            Opt::Adam(o) => o.step(net, grads),
        }
    }
    fn set_lr(&mut self, lr: f64) {
        match self {
            Opt::Sgd(o) => o.set_lr(lr),
            Opt::Adam(o) => o.set_lr(lr),
        }
    }
}

/// Index of the largest value in each row of `logits` (`rows × 10`), compared
/// with `labels`: the number of correct predictions.
fn count_correct(logits: &[f32], labels: &[u32]) -> usize {
    logits
        .chunks_exact(10)
        .zip(labels)
        .filter(|(row, &y)| argmax(row) == y as usize)
        .count()
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// Accuracy of `net` on `data`, in evaluation mode, `batch` samples at a time.
fn evaluate(
    net: &Mlp<f32, Cpu>,
    data: &Dataset,
    batch: usize,
    bufs: &mut EvalBufs,
) -> kiln::Result<f64> {
    let mut correct = 0;
    let mut start = 0;
    while start < data.len() {
        let end = (start + batch).min(data.len());
        let n = end - start;
        bufs.x.set_batch(n)?;
        bufs.x
            .copy_from_slice(&data.x[start * data.dim..end * data.dim])?;
        let logits = net.forward_with(&bufs.x, &mut bufs.tape)?;
        bufs.host.resize(n * 10, 0.0);
        Backend::<f32>::download(logits.device(), logits.buf(), &mut bufs.host)?;
        correct += count_correct(&bufs.host, &data.y[start..end]);
        start = end;
    }
    Ok(correct as f64 / data.len() as f64)
}

/// Buffers reused by every evaluation.
struct EvalBufs {
    x: Tensor<S1<784>>,
    tape: MlpTape<f32, Cpu>,
    host: Vec<f32>,
}

/// Trains and returns the final test accuracy and the number of test images.
fn run(args: &Args) -> kiln::Result<(f64, usize)> {
    if args.threads > 0 {
        kiln::set_threads(args.threads)?;
    }
    if args.batch_size == 0 {
        return Err(kiln::Error::invalid("--batch-size", "must be at least 1"));
    }
    let data = Mnist::load(&args.data_dir)?;
    let (train, test) = (&data.train, &data.test);
    if train.dim != 784 || test.dim != 784 {
        return Err(kiln::Error::invalid(
            "Mnist::load",
            format!(
                "expected 28×28 images, got {} and {} values per sample",
                train.dim, test.dim
            ),
        ));
    }

    let dev = Cpu;
    let mut rng = rng(args.seed);
    let mut net = Mlp::<f32, Cpu>::init(&dev, &mut rng)?;
    print!("{}", Mlp::<f32>::summary());
    println!(
        "optimizer {:?}, lr {}, schedule {:?}, batch {}, epochs {}, seed {}, threads {}",
        args.optimizer,
        args.lr,
        args.schedule,
        args.batch_size,
        args.epochs,
        args.seed,
        match args.threads {
            0 => "one per core".to_string(),
            n => n.to_string(),
        }
    );

    let mut opt = Opt::new(args.optimizer, args.lr);
    // Everything the loop touches is allocated here, once.
    let mut tape = net.tape_seeded(args.seed)?;
    let mut grads = net.grads()?;
    let mut x = Tensor::<S1<784>>::zeros(&dev, args.batch_size)?;
    let mut y = Labels::<10>::new::<f32>(&dev, &[])?;
    let mut dlogits = Tensor::<S1<10>>::zeros(&dev, args.batch_size)?;
    let mut host_x: Vec<f32> = Vec::with_capacity(args.batch_size * 784);
    let mut host_y: Vec<u32> = Vec::with_capacity(args.batch_size);
    let mut host_logits: Vec<f32> = vec![0.0; args.batch_size * 10];
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut eval = EvalBufs {
        x: Tensor::zeros(&dev, 1000)?,
        tape: net.tape()?,
        host: Vec::with_capacity(10_000),
    };

    let steps_per_epoch = train.len().div_ceil(args.batch_size);
    let total_steps = (steps_per_epoch * args.epochs).max(1);
    let mut step = 0usize;
    let mut test_acc = 0.0;
    let t_all = Instant::now();
    for epoch in 1..=args.epochs {
        order.shuffle(&mut rng);
        let t0 = Instant::now();
        let (mut loss_sum, mut seen, mut correct) = (0.0f64, 0usize, 0usize);
        for idx in order.chunks(args.batch_size) {
            if args.schedule == Schedule::Cosine {
                let t = step as f64 / total_steps as f64;
                opt.set_lr(args.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()));
            }
            train.gather(idx, &mut host_x, &mut host_y);
            let n = idx.len();
            x.set_batch(n)?;
            x.copy_from_slice(&host_x)?;
            y.set::<f32>(&host_y)?;

            let logits = net.forward_train(&x, &mut tape)?;
            let loss = cross_entropy(logits, &y, Some(&mut dlogits))?;
            host_logits.resize(n * 10, 0.0);
            Backend::<f32>::download(&dev, logits.buf(), &mut host_logits)?;
            correct += count_correct(&host_logits, &host_y);
            net.backward(&mut tape, &dlogits, &mut grads)?;
            opt.step(&mut net, &grads)?;

            loss_sum += loss as f64 * n as f64;
            seen += n;
            step += 1;
        }
        let secs = t0.elapsed().as_secs_f64();
        test_acc = evaluate(&net, test, 1000, &mut eval)?;
        println!(
            "epoch {epoch:>2}/{}  loss {:.4}  train acc {:.4}  test acc {:.4}  {:>6.0} samples/s  ({:.1} s)",
            args.epochs,
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
            test_acc,
            seen as f64 / secs,
            secs,
        );
    }
    if args.epochs == 0 {
        test_acc = evaluate(&net, test, 1000, &mut eval)?;
    }
    println!("total {:.1} s", t_all.elapsed().as_secs_f64());
    Ok((test_acc, test.len()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok((acc, n)) => {
            println!("test accuracy (MNIST t10k, {n} images): {acc:.4}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

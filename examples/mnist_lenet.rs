//! Trains LeNet-5 on MNIST on the CPU or a CUDA GPU.
//!
//! ```text
//! scripts/fetch-mnist                                   # once: data/mnist/
//! cargo run --release --example mnist_lenet             # defaults reach ≥ 99.0% on t10k
//! cargo run --release --example mnist_lenet -- --epochs 3 --save lenet.safetensors
//! cargo run --release --features cuda --example mnist_lenet -- --device cuda
//! ```
//!
//! LeNet-5 as the course draws it, with ReLU and max pooling: a 5×5
//! convolution to 6 channels (padding 2, so 28×28 stays 28×28), 2×2 max pool,
//! a 5×5 convolution to 16 channels (10×10), 2×2 max pool (16×5×5), then
//! fully connected layers 400–120–84–10. All output sizes are computed by
//! `network!` when it expands; `LeNet::summary()` prints them.
//!
//! Each epoch prints the mean training loss, the accuracy on the training
//! batches as they were seen, the accuracy on the 10,000 test images and the
//! training throughput. The last line is
//! `test accuracy (MNIST t10k, 10000 images): 0.9xxx`. `--save PATH` writes
//! the trained weights as safetensors (PyTorch `state_dict` names:
//! `conv1.weight`, …), which `examples/saliency.rs --load PATH` reads.
//!
//! `--device cpu|cuda|cuda:N` picks the device (default `cpu`; `cuda` is GPU
//! 0). The CUDA device needs a binary built with `--features cuda`; without
//! it, or when `kiln::Cuda::new` fails (no driver, no GPU, no NVRTC or
//! cuBLAS: the message names what is missing), the program says so and exits
//! with code 2 before loading any data. The network, the optimizer and the
//! loop are the same code on both devices; the weights saved by `--save` are
//! host values, the same file whichever device trained them.
//!
//! The training loop allocates its buffers once (input batch, labels, tape,
//! gradients, the gradient of the loss); every later step reuses them.

use clap::{Parser, ValueEnum};
use kiln::optim::Optimizer;
use kiln::prelude::*;
use rand::seq::SliceRandom;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

kiln::network! {
    /// LeNet-5 (ReLU, max pooling) for 28×28 grey images.
    pub struct LeNet {
        input: [1, 28, 28],
        conv1: Conv2d(6, kernel = 5, padding = 2),
        relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(16, kernel = 5),
        relu,
        pool2: MaxPool2d(2),
        flatten,
        fc1: Linear(120),
        relu,
        fc2: Linear(84),
        relu,
        fc3: Linear(10),
    }
}

/// Which optimizer trains the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OptKind {
    /// SGD with Nesterov momentum 0.9 (try `--lr 0.05`).
    Nesterov,
    /// Adam (β = 0.9, 0.999).
    Adam,
}

/// The device that trains the network (`--device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeviceArg {
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}

impl FromStr for DeviceArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceArg::Cpu),
            "cuda" => Ok(DeviceArg::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceArg::Cuda(n)),
                _ => Err("expected `cpu`, `cuda` or `cuda:N` (N: the GPU's ordinal, from 0)".into()),
            },
        }
    }
}

/// Train LeNet-5 on MNIST.
#[derive(Parser, Debug)]
#[command(about = "Train LeNet-5 on MNIST with kiln")]
struct Args {
    /// Passes over the 60,000 training images.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Peak learning rate (cosine decay to 0 over the run).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptKind::Adam)]
    optimizer: OptKind,
    /// CPU threads (0: rayon's default, one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Seed of the initial weights and of the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    data_dir: PathBuf,
    /// Write the trained weights to this safetensors file.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Device: cpu, cuda (GPU 0) or cuda:N (needs a build with --features cuda).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    device: DeviceArg,
}

/// Number of rows of `logits` (`rows × 10`) whose largest entry is at the label.
fn count_correct(logits: &[f32], labels: &[u32]) -> usize {
    logits.chunks_exact(10).zip(labels).filter(|(row, &y)| argmax(row) == y as usize).count()
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

/// Buffers reused by every evaluation.
struct EvalBufs<D: Backend<f32>> {
    x: Tensor<S3<1, 28, 28>, f32, D>,
    tape: LeNetTape<f32, D>,
    host: Vec<f32>,
}

/// Accuracy of `net` on `data` (evaluation mode), 1000 samples at a time.
fn evaluate<D: Backend<f32>>(net: &LeNet<f32, D>, data: &Dataset, bufs: &mut EvalBufs<D>) -> kiln::Result<f64> {
    let mut correct = 0;
    for start in (0..data.len()).step_by(1000) {
        let end = (start + 1000).min(data.len());
        bufs.x.set_batch(end - start)?;
        bufs.x.copy_from_slice(&data.x[start * data.dim..end * data.dim])?;
        let logits = net.forward_with(&bufs.x, &mut bufs.tape)?;
        bufs.host.resize((end - start) * 10, 0.0);
        logits.copy_to_slice(&mut bufs.host)?;
        correct += count_correct(&bufs.host, &data.y[start..end]);
    }
    Ok(correct as f64 / data.len().max(1) as f64)
}

/// Trains on `dev` and returns the final test accuracy and the number of test images.
fn run<D: Backend<f32>>(args: &Args, dev: &D) -> kiln::Result<(f64, usize)> {
    if args.threads > 0 {
        kiln::set_threads(args.threads)?;
    }
    if args.batch_size == 0 {
        return Err(kiln::Error::invalid("--batch-size", "must be at least 1"));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(kiln::Error::invalid("--lr", format!("must be a positive number, got {}", args.lr)));
    }
    if let Some(path) = &args.save {
        check_parent("--save", path)?;
    }
    let data = Mnist::load(&args.data_dir)?;
    let (train, test) = (&data.train, &data.test);
    if train.dim != 784 || test.dim != 784 {
        return Err(kiln::Error::invalid(
            "Mnist::load",
            format!("expected 28×28 images, got {} and {} values per sample", train.dim, test.dim),
        ));
    }

    let mut rng = rng(args.seed);
    let mut net = LeNet::<f32, D>::init(dev, &mut rng)?;
    print!("{}", LeNet::<f32>::summary());
    println!(
        "device {}, optimizer {:?}, lr {} (cosine), batch {}, epochs {}, seed {}, threads {}",
        dev.name(),
        args.optimizer,
        args.lr,
        args.batch_size,
        args.epochs,
        args.seed,
        match args.threads {
            0 => "one per core".to_string(),
            n => n.to_string(),
        }
    );

    let mut opt: Box<dyn Optimizer<f32, D>> = match args.optimizer {
        OptKind::Adam => Box::new(Adam::new(args.lr)),
        OptKind::Nesterov => Box::new(Sgd::new(args.lr).nesterov(0.9)),
    };
    // Everything the loop touches is allocated here, once.
    let mut tape = net.tape_seeded(args.seed)?;
    let mut grads = net.grads()?;
    let mut x = Tensor::<S3<1, 28, 28>, f32, D>::zeros(dev, args.batch_size)?;
    let mut y = Labels::<10, D>::new::<f32>(dev, &[])?;
    let mut dlogits = Tensor::<S1<10>, f32, D>::zeros(dev, args.batch_size)?;
    let mut host_x: Vec<f32> = Vec::with_capacity(args.batch_size * 784);
    let mut host_y: Vec<u32> = Vec::with_capacity(args.batch_size);
    let mut host_logits: Vec<f32> = vec![0.0; args.batch_size * 10];
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut eval = EvalBufs { x: Tensor::zeros(dev, 1000)?, tape: net.tape()?, host: Vec::with_capacity(10_000) };

    let steps_per_epoch = train.len().div_ceil(args.batch_size);
    let total_steps = (steps_per_epoch * args.epochs).max(1);
    let mut step = 0usize;
    let mut test_acc = None;
    let t_all = Instant::now();
    for epoch in 1..=args.epochs {
        order.shuffle(&mut rng);
        let t0 = Instant::now();
        let (mut loss_sum, mut seen, mut correct) = (0.0f64, 0usize, 0usize);
        for idx in order.chunks(args.batch_size) {
            let t = step as f64 / total_steps as f64;
            opt.set_lr(args.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()));
            train.gather(idx, &mut host_x, &mut host_y);
            let n = idx.len();
            x.set_batch(n)?;
            x.copy_from_slice(&host_x)?;
            y.set::<f32>(&host_y)?;

            let logits = net.forward_train(&x, &mut tape)?;
            let loss = cross_entropy(logits, &y, Some(&mut dlogits))?;
            host_logits.resize(n * 10, 0.0);
            logits.copy_to_slice(&mut host_logits)?;
            correct += count_correct(&host_logits, &host_y);
            net.backward(&mut tape, &dlogits, &mut grads)?;
            opt.step(&mut net, &grads)?;

            loss_sum += loss as f64 * n as f64;
            seen += n;
            step += 1;
        }
        let secs = t0.elapsed().as_secs_f64();
        let acc = evaluate(&net, test, &mut eval)?;
        test_acc = Some(acc);
        println!(
            "epoch {epoch:>2}/{}  loss {:.4}  train acc {:.4}  test acc {:.4}  {:>6.0} samples/s  ({:.1} s)",
            args.epochs,
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
            acc,
            seen as f64 / secs,
            secs,
        );
    }
    let test_acc = match test_acc {
        Some(a) => a,
        None => evaluate(&net, test, &mut eval)?,
    };
    println!("total {:.1} s", t_all.elapsed().as_secs_f64());
    if let Some(path) = &args.save {
        kiln::checkpoint::save(&net, path)?;
        println!("saved the weights to {}", path.display());
    }
    Ok((test_acc, test.len()))
}

/// Fails before any training when `path`'s directory does not exist, so a
/// typo in `flag` does not cost a whole run.
fn check_parent(flag: &'static str, path: &std::path::Path) -> kiln::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            Err(kiln::Error::invalid(flag, format!("directory {} does not exist", dir.display())))
        }
        _ => Ok(()),
    }
}

/// Opens the device `--device` names and trains on it; `Err` (exit code 2)
/// when the device cannot be opened.
fn run_on_device(args: &Args) -> Result<kiln::Result<(f64, usize)>, String> {
    match args.device {
        DeviceArg::Cpu => Ok(run(args, &Cpu)),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda(ordinal) => {
            let dev = kiln::Cuda::new(ordinal).map_err(|e| e.to_string())?;
            println!("{}: {}", dev.name(), dev.describe());
            Ok(run(args, &dev))
        }
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda(ordinal) => Err(format!(
            "--device cuda:{ordinal}: this binary was built without CUDA support; rebuild with \
             `--features cuda` (cargo run --release --features cuda --example mnist_lenet -- --device cuda)"
        )),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match run_on_device(&args) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    match result {
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

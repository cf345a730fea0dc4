//! Trains a multilayer perceptron on MNIST on the CPU or a CUDA GPU.
//!
//! ```text
//! scripts/fetch-mnist                              # once: data/mnist/
//! cargo run --release --example mnist_mlp          # defaults reach ≥ 98% on t10k
//! cargo run --release --example mnist_mlp -- --optimizer nesterov --lr 0.05 --epochs 10
//! cargo run --release --example mnist_mlp -- --save run.safetensors --log run.jsonl --plot run
//! cargo run --release --example mnist_mlp -- --resume run.safetensors --save run.safetensors
//! cargo run --release --features cuda --example mnist_mlp -- --device cuda
//! ```
//!
//! The loop is `kiln::train::Trainer::fit`; the flags shared by every
//! training program (optimizer, schedule, accumulation, early stopping,
//! `--save`/`--resume`/`--log`/`--plot`, `--device`, threads, seed) are
//! `kiln::train::TrainArgs`, flattened into this program's own (`--help`
//! lists them). Each epoch shows a progress bar (on a terminal) and prints
//! the mean training loss, the accuracy on the training batches as they were
//! seen, the loss and accuracy on the 10,000 test images and the training
//! throughput. The last line is `test accuracy (MNIST t10k, 10000 images): 0.9xxx`.
//!
//! * `--save PATH` writes the whole run (weights under PyTorch names, the
//!   optimizer's state, the step, the dropout generator, the loader's
//!   position, the epoch's running sums, the history) at the end of every
//!   epoch and every `--save-every` steps, atomically; `--resume PATH`
//!   continues it, mid-epoch included, ending with the same weights, bit for
//!   bit, as a run that never stopped (same flags, machine kind and thread
//!   count).
//! * `--device cpu|cuda|cuda:N`: the network, the optimizer and the loop are
//!   the same code on both devices (`kiln::on_device`); without the `cuda`
//!   feature or a usable GPU the program says so and exits with code 2
//!   before loading any data.
//! * `--bench-loader` measures the data loader alone and exits.

use clap::Parser;
use kiln::data::DataLoader;
use kiln::kernels::Kernels;
use kiln::prelude::*;
use kiln::train::{Classify, TrainArgs};
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

/// Train an MLP on MNIST.
#[derive(Parser, Debug)]
#[command(about = "Train a 784-512-256-10 MLP on MNIST with kiln")]
struct Args {
    #[command(flatten)]
    train: TrainArgs,
    /// Normalise the pixels with MNIST's mean and std (0.1307, 0.3081).
    #[arg(long)]
    normalize: bool,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    data_dir: PathBuf,
    /// Measure the data loader alone (samples/s with and without the background thread) and exit.
    #[arg(long)]
    bench_loader: bool,
}

/// Loader throughput alone: one epoch in the training thread and one with the
/// background thread, plain and with the image augmentations.
fn bench_loader(train: &DataLoader) -> kiln::Result<()> {
    let augmented = train
        .clone()
        .random_crop(2)
        .random_flip(0.5)
        .color_jitter(0.2, 0.2)
        .normalize(&[0.1307], &[0.3081]);
    for (name, l) in [
        ("in the training thread", train.clone().prefetch(0)),
        ("background thread, prefetch 2", train.clone().prefetch(2)),
        (
            "crop+flip+jitter+normalize, in the training thread",
            augmented.clone().prefetch(0),
        ),
        (
            "crop+flip+jitter+normalize, background thread",
            augmented.prefetch(2),
        ),
    ] {
        let t = Instant::now();
        let (mut n, mut check) = (0usize, 0f32);
        for b in l.epoch(0)? {
            n += b.len();
            check += b.x[0];
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "loader ({name}): {n} samples in {s:.3} s = {:.0} samples/s (checksum {check:.1})",
            n as f64 / s
        );
    }
    Ok(())
}

/// Training on whichever device `--device` opened.
struct Job<'a>(&'a Args);

impl kiln::DeviceJob for Job<'_> {
    type Output = kiln::Result<Option<(f64, usize)>>;
    /// Trains and returns the final test accuracy and the number of test
    /// images (`None` when it stopped early or only measured the loader).
    fn run<D: Kernels<f32>>(self, dev: &D) -> Self::Output {
        let (args, t) = (self.0, &self.0.train);
        t.init()?;
        let data = Mnist::load(&args.data_dir)?;
        let n_test = data.test.len();
        let mut train = t.loader(data.train).image(1, 28, 28);
        let mut test = DataLoader::new(data.test, 1000).image(1, 28, 28);
        if args.normalize {
            train = train.normalize(&[0.1307], &[0.3081]);
            test = test.normalize(&[0.1307], &[0.3081]);
        }
        if args.bench_loader {
            bench_loader(&train)?;
            return Ok(None);
        }
        let mut net = Mlp::<f32, D>::init(dev, &mut rng(t.seed))?;
        print!("{}", Mlp::summary());
        println!("device {}, {}", dev.name(), t.describe());
        let report = t
            .trainer(&train)?
            .fingerprint("normalize", args.normalize)
            .validate(&test)
            .fit(&mut net, &mut t.optimizer(), &train, Classify::new())?;
        Ok((report.stopped != kiln::train::Stopped::StopAfter)
            .then(|| (report.last("test_acc").unwrap_or(f64::NAN), n_test)))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match kiln::on_device(args.train.device, Job(&args)) {
        Ok(Ok(Some((acc, n)))) => {
            println!("test accuracy (MNIST t10k, {n} images): {acc:.4}");
            ExitCode::SUCCESS
        }
        Ok(Ok(None)) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

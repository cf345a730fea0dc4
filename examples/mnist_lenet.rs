//! Trains LeNet-5 on MNIST on the CPU or a CUDA GPU.
//!
//! ```text
//! scripts/fetch-mnist                                   # once: data/mnist/
//! cargo run --release --example mnist_lenet             # defaults reach ≥ 99.0% on t10k
//! cargo run --release --example mnist_lenet -- --optimizer nesterov --lr 0.05
//! cargo run --release --example mnist_lenet -- --save lenet.safetensors --log lenet.jsonl --plot lenet
//! cargo run --release --example mnist_lenet -- --resume lenet.safetensors --save lenet.safetensors
//! cargo run --release --features cuda --example mnist_lenet -- --device cuda
//! ```
//!
//! LeNet-5 as the course draws it, with ReLU and max pooling: a 5×5
//! convolution to 6 channels (padding 2, so 28×28 stays 28×28), 2×2 max pool,
//! a 5×5 convolution to 16 channels (10×10), 2×2 max pool (16×5×5), then
//! fully connected layers 400–120–84–10. All output sizes are computed by
//! `network!` when it expands; `LeNet::summary()` prints them.
//!
//! Each epoch shows a progress bar (on a terminal) and prints the mean
//! training loss, the accuracy on the training batches as they were seen, the
//! loss and accuracy on the 10,000 test images and the training throughput.
//! The last line is `test accuracy (MNIST t10k, 10000 images): 0.9xxx`.
//!
//! The loop is `kiln::train::Trainer::fit` and the shared flags are
//! `kiln::train::TrainArgs` (see `examples/mnist_mlp.rs`); this program
//! changes two defaults (batch 64, learning rate 2e-3).
//!
//! * `--save PATH` writes the whole run (safetensors) at the end of every
//!   epoch and every `--save-every` steps: the weights under PyTorch
//!   `state_dict` names (`conv1.weight`, …), the optimizer's state, the step,
//!   the tape's generator, the loader's position, the epoch's running sums
//!   and the history, atomically. `examples/saliency.rs --load PATH` reads
//!   the weights from it (loading a module skips the `optim.*` tensors and
//!   the metadata). `--resume PATH` continues such a run where it stopped,
//!   mid-epoch included, bit for bit (same flags, machine kind and threads).
//! * `--export-onnx PATH` writes the trained network as an ONNX model
//!   (`docs/onnx.md`: `scripts/onnx/mnist_accuracy.py PATH` runs it on the
//!   test set in ONNX Runtime).
//! * `--device cpu|cuda|cuda:N` (`kiln::on_device`): the same code on both
//!   devices; checkpoints hold host values, so a run saved on one device
//!   resumes on the other (the bit-for-bit promise is for the CPU).

use clap::Parser;
use kiln::data::DataLoader;
use kiln::kernels::Kernels;
use kiln::prelude::*;
use kiln::train::{Classify, TrainArgs};
use std::path::PathBuf;
use std::process::ExitCode;

/// LeNet-5, declared once in `kiln::models` (see there).
use kiln::models::LeNet5 as LeNet;

/// Train LeNet-5 on MNIST.
#[derive(Parser, Debug)]
#[command(about = "Train LeNet-5 on MNIST with kiln")]
#[command(mut_arg("batch_size", |a| a.default_value("64")))]
#[command(mut_arg("lr", |a| a.default_value("0.002")))]
struct Args {
    #[command(flatten)]
    train: TrainArgs,
    /// Normalise the pixels with MNIST's mean and std (0.1307, 0.3081).
    #[arg(long)]
    normalize: bool,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    data_dir: PathBuf,
    /// After training, write the network as an ONNX model (opset 17) to PATH (docs/onnx.md).
    #[arg(long, value_name = "PATH")]
    export_onnx: Option<PathBuf>,
}

/// Training on whichever device `--device` opened.
struct Job<'a>(&'a Args);

impl kiln::DeviceJob for Job<'_> {
    type Output = kiln::Result<Option<(f64, usize)>>;
    /// Trains and returns the final test accuracy and the number of test
    /// images (`None` when it stopped early to be resumed).
    fn run<D: Kernels<f32>>(self, dev: &D) -> Self::Output {
        let (args, t) = (self.0, &self.0.train);
        t.init()?;
        if let Some(path) = &args.export_onnx {
            kiln::train::check_output_path("--export-onnx", path)?;
        }
        let data = Mnist::load(&args.data_dir)?;
        let n_test = data.test.len();
        let mut train = t.loader(data.train).image(1, 28, 28);
        let mut test = DataLoader::new(data.test, 1000).image(1, 28, 28);
        if args.normalize {
            train = train.normalize(&[0.1307], &[0.3081]);
            test = test.normalize(&[0.1307], &[0.3081]);
        }
        let mut net = LeNet::<f32, D>::init(dev, &mut rng(t.seed))?;
        print!("{}", LeNet::summary());
        println!("device {}, {}", dev.name(), t.describe());
        let report = t
            .trainer(&train)?
            .fingerprint("normalize", args.normalize)
            .validate(&test)
            .fit(&mut net, &mut t.optimizer(), &train, Classify::new())?;
        if let Some(path) = args
            .export_onnx
            .as_ref()
            .filter(|_| report.stopped != kiln::train::Stopped::StopAfter)
        {
            net.to_onnx(path)?;
            println!(
                "exported the network to {} (ONNX, opset 17)",
                path.display()
            );
        }
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

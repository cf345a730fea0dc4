//! Transfer learning, the course's recipe: train a network on MNIST digits
//! (or load one), freeze its feature layers, and retrain only its head on
//! Fashion-MNIST clothes.
//!
//! ```text
//! scripts/fetch-mnist && scripts/fetch-fashion-mnist     # once
//! cargo run --release --example transfer
//! cargo run --release --example transfer -- --save-pretrained mnist.safetensors
//! cargo run --release --example transfer -- --load mnist.safetensors --epochs 5
//! cargo run --release --example transfer -- --unfreeze    # fine-tune everything, to compare
//! ```
//!
//! The features are `fc1` and `fc2` (784 → 256 → 128); the head `fc3`
//! (128 → 10) is re-initialised and trained with
//! `Adam::new(lr).freeze(|p| p.starts_with("fc1.") || p.starts_with("fc2."))`.
//! The program prints the accuracies before and after (Fashion-MNIST with the
//! digit head is at chance level), and for every parameter whether it
//! changed: the frozen ones keep every bit.
//!
//! Both stages are `kiln::train::Trainer::fit` runs; the shared flags
//! (`kiln::train::TrainArgs`: optimizer, learning rate, schedule, batch,
//! seed, threads, `--device`) serve both, and `--epochs`, `--save`,
//! `--resume`, `--log`, `--plot` belong to the second stage (the first is
//! `--pretrain-epochs`, `--load`, `--save-pretrained`).

use clap::Parser;
use kiln::checkpoint;
use kiln::data::{DataLoader, Mnist};
use kiln::kernels::Kernels;
use kiln::optim::Optimizer;
use kiln::prelude::*;
use kiln::train::{evaluate, Classify, TrainArgs, Trainer};
use kiln::Path as PPath;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

kiln::network! {
    /// A 784–256–128–10 perceptron: features fc1, fc2; head fc3.
    pub struct Net {
        input: [784],
        fc1: Linear(256),
        relu,
        fc2: Linear(128),
        relu,
        fc3: Linear(10),
    }
}

/// MNIST → Fashion-MNIST transfer learning with frozen features.
#[derive(Parser, Debug)]
#[command(about = "Train on MNIST, freeze the features, retrain the head on Fashion-MNIST")]
#[command(mut_arg("epochs", |a| a.default_value("3").help("Epochs of retraining on Fashion-MNIST")))]
#[command(mut_arg("schedule", |a| a.default_value("constant")))]
struct Args {
    #[command(flatten)]
    train: TrainArgs,
    /// Epochs of MNIST pre-training (without --load).
    #[arg(long, default_value_t = 3)]
    pretrain_epochs: u64,
    /// Load the pre-trained network from PATH instead of training it.
    #[arg(long, value_name = "PATH")]
    load: Option<PathBuf>,
    /// Save the pre-trained network to PATH.
    #[arg(long, value_name = "PATH")]
    save_pretrained: Option<PathBuf>,
    /// Train every layer in the second stage (fine-tuning) instead of the head only.
    #[arg(long)]
    unfreeze: bool,
    /// MNIST directory.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    mnist_dir: PathBuf,
    /// Fashion-MNIST directory.
    #[arg(long, default_value = kiln::data::mnist::FASHION_DIR)]
    fashion_dir: PathBuf,
}

/// Every parameter by dotted path.
fn params<D: Kernels<f32>>(net: &Net<f32, D>) -> Vec<(String, Vec<f32>)> {
    let mut v = Vec::new();
    net.visit(&PPath::ROOT, &mut |p, t| {
        v.push((p.to_string(), {
            let mut h = vec![0.0f32; t.numel];
            // A parameter that cannot be read shows as NaN (changed).
            if t.dev.download(t.value, &mut h).is_err() {
                h.fill(f32::NAN);
            }
            h
        }))
    });
    v
}

/// Test accuracy of `net` on `data`.
fn accuracy<D: Kernels<f32>>(net: &Net<f32, D>, data: &DataLoader) -> kiln::Result<f64> {
    Ok(evaluate(net, data, &mut Classify::new())?
        .accuracy
        .unwrap_or(f64::NAN))
}

/// Both stages on whichever device `--device` opened.
struct Job<'a>(&'a Args);

impl kiln::DeviceJob for Job<'_> {
    type Output = kiln::Result<()>;
    fn run<D: Kernels<f32>>(self, dev: &D) -> kiln::Result<()> {
        let (args, t) = (self.0, &self.0.train);
        t.init()?;
        if let Some(path) = &args.save_pretrained {
            kiln::train::check_output_path("--save-pretrained", path)?;
        }
        let t0 = Instant::now();
        let mnist = Mnist::load(&args.mnist_dir)?;
        let fashion = Mnist::load_fashion(&args.fashion_dir)?;
        let test = |d| DataLoader::new(d, 1000);
        let (mnist_train, mnist_test) = (t.loader(mnist.train), test(mnist.test));
        let (fashion_train, fashion_test) = (t.loader(fashion.train), test(fashion.test));

        let mut net = Net::<f32, D>::init(dev, &mut rng(t.seed))?;
        match &args.load {
            Some(path) => {
                checkpoint::load(&mut net, path)?;
                println!(
                    "stage 1: loaded the pre-trained network from {}",
                    path.display()
                );
            }
            None => {
                println!("stage 1: training all layers on MNIST digits");
                let stage1 = TrainArgs {
                    epochs: args.pretrain_epochs,
                    save: None,
                    resume: None,
                    log: None,
                    plot: None,
                    stop_after: None,
                    ..t.clone()
                };
                stage1.trainer(&mnist_train)?.fit(
                    &mut net,
                    &mut t.optimizer(),
                    &mnist_train,
                    Classify::new(),
                )?;
            }
        }
        if let Some(path) = &args.save_pretrained {
            checkpoint::save(&net, path)?;
            println!("saved the pre-trained network to {}", path.display());
        }
        let mnist_before = accuracy(&net, &mnist_test)?;
        let fashion_before = accuracy(&net, &fashion_test)?;

        // A new head for the new classes (the features stay as trained).
        net.fc3 = Net::<f32, D>::init(dev, &mut rng(t.seed + 1))?.fc3;
        let fashion_new_head = accuracy(&net, &fashion_test)?;
        let before = params(&net);

        let stage2: Trainer<'_> = t
            .trainer(&fashion_train)?
            .fingerprint("unfreeze", args.unfreeze)
            .validate(&fashion_test);
        let report = if args.unfreeze {
            println!("stage 2: fine-tuning every layer on Fashion-MNIST");
            stage2.fit(
                &mut net,
                &mut t.optimizer(),
                &fashion_train,
                Classify::new(),
            )?
        } else {
            println!("stage 2: fc1, fc2 frozen; retraining the head fc3 on Fashion-MNIST");
            let mut opt = t
                .optimizer()
                .freeze(|p| p.starts_with("fc1.") || p.starts_with("fc2."));
            stage2.fit(&mut net, &mut opt, &fashion_train, Classify::new())?
        };
        if report.stopped == kiln::train::Stopped::StopAfter {
            return Ok(());
        }
        let fashion_after = accuracy(&net, &fashion_test)?;

        println!("\nparameters:");
        for ((path, a), (_, b)) in before.iter().zip(params(&net)) {
            let changed = a
                .iter()
                .zip(&b)
                .filter(|(x, y)| x.to_bits() != y.to_bits())
                .count();
            let max = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            if changed == 0 {
                println!("  {path:<12} unchanged (every bit)");
            } else {
                println!(
                    "  {path:<12} changed: {changed} of {} values, max |Δ| = {max:.4}",
                    a.len()
                );
            }
        }
        println!("\naccuracy (test sets, 10000 images each):");
        println!("  MNIST digits, after stage 1:                 {mnist_before:.4}");
        println!(
            "  Fashion-MNIST with the digit head:           {fashion_before:.4}  (chance: 0.1)"
        );
        println!("  Fashion-MNIST with a fresh head:             {fashion_new_head:.4}");
        let what = if args.unfreeze {
            "Fashion-MNIST after fine-tuning everything:"
        } else {
            "Fashion-MNIST after retraining the head:"
        };
        println!("  {what:<44} {fashion_after:.4}");
        println!("total {:.1} s", t0.elapsed().as_secs_f64());
        Ok(())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match kiln::on_device(args.train.device, Job(&args)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
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

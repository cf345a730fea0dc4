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

use clap::Parser;
use kiln::checkpoint;
use kiln::data::{DataLoader, Mnist};
use kiln::metrics::argmax;
use kiln::optim::{Adam, Optimizer};
use kiln::prelude::*;
use kiln::train::{EpochBar, Meter};
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
struct Args {
    /// Epochs of MNIST pre-training (without --load).
    #[arg(long, default_value_t = 3)]
    pretrain_epochs: u64,
    /// Epochs of retraining on Fashion-MNIST.
    #[arg(long, default_value_t = 3)]
    epochs: u64,
    /// Learning rate of both stages (Adam).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Load the pre-trained network from PATH instead of training it.
    #[arg(long, value_name = "PATH")]
    load: Option<PathBuf>,
    /// Save the pre-trained network to PATH.
    #[arg(long, value_name = "PATH")]
    save_pretrained: Option<PathBuf>,
    /// Train every layer in the second stage (fine-tuning) instead of the head only.
    #[arg(long)]
    unfreeze: bool,
    /// Seed of the weights and of the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// MNIST directory.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    mnist_dir: PathBuf,
    /// Fashion-MNIST directory.
    #[arg(long, default_value = kiln::data::mnist::FASHION_DIR)]
    fashion_dir: PathBuf,
}

/// Accuracy of `net` on every sample of `data`.
fn accuracy(
    net: &Net<f32, Cpu>,
    data: &DataLoader,
    tape: &mut NetTape<f32, Cpu>,
) -> kiln::Result<f64> {
    let mut x = Tensor::<S1<784>>::zeros(&Cpu, data.batch_size())?;
    let mut host = Vec::new();
    let (mut correct, mut n) = (0, 0);
    for b in data.epoch(0)? {
        x.set_batch(b.len())?;
        x.copy_from_slice(&b.x)?;
        let logits = net.forward_with(&x, tape)?;
        host.resize(b.len() * 10, 0.0);
        logits.copy_to_slice(&mut host)?;
        correct += host
            .chunks_exact(10)
            .zip(&b.y)
            .filter(|(r, &y)| argmax(r) == y as usize)
            .count();
        n += b.len();
    }
    Ok(correct as f64 / n.max(1) as f64)
}

/// `epochs` epochs of `opt` on `data`; prints a line per epoch.
fn train<O: Optimizer<f32, Cpu>>(
    name: &str,
    net: &mut Net<f32, Cpu>,
    opt: &mut O,
    data: &DataLoader,
    epochs: u64,
) -> kiln::Result<()> {
    let mut tape = net.tape()?;
    let mut grads = net.grads()?;
    let mut x = Tensor::<S1<784>>::zeros(&Cpu, data.batch_size())?;
    let mut y = Labels::<10>::empty::<f32>(&Cpu)?;
    let mut dlogits = Tensor::<S1<10>>::zeros(&Cpu, data.batch_size())?;
    let mut host = Vec::new();
    for epoch in 0..epochs {
        let bar = EpochBar::new(epoch + 1, epochs, data.samples_per_epoch());
        let mut m = Meter::new();
        for b in data.epoch(epoch)? {
            x.set_batch(b.len())?;
            x.copy_from_slice(&b.x)?;
            y.set::<f32>(&b.y)?;
            let logits = net.forward_train(&x, &mut tape)?;
            let loss = cross_entropy(logits, &y, Some(&mut dlogits))?;
            host.resize(b.len() * 10, 0.0);
            logits.copy_to_slice(&mut host)?;
            let correct = host
                .chunks_exact(10)
                .zip(&b.y)
                .filter(|(r, &y)| argmax(r) == y as usize)
                .count();
            net.backward(&mut tape, &dlogits, &mut grads)?;
            opt.step(net, &grads)?;
            m.add(loss as f64, correct, b.len());
            bar.update(&m);
        }
        bar.finish(&m);
        println!(
            "{name} epoch {}/{epochs}: loss {:.4}  train acc {:.4}  {:.0} samples/s",
            epoch + 1,
            m.loss(),
            m.accuracy(),
            m.samples_per_sec()
        );
    }
    Ok(())
}

/// Every parameter by dotted path.
fn params(net: &Net<f32, Cpu>) -> Vec<(String, Vec<f32>)> {
    let mut v = Vec::new();
    net.visit(&PPath::ROOT, &mut |p, t| {
        v.push((p.to_string(), t.value[..t.numel].to_vec()))
    });
    v
}

fn run(args: &Args) -> kiln::Result<()> {
    if let Some(path) = &args.save_pretrained {
        kiln::train::check_output_path("--save-pretrained", path)?;
    }
    if args.threads > 0 {
        kiln::set_threads(args.threads)?;
    }
    let t0 = Instant::now();
    let mnist = Mnist::load(&args.mnist_dir)?;
    let fashion = Mnist::load_fashion(&args.fashion_dir)?;
    let loader = |d: kiln::data::Dataset, shuffle: bool| {
        let l = DataLoader::new(d, args.batch_size).prefetch(2);
        if shuffle {
            l.shuffle(args.seed)
        } else {
            l
        }
    };
    let (mnist_train, mnist_test) = (loader(mnist.train, true), loader(mnist.test, false));
    let (fashion_train, fashion_test) = (loader(fashion.train, true), loader(fashion.test, false));

    let mut net = Net::<f32, Cpu>::init(&Cpu, &mut rng(args.seed))?;
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
            train(
                "MNIST",
                &mut net,
                &mut Adam::new(args.lr),
                &mnist_train,
                args.pretrain_epochs,
            )?;
        }
    }
    if let Some(path) = &args.save_pretrained {
        checkpoint::save(&net, path)?;
        println!("saved the pre-trained network to {}", path.display());
    }
    let mut tape = net.tape()?;
    let mnist_before = accuracy(&net, &mnist_test, &mut tape)?;
    let fashion_before = accuracy(&net, &fashion_test, &mut tape)?;

    // A new head for the new classes (the features stay as trained).
    net.fc3 = Net::<f32, Cpu>::init(&Cpu, &mut rng(args.seed + 1))?.fc3;
    let fashion_new_head = accuracy(&net, &fashion_test, &mut tape)?;
    let before = params(&net);

    if args.unfreeze {
        println!("stage 2: fine-tuning every layer on Fashion-MNIST");
        train(
            "Fashion",
            &mut net,
            &mut Adam::new(args.lr),
            &fashion_train,
            args.epochs,
        )?;
    } else {
        println!("stage 2: fc1, fc2 frozen; retraining the head fc3 on Fashion-MNIST");
        let mut opt = Adam::new(args.lr).freeze(|p| p.starts_with("fc1.") || p.starts_with("fc2."));
        train("Fashion", &mut net, &mut opt, &fashion_train, args.epochs)?;
    }
    let fashion_after = accuracy(&net, &fashion_test, &mut tape)?;

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
    println!("  Fashion-MNIST with the digit head:           {fashion_before:.4}  (chance: 0.1)");
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

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

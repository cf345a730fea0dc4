//! The LeNet that scores `mnist_gan`'s digits: its network (with the 84
//! penultimate features as a second output), its training when no
//! checkpoint is loaded, and the scores (confidence, class entropy, Fréchet
//! distance of the features).

use super::{Args, Scores};
use kiln::metrics::{class_entropy, frechet_distance, mean_max_probability};
use kiln::prelude::*;
use rand::seq::SliceRandom;
use std::time::Instant;

kiln::network! {
    /// LeNet-5 with the parameter names of `kiln::models::LeNet5` (so its
    /// checkpoints load) and its 84 penultimate features as an output.
    pub struct LeNetFeatures {
        input x: [1, 28, 28],
        let features = x |> conv1: Conv2d(6, kernel = 5, padding = 2) |> relu |> pool1: MaxPool2d(2)
            |> conv2: Conv2d(16, kernel = 5) |> relu |> pool2: MaxPool2d(2) |> flatten
            |> fc1: Linear(120) |> relu |> fc2: Linear(84) |> relu;
        output logits = features |> fc3: Linear(10);
        output features;
    }
}

/// The LeNet's class probabilities, predicted classes and features of images
/// in `[0, 1]`.
pub fn lenet_read(
    net: &LeNetFeatures<f32, Cpu>,
    images: &[f32],
) -> kiln::Result<(Vec<f64>, Vec<u32>, Vec<f64>)> {
    let mut tape = net.tape()?;
    let mut x = Tensor::<S3<1, 28, 28>>::zeros(&Cpu, 1)?;
    let (mut probs, mut preds, mut feats) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in images.chunks(500 * 784) {
        x.set_batch(chunk.len() / 784)?;
        x.copy_from_slice(chunk)?;
        let (logits, f) = net.forward_with(&x, &mut tape)?;
        let logits = logits.to_vec()?;
        feats.extend(f.to_vec()?.iter().map(|&v| v as f64));
        for row in logits.chunks_exact(10) {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            probs.extend(e.iter().map(|v| v / s));
            preds.push(kiln::metrics::argmax(row) as u32);
        }
    }
    Ok((probs, preds, feats))
}

/// Confidence, class entropy and Fréchet distance to `reference` features.
pub fn score(
    net: &LeNetFeatures<f32, Cpu>,
    images: &[f32],
    reference: &[f64],
) -> kiln::Result<Scores> {
    let (probs, preds, feats) = lenet_read(net, images)?;
    Ok(Scores {
        confidence: mean_max_probability(&probs, 10)?,
        class_entropy: class_entropy(&preds, 10)?,
        frechet: frechet_distance(&feats, reference, 84)?,
    })
}

/// Trains the LeNet on `train` for `steps` steps (Adam 2e-3, cosine decay)
/// and returns its accuracy on `test`.
pub fn train_lenet(
    net: &mut LeNetFeatures<f32, Cpu>,
    train: &Dataset,
    test: &Dataset,
    epochs: usize,
    max_steps: usize,
    seed: u64,
) -> kiln::Result<f64> {
    use kiln::schedule::{CosineAnnealingLr, Schedule};
    let b = 64;
    let per_epoch = train.len().div_ceil(b).min(max_steps);
    let total = (per_epoch * epochs).max(1);
    let sched = CosineAnnealingLr::new(2e-3, total as u64, 0.0)?;
    let mut opt = Adam::new(2e-3);
    let mut gen = rng(seed ^ 0x1e2e7);
    let (mut tape, mut grads) = (net.tape()?, net.grads()?);
    let mut x = Tensor::<S3<1, 28, 28>>::zeros(&Cpu, 1)?;
    let mut dlogits = Tensor::<S1<10>>::zeros(&Cpu, 1)?;
    let mut dfeat = Tensor::<S1<84>>::zeros(&Cpu, 1)?;
    let (mut hx, mut hy) = (Vec::new(), Vec::new());
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut t = 0u64;
    for epoch in 1..=epochs {
        let t0 = Instant::now();
        order.shuffle(&mut gen);
        for idx in order.chunks(b).take(per_epoch) {
            train.gather(idx, &mut hx, &mut hy);
            x.set_batch(idx.len())?;
            x.copy_from_slice(&hx)?;
            if dfeat.batch() != idx.len() {
                // The features are not trained on: their gradient is zero.
                dfeat = Tensor::zeros(&Cpu, idx.len())?;
            }
            let y = Labels::<10>::new::<f32>(&Cpu, &hy)?;
            let (logits, _) = net.forward_train(&x, &mut tape)?;
            cross_entropy(logits, &y, Some(&mut dlogits))?;
            net.backward(&mut tape, &dlogits, &dfeat, &mut grads)?;
            opt.set_lr(sched.lr_at(t));
            opt.step(net, &grads)?;
            t += 1;
        }
        let acc = lenet_accuracy(net, test)?;
        println!(
            "LeNet epoch {epoch}/{epochs}: test accuracy {:.4} ({:.1} s)",
            acc,
            t0.elapsed().as_secs_f64()
        );
    }
    lenet_accuracy(net, test)
}

pub fn lenet_accuracy(net: &LeNetFeatures<f32, Cpu>, test: &Dataset) -> kiln::Result<f64> {
    let (_, preds, _) = lenet_read(net, &test.x)?;
    let hits = preds.iter().zip(&test.y).filter(|(p, y)| p == y).count();
    Ok(hits as f64 / test.len().max(1) as f64)
}

/// The LeNet: loaded from `--lenet` if that file exists, else trained.
pub fn lenet(args: &Args, data: &Mnist) -> kiln::Result<(LeNetFeatures<f32, Cpu>, f64)> {
    let mut net = LeNetFeatures::<f32, Cpu>::init(&Cpu, &mut rng(args.seed ^ 0x1e2e7))?;
    if let Some(p) = args.lenet.as_ref().filter(|p| p.exists()) {
        kiln::checkpoint::load(&mut net, p)?;
        let acc = lenet_accuracy(&net, &data.test)?;
        println!("LeNet loaded from {}: test accuracy {acc:.4}", p.display());
        return Ok((net, acc));
    }
    let (epochs, steps) = if args.smoke {
        (1, 150)
    } else {
        (args.lenet_epochs, usize::MAX)
    };
    let acc = train_lenet(&mut net, &data.train, &data.test, epochs, steps, args.seed)?;
    // A smoke run's LeNet (150 steps) is not worth keeping for later runs.
    if let Some(p) = args.lenet.as_ref().filter(|_| !args.smoke) {
        kiln::checkpoint::save(&net, p)?;
        println!("LeNet saved to {}", p.display());
    }
    Ok((net, acc))
}

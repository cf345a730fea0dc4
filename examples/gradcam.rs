//! What LeNet-5 looks at, from gradients (lesson 7): saliency, guided
//! backpropagation, Grad-CAM, guided Grad-CAM, for correctly and wrongly
//! classified MNIST test images; and class model visualisation, an image
//! per class found by gradient ascent on the class score.
//!
//! ```text
//! scripts/fetch-mnist                                # once: data/mnist/
//! cargo run --release --example gradcam              # trains 2 epochs, writes gradcam/*.png
//! cargo run --release --example gradcam -- --load lenet.safetensors --layer relu1
//! cargo run --release --example gradcam -- --smoke   # the CI run (tests/vis_smoke.rs)
//! ```
//!
//! Every map is the gradient of the predicted class's score `s_c` (before
//! the softmax), from `backward_from("fc3" → …)` with a one-hot seed: no
//! parameter gradient is computed. For each image, one row of five tiles:
//!
//! 1. the image;
//! 2. saliency `|∂s_c/∂x|` (jet colours over the image);
//! 3. guided backpropagation: `∂s_c/∂x` with `GradMode::Guided` (red
//!    positive, blue negative);
//! 4. Grad-CAM at `--layer` (default `relu2`, the rectified output of the
//!    last convolution, 16×10×10): channel weights `α_k` = mean gradient of
//!    channel `k`, `ReLU(Σ α_k A_k)`, upsampled bilinearly to 28×28 (jet
//!    over the image);
//! 5. guided Grad-CAM: tile 3 times tile 4's map.
//!
//! `explanations_correct.png` holds `--count` correctly classified images,
//! `explanations_wrong.png` up to `--count` misclassified ones (the first
//! of t10k in order).
//!
//! Class model visualisation (Simonyan et al. 2014): from a blank image,
//! `--class-steps` steps of `x ← clip(x + η·(∂s_c/∂x − 2λx), 0, 1)`, the
//! image shifted by a random jitter of up to `--jitter` pixels before each
//! step (and the gradient shifted back), and blurred (3×3 binomial) every
//! `--blur-every` steps; all ten classes in one batch. Writes
//! `class_model_<c>.png` and `class_models.png`.

use clap::Parser;
use kiln::metrics::argmax;
use kiln::models::{LeNet5 as LeNet, LeNet5Tape as LeNetTape};
use kiln::prelude::*;
use kiln::vis::{diverging, grad_cam, overlay, scale_to_unit, upsample_bilinear, write_tiles};
use kiln::GradMode;
use rand::seq::SliceRandom;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Gradient-based explanations and class models of LeNet-5 on MNIST.
#[derive(Parser, Debug, Clone)]
#[command(
    about = "Saliency, guided backprop, Grad-CAM and class models of LeNet-5 on MNIST with kiln"
)]
pub struct Args {
    /// Epochs of training (ignored with --load).
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Only the first N training images (0: all).
    #[arg(long, default_value_t = 0)]
    pub train_count: usize,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate of Adam (cosine decay to 0).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// CPU threads (0: rayon's default); `main` sets them, not `run`.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Seed of weights, shuffling and jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Load LeNet-5's weights (from `mnist_lenet --save`) instead of training.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// The node Grad-CAM reads (a [C, H, W] activation: conv1, relu1, pool1, conv2, relu2, pool2).
    #[arg(long, default_value = "relu2")]
    pub layer: String,
    /// Images per picture (correct ones; up to as many wrong ones).
    #[arg(long, default_value_t = 8)]
    pub count: usize,
    /// Gradient-ascent steps of the class models.
    #[arg(long, default_value_t = 300)]
    pub class_steps: usize,
    /// Step size η of the class models.
    #[arg(long, default_value_t = 0.05)]
    pub class_lr: f32,
    /// L2 weight λ of the class models.
    #[arg(long, default_value_t = 0.05)]
    pub l2: f32,
    /// Blur every N steps (0: never).
    #[arg(long, default_value_t = 10)]
    pub blur_every: usize,
    /// Largest random shift in pixels per step (0: none).
    #[arg(long, default_value_t = 1)]
    pub jitter: usize,
    /// Directory for the PNGs (created if missing).
    #[arg(long, default_value = "gradcam")]
    pub out_dir: PathBuf,
    /// CI run: 1 epoch on 6000 images, 4 images per picture, 100 class-model steps.
    #[arg(long)]
    pub smoke: bool,
}

/// What a run measured.
pub struct Outcome {
    pub test_accuracy: f64,
    /// Per explained image: (correct, Grad-CAM map 28×28 before scaling,
    /// share of the map's mass on ink pixels > 0.25).
    pub cams: Vec<(bool, Vec<f32>, f32)>,
    /// Per class: the softmax probability the network gives its class model.
    pub class_probs: Vec<f32>,
}

fn train(
    net: &mut LeNet<f32, Cpu>,
    data: &Dataset,
    args: &Args,
    rng: &mut Rng,
) -> kiln::Result<()> {
    let mut opt = Adam::new(args.lr);
    let mut tape = net.tape_seeded(args.seed)?;
    let mut grads = net.grads()?;
    let mut x = Tensor::<S3<1, 28, 28>>::zeros(&Cpu, args.batch_size)?;
    let mut y = Labels::<10>::empty::<f32>(&Cpu)?;
    let mut d = Tensor::<S1<10>>::zeros(&Cpu, args.batch_size)?;
    let (mut hx, mut hy) = (Vec::new(), Vec::new());
    let mut order: Vec<usize> = (0..data.len()).collect();
    let total = (data.len().div_ceil(args.batch_size) * args.epochs).max(1);
    let mut step = 0;
    for epoch in 1..=args.epochs {
        order.shuffle(rng);
        let t0 = Instant::now();
        let mut loss_sum = 0.0f64;
        for idx in order.chunks(args.batch_size) {
            opt.set_lr(
                args.lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total as f64).cos()),
            );
            data.gather(idx, &mut hx, &mut hy);
            x.set_batch(idx.len())?;
            x.copy_from_slice(&hx)?;
            y.set::<f32>(&hy)?;
            let logits = net.forward_train(&x, &mut tape)?;
            loss_sum += cross_entropy(logits, &y, Some(&mut d))? as f64 * idx.len() as f64;
            net.backward(&mut tape, &d, &mut grads)?;
            opt.step(net, &grads)?;
            step += 1;
        }
        println!(
            "epoch {epoch}/{}  loss {:.4}  {:.1} s",
            args.epochs,
            loss_sum / data.len().max(1) as f64,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn one_hot(classes: &[usize]) -> Vec<f32> {
    let mut v = vec![0.0; classes.len() * 10];
    for (i, &c) in classes.iter().enumerate() {
        v[i * 10 + c] = 1.0;
    }
    v
}

/// An image's Grad-CAM map at 28×28 and the share of its mass on ink.
type CamMap = (Vec<f32>, f32);

/// The five tiles of each image (see the module doc), and per image its
/// Grad-CAM map at 28×28 and the share of it on ink.
fn explain(
    net: &mut LeNet<f32, Cpu>,
    tape: &mut LeNetTape<f32, Cpu>,
    images: &[f32],
    layer: &str,
) -> kiln::Result<(Vec<Vec<u8>>, Vec<CamMap>)> {
    let n = images.len() / 784;
    let x = Tensor::<S3<1, 28, 28>>::from_vec(&Cpu, n, images.to_vec())?;
    let logits = net.forward_train(&x, tape)?.to_vec()?;
    let pred: Vec<usize> = logits.chunks_exact(10).map(argmax).collect();
    let seed = one_hot(&pred);
    net.backward_from(tape, "fc3", &seed, "x", GradMode::Plain)?;
    let plain = tape.gradient("x")?.data;
    net.backward_from(tape, "fc3", &seed, "x", GradMode::Guided)?;
    let guided = tape.gradient("x")?.data;
    net.backward_from(tape, "fc3", &seed, layer, GradMode::Plain)?;
    let (act, grad) = (tape.activation(layer)?, tape.gradient(layer)?);
    let (mut tiles, mut cams) = (Vec::new(), Vec::new());
    for i in 0..n {
        let img = &images[i * 784..(i + 1) * 784];
        let cam = upsample_bilinear(&grad_cam(&act, &grad, i)?, 28, 28)?.data;
        let (sal, gd): (Vec<f32>, &[f32]) = (
            plain[i * 784..(i + 1) * 784]
                .iter()
                .map(|g| g.abs())
                .collect(),
            &guided[i * 784..(i + 1) * 784],
        );
        let cam_u = scale_to_unit(&cam);
        let gg: Vec<f32> = gd.iter().zip(&cam_u).map(|(a, b)| a * b).collect();
        tiles.push(
            img.iter()
                .flat_map(|&p| [(p.clamp(0.0, 1.0) * 255.0).round() as u8; 3])
                .collect(),
        );
        tiles.push(overlay(img, &scale_to_unit(&sal), 0.8)?);
        tiles.push(diverging(&scale_to_unit(gd)));
        tiles.push(overlay(img, &cam_u, 0.6)?);
        tiles.push(diverging(&scale_to_unit(&gg)));
        let total: f32 = cam.iter().sum();
        let ink: f32 = cam
            .iter()
            .zip(img)
            .filter(|(_, &p)| p > 0.25)
            .map(|(c, _)| c)
            .sum();
        cams.push((cam, if total > 0.0 { ink / total } else { 0.0 }));
    }
    Ok((tiles, cams))
}

/// 3×3 binomial blur (weights 1-2-1 in each direction), edges clamped.
fn blur(img: &mut [f32]) {
    let src = img.to_vec();
    let at = |r: isize, c: isize| src[(r.clamp(0, 27) * 28 + c.clamp(0, 27)) as usize];
    for r in 0..28isize {
        for c in 0..28isize {
            let mut s = 0.0;
            for (dr, wr) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                for (dc, wc) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                    s += wr * wc * at(r + dr, c + dc);
                }
            }
            img[(r * 28 + c) as usize] = s / 16.0;
        }
    }
}

/// `img` shifted by `(dr, dc)` with wrap-around.
fn roll(img: &[f32], dr: isize, dc: isize) -> Vec<f32> {
    let mut out = vec![0.0; 784];
    for r in 0..28isize {
        for c in 0..28isize {
            out[(((r + dr).rem_euclid(28)) * 28 + (c + dc).rem_euclid(28)) as usize] =
                img[(r * 28 + c) as usize];
        }
    }
    out
}

/// Class models of all ten classes (see the module doc); returns the images
/// and the softmax probability of each one's class.
fn class_models(
    net: &mut LeNet<f32, Cpu>,
    args: &Args,
    rng: &mut Rng,
) -> kiln::Result<(Vec<f32>, Vec<f32>)> {
    let mut tape = net.tape()?;
    let mut x = vec![0.0f32; 10 * 784];
    let seed = one_hot(&(0..10).collect::<Vec<_>>());
    let j = args.jitter as isize;
    for step in 1..=args.class_steps {
        let (dr, dc) = if j > 0 {
            (
                rng.random_range(-j as i64..=j as i64) as isize,
                rng.random_range(-j as i64..=j as i64) as isize,
            )
        } else {
            (0, 0)
        };
        let shifted: Vec<f32> = x.chunks(784).flat_map(|im| roll(im, dr, dc)).collect();
        net.forward_train(&Tensor::from_vec(&Cpu, 10, shifted)?, &mut tape)?;
        net.backward_from(&mut tape, "fc3", &seed, "x", GradMode::Plain)?;
        let g = tape.gradient("x")?.data;
        for (im, gi) in x.chunks_mut(784).zip(g.chunks(784)) {
            let back = roll(gi, -dr, -dc);
            for (v, g) in im.iter_mut().zip(back) {
                *v = (*v + args.class_lr * (g - 2.0 * args.l2 * *v)).clamp(0.0, 1.0);
            }
            if args.blur_every > 0 && step % args.blur_every == 0 {
                blur(im);
            }
        }
    }
    let logits = net
        .forward_with(&Tensor::from_vec(&Cpu, 10, x.clone())?, &mut tape)?
        .to_vec()?;
    let probs = logits
        .chunks(10)
        .enumerate()
        .map(|(c, z)| {
            let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let s: f32 = z.iter().map(|v| (v - m).exp()).sum();
            (z[c] - m).exp() / s
        })
        .collect();
    Ok((x, probs))
}

pub fn run(args: &Args) -> kiln::Result<Outcome> {
    let mut args = args.clone();
    if args.smoke {
        (args.epochs, args.train_count, args.count, args.class_steps) = (1, 6000, 4, 100);
    }
    if args.count == 0 || args.batch_size == 0 {
        return Err(kiln::Error::invalid(
            "--count/--batch-size",
            "must be at least 1",
        ));
    }
    let data = Mnist::load(&args.data_dir)?;
    let io = |p: &PathBuf| {
        let p = p.clone();
        move |e| kiln::Error::Io { path: p, source: e }
    };
    std::fs::create_dir_all(&args.out_dir).map_err(io(&args.out_dir))?;
    let mut rng = kiln::rng(args.seed);
    let mut net = LeNet::<f32, Cpu>::init(&Cpu, &mut rng)?;
    match &args.load {
        Some(p) => kiln::checkpoint::load(&mut net, p)?,
        None => {
            let n = if args.train_count > 0 {
                args.train_count
            } else {
                data.train.len()
            };
            train(&mut net, &data.train.take(n), &args, &mut rng)?;
        }
    }
    let mut tape = net.tape()?;
    let test = &data.test;
    let mut pred = Vec::with_capacity(test.len());
    for s in (0..test.len()).step_by(1000) {
        let e = (s + 1000).min(test.len());
        let x = Tensor::<S3<1, 28, 28>>::from_vec(&Cpu, e - s, test.x[s * 784..e * 784].to_vec())?;
        pred.extend(
            net.forward_with(&x, &mut tape)?
                .to_vec()?
                .chunks_exact(10)
                .map(argmax),
        );
    }
    let correct: Vec<usize> = (0..test.len())
        .filter(|&i| pred[i] == test.y[i] as usize)
        .collect();
    let wrong: Vec<usize> = (0..test.len())
        .filter(|&i| pred[i] != test.y[i] as usize)
        .collect();
    let accuracy = correct.len() as f64 / test.len() as f64;
    println!(
        "test accuracy {accuracy:.4} ({} wrong of {})",
        wrong.len(),
        test.len()
    );
    let mut cams = Vec::new();
    for (name, ids, ok) in [("correct", &correct, true), ("wrong", &wrong, false)] {
        let ids: Vec<usize> = ids.iter().take(args.count).cloned().collect();
        if ids.is_empty() {
            continue;
        }
        let images: Vec<f32> = ids
            .iter()
            .flat_map(|&i| test.x[i * 784..(i + 1) * 784].to_vec())
            .collect();
        let (tiles, maps) = explain(&mut net, &mut tape, &images, &args.layer)?;
        let path = args.out_dir.join(format!("explanations_{name}.png"));
        write_tiles(&path, &tiles, 28, 28, 5, 3)?;
        for (k, (&i, (_, on_ink))) in ids.iter().zip(&maps).enumerate() {
            println!(
                "{name:>7} #{k}: test image {i:>4}, label {}, predicted {}, Grad-CAM mass on ink {:.0} %",
                test.y[i],
                pred[i],
                100.0 * on_ink
            );
        }
        cams.extend(maps.into_iter().map(|(m, f)| (ok, m, f)));
        println!("wrote {}", path.display());
    }
    let t0 = Instant::now();
    let (models, class_probs) = class_models(&mut net, &args, &mut rng)?;
    let mut tiles = Vec::new();
    for (c, im) in models.chunks(784).enumerate() {
        let show = scale_to_unit(im);
        let rgb: Vec<u8> = show
            .iter()
            .flat_map(|&p| [(p * 255.0).round() as u8; 3])
            .collect();
        write_tiles(
            args.out_dir.join(format!("class_model_{c}.png")),
            std::slice::from_ref(&rgb),
            28,
            28,
            1,
            4,
        )?;
        tiles.push(rgb);
    }
    write_tiles(args.out_dir.join("class_models.png"), &tiles, 28, 28, 10, 3)?;
    println!(
        "class models ({} steps, {:.1} s): p(class | its image) = {}",
        args.class_steps,
        t0.elapsed().as_secs_f64(),
        class_probs
            .iter()
            .map(|p| format!("{p:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(Outcome {
        test_accuracy: accuracy,
        cams,
        class_probs,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The threads are set here, not in `run`, which a smoke test calls in a
    // process whose pool may be running already (`set_threads` works once).
    match kiln::set_threads(args.threads).and_then(|()| run(&args)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

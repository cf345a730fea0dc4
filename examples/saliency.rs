//! Saliency maps of LeNet-5 on MNIST: which pixels the class score is most
//! sensitive to.
//!
//! ```text
//! scripts/fetch-mnist                                    # once: data/mnist/
//! cargo run --release --example saliency                 # trains 2 epochs, writes saliency/*.png
//! cargo run --release --example mnist_lenet -- --save lenet.safetensors
//! cargo run --release --example saliency -- --load lenet.safetensors --count 16
//! ```
//!
//! For a test image `x` and the class `c` the network predicts, the saliency
//! map is `|∂s_c/∂x|`, where `s_c` is the class score *before* the softmax
//! (the course's definition; the image has one channel, so the maximum over
//! channels is the value itself). It comes from one backward pass: the tape
//! is asked for input gradients (`tape.input_grads = true`) and the gradient
//! of the logits is one-hot at `c` in each row. Samples of a batch are
//! independent in LeNet (no batch norm), so one batched backward gives every
//! image's map at once, in `tape.grad_x`.
//!
//! Each PNG shows the image (grey) and its saliency map (black → red →
//! yellow → white, scaled to the image's largest value) side by side; the
//! file name carries the label and the prediction.
//!
//! The network is `kiln::models::LeNet5`, the type `examples/mnist_lenet.rs`
//! trains, so `--load` reads the checkpoint that `mnist_lenet --save` writes.

use clap::Parser;
use kiln::metrics::argmax;
use kiln::prelude::*;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// LeNet-5, declared once in `kiln::models` (see there).
use kiln::models::{LeNet5 as LeNet, LeNet5Tape as LeNetTape};

/// Train (or load) LeNet-5 and write saliency maps of test images.
#[derive(Parser, Debug)]
#[command(about = "Saliency maps |d score / d input| of LeNet-5 on MNIST with kiln")]
struct Args {
    /// Passes over the training images (ignored with --load).
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Peak learning rate of Adam (cosine decay to 0).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// CPU threads (0: rayon's default, one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Seed of the initial weights and of the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    data_dir: PathBuf,
    /// Load the weights from this safetensors file (from `mnist_lenet --save`) instead of training.
    #[arg(long)]
    load: Option<PathBuf>,
    /// Write the trained weights to this safetensors file.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Number of test images (the first ones of t10k) to explain.
    #[arg(long, default_value_t = 8)]
    count: usize,
    /// Directory for the PNGs (created if missing).
    #[arg(long, default_value = "saliency")]
    out_dir: PathBuf,
}

/// Accuracy of `net` on `data` (evaluation mode), 1000 samples at a time.
fn evaluate(
    net: &LeNet<f32, Cpu>,
    data: &Dataset,
    x: &mut Tensor<S3<1, 28, 28>>,
    tape: &mut LeNetTape<f32, Cpu>,
    host: &mut Vec<f32>,
) -> kiln::Result<f64> {
    let mut correct = 0;
    for start in (0..data.len()).step_by(1000) {
        let end = (start + 1000).min(data.len());
        x.set_batch(end - start)?;
        x.copy_from_slice(&data.x[start * data.dim..end * data.dim])?;
        let logits = net.forward_with(x, tape)?;
        host.resize((end - start) * 10, 0.0);
        Backend::<f32>::download(logits.device(), logits.buf(), host)?;
        correct += host
            .chunks_exact(10)
            .zip(&data.y[start..end])
            .filter(|(r, &y)| argmax(r) == y as usize)
            .count();
    }
    Ok(correct as f64 / data.len().max(1) as f64)
}

/// A few epochs of Adam with a cosine decay, printing progress per epoch.
fn train(
    net: &mut LeNet<f32, Cpu>,
    args: &Args,
    train: &Dataset,
    test: &Dataset,
    rng: &mut Rng,
) -> kiln::Result<()> {
    let dev = Cpu;
    let mut opt = Adam::new(args.lr);
    let mut tape = net.tape_seeded(args.seed)?;
    let mut grads = net.grads()?;
    let mut x = Tensor::<S3<1, 28, 28>>::zeros(&dev, args.batch_size)?;
    let mut y = Labels::<10>::empty::<f32>(&dev)?;
    let mut dlogits = Tensor::<S1<10>>::zeros(&dev, args.batch_size)?;
    let mut host_x: Vec<f32> = Vec::with_capacity(args.batch_size * 784);
    let mut host_y: Vec<u32> = Vec::with_capacity(args.batch_size);
    let mut host_logits: Vec<f32> = vec![0.0; args.batch_size * 10];
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut ex, mut etape, mut ehost) = (
        Tensor::zeros(&dev, 1000)?,
        net.tape()?,
        Vec::with_capacity(10_000),
    );
    let total_steps = (train.len().div_ceil(args.batch_size) * args.epochs).max(1);
    let mut step = 0usize;
    for epoch in 1..=args.epochs {
        order.shuffle(rng);
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
            let loss = cross_entropy(logits, &y, Some(&mut dlogits))
                .map_err(|e| e.at_step(step as u64 + 1, opt.lr()))?;
            host_logits.resize(n * 10, 0.0);
            Backend::<f32>::download(&dev, logits.buf(), &mut host_logits)?;
            correct += host_logits
                .chunks_exact(10)
                .zip(&host_y)
                .filter(|(r, &l)| argmax(r) == l as usize)
                .count();
            net.backward(&mut tape, &dlogits, &mut grads)?;
            opt.step(net, &grads)?;
            loss_sum += loss as f64 * n as f64;
            seen += n;
            step += 1;
        }
        let secs = t0.elapsed().as_secs_f64();
        let acc = evaluate(net, test, &mut ex, &mut etape, &mut ehost)?;
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
    Ok(())
}

/// Black → red → yellow → white for `v` in `[0, 1]`.
fn heat(v: f32) -> [u8; 3] {
    let v = v.clamp(0.0, 1.0) * 3.0;
    let c = |t: f32| (t.clamp(0.0, 1.0) * 255.0).round() as u8;
    [c(v), c(v - 1.0), c(v - 2.0)]
}

/// Writes the image (grey) and its saliency (heat map) side by side, ×`SCALE`.
fn write_pair(path: &Path, image: &[f32], saliency: &[f32]) -> kiln::Result<()> {
    const SCALE: usize = 8;
    const GAP: usize = 8;
    let side = 28 * SCALE;
    let (w, h) = (2 * side + GAP, side);
    let mut rgb = vec![255u8; w * h * 3];
    let top = saliency
        .iter()
        .cloned()
        .fold(0.0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    for r in 0..h {
        for c in 0..side {
            let i = (r / SCALE) * 28 + c / SCALE;
            let g = (image[i].clamp(0.0, 1.0) * 255.0).round() as u8;
            rgb[(r * w + c) * 3..][..3].copy_from_slice(&[g, g, g]);
            rgb[(r * w + side + GAP + c) * 3..][..3].copy_from_slice(&heat(saliency[i] / top));
        }
    }
    let io = |e: std::io::Error| kiln::Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let enc = |e: png::EncodingError| io(std::io::Error::other(e));
    let file = std::fs::File::create(path).map_err(io)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .map_err(enc)?
        .write_image_data(&rgb)
        .map_err(enc)
}

fn run(args: &Args) -> kiln::Result<()> {
    if args.threads > 0 {
        kiln::set_threads(args.threads)?;
    }
    if args.batch_size == 0 {
        return Err(kiln::Error::invalid("--batch-size", "must be at least 1"));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(kiln::Error::invalid(
            "--lr",
            format!("must be a positive number, got {}", args.lr),
        ));
    }
    if let Some(path) = &args.save {
        kiln::train::check_output_path("--save", path)?;
    }
    let data = Mnist::load(&args.data_dir)?;
    let (train_set, test) = (&data.train, &data.test);
    if train_set.dim != 784 || test.dim != 784 {
        return Err(kiln::Error::invalid(
            "Mnist::load",
            format!(
                "expected 28×28 images, got {} and {} values per sample",
                train_set.dim, test.dim
            ),
        ));
    }
    if args.count == 0 || args.count > test.len() {
        return Err(kiln::Error::invalid(
            "--count",
            format!("must be between 1 and {}", test.len()),
        ));
    }

    let dev = Cpu;
    let mut rng = rng(args.seed);
    let mut net = LeNet::<f32, Cpu>::init(&dev, &mut rng)?;
    match &args.load {
        Some(path) => {
            kiln::checkpoint::load(&mut net, path)?;
            println!("loaded the weights from {}", path.display());
        }
        None => {
            println!(
                "training LeNet-5 for {} epochs (Adam, lr {}, batch {}, seed {})",
                args.epochs, args.lr, args.batch_size, args.seed
            );
            train(&mut net, args, train_set, test, &mut rng)?;
        }
    }
    if let Some(path) = &args.save {
        kiln::checkpoint::save(&net, path)?;
        println!("saved the weights to {}", path.display());
    }
    let acc = evaluate(
        &net,
        test,
        &mut Tensor::zeros(&dev, 1000)?,
        &mut net.tape()?,
        &mut Vec::new(),
    )?;
    println!(
        "test accuracy (MNIST t10k, {} images): {acc:.4}",
        test.len()
    );

    // One batched forward and backward for all `count` images: ∂Σᵢ s_{cᵢ}(xᵢ)/∂xᵢ = ∂s_{cᵢ}/∂xᵢ.
    let n = args.count;
    let x = Tensor::<S3<1, 28, 28>>::from_slice(&dev, &test.x[..n * 784])?;
    let mut tape = net.tape()?;
    tape.input_grads = true;
    let logits = net.forward_train(&x, &mut tape)?.to_vec()?;
    let pred: Vec<usize> = logits.chunks_exact(10).map(argmax).collect();
    let mut onehot = vec![0.0f32; n * 10];
    for (i, &c) in pred.iter().enumerate() {
        onehot[i * 10 + c] = 1.0;
    }
    let dscore = Tensor::<S1<10>>::from_slice(&dev, &onehot)?;
    let mut grads = net.grads()?;
    net.backward(&mut tape, &dscore, &mut grads)?;
    let saliency: Vec<f32> = tape.grad_x.to_vec()?.iter().map(|g| g.abs()).collect();

    std::fs::create_dir_all(&args.out_dir).map_err(|e| kiln::Error::Io {
        path: args.out_dir.clone(),
        source: e,
    })?;
    println!("image  label  predicted  score   max |∂s/∂x|  saliency on ink");
    for i in 0..n {
        let (img, sal) = (
            &test.x[i * 784..(i + 1) * 784],
            &saliency[i * 784..(i + 1) * 784],
        );
        let path = args
            .out_dir
            .join(format!("{i:03}_label{}_pred{}.png", test.y[i], pred[i]));
        write_pair(&path, img, sal)?;
        // Share of the saliency on pixels with ink (> 0.25): how much of the
        // sensitivity sits on the stroke itself.
        let total: f32 = sal.iter().sum();
        let ink: f32 = sal
            .iter()
            .zip(img)
            .filter(|(_, &p)| p > 0.25)
            .map(|(s, _)| s)
            .sum();
        println!(
            "{i:>5}  {:>5}  {:>9}  {:>6.2}  {:>11.4}  {:>14.0}%   {}",
            test.y[i],
            pred[i],
            logits[i * 10 + pred[i]],
            sal.iter().cloned().fold(0.0f32, f32::max),
            100.0 * ink / total.max(f32::MIN_POSITIVE),
            path.display()
        );
    }
    println!(
        "wrote {n} PNGs (image | saliency) to {}",
        args.out_dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

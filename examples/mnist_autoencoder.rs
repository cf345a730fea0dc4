//! Trains a convolutional autoencoder on MNIST on the CPU.
//!
//! ```text
//! scripts/fetch-mnist                                        # once: data/mnist/
//! cargo run --release --example mnist_autoencoder            # writes autoencoder.png
//! cargo run --release --example mnist_autoencoder -- --epochs 2 --out /tmp/ae.png
//! ```
//!
//! The encoder halves the image twice with strided 3×3 convolutions
//! (1×28×28 → 16×14×14 → 32×7×7) and a 7×7 convolution collapses the 7×7
//! map into a bottleneck of 32 numbers (32×1×1). The decoder mirrors it with
//! transposed convolutions (32×1×1 → 32×7×7 → 16×14×14 → 1×28×28), and a
//! sigmoid keeps the output in `[0, 1]`, like the pixels. The loss is the mean
//! squared error between the reconstruction and the input.
//!
//! (There is no max-unpooling here on purpose: unpooling reuses the argmax
//! positions recorded by the encoder's pool, which would carry information
//! around the 32-number bottleneck.)
//!
//! Each epoch prints the training MSE, the test MSE and the throughput. At
//! the end the program prints the test MSE, the MSE of always predicting the
//! mean training image, and their ratio, and writes a PNG grid of test inputs
//! (odd rows) above their reconstructions (even rows) to `--out`.
//!
//! The training loop allocates its buffers once; every later step reuses them.

use clap::Parser;
use kiln::prelude::*;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

kiln::network! {
    /// A convolutional autoencoder with a 32-number bottleneck.
    pub struct AutoEncoder {
        input: [1, 28, 28],
        enc1: Conv2d(16, kernel = 3, stride = 2, padding = 1),
        relu,
        enc2: Conv2d(32, kernel = 3, stride = 2, padding = 1),
        relu,
        code: Conv2d(32, kernel = 7),
        dec1: ConvTranspose2d(32, kernel = 7),
        relu,
        dec2: ConvTranspose2d(16, kernel = 4, stride = 2, padding = 1),
        relu,
        dec3: ConvTranspose2d(1, kernel = 4, stride = 2, padding = 1),
        sigmoid,
    }
}

/// Train a convolutional autoencoder on MNIST.
#[derive(Parser, Debug)]
#[command(about = "Train a convolutional autoencoder (32-number bottleneck) on MNIST with kiln")]
struct Args {
    /// Passes over the 60,000 training images.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Peak learning rate of Adam (cosine decay to 0 over the run).
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
    /// Where to write the PNG grid of test inputs and reconstructions.
    #[arg(long, default_value = "autoencoder.png")]
    out: PathBuf,
    /// Test images shown in the grid (in rows of 16).
    #[arg(long, default_value_t = 32)]
    show: usize,
    /// Write the trained weights to this safetensors file.
    #[arg(long)]
    save: Option<PathBuf>,
}

/// Buffers reused by every evaluation.
struct EvalBufs {
    x: Tensor<S3<1, 28, 28>>,
    tape: AutoEncoderTape<f32, Cpu>,
}

/// Mean squared reconstruction error of `net` on `data` (evaluation mode).
fn evaluate(net: &AutoEncoder<f32, Cpu>, data: &Dataset, bufs: &mut EvalBufs) -> kiln::Result<f64> {
    let mut sum = 0.0;
    for start in (0..data.len()).step_by(1000) {
        let end = (start + 1000).min(data.len());
        bufs.x.set_batch(end - start)?;
        bufs.x
            .copy_from_slice(&data.x[start * data.dim..end * data.dim])?;
        let recon = net.forward_with(&bufs.x, &mut bufs.tape)?;
        sum += mse(recon, &bufs.x, None)? as f64 * (end - start) as f64;
    }
    Ok(sum / data.len().max(1) as f64)
}

/// A grid of the first `n` test images (rows of 16, each above its
/// reconstruction), scaled ×3 with grey borders.
fn write_grid(
    net: &AutoEncoder<f32, Cpu>,
    test: &Dataset,
    n: usize,
    path: &Path,
) -> kiln::Result<()> {
    let n = n.clamp(1, test.len());
    let x = Tensor::<S3<1, 28, 28>>::from_slice(&Cpu, &test.x[..n * 784])?;
    let recon = net.forward(&x)?.to_vec()?;
    const COLS: usize = 16;
    const SCALE: usize = 3;
    const GAP: usize = 2;
    let cell = 28 * SCALE + GAP;
    let cols = n.min(COLS);
    let rows = 2 * n.div_ceil(COLS);
    let (w, h) = (cols * cell + GAP, rows * cell + GAP);
    let mut img = vec![0.5f32; w * h];
    for i in 0..n {
        for (k, src) in [
            &test.x[i * 784..(i + 1) * 784],
            &recon[i * 784..(i + 1) * 784],
        ]
        .into_iter()
        .enumerate()
        {
            let (gr, gc) = (2 * (i / COLS) + k, i % COLS);
            for r in 0..28 * SCALE {
                for c in 0..28 * SCALE {
                    img[(GAP + gr * cell + r) * w + GAP + gc * cell + c] =
                        src[(r / SCALE) * 28 + c / SCALE];
                }
            }
        }
    }
    kiln::train::plot::write_grey_png(path, w, h, &img)
}

/// Trains; returns (test MSE, mean-image MSE).
fn run(args: &Args) -> kiln::Result<(f64, f64)> {
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
    kiln::train::check_output_path("--out", &args.out)?;
    if let Some(path) = &args.save {
        kiln::train::check_output_path("--save", path)?;
    }
    let data = Mnist::load(&args.data_dir)?;
    let (train, test) = (&data.train, &data.test);
    if train.dim != 784 || test.dim != 784 || train.is_empty() || test.is_empty() {
        return Err(kiln::Error::invalid(
            "Mnist::load",
            format!(
                "expected non-empty sets of 28×28 images, got {} and {} values per sample",
                train.dim, test.dim
            ),
        ));
    }

    // The baseline: predict the mean training image for every test image.
    let mut mean = vec![0.0f64; 784];
    for img in train.x.chunks_exact(784) {
        for (m, v) in mean.iter_mut().zip(img) {
            *m += *v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= train.len() as f64);
    let baseline = test
        .x
        .chunks_exact(784)
        .map(|img| {
            img.iter()
                .zip(&mean)
                .map(|(v, m)| (*v as f64 - m).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / (test.len() * 784) as f64;

    let dev = Cpu;
    let mut rng = rng(args.seed);
    let mut net = AutoEncoder::<f32, Cpu>::init(&dev, &mut rng)?;
    print!("{}", AutoEncoder::summary());
    println!(
        "Adam, lr {} (cosine), batch {}, epochs {}, seed {}, threads {}",
        args.lr,
        args.batch_size,
        args.epochs,
        args.seed,
        match args.threads {
            0 => "one per core".to_string(),
            n => n.to_string(),
        }
    );

    let mut opt = Adam::new(args.lr);
    let mut tape = net.tape_seeded(args.seed)?;
    let mut grads = net.grads()?;
    let mut x = Tensor::<S3<1, 28, 28>>::zeros(&dev, args.batch_size)?;
    let mut dout = Tensor::<S3<1, 28, 28>>::zeros(&dev, args.batch_size)?;
    let mut host_x: Vec<f32> = Vec::with_capacity(args.batch_size * 784);
    let mut host_y: Vec<u32> = Vec::with_capacity(args.batch_size);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut eval = EvalBufs {
        x: Tensor::zeros(&dev, 1000)?,
        tape: net.tape()?,
    };

    let steps_per_epoch = train.len().div_ceil(args.batch_size);
    let total_steps = (steps_per_epoch * args.epochs).max(1);
    let mut step = 0usize;
    let mut test_mse = None;
    let t_all = Instant::now();
    for epoch in 1..=args.epochs {
        order.shuffle(&mut rng);
        let t0 = Instant::now();
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        for idx in order.chunks(args.batch_size) {
            let t = step as f64 / total_steps as f64;
            opt.set_lr(args.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()));
            train.gather(idx, &mut host_x, &mut host_y);
            let n = idx.len();
            x.set_batch(n)?;
            x.copy_from_slice(&host_x)?;

            let recon = net.forward_train(&x, &mut tape)?;
            let loss = mse(recon, &x, Some(&mut dout))?;
            net.backward(&mut tape, &dout, &mut grads)?;
            opt.step(&mut net, &grads)?;

            loss_sum += loss as f64 * n as f64;
            seen += n;
            step += 1;
        }
        let secs = t0.elapsed().as_secs_f64();
        let m = evaluate(&net, test, &mut eval)?;
        test_mse = Some(m);
        println!(
            "epoch {epoch:>2}/{}  train mse {:.5}  test mse {:.5}  {:>6.0} samples/s  ({:.1} s)",
            args.epochs,
            loss_sum / seen.max(1) as f64,
            m,
            seen as f64 / secs,
            secs,
        );
    }
    let test_mse = match test_mse {
        Some(m) => m,
        None => evaluate(&net, test, &mut eval)?,
    };
    println!("total {:.1} s", t_all.elapsed().as_secs_f64());
    write_grid(&net, test, args.show, &args.out)?;
    println!(
        "wrote {} (test inputs above their reconstructions)",
        args.out.display()
    );
    if let Some(path) = &args.save {
        kiln::checkpoint::save(&net, path)?;
        println!("saved the weights to {}", path.display());
    }
    Ok((test_mse, baseline))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok((m, base)) => {
            println!("test MSE (MNIST t10k, 10000 images): {m:.5}");
            println!("MSE of the mean training image: {base:.5}");
            println!("ratio: {:.3}", m / base);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

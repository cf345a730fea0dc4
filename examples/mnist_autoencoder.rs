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
//! The loop is `kiln::train::Trainer::fit` with `Reconstruct::mse()` (the
//! batch's own images as the target) and the shared flags of
//! `kiln::train::TrainArgs` (Adam, learning rate 2e-3 with cosine decay,
//! batch 64, 3 epochs by default; `--save`/`--resume`, `--log`, `--plot`…).
//! Each epoch prints the training MSE, the test MSE and the throughput. At
//! the end the program prints the test MSE, the MSE of always predicting the
//! mean training image, and their ratio, and writes a PNG grid of test inputs
//! (odd rows) above their reconstructions (even rows) to `--out`.
//!

use clap::Parser;
use kiln::data::DataLoader;
use kiln::kernels::Kernels;
use kiln::prelude::*;
use kiln::train::{Reconstruct, TrainArgs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
#[command(mut_arg("epochs", |a| a.default_value("3")))]
#[command(mut_arg("batch_size", |a| a.default_value("64")))]
#[command(mut_arg("lr", |a| a.default_value("0.002")))]
struct Args {
    #[command(flatten)]
    train: TrainArgs,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    data_dir: PathBuf,
    /// Where to write the PNG grid of test inputs and reconstructions.
    #[arg(long, default_value = "autoencoder.png")]
    out: PathBuf,
    /// Test images shown in the grid (in rows of 16).
    #[arg(long, default_value_t = 32)]
    show: usize,
}

/// A grid of the first `n` test images (rows of 16, each above its
/// reconstruction), scaled ×3 with grey borders.
fn write_grid<D: Kernels<f32>>(
    net: &AutoEncoder<f32, D>,
    test: &Dataset,
    n: usize,
    path: &Path,
) -> kiln::Result<()> {
    let n = n.clamp(1, test.len());
    let x = Tensor::<S3<1, 28, 28>, f32, D>::from_slice(net.device(), &test.x[..n * 784])?;
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

/// MSE of predicting the mean training image for every test image.
fn mean_image_mse(train: &Dataset, test: &Dataset) -> f64 {
    let mut mean = vec![0.0f64; 784];
    for img in train.x.chunks_exact(784) {
        for (m, v) in mean.iter_mut().zip(img) {
            *m += *v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= train.len() as f64);
    let sq: f64 = test
        .x
        .chunks_exact(784)
        .flat_map(|img| img.iter().zip(&mean).map(|(v, m)| (*v as f64 - m).powi(2)))
        .sum();
    sq / (test.len() * 784).max(1) as f64
}

/// Training on whichever device `--device` opened.
struct Job<'a>(&'a Args);

impl kiln::DeviceJob for Job<'_> {
    /// (test MSE, mean-image MSE), `None` when stopped to be resumed.
    type Output = kiln::Result<Option<(f64, f64)>>;
    fn run<D: Kernels<f32>>(self, dev: &D) -> Self::Output {
        let (args, t) = (self.0, &self.0.train);
        t.init()?;
        kiln::train::check_output_path("--out", &args.out)?;
        let data = Mnist::load(&args.data_dir)?;
        if data.train.is_empty() || data.test.is_empty() {
            return Err(kiln::Error::invalid(
                "Mnist::load",
                "an empty training or test set",
            ));
        }
        let baseline = mean_image_mse(&data.train, &data.test);
        let test_set = data.test.clone();
        let train = t.loader(data.train).image(1, 28, 28);
        let test = DataLoader::new(data.test, 1000).image(1, 28, 28);
        let mut net = AutoEncoder::<f32, D>::init(dev, &mut rng(t.seed))?;
        print!("{}", AutoEncoder::summary());
        println!("device {}, {}", dev.name(), t.describe());
        let report = t.trainer(&train)?.validate(&test).fit(
            &mut net,
            &mut t.optimizer(),
            &train,
            Reconstruct::mse(),
        )?;
        if report.stopped == kiln::train::Stopped::StopAfter {
            return Ok(None);
        }
        write_grid(&net, &test_set, args.show, &args.out)?;
        println!(
            "wrote {} (test inputs above their reconstructions)",
            args.out.display()
        );
        Ok(Some((
            report.last("test_loss").unwrap_or(f64::NAN),
            baseline,
        )))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match kiln::on_device(args.train.device, Job(&args)) {
        Ok(Ok(Some((m, base)))) => {
            println!("test MSE (MNIST t10k, 10000 images): {m:.5}");
            println!("MSE of the mean training image: {base:.5}");
            println!("ratio: {:.3}", m / base);
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

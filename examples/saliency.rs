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
//! Training (without `--load`) is `kiln::train::Trainer::fit` with the
//! shared flags of `kiln::train::TrainArgs` (Adam, learning rate 2e-3,
//! cosine, batch 64, 2 epochs by default; `--save` writes the run, whose
//! weights `--load` reads back).
//!
//! The network is `kiln::models::LeNet5`, the type `examples/mnist_lenet.rs`
//! trains, so `--load` reads the checkpoint that `mnist_lenet --save` writes.

use clap::Parser;
use kiln::data::DataLoader;
use kiln::kernels::Kernels;
use kiln::metrics::argmax;
use kiln::prelude::*;
use kiln::train::{evaluate, Classify, TrainArgs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// LeNet-5, declared once in `kiln::models` (see there).
use kiln::models::LeNet5 as LeNet;

/// Train (or load) LeNet-5 and write saliency maps of test images.
#[derive(Parser, Debug)]
#[command(about = "Saliency maps |d score / d input| of LeNet-5 on MNIST with kiln")]
#[command(mut_arg("epochs", |a| a.default_value("2")))]
#[command(mut_arg("batch_size", |a| a.default_value("64")))]
#[command(mut_arg("lr", |a| a.default_value("0.002")))]
struct Args {
    #[command(flatten)]
    train: TrainArgs,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    data_dir: PathBuf,
    /// Load the weights from this safetensors file (from `mnist_lenet --save`) instead of training.
    #[arg(long)]
    load: Option<PathBuf>,
    /// Number of test images (the first ones of t10k) to explain.
    #[arg(long, default_value_t = 8)]
    count: usize,
    /// Directory for the PNGs (created if missing).
    #[arg(long, default_value = "saliency")]
    out_dir: PathBuf,
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

/// Training (or loading) and the maps, on whichever device `--device` opened.
struct Job<'a>(&'a Args);

impl kiln::DeviceJob for Job<'_> {
    type Output = kiln::Result<()>;
    fn run<D: Kernels<f32>>(self, dev: &D) -> kiln::Result<()> {
        let (args, t) = (self.0, &self.0.train);
        t.init()?;
        let data = Mnist::load(&args.data_dir)?;
        let test = &data.test;
        if args.count == 0 || args.count > test.len() {
            return Err(kiln::Error::invalid(
                "--count",
                format!("must be between 1 and {}", test.len()),
            ));
        }
        let test_loader = DataLoader::new(test.clone(), 1000).image(1, 28, 28);
        let mut net = LeNet::<f32, D>::init(dev, &mut rng(t.seed))?;
        match &args.load {
            Some(path) => {
                kiln::checkpoint::load(&mut net, path)?;
                println!("loaded the weights from {}", path.display());
            }
            None => {
                println!("training LeNet-5: {}", t.describe());
                let train = t.loader(data.train.clone()).image(1, 28, 28);
                t.trainer(&train)?.validate(&test_loader).fit(
                    &mut net,
                    &mut t.optimizer(),
                    &train,
                    Classify::new(),
                )?;
            }
        }
        let acc = evaluate(&net, &test_loader, &mut Classify::new())?
            .accuracy
            .unwrap_or(f64::NAN);
        println!(
            "test accuracy (MNIST t10k, {} images): {acc:.4}",
            test.len()
        );

        // One batched forward and backward for all `count` images: ∂Σᵢ s_{cᵢ}(xᵢ)/∂xᵢ = ∂s_{cᵢ}/∂xᵢ.
        let n = args.count;
        let x = Tensor::<S3<1, 28, 28>, f32, D>::from_slice(dev, &test.x[..n * 784])?;
        let mut tape = net.tape()?;
        tape.input_grads = true;
        let logits = net.forward_train(&x, &mut tape)?.to_vec()?;
        let pred: Vec<usize> = logits.chunks_exact(10).map(argmax).collect();
        let mut onehot = vec![0.0f32; n * 10];
        for (i, &c) in pred.iter().enumerate() {
            onehot[i * 10 + c] = 1.0;
        }
        let dscore = Tensor::<S1<10>, f32, D>::from_slice(dev, &onehot)?;
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

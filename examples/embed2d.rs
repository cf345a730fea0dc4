//! LeNet-5's penultimate layer on MNIST's test images, mapped to two
//! dimensions by PCA and by exact t-SNE (`kiln::manifold`), as scatter plots
//! coloured by class, each scored by the leave-one-out 5-NN accuracy of the
//! map.
//!
//! ```text
//! scripts/fetch-mnist                                    # once: data/mnist/
//! cargo run --release --example embed2d                  # trains 3 epochs, writes embed2d/{pca,tsne}.png
//! cargo run --release --example mnist_lenet -- --save lenet.safetensors
//! cargo run --release --example embed2d -- --load lenet.safetensors
//! cargo run --release --example embed2d -- --smoke       # a few seconds
//! ```
//!
//! The network is [`LeNetEmbed`]: `kiln::models::LeNet5` with the 84
//! activations after `fc2`'s ReLU as a second output. Its parameters have
//! LeNet-5's names, so `--load` reads the checkpoint `mnist_lenet --save`
//! writes and `--save` writes one that `saliency` and `mnist_lenet` read
//! (`tests/embed2d_smoke.rs` checks that both networks give the same logits
//! from one checkpoint). Training (when not loading) is Adam with a cosine
//! decay on the cross-entropy of the logits; the feature output gets a zero
//! gradient.
//!
//! The first `--count` (5,000) test images' features go to
//! [`kiln::manifold::pca_2d`] and [`kiln::manifold::tsne`] (perplexity 30, 1,000
//! iterations, the usual schedule: see `core/src/manifold/tsne.rs`); the 5-NN
//! accuracy ([`kiln::manifold::knn_accuracy`]) of each map is printed, with the
//! accuracy of 5-NN on the 84-dimensional features themselves for
//! reference, and each map is written as a PNG with its number in the title.

use clap::Parser;
use kiln::manifold::{knn_accuracy, pca_2d, scatter::plot_scatter, tsne, TsneConfig};
use kiln::metrics::argmax;
use kiln::prelude::*;
use rand::seq::SliceRandom;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

kiln::network! {
    /// LeNet-5 (`kiln::models::LeNet5`, the same layers and parameter
    /// names) with its penultimate activations, `fc2`'s ReLU, as an output.
    pub struct LeNetEmbed {
        input x: [1, 28, 28],
        let feat = x
            |> conv1: Conv2d(6, kernel = 5, padding = 2) |> relu |> pool1: MaxPool2d(2)
            |> conv2: Conv2d(16, kernel = 5) |> relu |> pool2: MaxPool2d(2)
            |> flatten |> fc1: Linear(120) |> relu |> fc2: Linear(84) |> relu;
        output feat;
        output logits = feat |> fc3: Linear(10);
    }
}

/// Train (or load) LeNet-5 and map its penultimate layer to 2-D.
#[derive(Parser, Debug, Clone)]
#[command(about = "PCA and t-SNE maps of LeNet-5's penultimate layer on MNIST with kiln")]
pub struct Args {
    /// Passes over the training images (ignored with --load).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate of Adam (cosine decay to 0).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// CPU threads (0: rayon's default, one per core); `main` sets them, not `run`.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Seed of the initial weights and of the shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding the four MNIST idx files.
    #[arg(long, default_value = kiln::data::mnist::DEFAULT_DIR)]
    pub data_dir: PathBuf,
    /// Load the weights from this safetensors file (from `mnist_lenet --save`) instead of training.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// Write the trained weights to this safetensors file.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Number of test images (the first ones of t10k) to map.
    #[arg(long, default_value_t = 5000)]
    pub count: usize,
    /// t-SNE's perplexity.
    #[arg(long, default_value_t = 30.0)]
    pub perplexity: f64,
    /// t-SNE's iterations.
    #[arg(long, default_value_t = 1000)]
    pub iterations: usize,
    /// Directory for the PNGs (created if missing).
    #[arg(long, default_value = "embed2d")]
    pub out_dir: PathBuf,
    /// A quick run for CI: 1 epoch on 12,000 training images, 1,000 test images, 500 t-SNE iterations.
    #[arg(long)]
    pub smoke: bool,
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Test accuracy of the network on all test images.
    pub test_acc: f64,
    /// Leave-one-out 5-NN accuracy of the PCA map.
    pub pca_knn: f64,
    /// The same for the t-SNE map.
    pub tsne_knn: f64,
    /// The same in the 84-dimensional feature space.
    pub feature_knn: f64,
    /// The share of the variance the two principal components explain.
    pub pca_explained: f64,
    /// KL(P‖Q) of the t-SNE map, every 50 iterations.
    pub tsne_history: Vec<(usize, f64)>,
    /// Seconds the t-SNE run took (affinities and iterations).
    pub tsne_secs: f64,
    /// The PNGs written.
    pub files: Vec<PathBuf>,
}

/// Accuracy on `data` and the penultimate features of its first `count`
/// images (evaluation mode, 1,000 at a time).
pub fn features(
    net: &LeNetEmbed<f32, Cpu>,
    data: &Dataset,
    count: usize,
) -> kiln::Result<(f64, Vec<f32>)> {
    let mut tape = net.tape()?;
    let mut x = Tensor::<S3<1, 28, 28>>::zeros(&Cpu, 1000)?;
    let (mut feats, mut correct) = (Vec::with_capacity(count * 84), 0usize);
    for start in (0..data.len()).step_by(1000) {
        let end = (start + 1000).min(data.len());
        x.set_batch(end - start)?;
        x.copy_from_slice(&data.x[start * 784..end * 784])?;
        let (feat, logits) = net.forward_with(&x, &mut tape)?;
        let l = logits.to_vec()?;
        correct += l
            .chunks_exact(10)
            .zip(&data.y[start..end])
            .filter(|(r, &y)| argmax(r) == y as usize)
            .count();
        if start < count {
            let f = feat.to_vec()?;
            feats.extend_from_slice(&f[..(count.min(end) - start) * 84]);
        }
    }
    Ok((correct as f64 / data.len().max(1) as f64, feats))
}

/// `epochs` of Adam with a cosine decay on `train`, printing each epoch.
pub fn train(
    net: &mut LeNetEmbed<f32, Cpu>,
    args: &Args,
    train: &Dataset,
    epochs: usize,
) -> kiln::Result<()> {
    let dev = Cpu;
    let mut rng = rng(args.seed);
    let mut opt = Adam::new(args.lr);
    let mut tape = net.tape_seeded(args.seed)?;
    let mut grads = net.grads()?;
    let mut x = Tensor::<S3<1, 28, 28>>::zeros(&dev, args.batch_size)?;
    let mut y = Labels::<10>::empty::<f32>(&dev)?;
    let mut dlogits = Tensor::<S1<10>>::zeros(&dev, args.batch_size)?;
    let mut dfeat = Tensor::<S1<84>>::zeros(&dev, args.batch_size)?;
    let (mut hx, mut hy) = (Vec::new(), Vec::new());
    let mut order: Vec<usize> = (0..train.len()).collect();
    let total = (train.len().div_ceil(args.batch_size) * epochs).max(1);
    let mut step = 0usize;
    for epoch in 1..=epochs {
        order.shuffle(&mut rng);
        let t0 = Instant::now();
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        for idx in order.chunks(args.batch_size) {
            let t = step as f64 / total as f64;
            opt.set_lr(args.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()));
            train.gather(idx, &mut hx, &mut hy);
            let n = idx.len();
            x.set_batch(n)?;
            x.copy_from_slice(&hx)?;
            y.set::<f32>(&hy)?;
            dfeat.set_batch(n)?;
            let (_, logits) = net.forward_train(&x, &mut tape)?;
            let loss = cross_entropy(logits, &y, Some(&mut dlogits))
                .map_err(|e| e.at_step(step as u64 + 1, opt.lr()))?;
            // The feature output takes no part in the loss: a zero gradient.
            net.backward(&mut tape, &dfeat, &dlogits, &mut grads)?;
            opt.step(net, &grads)?;
            loss_sum += loss as f64 * n as f64;
            seen += n;
            step += 1;
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "epoch {epoch}/{epochs}  loss {:.4}  {:.0} samples/s  ({secs:.1} s, machine shared)",
            loss_sum / seen.max(1) as f64,
            seen as f64 / secs
        );
    }
    Ok(())
}

/// Trains or loads the network, maps its features, writes the PNGs.
pub fn run(args: &Args) -> kiln::Result<Outcome> {
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
    let (count, iterations, epochs, train_set) = if args.smoke {
        (1000, 500, 1, data.train.take(12_000))
    } else {
        (args.count, args.iterations, args.epochs, data.train.clone())
    };
    if count < 10 || count > data.test.len() {
        return Err(kiln::Error::invalid(
            "--count",
            format!("must be between 10 and {}", data.test.len()),
        ));
    }
    let mut net = LeNetEmbed::<f32, Cpu>::init(&Cpu, &mut rng(args.seed))?;
    match &args.load {
        Some(path) => {
            kiln::checkpoint::load(&mut net, path)?;
            println!("loaded the weights from {}", path.display());
        }
        None => {
            println!(
                "training LeNet-5 for {epochs} epochs on {} images (Adam, lr {}, batch {}, seed {})",
                train_set.len(),
                args.lr,
                args.batch_size,
                args.seed
            );
            train(&mut net, args, &train_set, epochs)?;
        }
    }
    if let Some(path) = &args.save {
        kiln::checkpoint::save(&net, path)?;
        println!("saved the weights to {}", path.display());
    }
    let (test_acc, feats) = features(&net, &data.test, count)?;
    println!("test accuracy (MNIST t10k): {test_acc:.4}");
    let labels: Vec<usize> = data.test.y[..count].iter().map(|&y| y as usize).collect();
    let wide: Vec<f64> = feats.iter().map(|&v| v as f64).collect();
    let feature_knn = knn_accuracy(&wide, 84, &labels, 5)?;

    let (pca_pts, pca) = pca_2d(&feats, 84)?;
    let flat = |p: &[[f64; 2]]| -> Vec<f64> { p.iter().flatten().copied().collect() };
    let pca_knn = knn_accuracy(&flat(&pca_pts), 2, &labels, 5)?;
    let pca_explained: f64 = pca.explained_ratio().iter().sum();

    let t0 = Instant::now();
    let cfg = TsneConfig {
        perplexity: args.perplexity,
        iterations,
        ..TsneConfig::default()
    };
    let map = tsne(&feats, 84, &cfg)?;
    let tsne_secs = t0.elapsed().as_secs_f64();
    for (it, kl) in &map.history {
        if it % 250 == 0 {
            println!("t-SNE iteration {it:>5}: KL(P‖Q) {kl:.4}");
        }
    }
    let tsne_knn = knn_accuracy(&flat(&map.points), 2, &labels, 5)?;
    println!(
        "t-SNE of {count} points: {tsne_secs:.1} s ({:.1} ms per iteration, machine shared), KL {:.4}",
        1e3 * tsne_secs / iterations.max(1) as f64,
        map.kl
    );
    println!("5-NN accuracy (leave-one-out, {count} test images):");
    println!("  84-D features  {feature_knn:.4}");
    println!(
        "  PCA 2-D map    {pca_knn:.4}   ({:.1}% of the variance)",
        100.0 * pca_explained
    );
    println!("  t-SNE 2-D map  {tsne_knn:.4}");

    std::fs::create_dir_all(&args.out_dir).map_err(|source| kiln::Error::Io {
        path: args.out_dir.clone(),
        source,
    })?;
    let names: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let pca_path = args.out_dir.join("pca.png");
    plot_scatter(
        &pca_pts,
        &labels,
        &names,
        &format!(
            "PCA of LeNet-5's fc2 ({count} test images): 5-NN {:.1}%",
            100.0 * pca_knn
        ),
        &pca_path,
        640,
    )?;
    let tsne_path = args.out_dir.join("tsne.png");
    plot_scatter(
        &map.points,
        &labels,
        &names,
        &format!(
            "t-SNE of LeNet-5's fc2 ({count} test images): 5-NN {:.1}%",
            100.0 * tsne_knn
        ),
        &tsne_path,
        640,
    )?;
    println!("wrote {} and {}", pca_path.display(), tsne_path.display());
    Ok(Outcome {
        test_acc,
        pca_knn,
        tsne_knn,
        feature_knn,
        pca_explained,
        tsne_history: map.history,
        tsne_secs,
        files: vec![pca_path, tsne_path],
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

//! `examples/embed2d.rs --smoke`, run through the example's own code (the
//! file is included as a module): LeNet-5 trained for one epoch on 12,000
//! MNIST images, its penultimate layer on 1,000 test images mapped by PCA
//! and t-SNE (500 iterations). The t-SNE map must keep the classes apart
//! (5-NN accuracy well above PCA's), its cost must fall once the early
//! exaggeration ends, and both PNGs must be written.
//!
//! Also: the example's two-output twin of `kiln::models::LeNet5` reads a
//! LeNet-5 checkpoint and gives the same logits.
//!
//! Needs `data/mnist/` (`scripts/fetch-mnist`): without it the smoke test
//! fails when `CI=true` and is skipped with a message otherwise.

#[path = "../examples/embed2d.rs"]
#[allow(dead_code)]
mod example;

use clap::Parser;
use kiln::models::LeNet5;
use kiln::prelude::*;
use std::io::Write;

#[test]
fn embed2d_smoke_run_separates_the_classes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    if !dir.is_dir() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "MNIST is required in CI: run scripts/fetch-mnist"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {} is missing (scripts/fetch-mnist)",
            dir.display()
        );
        return;
    }
    let out_dir = std::env::temp_dir().join(format!("kiln-embed2d-smoke-{}", std::process::id()));
    let mut args = example::Args::parse_from(["embed2d", "--smoke"]);
    args.data_dir = dir;
    args.out_dir = out_dir.clone();
    let out = example::run(&args).unwrap();
    println!(
        "test acc {:.4}; 5-NN: features {:.4}, PCA {:.4}, t-SNE {:.4}; KL {:?}",
        out.test_acc, out.feature_knn, out.pca_knn, out.tsne_knn, out.tsne_history
    );
    assert!(out.test_acc > 0.85, "{}", out.test_acc);
    assert!(out.tsne_knn > 0.8, "t-SNE 5-NN {}", out.tsne_knn);
    assert!(
        out.tsne_knn > out.pca_knn + 0.15,
        "t-SNE {} vs PCA {}",
        out.tsne_knn,
        out.pca_knn
    );
    assert!(out.pca_explained > 0.0 && out.pca_explained < 1.0);
    // Reported every 50 iterations; exaggeration ends at 250.
    assert_eq!(out.tsne_history.len(), 10);
    assert!(
        out.tsne_history[9].1 < out.tsne_history[5].1,
        "{:?}",
        out.tsne_history
    );
    for f in &out.files {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", f.display());
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn the_twin_reads_a_lenet5_checkpoint_and_gives_its_logits() {
    let lenet = LeNet5::<f32, Cpu>::init(&Cpu, &mut rng(21)).unwrap();
    let path = std::env::temp_dir().join(format!(
        "kiln-embed2d-twin-{}.safetensors",
        std::process::id()
    ));
    kiln::checkpoint::save(&lenet, &path).unwrap();
    let mut twin = example::LeNetEmbed::<f32, Cpu>::init(&Cpu, &mut rng(99)).unwrap();
    kiln::checkpoint::load(&mut twin, &path).unwrap();
    let mut r = rng(3);
    let xs: Vec<f32> = (0..3 * 784).map(|_| r.random::<f32>()).collect();
    let x = Tensor::<S3<1, 28, 28>>::from_slice(&Cpu, &xs).unwrap();
    let want = lenet.forward(&x).unwrap().to_vec().unwrap();
    let (feat, logits) = twin.forward(&x).unwrap();
    assert_eq!(logits.to_vec().unwrap(), want);
    // The features are post-ReLU: non-negative, and not all zero.
    let f = feat.to_vec().unwrap();
    assert_eq!(f.len(), 3 * 84);
    assert!(f.iter().all(|&v| v >= 0.0) && f.iter().any(|&v| v > 0.0));
    std::fs::remove_file(&path).unwrap();
}

/// The two-output network's backward in f64: the input gradient in full and
/// 150 parameters spread over every layer, against central differences of
/// `Σ r_f · feat + Σ r_l · logits`.
#[test]
fn twin_backward_matches_central_differences() {
    use kiln::testing::{numeric_grad, random_input, rel_err};
    use kiln::{ParamMut, Path};
    let mut g = rng(5);
    let mut net = example::LeNetEmbed::<f64, Cpu>::init(&Cpu, &mut g).unwrap();
    let x = random_input(784, &mut g);
    let (rf, rl) = (random_input(84, &mut g), random_input(10, &mut g));
    let t = |v: &[f64]| Tensor::<S3<1, 28, 28>, f64>::from_slice(&Cpu, v).unwrap();
    let value = |net: &example::LeNetEmbed<f64, Cpu>, v: &[f64]| {
        let (f, l) = net.forward(&t(v)).unwrap();
        let dot = |a: Vec<f64>, r: &[f64]| a.iter().zip(r).map(|(p, q)| p * q).sum::<f64>();
        dot(f.to_vec().unwrap(), &rf) + dot(l.to_vec().unwrap(), &rl)
    };
    let mut tape = net.tape().unwrap();
    tape.input_grads = true;
    let mut grads = net.grads().unwrap();
    net.forward_train(&t(&x), &mut tape).unwrap();
    let (df, dl) = (
        Tensor::<S1<84>, f64>::from_slice(&Cpu, &rf).unwrap(),
        Tensor::<S1<10>, f64>::from_slice(&Cpu, &rl).unwrap(),
    );
    net.backward(&mut tape, &df, &dl, &mut grads).unwrap();
    let dx = tape.grad_x.to_vec().unwrap();
    let err = rel_err(&dx, &numeric_grad(&x, |v| value(&net, v)));
    assert!(err < 1e-6, "input gradient: {err}");

    let mut p0 = Vec::new();
    net.visit(&Path::ROOT, &mut |_, p| {
        p0.extend_from_slice(&p.value[..p.numel])
    });
    let mut dp = Vec::new();
    net.visit_grads(&grads, &Path::ROOT, &mut |_, p| {
        dp.extend_from_slice(&p.grad.unwrap()[..p.numel])
    });
    let set = |net: &mut example::LeNetEmbed<f64, Cpu>, v: &[f64]| {
        let mut i = 0;
        net.visit_mut(&Path::ROOT, &mut |_, p: ParamMut<'_, f64, Cpu>, _| {
            p.value[..p.numel].copy_from_slice(&v[i..i + p.numel]);
            i += p.numel;
        });
    };
    // Every 150th-of-the-way parameter: all ten tensors are reached.
    let picks: Vec<usize> = (0..150).map(|k| k * p0.len() / 150 + 7).collect();
    let sub: Vec<f64> = picks.iter().map(|&i| p0[i]).collect();
    let num = numeric_grad(&sub, |v| {
        let mut p = p0.clone();
        for (&i, &x) in picks.iter().zip(v) {
            p[i] = x;
        }
        set(&mut net, &p);
        value(&net, &x)
    });
    set(&mut net, &p0);
    let ana: Vec<f64> = picks.iter().map(|&i| dp[i]).collect();
    let err = rel_err(&ana, &num);
    assert!(err < 1e-6, "parameter gradient: {err}");
}

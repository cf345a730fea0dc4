//! `examples/mnist_gan.rs --smoke`, run through the example's own code (the
//! file is included as a module): a LeNet of 150 steps, then 100 DCGAN steps
//! of batch 64, scored on 1,000 generated digits. After training the
//! generated digits must be much closer to the test digits in the LeNet's
//! feature space (Fréchet distance at most half its value at
//! initialisation), the LeNet must be more confident on them, their
//! predicted classes must be spread (the untrained G's are one class), and
//! D must beat chance on its last steps. The moving average of G's weights
//! (decay 0.95 here: 0.999 would barely leave the initialisation in 100
//! steps) must have learned too, and a run stopped after 50 steps and
//! resumed must end with the same losses and scores, the average included,
//! to the last bit.
//!
//! Also, in f64 on tiny networks of the same kinds (linear, reshape, batch
//! norm, transposed and strided convolutions, ReLU, LeakyReLU, tanh):
//! G's parameter gradient of the non-saturating loss `ℓ(D(G(z)), 1)`,
//! computed as the example does (D's backward with `input_grads`, its
//! `grad_x` fed to G's backward), and D's parameter gradient of
//! `ℓ(D(x), 1) + ℓ(D(x̃), 0)` summed over two backward passes with
//! `Acc::Add`, both against central differences.
//!
//! Needs `data/mnist/` (`scripts/fetch-mnist`) for the smoke run: without it
//! that test fails when `CI=true` and is skipped with a message otherwise.

#[path = "../examples/mnist_gan.rs"]
#[allow(dead_code)]
mod example;

use clap::Parser;
use kiln::prelude::*;
use kiln::testing::{numeric_grad, numeric_grad_small, random_input, rel_err2};
use kiln::Path;
use std::io::Write;

#[test]
fn mnist_gan_smoke_run_learns() {
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
    let out_dir = std::env::temp_dir().join(format!("kiln-gan-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    // `run` leaves the thread count alone (the example's `main` sets it), so
    // this runs on the pool the test process already has.
    let mut args = example::Args::parse_from(["mnist_gan", "--smoke", "--ema-decay", "0.95"]);
    args.data_dir = dir;
    args.out_dir = out_dir.clone();
    let t0 = std::time::Instant::now();
    let out = example::run(&args).unwrap();
    let (i, g, r) = (out.initial, out.generated, out.real);
    let e = out.ema.expect("an average with --ema-decay 0.95");
    println!(
        "LeNet {:.4}; confidence {:.3} → {:.3} (averaged G {:.3}, real {:.3}); \
         class entropy {:.3} → {:.3} (averaged G {:.3}, real {:.3}); \
         Fréchet {:.2} → {:.2} (averaged G {:.2}, real {:.2}); {:.1} s",
        out.lenet_accuracy,
        i.confidence,
        g.confidence,
        e.confidence,
        r.confidence,
        i.class_entropy,
        g.class_entropy,
        e.class_entropy,
        r.class_entropy,
        i.frechet,
        g.frechet,
        e.frechet,
        r.frechet,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(out.steps, example::SMOKE_STEPS);
    assert_eq!(out.d_losses.len(), example::SMOKE_STEPS);
    assert!(
        out.d_losses
            .iter()
            .chain(&out.g_losses)
            .all(|l| l.is_finite()),
        "a loss is not finite"
    );
    assert!(out.lenet_accuracy > 0.85, "LeNet {}", out.lenet_accuracy);
    // Real digits: the floor the generated ones are compared with.
    assert!(r.confidence > 0.75 && r.class_entropy > 2.25, "{r:?}");
    assert!(r.frechet < 0.1 * i.frechet, "{r:?} vs {i:?}");
    // The generator learned.
    assert!(
        g.frechet < 0.5 * i.frechet,
        "Fréchet {} → {}",
        i.frechet,
        g.frechet
    );
    assert!(
        g.confidence > i.confidence + 0.1,
        "confidence {} → {}",
        i.confidence,
        g.confidence
    );
    assert!(g.class_entropy > 1.5, "class entropy {}", g.class_entropy);
    // So did its moving average (with standing batch-norm statistics).
    assert!(e.frechet < 0.5 * i.frechet, "averaged G: {e:?} vs {i:?}");
    assert!(e.class_entropy > 1.5, "averaged G: {e:?}");
    assert!(out.ema_averaged_bn.is_some());
    // D beats chance (2 ln 2 ≈ 1.386) over its last 30 steps.
    let tail = &out.d_losses[out.d_losses.len() - 30..];
    let d_tail = tail.iter().map(|&l| l as f64).sum::<f64>() / 30.0;
    assert!(d_tail < 2.0 * 2f64.ln(), "D loss {d_tail}");
    for f in [
        "gan_epoch_00.png",
        "gan_epoch_01.png",
        "gan_samples.png",
        "gan_losses.png",
        "gan_history.jsonl",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }

    // Stopped after 50 steps, saved, resumed: the same run, bit for bit.
    let ckpt = out_dir.join("gan.safetensors");
    args.save = Some(ckpt.clone());
    args.stop_after = Some(50);
    let first = example::run(&args).unwrap();
    assert_eq!(first.steps, 50);
    (args.stop_after, args.resume) = (None, Some(ckpt));
    let resumed = example::run(&args).unwrap();
    assert_eq!(resumed.g_losses[..], out.g_losses[50..]);
    assert_eq!(resumed.d_losses[..], out.d_losses[50..]);
    let bits = |s: example::Scores| [s.confidence, s.class_entropy, s.frechet].map(f64::to_bits);
    assert_eq!(bits(resumed.generated), bits(g));
    assert_eq!(bits(resumed.ema.unwrap()), bits(e));
    // Another decay than the checkpoint's: an error naming the flag.
    args.ema_decay = 0.9;
    let err = example::run(&args).unwrap_err().to_string();
    assert!(err.contains("--ema-decay"), "{err}");
    let _ = std::fs::remove_dir_all(&out_dir);
}

kiln::network! {
    /// A tiny G: z [3] → Linear 32 → [2, 4, 4] → BN → ReLU → ConvT 4×4 s2 → [1, 8, 8] → tanh.
    pub struct TinyG {
        input: [3],
        fc: Linear(32, bias = false),
        reshape([2, 4, 4]),
        bn: BatchNorm2d,
        relu,
        up: ConvTranspose2d(1, kernel = 4, stride = 2, padding = 1),
        tanh,
    }
}

kiln::network! {
    /// A tiny D: [1, 8, 8] → Conv 4×4 s2 → LeakyReLU → Conv 3×3 s2 → BN → LeakyReLU → Linear 1.
    pub struct TinyD {
        input: [1, 8, 8],
        c1: Conv2d(3, kernel = 4, stride = 2, padding = 1),
        LeakyRelu(0.2),
        c2: Conv2d(4, kernel = 3, stride = 2, padding = 1, bias = false),
        bn: BatchNorm2d,
        LeakyRelu(0.2),
        flatten,
        fc: Linear(1),
    }
}

/// Every trainable parameter of `m`, flattened in visiting order.
fn params<M: Module<f64, Cpu>>(m: &mut M, grads: &M::Grads) -> Vec<f64> {
    let mut v = Vec::new();
    m.visit_grads(grads, &Path::ROOT, &mut |_, p| {
        v.extend_from_slice(&p.value[..p.numel])
    });
    v
}

/// Every trainable parameter's gradient, flattened in visiting order.
fn grads_of<M: Module<f64, Cpu>>(m: &mut M, grads: &M::Grads) -> Vec<f64> {
    let mut v = Vec::new();
    m.visit_grads(grads, &Path::ROOT, &mut |_, p| {
        v.extend_from_slice(&p.grad.unwrap()[..p.numel])
    });
    v
}

/// Writes `flat` back into the trainable parameters.
fn set_params<M: Module<f64, Cpu>>(m: &mut M, grads: &M::Grads, flat: &[f64]) {
    let mut at = 0;
    m.visit_grads(grads, &Path::ROOT, &mut |_, p| {
        p.value[..p.numel].copy_from_slice(&flat[at..at + p.numel]);
        at += p.numel;
    });
}

fn assert_matches(what: &str, analytic: &[f64], f: impl FnMut(&[f64]) -> f64, at: &[f64]) {
    let norm = analytic.iter().map(|g| g * g).sum::<f64>().sqrt();
    assert!(norm > 1e-3, "{what}: the gradient is ~0 ({norm})");
    let f = std::cell::RefCell::new(f);
    let num = numeric_grad(at, |v| (f.borrow_mut())(v));
    let num_small = numeric_grad_small(at, |v| (f.borrow_mut())(v));
    let err = rel_err2(analytic, &num, &num_small);
    println!(
        "{what}: {} parameters, max relative error {err:.2e}",
        analytic.len()
    );
    assert!(err < 1e-6, "{what}: relative error {err}");
}

/// G's parameter gradient of `ℓ(D(G(z)), 1)` through D's input gradient.
#[test]
fn generator_gradient_through_the_discriminator_matches_central_differences() {
    let mut g = rng(21);
    let batch = 5;
    let mut gen = TinyG::<f64, Cpu>::init(&Cpu, &mut g).unwrap();
    let mut disc = TinyD::<f64, Cpu>::init(&Cpu, &mut g).unwrap();
    let z = Tensor::<S1<3>, f64>::from_slice(&Cpu, &random_input(batch * 3, &mut g)).unwrap();
    let ones = Tensor::<S1<1>, f64>::from_vec(&Cpu, batch, vec![1.0; batch]).unwrap();
    let (mut gt, mut gg) = (gen.tape().unwrap(), gen.grads().unwrap());
    let (mut dt, mut dg) = (disc.tape().unwrap(), disc.grads().unwrap());
    dt.input_grads = true;
    let mut dl = Tensor::empty(&Cpu).unwrap();

    gen.forward_train(&z, &mut gt).unwrap();
    let logits = disc.forward_train(&gt.out_y, &mut dt).unwrap();
    bce_with_logits(logits, &ones, Some(&mut dl)).unwrap();
    disc.backward(&mut dt, &dl, &mut dg).unwrap();
    gen.backward(&mut gt, &dt.grad_x, &mut gg).unwrap();
    let analytic = grads_of(&mut gen, &gg);
    let theta = params(&mut gen, &gg);

    // The same loss as a plain function of G's parameters (training mode:
    // batch norm with the batch's statistics in both networks).
    let loss = |v: &[f64]| -> f64 {
        set_params(&mut gen, &gg, v);
        let mut gt = gen.tape().unwrap();
        let mut dt = disc.tape().unwrap();
        gen.forward_train(&z, &mut gt).unwrap();
        let logits = disc.forward_train(&gt.out_y, &mut dt).unwrap();
        bce_with_logits(logits, &ones, None).unwrap()
    };
    assert_matches("G through D", &analytic, loss, &theta);
}

/// D's parameter gradient of `ℓ(D(x), 1) + ℓ(D(x̃), 0)`, two backward passes
/// into one set of gradients (`Acc::Add` for the second).
#[test]
fn discriminator_gradient_of_real_plus_fake_matches_central_differences() {
    let mut g = rng(22);
    let batch = 4;
    let mut disc = TinyD::<f64, Cpu>::init(&Cpu, &mut g).unwrap();
    let real =
        Tensor::<S3<1, 8, 8>, f64>::from_slice(&Cpu, &random_input(batch * 64, &mut g)).unwrap();
    let fake =
        Tensor::<S3<1, 8, 8>, f64>::from_slice(&Cpu, &random_input(batch * 64, &mut g)).unwrap();
    let ones = Tensor::<S1<1>, f64>::from_vec(&Cpu, batch, vec![1.0; batch]).unwrap();
    let zeros = Tensor::<S1<1>, f64>::zeros(&Cpu, batch).unwrap();
    let (mut dt, mut dg) = (disc.tape().unwrap(), disc.grads().unwrap());
    let mut dl = Tensor::empty(&Cpu).unwrap();
    let l = disc.forward_train(&real, &mut dt).unwrap();
    bce_with_logits(l, &ones, Some(&mut dl)).unwrap();
    disc.backward(&mut dt, &dl, &mut dg).unwrap();
    let l = disc.forward_train(&fake, &mut dt).unwrap();
    bce_with_logits(l, &zeros, Some(&mut dl)).unwrap();
    disc.backward_acc(&mut dt, &dl, &mut dg, Acc::Add).unwrap();
    let analytic = grads_of(&mut disc, &dg);
    let theta = params(&mut disc, &dg);
    let loss = |v: &[f64]| -> f64 {
        set_params(&mut disc, &dg, v);
        let mut dt = disc.tape().unwrap();
        let lr = bce_with_logits(disc.forward_train(&real, &mut dt).unwrap(), &ones, None).unwrap();
        let lf =
            bce_with_logits(disc.forward_train(&fake, &mut dt).unwrap(), &zeros, None).unwrap();
        lr + lf
    };
    assert_matches("D real + fake", &analytic, loss, &theta);
}

/// The example's LeNet with a feature output has `kiln::models::LeNet5`'s
/// parameter names, so a LeNet-5 checkpoint (what `mnist_lenet --save` and
/// `saliency --load` use) loads into it and gives the same logits.
#[test]
fn lenet5_checkpoint_loads_into_the_feature_lenet() {
    let path =
        std::env::temp_dir().join(format!("kiln-gan-lenet-{}.safetensors", std::process::id()));
    let lenet = kiln::models::LeNet5::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    kiln::checkpoint::save(&lenet, &path).unwrap();
    let mut feat = example::LeNetFeatures::<f32, Cpu>::init(&Cpu, &mut rng(2)).unwrap();
    let x: Vec<f32> = (0..3 * 784)
        .map(|i| ((i * 37 % 101) as f32) / 100.0)
        .collect();
    let x = Tensor::<S3<1, 28, 28>>::from_slice(&Cpu, &x).unwrap();
    let want = lenet.forward(&x).unwrap().to_vec().unwrap();
    let before = feat.forward(&x).unwrap().0.to_vec().unwrap();
    assert_ne!(
        before, want,
        "differently seeded networks agree: the test proves nothing"
    );
    kiln::checkpoint::load(&mut feat, &path).unwrap();
    let (logits, features) = feat.forward(&x).unwrap();
    assert_eq!(logits.to_vec().unwrap(), want);
    assert_eq!(features.batch(), 3);
    assert!(
        features.to_vec().unwrap().iter().all(|&v| v >= 0.0),
        "features after a ReLU"
    );
    let _ = std::fs::remove_file(&path);
}

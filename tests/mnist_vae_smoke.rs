//! `examples/mnist_vae.rs --smoke`, run through the example's own code (the
//! file is included as a module): 150 steps of the 20-dimensional VAE on
//! dynamically binarised MNIST, evaluated on 500 test images. The test
//! negative ELBO must fall well below its value at initialisation, the
//! training loss must fall, and the IWAE (k = 100) estimate of the negative
//! log-likelihood must not exceed the negative ELBO.
//!
//! Also: the hand-written backward of the reparameterisation plus the KL
//! term against central differences in f64.
//!
//! Needs `data/mnist/` (`scripts/fetch-mnist`): without it the smoke test
//! fails when `CI=true` and is skipped with a message otherwise.

#[path = "../examples/mnist_vae.rs"]
#[allow(dead_code)]
mod example;

use clap::Parser;
use kiln::prelude::*;
use std::io::Write;

#[test]
fn mnist_vae_smoke_run_learns() {
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
    let out_dir = std::env::temp_dir().join(format!("kiln-vae-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    // `run` leaves the thread count alone (the example's `main` sets it), so
    // this runs on the pool the test process already has.
    let mut args = example::Args::parse_from(["mnist_vae", "--smoke"]);
    args.data_dir = dir;
    args.out_dir = out_dir.clone();
    let out = example::run(&args).unwrap();
    println!(
        "test -ELBO {:.2} → {:.2}; IWAE {:.2}",
        out.initial_nelbo, out.nelbo, out.iwae_nll
    );
    assert_eq!(out.losses.len(), 150);
    let first = out.losses[..5].iter().map(|&l| l as f64).sum::<f64>() / 5.0;
    let last = out.losses[145..].iter().map(|&l| l as f64).sum::<f64>() / 5.0;
    assert!(last < first - 100.0, "training loss {first} → {last}");
    assert!(out.initial_nelbo > 400.0, "{}", out.initial_nelbo);
    assert!(out.nelbo < 200.0, "test negative ELBO {}", out.nelbo);
    assert!(
        out.iwae_nll <= out.nelbo,
        "IWAE {} above the negative ELBO {}",
        out.iwae_nll,
        out.nelbo
    );
    assert!(out.iwae_nll > 0.8 * out.nelbo, "IWAE {}", out.iwae_nll);
    for f in ["vae_samples.png", "vae_reconstructions.png"] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// `L = Σ w ⊙ z + s Σ KL` with `z = μ + exp(½ log σ²) ⊙ ε`: the hand-written
/// backward against central differences.
#[test]
fn reparam_kl_gradient_matches_central_differences() {
    let (rows, latent) = (2, 3);
    let mut g = rng(7);
    let mut draw = |scale: f64| -> Vec<f64> {
        (0..rows * latent)
            .map(|_| (g.random::<f64>() * 2.0 - 1.0) * scale)
            .collect()
    };
    let (mu, lv, eps, w) = (draw(1.0), draw(1.5), draw(2.0), draw(1.0));
    let s = 0.5;
    let loss = |mu: &[f64], lv: &[f64]| -> f64 {
        let mut z = vec![0.0; mu.len()];
        example::reparam(mu, lv, &eps, &mut z);
        z.iter().zip(&w).map(|(z, w)| z * w).sum::<f64>()
            + s * example::kl_rows(mu, lv, latent).iter().sum::<f64>()
    };
    let (mut dmu, mut dlv) = (vec![0.0; mu.len()], vec![0.0; mu.len()]);
    example::reparam_kl_backward(&mu, &lv, &eps, &w, s, &mut dmu, &mut dlv);
    let h = 1e-5;
    for i in 0..mu.len() {
        for (which, analytic) in [(0, dmu[i]), (1, dlv[i])] {
            let (mut a, mut b) = ((mu.clone(), lv.clone()), (mu.clone(), lv.clone()));
            if which == 0 {
                a.0[i] += h;
                b.0[i] -= h;
            } else {
                a.1[i] += h;
                b.1[i] -= h;
            }
            let num = (loss(&a.0, &a.1) - loss(&b.0, &b.1)) / (2.0 * h);
            let err = (num - analytic).abs() / num.abs().max(analytic.abs()).max(1e-8);
            assert!(
                err < 1e-7,
                "{} {i}: {analytic} vs {num}",
                ["dμ", "dlogσ²"][which]
            );
        }
    }
}

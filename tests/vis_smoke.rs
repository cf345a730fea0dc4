//! `examples/gradcam.rs --smoke` and `examples/adversarial.rs --smoke`, run
//! through the examples' own code (each file is included as a module).
//!
//! * gradcam: LeNet-5 trained 1 epoch on 6000 images; the Grad-CAM maps of
//!   4 correct and 4 wrong test images must be finite, nonnegative, 28×28
//!   and not all zero; the class models (100 steps of gradient ascent) must
//!   be recognised as their classes far above chance.
//! * adversarial: LeNet-5 trained 1 epoch on 4000 images, then 1 epoch of
//!   PGD-3 training on 1000; on 300 test images, PGD at ε = 0.3 must bring
//!   accuracy far below the clean one, every perturbation must stay within
//!   ε, and PGD toward class 0 at ε = 0.3 must mostly succeed.
//!
//! Needs `data/mnist/` (`scripts/fetch-mnist`): without it the tests fail
//! when `CI=true` and are skipped with a message otherwise.

#[path = "../examples/gradcam.rs"]
#[allow(dead_code)]
mod gradcam;

#[path = "../examples/adversarial.rs"]
#[allow(dead_code)]
mod adversarial;

use clap::Parser;
use std::io::Write;
use std::path::PathBuf;

/// The MNIST directory, or `None` (test skipped) outside CI when it is missing.
fn mnist() -> Option<PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "MNIST is required in CI: run scripts/fetch-mnist"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {} is missing (scripts/fetch-mnist)",
        dir.display()
    );
    None
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-{name}-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn gradcam_smoke_run_explains_and_draws_class_models() {
    let Some(dir) = mnist() else { return };
    let out = out_dir("gradcam");
    let mut args = gradcam::Args::parse_from(["gradcam", "--smoke"]);
    (args.data_dir, args.out_dir) = (dir, out.clone());
    let o = gradcam::run(&args).unwrap();
    println!(
        "test accuracy {:.4}; class-model probabilities {:?}",
        o.test_accuracy, o.class_probs
    );
    assert!(o.test_accuracy > 0.7, "{}", o.test_accuracy);
    assert_eq!(o.cams.len(), 8);
    for (ok, m, share) in &o.cams {
        assert_eq!(m.len(), 784);
        assert!(m.iter().all(|v| v.is_finite() && *v >= 0.0), "correct {ok}");
        assert!((0.0..=1.0).contains(share));
    }
    let lit = o
        .cams
        .iter()
        .filter(|(_, m, _)| m.iter().any(|v| *v > 0.0))
        .count();
    assert!(lit >= 6, "only {lit} of 8 Grad-CAM maps are not all zero");
    let mean = o.class_probs.iter().sum::<f32>() / 10.0;
    let high = o.class_probs.iter().filter(|p| **p > 0.3).count();
    assert!(mean > 0.4 && high >= 7, "class models: {:?}", o.class_probs);
    for f in [
        "explanations_correct.png",
        "explanations_wrong.png",
        "class_models.png",
        "class_model_9.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn adversarial_smoke_run_fools_the_plain_network() {
    let Some(dir) = mnist() else { return };
    let out = out_dir("adversarial");
    let mut args = adversarial::Args::parse_from(["adversarial", "--smoke"]);
    (args.data_dir, args.out_dir) = (dir, out.clone());
    let o = adversarial::run(&args).unwrap();
    let row = |model: &str, attack: &str, eps: f32| {
        o.rows
            .iter()
            .find(|r| r.model == model && r.attack == attack && (r.eps - eps).abs() < 1e-6)
            .unwrap_or_else(|| panic!("no row {model} {attack} {eps}"))
            .clone()
    };
    for r in &o.rows {
        println!("{r:?}");
        assert!(r.mean_linf <= r.eps as f64 + 1e-6, "{r:?}");
    }
    assert!(o.clean_plain > 0.6, "clean accuracy {}", o.clean_plain);
    assert_eq!(row("plain", "PGD", 0.0).accuracy, o.clean_plain);
    let pgd3 = row("plain", "PGD", 0.3);
    assert!(pgd3.accuracy < 0.1 && pgd3.success > 0.9, "{pgd3:?}");
    assert!(row("plain", "FGSM", 0.1).accuracy < o.clean_plain - 0.1);
    assert!(row("plain", "PGD", 0.1).accuracy <= row("plain", "FGSM", 0.1).accuracy + 0.02);
    assert!(pgd3.targeted.unwrap() > 0.5, "{pgd3:?}");
    assert!((row("plain", "PGD", 0.3).mean_linf - 0.3).abs() < 0.01);
    assert!(o.clean_adv.is_some() && o.adv_epoch_secs.len() == 1);
    for f in [
        "table.md",
        "accuracy_vs_eps.png",
        "accuracy_vs_eps.svg",
        "examples.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let _ = std::fs::remove_dir_all(&out);
}

//! The `--smoke` runs of the few-labels examples, through the examples' own
//! code (each file is included as a module).
//!
//! * `distill`: a LeNet-5 teacher trained two epochs on 10,000 MNIST images,
//!   then (two epochs on 2,000 images) one 784–64–10 student on the labels and one on the teacher's soft
//!   targets (T = 4) plus the labels; the teacher must beat 90 % on 2,000
//!   test images, the distilled student 80 %, and its training loss must fall.
//! * `semi_supervised`: 300 steps of LeNet-5 with 100 labels, once on the
//!   labels alone and once with pseudo-labels on unlabelled images; both
//!   must beat 60 % test accuracy (EMA of the weights, 2,000 test images),
//!   the training loss must fall, pseudo-labels must be in use by the end
//!   and mostly right.
//!
//! Needs `data/mnist/` (`scripts/fetch-mnist`): without it the smoke tests
//! fail when `CI=true` and are skipped with a message otherwise.

#[path = "../examples/distill.rs"]
#[allow(dead_code)]
mod distill;

#[path = "../examples/semi_supervised.rs"]
#[allow(dead_code)]
mod semi_supervised;

use clap::Parser;
use std::io::Write;
use std::path::PathBuf;

/// `data/<name>`, or `None` (skip) when it is missing outside CI.
fn data_dir(name: &str) -> Option<PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "{} is required in CI",
        dir.display()
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED: {} is missing", dir.display());
    None
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn distill_smoke_run_learns() {
    let Some(dir) = data_dir("mnist") else {
        return;
    };
    let out_dir = std::env::temp_dir().join(format!("kiln-distill-smoke-{}", std::process::id()));
    let mut args = distill::Args::parse_from(["distill", "--smoke"]);
    args.data_dir = dir;
    args.out_dir = out_dir.clone();
    let out = distill::run(&args).unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    println!("{out:?}");
    assert!(out.teacher_acc > 0.90, "teacher {}", out.teacher_acc);
    assert_eq!((out.plain.len(), out.distilled.len()), (1, 1));
    assert!(
        out.distilled[0] > 0.80,
        "distilled student {}",
        out.distilled[0]
    );
    assert!(out.plain[0] > 0.80, "plain student {}", out.plain[0]);
    let l = &out.distill_losses;
    assert_eq!(l.len(), 64, "2 epochs of 2,000 images in batches of 64");
    let (first, last) = (mean(&l[..4]), mean(&l[l.len() - 4..]));
    assert!(last < 0.5 * first, "distillation loss {first} → {last}");
}

#[test]
fn mean_and_standard_error() {
    let (m, se) = distill::mean_se(&[1.0, 2.0, 3.0, 4.0]);
    // Sample variance 5/3, SE = sqrt(5/3 / 4).
    assert!((m - 2.5).abs() < 1e-15);
    assert!((se - (5.0f64 / 12.0).sqrt()).abs() < 1e-15);
}

#[test]
fn semi_supervised_smoke_run_learns() {
    let Some(dir) = data_dir("mnist") else {
        return;
    };
    let mut args = semi_supervised::Args::parse_from(["semi_supervised", "--smoke"]);
    args.data_dir = dir;
    let out = semi_supervised::run(&args).unwrap();
    let (base, fm) = (&out.labels_only[0], &out.fixmatch[0]);
    println!(
        "labels only {:.4}, pseudo-labels {:.4}; used {:?}",
        base.ema_acc,
        fm.ema_acc,
        &fm.mask_rate[290..]
    );
    assert!(base.ema_acc > 0.6, "labels only: {}", base.ema_acc);
    assert!(fm.ema_acc > 0.6, "pseudo-labels: {}", fm.ema_acc);
    for r in [base, fm] {
        assert_eq!(r.losses.len(), 300);
        let (first, last) = (mean(&r.losses[..20]), mean(&r.losses[280..]));
        assert!(last < 0.7 * first, "loss {first} → {last}");
    }
    let used = mean(&fm.mask_rate[250..]);
    assert!(used > 0.05, "pseudo-labels used: {used}");
    let right: Vec<f64> = fm.pseudo_acc[250..]
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    assert!(mean(&right) > 0.8, "pseudo-labels right: {}", mean(&right));
}

#[test]
fn labelled_choice_is_balanced_and_seeded() {
    let y: Vec<u32> = (0..1000).map(|i| (i * 7 % 10) as u32).collect();
    let a = semi_supervised::choose_labelled(&y, 10, 3);
    assert_eq!(a.len(), 100);
    for c in 0..10u32 {
        assert_eq!(a.iter().filter(|&&i| y[i] == c).count(), 10);
    }
    let mut u = a.clone();
    u.sort();
    u.dedup();
    assert_eq!(u.len(), 100, "no image chosen twice");
    assert_eq!(a, semi_supervised::choose_labelled(&y, 10, 3));
    assert_ne!(a, semi_supervised::choose_labelled(&y, 10, 4));
}

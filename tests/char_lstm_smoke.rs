//! `examples/char_lstm.rs --smoke`, run through the example's own code (the
//! file is included as a module): 30 steps of the two-layer 512-unit LSTM
//! language model on Shakespeare, then a short validation and 40 sampled
//! characters. The loss must fall from `ln 84 ≈ 4.43` (a uniform guess) to
//! well below it, and the validation loss with it.
//!
//! Needs `data/shakespeare/` (`scripts/fetch-shakespeare`): without it the
//! test fails when `CI=true` and is skipped with a message otherwise.

#[path = "../examples/char_lstm.rs"]
#[allow(dead_code)]
mod char_lstm;

use clap::Parser;
use kiln::prelude::*;
use std::io::Write;

#[test]
fn char_lstm_smoke_run_learns() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/shakespeare");
    if !dir.is_dir() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "the Shakespeare corpus is required in CI: run scripts/fetch-shakespeare"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {} is missing (scripts/fetch-shakespeare)",
            dir.display()
        );
        return;
    }
    let mut args = char_lstm::Args::parse_from(["char_lstm", "--smoke"]);
    args.data_dir = dir;
    let out = char_lstm::run(&args, &Cpu).unwrap();
    let uniform = (char_lstm::VOCAB as f64).ln();
    assert_eq!(out.losses.len(), 30);
    let first = out.losses[0] as f64;
    let last5 = out.losses[25..].iter().map(|&l| l as f64).sum::<f64>() / 5.0;
    println!("loss {first:.4} → {last5:.4} (mean of the last 5 steps); uniform {uniform:.4}");
    // A fresh network guesses close to uniformly.
    assert!((first - uniform).abs() < 0.1, "first loss {first}");
    // 30 Adam steps learn at least the character frequencies (unigram
    // entropy of the corpus ≈ 3.3 nats).
    assert!(last5 < uniform - 0.8, "the loss did not fall: {last5}");
    let val = out.reports.last().unwrap().val_loss;
    assert!(val < uniform - 0.8, "validation loss {val}");
    assert_eq!(out.reports.len(), 2, "reports at steps 15 and 30");
    assert!(out.sample.starts_with("KING.\n"));
    assert_eq!(out.sample.chars().count(), "KING.\n".chars().count() + 40);
}

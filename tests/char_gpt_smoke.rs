//! `examples/char_gpt.rs --smoke`, run through the example's own code (the
//! file is included as a module): 60 steps of the 4-layer, 4-head, 128-wide
//! character GPT on Shakespeare (10 of warm-up, then the cosine decay), a
//! short validation and 40 sampled characters through the key/value cache.
//! The loss must fall from `ln 84 ≈ 4.43` (a uniform guess) to well below
//! it, and the validation loss with it; a checkpoint saved at the end
//! resumes with the same numbers.
//!
//! Needs `data/shakespeare/` (`scripts/fetch-shakespeare`): without it the
//! test fails when `CI=true` and is skipped with a message otherwise.

use crate::char_gpt;

use clap::Parser;
use kiln::prelude::*;
use std::io::Write;

#[test]
fn char_gpt_smoke_run_learns() {
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
    let tmp = std::env::temp_dir().join(format!("char_gpt_smoke_{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let ckpt = tmp.join("gpt.safetensors");
    let mut args = char_gpt::Args::parse_from(["char_gpt", "--smoke"]);
    args.data_dir = dir;
    args.save = Some(ckpt.clone());
    let out = char_gpt::run(&args, &Cpu).unwrap();
    let uniform = (char_gpt::VOCAB as f64).ln();
    assert_eq!(out.losses.len(), 60);
    let first = out.losses[0] as f64;
    let last5 = out.losses[55..].iter().map(|&l| l as f64).sum::<f64>() / 5.0;
    println!("loss {first:.4} → {last5:.4} (mean of the last 5 steps); uniform {uniform:.4}");
    // N(0, 0.02) weights guess close to uniformly.
    assert!((first - uniform).abs() < 0.1, "first loss {first}");
    // 60 AdamW steps learn at least the character frequencies (unigram
    // entropy of the corpus ≈ 3.3 nats) and some pairs.
    assert!(last5 < uniform - 1.2, "the loss did not fall: {last5}");
    let val = out.reports.last().unwrap().val_loss;
    assert!(val < uniform - 1.2, "validation loss {val}");
    assert_eq!(out.reports.len(), 2, "reports at steps 30 and 60");
    assert!(out.sample.starts_with("KING.\n"));
    assert_eq!(out.sample.chars().count(), "KING.\n".chars().count() + 40);

    // Resuming the saved run with no steps left reports its last numbers
    // and samples the same text from the same weights.
    args.save = None;
    args.resume = Some(ckpt);
    args.steps = 0;
    let again = char_gpt::run(&args, &Cpu).unwrap();
    assert_eq!(again.reports.last().unwrap().val_loss, val);
    assert_eq!(again.sample, out.sample);
    let _ = std::fs::remove_dir_all(&tmp);
}

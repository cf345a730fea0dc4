//! The `--smoke` run of `examples/pretrain.rs`, through the example's own
//! code (the file is included as a module): 4,096 Fashion-MNIST training
//! images, one epoch of each pretext task (batch 128), probes of 10 epochs,
//! 2,000 test images. Checks that each pretext loss falls, that every
//! probe beats chance by far, the report's shape, that a saved encoder
//! probed alone (`--method probe`) gives the same accuracy, that
//! `--validate` refuses too few training images, and that flags read only
//! after pretraining are checked before it; and that the probe's default
//! readout (`--readout avg-max`) pools the encoder's own last map.
//!
//! Needs `data/fashion-mnist/` (`scripts/fetch-fashion-mnist`, run by
//! `scripts/test`): without it the test fails when `CI=true` and is skipped
//! with a message otherwise.

#[path = "../examples/pretrain.rs"]
#[allow(dead_code)]
mod pretrain;

use clap::Parser;
use std::io::Write;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[test]
fn pretrain_smoke_run_learns() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist");
    if !dir.is_dir() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "{} is required in CI",
            dir.display()
        );
        let _ = writeln!(std::io::stderr(), "SKIPPED: {} is missing", dir.display());
        return;
    }
    let saved = std::env::temp_dir().join(format!("kiln-pretrain-smoke-{}", std::process::id()));
    let mut args = pretrain::Args::parse_from(["pretrain", "--smoke"]);
    args.data_dir = dir;
    args.save_dir = Some(saved.clone());
    let out = pretrain::run(&args).unwrap();
    let names: Vec<&str> = out.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        names,
        ["pixels", "random", "rotation", "contrastive", "supervised"]
    );
    for r in &out {
        // Ten classes: chance is 0.1.
        assert!(r.test_acc > 0.5, "{}: {}", r.method, r.test_acc);
    }
    // Logistic regression on 4,096 images' pixels: about 0.82.
    assert!(out[0].test_acc > 0.75, "pixels: {}", out[0].test_acc);
    for r in &out[2..4] {
        // 32 steps; the losses of the last 8 below those of the first 4.
        assert_eq!(r.steps, 32, "{}", r.method);
        let (first, last) = (mean(&r.losses[..4]), mean(&r.losses[24..]));
        assert!(last < first - 0.2, "{}: {first} → {last}", r.method);
    }
    // NT-Xent starts near log(2N − 1) = log 255 for unrelated embeddings.
    let c0 = out[3].losses[0];
    assert!(
        (c0 - 255f64.ln()).abs() < 0.5,
        "contrastive: first loss {c0}"
    );
    // The saved encoders, probed alone (`--method probe --encoder`): the
    // same features and the same probe, so bit for bit the same accuracy.
    for (k, name) in [(2, "rotation"), (3, "contrastive")] {
        let mut p = args.clone();
        p.method = "probe".into();
        p.save_dir = None;
        p.encoder = Some(saved.join(format!("{name}_encoder.safetensors")));
        let again = pretrain::run(&p).unwrap();
        assert_eq!(
            again[0].test_acc.to_bits(),
            out[k].test_acc.to_bits(),
            "{name}"
        );
    }
    // `--validate` holds out 10,000 training images: the smoke's 4,096 are
    // too few, which is an error, not a probe on nothing.
    let mut v = args.clone();
    v.method = "pixels".into();
    v.validate = true;
    let e = pretrain::run(&v).unwrap_err().to_string();
    assert!(e.contains("--validate") && e.contains("4096"), "{e}");
    // Flags that are only read after a pretraining are checked before it.
    let mut bad = args.clone();
    bad.probe_schedule = "cosin".into();
    let e = pretrain::run(&bad).unwrap_err().to_string();
    assert!(e.contains("--probe-schedule") && e.contains("cosin"), "{e}");
    let mut stray = args.clone();
    stray.encoder = Some(saved.join("contrastive_encoder.safetensors"));
    let e = pretrain::run(&stray).unwrap_err().to_string();
    assert!(e.contains("--encoder") && e.contains("--method all"), "{e}");
    let mut readout = args.clone();
    readout.readout = "max".into();
    let e = pretrain::run(&readout).unwrap_err().to_string();
    assert!(e.contains("--readout") && e.contains("max"), "{e}");
    let mut head = args.clone();
    head.head = "bnn".into();
    let e = pretrain::run(&head).unwrap_err().to_string();
    assert!(e.contains("--head") && e.contains("bnn"), "{e}");
    // The head with batch norm (`--head bn`) trains: its NT-Xent falls as
    // the default head's does.
    head.head = "bn".into();
    head.method = "contrastive".into();
    head.save_dir = None;
    let bn = pretrain::run(&head).unwrap();
    let r = &bn[0];
    assert_eq!(r.steps, 32);
    let (first, last) = (mean(&r.losses[..4]), mean(&r.losses[24..]));
    assert!(last < first - 0.2, "bn head: {first} → {last}");
    assert!(r.test_acc > 0.5, "bn head: {}", r.test_acc);
    // A different network from the default's: not the same run twice.
    assert_ne!(r.losses, out[3].losses);
    let _ = std::fs::remove_dir_all(&saved);
}

/// `--readout avg-max` reads the encoder's own weights and batch norm
/// statistics: its first 128 features are the encoder's output (the
/// global average of each channel of the last map) and the next 128 the
/// maximum of each channel, computed here from the whole map.
#[test]
fn avg_max_readout_pools_the_encoders_map() {
    use kiln::prelude::*;
    use kiln::Cpu;
    let mut enc = pretrain::Encoder::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    // Batch norm statistics away from their initial 0 and 1, so that a
    // readout that failed to copy them would differ.
    let mut x = Tensor::<S3<1, 28, 28>>::empty(&Cpu).unwrap();
    let mut r = rng(5);
    let pixels: Vec<f32> = (0..6 * 784).map(|_| r.random_range(-1.0f32..2.0)).collect();
    x.set_batch(6).unwrap();
    x.copy_from_slice(&pixels).unwrap();
    let mut tape = enc.tape().unwrap();
    for _ in 0..3 {
        enc.forward_train(&x, &mut tape).unwrap();
    }
    let avg_max = pretrain::avg_max(&enc).unwrap();
    let gap = enc.forward(&x).unwrap().to_vec().unwrap();
    let both = avg_max.forward(&x).unwrap().to_vec().unwrap();
    let whole = enc.trunk.forward(&x).unwrap().to_vec().unwrap();
    for s in 0..6 {
        for c in 0..128 {
            let plane = &whole[s * 6272 + c * 49..s * 6272 + (c + 1) * 49];
            let max = plane.iter().copied().fold(f32::MIN, f32::max);
            let mean = plane.iter().sum::<f32>() / 49.0;
            assert_eq!(
                both[s * 256 + c],
                gap[s * 128 + c],
                "sample {s}, channel {c}"
            );
            assert!(
                (both[s * 256 + c] - mean).abs() < 1e-5,
                "sample {s}, channel {c}"
            );
            assert_eq!(both[s * 256 + 128 + c], max, "sample {s}, channel {c}");
        }
    }
    // Not the encoder at its initialisation: the statistics moved.
    let fresh = pretrain::Encoder::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    assert_ne!(fresh.forward(&x).unwrap().to_vec().unwrap(), gap);
}

//! `examples/mnist_pixelcnn.rs --smoke`, run through the example's own code
//! (the file is included as a module): 150 steps of 32 images of the
//! 16-channel PixelCNN on dynamically binarised MNIST, evaluated on 500 test
//! images. The test NLL must fall well below its value at initialisation
//! (472 nats measured, near 784·ln 2 ≈ 543: the logits start near 0), the
//! training loss must fall, and 4 images are sampled pixel by pixel into the
//! PNG.
//!
//! Needs `data/mnist/` (`scripts/fetch-mnist`): without it the smoke test
//! fails when `CI=true` and is skipped with a message otherwise.

use crate::mnist_pixelcnn as example;

use clap::Parser;
use std::io::Write;

#[test]
fn mnist_pixelcnn_smoke_run_learns() {
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
    let out_dir = std::env::temp_dir().join(format!("kiln-pixelcnn-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    // `run` leaves the thread count alone (the example's `main` sets it), so
    // this runs on the pool the test process already has.
    let mut args = example::Args::parse_from(["mnist_pixelcnn", "--smoke"]);
    args.data_dir = dir;
    args.out_dir = out_dir.clone();
    let t0 = std::time::Instant::now();
    let out = example::run(&args).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "test NLL {:.2} → {:.2} nats over {} images; {} steps, training {:.1} s, sampling {:.1} s, total {secs:.1} s",
        out.initial_nll, out.nll, out.test_images, out.steps, out.train_secs, out.sample_secs
    );
    assert_eq!(out.losses.len(), 150);
    assert_eq!(out.test_images, 500);
    let first = out.losses[..5].iter().map(|&l| l as f64).sum::<f64>() / 5.0;
    let last = out.losses[145..].iter().map(|&l| l as f64).sum::<f64>() / 5.0;
    assert!(last < first - 150.0, "training loss {first} → {last}");
    assert!(out.initial_nll > 400.0, "{}", out.initial_nll);
    assert!(out.nll < 150.0, "test NLL {}", out.nll);
    assert!(out_dir.join("pixelcnn_samples.png").is_file());
    if cfg!(target_os = "linux") {
        let cpu = out.train_cpu_secs.expect("CPU time from /proc/self/stat");
        assert!(cpu > 0.0 && cpu < 2.0 * 4.0 * out.train_secs, "{cpu} CPU s");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

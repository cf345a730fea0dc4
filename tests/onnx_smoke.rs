//! The trained-checkpoint check at smoke size: LeNet-5 (`kiln::models`,
//! the network of `examples/mnist_lenet.rs`) trained for 200 steps on MNIST,
//! saved as a checkpoint, loaded into a fresh network, exported with
//! `to_onnx`, and run on the 10,000 test images in ONNX Runtime by
//! `scripts/onnx/mnist_accuracy.py` (the script a user runs on
//! `mnist_lenet --export-onnx PATH`'s file): the two test accuracies must
//! be equal to the last digit (the same count of correct images), and the
//! training loss must have fallen. `docs/onnx.md` records the same check on
//! the full 8-epoch run.
//!
//! Needs `data/mnist/` (`scripts/fetch-mnist`) and the project's Python with
//! onnx and onnxruntime (`scripts/test` installs them): without either it is
//! skipped with a message, except under CI=true, where it fails.

use crate::onnx_ort;

use kiln::checkpoint;
use kiln::metrics::count_correct;
use kiln::models::LeNet5;
use kiln::prelude::*;
use kiln::rand::seq::SliceRandom;
use std::io::Write;
use std::process::Command;

fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(kiln::data::mnist::DEFAULT_DIR)
}

#[test]
fn trained_lenet_has_the_same_test_accuracy_in_onnx_runtime() -> kiln::Result<()> {
    let data = match Mnist::load(data_dir()) {
        Ok(m) => m,
        Err(e @ kiln::Error::MissingData { .. }) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "MNIST is required in CI: {e}"
            );
            let _ = writeln!(std::io::stderr(), "SKIPPED: {e}");
            return Ok(());
        }
        Err(e) => panic!("MNIST could not be loaded: {e}"),
    };
    if !onnx_ort::available() {
        return Ok(());
    }
    let t0 = std::time::Instant::now();
    // 200 steps of 64 with Adam, fixed seeds.
    let (steps, batch) = (200, 64);
    let mut net = LeNet5::<f32, Cpu>::init(&Cpu, &mut rng(0))?;
    let mut opt = Adam::new(2e-3);
    let mut tape = net.tape_seeded(0)?;
    let mut grads = net.grads()?;
    let mut x = Tensor::<S3<1, 28, 28>>::zeros(&Cpu, batch)?;
    let mut y = Labels::<10>::empty::<f32>(&Cpu)?;
    let mut dlogits = Tensor::<S1<10>>::zeros(&Cpu, batch)?;
    let (mut hx, mut hy) = (Vec::new(), Vec::new());
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    order.shuffle(&mut rng(1));
    let mut losses = Vec::new();
    for idx in order.chunks(batch).take(steps) {
        data.train.gather(idx, &mut hx, &mut hy);
        x.set_batch(idx.len())?;
        x.copy_from_slice(&hx)?;
        y.set::<f32>(&hy)?;
        let logits = net.forward_train(&x, &mut tape)?;
        losses.push(cross_entropy(logits, &y, Some(&mut dlogits))?);
        net.backward(&mut tape, &dlogits, &mut grads)?;
        opt.step(&mut net, &grads)?;
    }
    let first = losses[..10].iter().sum::<f32>() / 10.0;
    let last = losses[steps - 10..].iter().sum::<f32>() / 10.0;
    println!("training loss {first:.3} → {last:.3} over {steps} steps");
    assert!(last < 0.5 * first, "training loss {first} → {last}");

    // The checkpoint, loaded into a fresh network, is what is exported.
    let dir = std::env::temp_dir().join(format!("kiln-onnx-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("lenet.safetensors");
    checkpoint::save(&net, &ckpt)?;
    let mut loaded = LeNet5::<f32, Cpu>::init(&Cpu, &mut rng(99))?;
    checkpoint::load(&mut loaded, &ckpt)?;
    let model = dir.join("lenet.onnx");
    loaded.to_onnx(&model)?;

    // kiln's test accuracy, 1000 images at a time.
    let test = &data.test;
    let mut tape = loaded.tape()?;
    let mut xb = Tensor::<S3<1, 28, 28>>::zeros(&Cpu, 1000)?;
    let mut correct = 0;
    for s in (0..test.len()).step_by(1000) {
        let e = (s + 1000).min(test.len());
        xb.set_batch(e - s)?;
        xb.copy_from_slice(&test.x[s * test.dim..e * test.dim])?;
        let logits = loaded.forward_with(&xb, &mut tape)?.to_vec()?;
        correct += count_correct(&logits, 10, &test.y[s..e])?;
    }
    let kiln_acc = correct as f64 / test.len() as f64;

    let out = Command::new(onnx_ort::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/onnx/mnist_accuracy.py"
        ))
        .arg(&model)
        .arg(data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let ort_correct: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("correct "))
        .expect("a `correct N` line")
        .trim()
        .parse()
        .unwrap();
    println!(
        "kiln test accuracy {kiln_acc:.4} ({correct}/{}); {}; {:.1} s",
        test.len(),
        text.lines().next().unwrap_or(""),
        t0.elapsed().as_secs_f64()
    );
    assert!(kiln_acc > 0.9, "{kiln_acc}");
    assert_eq!(ort_correct, correct, "ONNX Runtime and kiln disagree");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

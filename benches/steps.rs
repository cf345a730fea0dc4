//! Criterion benchmarks of whole training steps (forward_train, softmax
//! cross-entropy into a reused gradient, backward, SGD) for the workloads of
//! `examples/bench.rs` that take milliseconds: W1 (MLP 784-256-128-10, batch
//! 128), W2 (LeNet-5, batch 64), W5 (small ResNet, batch 32), and W3's
//! inference at batch 1, and W1 with `detect_anomaly` on. W4 (seconds per
//! step) is in the bench example only.
//!
//! `cargo bench --bench steps`. The comparison with PyTorch is
//! `cargo run --release --example bench -- --torch-python PYTHON`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use kiln::prelude::*;
use std::time::Duration;

kiln::network! {
    pub struct Mlp { input: [784], fc1: Linear(256), relu, fc2: Linear(128), relu, fc3: Linear(10) }
}

/// LeNet-5, declared once in `kiln::models` (see there).
use kiln::models::LeNet5 as LeNet;

kiln::network! {
    pub struct BasicBlock {
        input x: [16, 32, 32],
        let h = x |> c1: Conv2d(16, kernel = 3, padding = 1, bias = false) |> bn1: BatchNorm2d |> relu
                  |> c2: Conv2d(16, kernel = 3, padding = 1, bias = false) |> bn2: BatchNorm2d;
        output relu(h + x);
    }
}

kiln::network! {
    pub struct ResNet {
        input: [3, 32, 32],
        stem: Conv2d(16, kernel = 3, padding = 1, bias = false),
        bn: BatchNorm2d,
        relu,
        block1: BasicBlock -> [16, 32, 32],
        block2: BasicBlock -> [16, 32, 32],
        block3: BasicBlock -> [16, 32, 32],
        gap: GlobalAvgPool,
        head: Linear(10),
    }
}

fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

macro_rules! train_step {
    ($c:expr, $name:expr, $net:ident, $shape:ty, $batch:expr) => {
        train_step!($c, $name, $net, $shape, $batch, false)
    };
    ($c:expr, $name:expr, $net:ident, $shape:ty, $batch:expr, $anomaly:expr) => {{
        let dev = Cpu;
        let mut net = $net::<f32, Cpu>::init(&dev, &mut rng(1)).unwrap();
        let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
        tape.ctx.detect_anomaly = $anomaly;
        let mut opt = Sgd::new(1e-3);
        let x =
            Tensor::<$shape>::from_vec(&dev, $batch, uniform($batch * <$shape as Shape>::NUMEL, 2))
                .unwrap();
        let y = Labels::<10>::new::<f32>(
            &dev,
            &(0..$batch as u32).map(|i| (i * 7) % 10).collect::<Vec<_>>(),
        )
        .unwrap();
        let mut d = Tensor::<S1<10>>::zeros(&dev, $batch).unwrap();
        $c.bench_function($name, |b| {
            b.iter(|| {
                let logits = net.forward_train(&x, &mut tape).unwrap();
                let loss = cross_entropy(logits, &y, Some(&mut d)).unwrap();
                net.backward(&mut tape, &d, &mut grads).unwrap();
                opt.step(&mut net, &grads).unwrap();
                black_box(loss)
            })
        });
    }};
}

fn steps(c: &mut Criterion) {
    train_step!(c, "W1 mlp train step b128", Mlp, S1<784>, 128);
    // What NaN/Inf detection costs when it is switched on (off, it is one
    // branch per node of the generated code: the row above).
    train_step!(
        c,
        "W1 mlp train step b128, detect_anomaly on",
        Mlp,
        S1<784>,
        128,
        true
    );
    train_step!(c, "W2 lenet5 train step b64", LeNet, S3<1, 28, 28>, 64);
    train_step!(c, "W5 resnet train step b32", ResNet, S3<3, 32, 32>, 32);
    let net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    let mut tape = net.tape().unwrap();
    let x = Tensor::<S1<784>>::from_vec(&Cpu, 1, uniform(784, 3)).unwrap();
    c.bench_function("W3 mlp inference b1", |b| {
        b.iter(|| black_box(net.forward_with(&x, &mut tape).unwrap().buf()[0]))
    });
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = steps }
criterion_main!(benches);

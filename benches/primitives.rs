//! Criterion benchmarks of kiln's CPU primitives, each as a one-layer
//! network (so a layer is timed as generated code calls it):
//!
//! * `linear`: `Linear(784 → 256)` at batch 128, forward (evaluation mode,
//!   `forward_with`) and backward (weight, bias and input gradients);
//! * `conv2d`: LeNet's second convolution (6→16, 5×5, on 14×14, batch 64) and
//!   a ResNet convolution (16→16, 3×3, padding 1, on 32×32, batch 32), forward
//!   and backward;
//! * `pool`: `MaxPool2d(2)` on 6×28×28, batch 64, forward and backward;
//! * `batch_norm`: `BatchNorm2d` on 16×32×32, batch 32, training-mode forward
//!   and backward;
//! * `softmax_ce`: softmax cross-entropy with its gradient, 128 × 10;
//! * `adam`: one Adam step over the 235,146 parameters of the W1 MLP;
//! * `sgemm`: a 512³ product through `Backend::gemm`.
//!
//! `cargo bench --bench primitives` (add `-- conv2d` to filter). Samples are
//! few and short so that the whole suite runs in about a minute.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use kiln::prelude::*;
use std::time::Duration;

kiln::network! {
    pub struct Lin { input: [784], fc: Linear(256) }
}
kiln::network! {
    pub struct ConvLeNet { input: [6, 14, 14], conv: Conv2d(16, kernel = 5) }
}
kiln::network! {
    pub struct ConvRes { input: [16, 32, 32], conv: Conv2d(16, kernel = 3, padding = 1, bias = false) }
}
kiln::network! {
    pub struct Pool { input: [6, 28, 28], pool: MaxPool2d(2) }
}
kiln::network! {
    pub struct Bn { input: [16, 32, 32], bn: BatchNorm2d }
}
kiln::network! {
    pub struct Mlp { input: [784], fc1: Linear(256), relu, fc2: Linear(128), relu, fc3: Linear(10) }
}

fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

/// Forward (evaluation) and backward of a one-input network `$net` at `$batch`.
macro_rules! fwd_bwd {
    ($c:expr, $name:expr, $net:ident, $in:ty, $out:ty, $batch:expr) => {{
        let dev = Cpu;
        let mut net = $net::<f32, Cpu>::init(&dev, &mut rng(0)).unwrap();
        let x = Tensor::<$in>::from_vec(&dev, $batch, uniform($batch * <$in as Shape>::NUMEL, 1))
            .unwrap();
        let dy =
            Tensor::<$out>::from_vec(&dev, $batch, uniform($batch * <$out as Shape>::NUMEL, 2))
                .unwrap();
        let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
        let mut g = $c.benchmark_group($name);
        g.bench_function("forward", |b| {
            b.iter(|| black_box(net.forward_with(&x, &mut tape).unwrap().buf()[0]))
        });
        net.forward_train(&x, &mut tape).unwrap();
        tape.input_grads = true;
        g.bench_function("backward", |b| {
            b.iter(|| net.backward(&mut tape, &dy, &mut grads).unwrap())
        });
        g.finish();
    }};
}

fn primitives(c: &mut Criterion) {
    fwd_bwd!(c, "linear 784x256 b128", Lin, S1<784>, S1<256>, 128);
    fwd_bwd!(c, "conv2d 6to16 5x5 14x14 b64", ConvLeNet, S3<6, 14, 14>, S3<16, 10, 10>, 64);
    fwd_bwd!(c, "conv2d 16to16 3x3 32x32 b32", ConvRes, S3<16, 32, 32>, S3<16, 32, 32>, 32);
    fwd_bwd!(c, "maxpool2 6x28x28 b64", Pool, S3<6, 28, 28>, S3<6, 14, 14>, 64);

    {
        let dev = Cpu;
        let mut net = Bn::<f32, Cpu>::init(&dev, &mut rng(0)).unwrap();
        let x = Tensor::<S3<16, 32, 32>>::from_vec(&dev, 32, uniform(32 * 16 * 1024, 1)).unwrap();
        let dy = Tensor::<S3<16, 32, 32>>::from_vec(&dev, 32, uniform(32 * 16 * 1024, 2)).unwrap();
        let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
        tape.input_grads = true;
        let mut g = c.benchmark_group("batchnorm2d 16x32x32 b32");
        g.bench_function("forward_train", |b| {
            b.iter(|| black_box(net.forward_train(&x, &mut tape).unwrap().buf()[0]))
        });
        g.bench_function("backward", |b| {
            b.iter(|| net.backward(&mut tape, &dy, &mut grads).unwrap())
        });
        g.finish();
    }
    {
        let dev = Cpu;
        let logits = Tensor::<S1<10>>::from_vec(&dev, 128, uniform(1280, 3)).unwrap();
        let labels: Vec<u32> = (0..128).map(|i| i % 10).collect();
        let y = Labels::<10>::new::<f32>(&dev, &labels).unwrap();
        let mut d = Tensor::<S1<10>>::zeros(&dev, 128).unwrap();
        c.bench_function("softmax_ce 128x10 with gradient", |b| {
            b.iter(|| black_box(cross_entropy(&logits, &y, Some(&mut d)).unwrap()))
        });
    }
    {
        let dev = Cpu;
        let mut net = Mlp::<f32, Cpu>::init(&dev, &mut rng(0)).unwrap();
        let mut grads = net.grads().unwrap();
        let x = Tensor::<S1<784>>::from_vec(&dev, 128, uniform(128 * 784, 1)).unwrap();
        let y = Labels::<10>::new::<f32>(&dev, &(0..128).map(|i| i % 10).collect::<Vec<u32>>())
            .unwrap();
        let mut tape = net.tape().unwrap();
        let mut d = Tensor::<S1<10>>::zeros(&dev, 128).unwrap();
        let logits = net.forward_train(&x, &mut tape).unwrap();
        cross_entropy(logits, &y, Some(&mut d)).unwrap();
        net.backward(&mut tape, &d, &mut grads).unwrap();
        let mut opt = Adam::new(1e-4);
        c.bench_function("adam step 235k params", |b| {
            b.iter(|| opt.step(&mut net, &grads).unwrap())
        });
    }
    {
        let n = 512;
        let (a, bm) = (uniform(n * n, 1), uniform(n * n, 2));
        let mut cm = vec![0.0f32; n * n];
        let g = kiln::Gemm::dense(n, n, n, false, false);
        c.bench_function("sgemm 512^3", |b| {
            b.iter(|| Backend::<f32>::gemm(&Cpu, &g, &a, &bm, &mut cm).unwrap())
        });
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! { name = benches; config = config(); targets = primitives }
criterion_main!(benches);

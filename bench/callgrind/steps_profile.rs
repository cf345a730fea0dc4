//! Runs N training steps (or inferences) of one benchmark workload on one
//! thread, for counting instructions per step under callgrind:
//!
//!     bench/callgrind/run WORKLOAD      (see that script)
//!
//! The workloads are those of `benches/steps.rs`. Instructions per step are
//! `(I(N2) − I(N1)) / (N2 − N1)`, which removes set-up and start-up.
//! Copied into `examples/` by the script, so it builds against any commit.

use kiln::prelude::*;
use rand::Rng as _;

kiln::network! {
    pub struct Mlp { input: [784], fc1: Linear(256), relu, fc2: Linear(128), relu, fc3: Linear(10) }
}

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

use kiln::models::LeNet5 as LeNet;

fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

macro_rules! train {
    ($net:ident, $shape:ty, $batch:expr, $steps:expr) => {{
        let dev = Cpu;
        let mut net = $net::<f32, Cpu>::init(&dev, &mut rng(1)).unwrap();
        let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
        let mut opt = Sgd::new(1e-3);
        let x = Tensor::<$shape>::from_vec(&dev, $batch, uniform($batch * <$shape as Shape>::NUMEL, 2))
            .unwrap();
        let y = Labels::<10>::new::<f32>(&dev, &(0..$batch as u32).map(|i| (i * 7) % 10).collect::<Vec<_>>())
            .unwrap();
        let mut d = Tensor::<S1<10>>::zeros(&dev, $batch).unwrap();
        let mut last = 0.0;
        for _ in 0..$steps {
            let logits = net.forward_train(&x, &mut tape).unwrap();
            last = cross_entropy(logits, &y, Some(&mut d)).unwrap();
            net.backward(&mut tape, &d, &mut grads).unwrap();
            opt.step(&mut net, &grads).unwrap();
        }
        println!("loss {last}");
    }};
}

fn main() {
    let mut a = std::env::args().skip(1);
    let w = a.next().expect("workload: W1, W2, W3 or W5");
    let steps: usize = a.next().expect("steps").parse().expect("a number");
    kiln::set_threads(1).unwrap();
    match w.as_str() {
        "W1" => train!(Mlp, S1<784>, 128, steps),
        "W2" => train!(LeNet, S3<1, 28, 28>, 64, steps),
        "W5" => train!(ResNet, S3<3, 32, 32>, 32, steps),
        "W3" => {
            let net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
            let mut tape = net.tape().unwrap();
            let x = Tensor::<S1<784>>::from_vec(&Cpu, 1, uniform(784, 3)).unwrap();
            let mut s = 0.0;
            for _ in 0..steps {
                s += net.forward_with(&x, &mut tape).unwrap().buf()[0];
            }
            println!("sum {s}");
        }
        _ => panic!("unknown workload {w}"),
    }
}

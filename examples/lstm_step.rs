//! Time per training step of a character-model-sized LSTM (issue 19's
//! reference configuration, one or two layers): `Embedding(84, 64)` →
//! `LSTM(512)` → `Linear(84)`, sequence 100, batch 32, per-position
//! cross-entropy, Adam 2e-3, on fixed random ids.
//!
//! ```text
//! cargo run --release --example lstm_step -- [steps] [layers]
//! ```
//!
//! Prints the median and the minimum of the timed steps (after 3 warm-up
//! steps) in milliseconds; `layers` is 1 (default), 2 (`LSTM(512, num_layers
//! = 2)`) or 3 (the same two layers as two `LSTM(512)`s).

use kiln::prelude::*;
use std::time::Instant;

const T: usize = 100;
const V: usize = 84;

kiln::network! {
    /// One LSTM layer of 512 units.
    pub struct One {
        input: Tokens<[100], 84>,
        emb: Embedding(84, 64),
        rnn: LSTM(512),
        fc: Linear(84),
    }
}

kiln::network! {
    /// Two stacked LSTM layers of 512 units (issue 19's char model).
    pub struct Two {
        input: Tokens<[100], 84>,
        emb: Embedding(84, 64),
        rnn: LSTM(512, num_layers = 2),
        fc: Linear(84),
    }
}

kiln::network! {
    /// The same two layers written as two one-layer LSTMs (no `Recurrent`
    /// wrapper), to measure what the stack's copies cost.
    pub struct TwoPlain {
        input: Tokens<[100], 84>,
        emb: Embedding(84, 64),
        l1: LSTM(512),
        l2: LSTM(512),
        fc: Linear(84),
    }
}

/// Runs `steps` timed training steps of `$net`; returns (median, min) in ms.
macro_rules! time_steps {
    ($net:ty, $steps:expr) => {{
        let mut r = rng(0);
        let batch = 32;
        let ids: Vec<u32> = (0..batch * T)
            .map(|_| r.random_range(0..V as u32))
            .collect();
        let tgt: Vec<u32> = (0..batch * T)
            .map(|_| r.random_range(0..V as u32))
            .collect();
        let x = Tokens::<S1<T>, V>::new::<f32>(&Cpu, &ids).unwrap();
        let y = Tokens::<S1<T>, V>::new::<f32>(&Cpu, &tgt).unwrap();
        let mut net = <$net>::init(&Cpu, &mut rng(1)).unwrap();
        let mut tape = net.tape().unwrap();
        let mut grads = net.grads().unwrap();
        let mut dlogits = Tensor::<S2<T, V>>::empty(&Cpu).unwrap();
        let mut opt = Adam::<f32, Cpu>::new(2e-3);
        let mut times = Vec::new();
        for i in 0..$steps + 3 {
            let t0 = Instant::now();
            let logits = net.forward_train(&x, &mut tape).unwrap();
            cross_entropy_tokens(logits, &y, None, Some(&mut dlogits)).unwrap();
            net.backward(&mut tape, &dlogits, &mut grads).unwrap();
            opt.step(&mut net, &grads).unwrap();
            if i >= 3 {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (times[times.len() / 2], times[0])
    }};
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let layers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let (med, min) = match layers {
        1 => time_steps!(One<f32>, steps),
        2 => time_steps!(Two<f32>, steps),
        _ => time_steps!(TwoPlain<f32>, steps),
    };
    println!("LSTM layers={layers} H=512 T=100 B=32: median {med:.2} ms, min {min:.2} ms over {steps} steps");
}

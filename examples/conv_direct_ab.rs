//! The direct convolution kernels (`kiln::kernels::conv_direct`) against
//! im2col + GEMM on the convolutions of the benchmark's and the examples'
//! networks, interleaved in one process so that a shared, noisy machine
//! affects both alike. Each round times, for every layer, its forward pass,
//! its input gradient alone (`InputGrad::backward_input`) and its weight
//! gradient alone (`backward` without `dx`), first with the direct kernels
//! allowed up to `--limit` terms per output (default 288, the library's;
//! `kiln::cpu::set_conv_direct_max_taps`), then with them off, and reports
//! the median over rounds of each round's median and the ratio. `taps` is
//! `channels_in · kh · kw` of the forward pass and of the input gradient
//! (whose sum runs over the output channels); a pass whose taps exceed the
//! limit, or whose kernel declines the layer for another reason, runs the
//! GEMM path in both columns (ratio ≈ 1).
//!
//! ```sh
//! cargo run --release --example conv_direct_ab -- --threads 2 --rounds 5
//! cargo run --release --example conv_direct_ab -- --threads 2 --rounds 5 --limit 100000
//! ```
//!
//! The direct kernels need AVX-512F; elsewhere both columns time the GEMM
//! path and the program says so.

#[path = "common/ab.rs"]
mod ab;
use ab::{arg, median, time_fn};
use kiln::cpu::set_conv_direct_max_taps;
use kiln::layers::{Conv2d, Conv2dConfig};
use kiln::prelude::*;
use kiln::{Acc, Build, GradMode, InputGrad, Layer, Module};

/// One layer: its label, the taps of its two image passes, and a function
/// that times its forward pass, input gradient and weight gradient once
/// each way (`[direct, gemm][pass]`) for a direct-kernel limit.
struct Case {
    label: &'static str,
    taps: (usize, usize),
    run: Box<dyn Fn(usize, usize) -> [[f64; 3]; 2]>,
}

#[allow(clippy::type_complexity)]
fn case<
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    label: &'static str,
    pad: usize,
    batch: usize,
) -> Case {
    let run = move |reps: usize, limit: usize| {
        let cfg = Conv2dConfig {
            padding: (pad, pad),
            bias: false,
            ..Default::default()
        };
        let conv = Conv2d::<f32, Cpu, CIN, COUT, CIN, K, K, H, W, OH, OW>::build(
            &Cpu,
            &mut kiln::rng(0),
            cfg,
        )
        .unwrap();
        let vals = |n: usize, s: usize| -> Vec<f32> {
            (0..n).map(|i| ((i * s % 13) as f32 - 6.0) * 0.05).collect()
        };
        let x = Tensor::<S3<CIN, H, W>>::from_slice(&Cpu, &vals(batch * CIN * H * W, 7)).unwrap();
        let dy =
            Tensor::<S3<COUT, OH, OW>>::from_slice(&Cpu, &vals(batch * COUT * OH * OW, 5)).unwrap();
        let mut cache = conv.cache().unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        let mut dx = Tensor::empty(&Cpu).unwrap();
        let mut g = conv.grads().unwrap();
        let mut out = [[0.0; 3]; 2];
        for (i, limit) in [limit, 0].into_iter().enumerate() {
            set_conv_direct_max_taps(limit);
            out[i][0] = time_fn(reps, || conv.forward(&x, &mut y, &mut cache).unwrap()).0;
            out[i][1] = time_fn(reps, || {
                conv.backward_input(
                    &x,
                    &y,
                    &mut cache,
                    &dy,
                    Some((&mut dx, Acc::Set)),
                    GradMode::Plain,
                )
                .unwrap()
            })
            .0;
            out[i][2] = time_fn(reps, || {
                conv.backward(&x, &y, &mut cache, &dy, None, &mut g, Acc::Set)
                    .unwrap()
            })
            .0;
        }
        std::hint::black_box((&y, &dx, &g.weight));
        out
    };
    Case {
        label,
        taps: (CIN * K * K, COUT * K * K),
        run: Box::new(run),
    }
}

fn main() {
    let threads = arg("--threads", 2);
    let rounds = arg("--rounds", 5);
    let reps = arg("--reps", 15);
    let limit = arg("--limit", 288);
    kiln::set_threads(threads).unwrap();
    let cases = [
        case::<3, 16, 3, 32, 32, 32, 32>("W5 stem 3→16 3×3 32×32 b32", 1, 32),
        case::<16, 16, 3, 32, 32, 32, 32>("W5 block 16→16 3×3 32×32 b32", 1, 32),
        case::<1, 6, 5, 28, 28, 24, 24>("W2 c1 1→6 5×5 28×28 b64", 0, 64),
        case::<6, 16, 5, 12, 12, 8, 8>("W2 c2 6→16 5×5 12×12 b64", 0, 64),
        case::<1, 32, 3, 28, 28, 28, 28>("pretrain c1 1→32 3×3 28×28 b64", 1, 64),
        case::<32, 64, 3, 14, 14, 14, 14>("pretrain c2 32→64 3×3 14×14 b64", 1, 64),
        case::<64, 128, 3, 7, 7, 7, 7>("pretrain c3 64→128 3×3 7×7 b64", 1, 64),
        case::<32, 32, 3, 16, 16, 16, 16>("32→32 3×3 16×16 b32", 1, 32),
        case::<64, 64, 3, 8, 8, 8, 8>("64→64 3×3 8×8 b32", 1, 32),
    ];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "conv_direct_ab: {threads} threads, {rounds} rounds of {reps} calls, direct kernels up to {limit} taps, AVX-512F {}; load {load}",
        if std::arch::is_x86_feature_detected!("avx512f") {
            "present"
        } else {
            "absent (both columns are the GEMM path)"
        }
    );
    // t[case][way][pass] over rounds
    let mut t = vec![
        [
            [Vec::new(), Vec::new(), Vec::new()],
            [Vec::new(), Vec::new(), Vec::new()]
        ];
        cases.len()
    ];
    for _ in 0..rounds {
        for (c, case) in cases.iter().enumerate() {
            let r = (case.run)(reps, limit);
            for way in 0..2 {
                for pass in 0..3 {
                    t[c][way][pass].push(r[way][pass]);
                }
            }
        }
    }
    set_conv_direct_max_taps(288);
    println!("| layer | taps fwd / dx | forward direct / GEMM | ratio | input grad direct / GEMM | ratio | weight grad direct / GEMM | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    for (c, case) in cases.iter().enumerate() {
        let m = |way: usize, pass: usize| median(&mut t[c][way][pass].clone()) * 1e3;
        let cell = |pass: usize| {
            format!(
                "{:.3} / {:.3} ms | {:.2}",
                m(0, pass),
                m(1, pass),
                m(0, pass) / m(1, pass)
            )
        };
        println!(
            "| {} | {} / {} | {} | {} | {} |",
            case.label,
            case.taps.0,
            case.taps.1,
            cell(0),
            cell(1),
            cell(2)
        );
    }
}

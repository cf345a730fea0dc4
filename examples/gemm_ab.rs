//! kiln's GEMM kernels compared on the products of a 2-layer, 512-unit LSTM
//! step (batch 32, 100 steps: 3200 rows; gates G = 2048, hidden H = 512,
//! input I = 64 or 512), interleaved in one process so that a shared,
//! noisy machine affects every kernel alike: each round times every shape
//! with the widest kernel, then with the cap at AVX2 (`set_gemm_kernel_cap`),
//! and reports the median over rounds and the ratio.
//!
//! ```sh
//! cargo run --release --example gemm_ab -- --threads 2 --rounds 7
//! ```
//!
//! With `--fit` it also times the recurrent product `M × 2048 × 512` for
//! several `M` and fits `t = t0 + M·t1`: `t0` is what a call costs whatever
//! its rows (mostly packing B, the 2048×512 weight), the question of whether a
//! pre-packed B would pay for a recurrent step's 100 calls with one weight
//! (fitted on the fastest of each size's calls, the least disturbed).

use kiln::cpu::{gemm_kernel_name, set_gemm_kernel_cap, GemmIsa};
use kiln::prelude::*;
use std::time::Instant;

/// `(label, m, n, k, trans_a, trans_b)`, as `core/src/layers/lstm.rs` calls them.
const SHAPES: &[(&str, usize, usize, usize, bool, bool)] = &[
    ("fwd recurrent h·W_hhᵀ", 32, 2048, 512, false, true),
    ("fwd input x·W_ihᵀ (I=512)", 3200, 2048, 512, false, true),
    ("fwd input x·W_ihᵀ (I=64)", 3200, 2048, 64, false, true),
    ("bwd recurrent dA·W_hh", 32, 512, 2048, false, false),
    ("bwd dX = dA·W_ih (I=512)", 3200, 512, 2048, false, false),
    ("bwd dX = dA·W_ih (I=64)", 3200, 64, 2048, false, false),
    ("bwd dW_ih = dAᵀ·x (I=512)", 2048, 512, 3200, true, false),
    ("bwd dW_ih = dAᵀ·x (I=64)", 2048, 64, 3200, true, false),
    ("bwd dW_hh per sample", 2048, 512, 99, true, false),
    ("square 1024³", 1024, 1024, 1024, false, false),
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// Median and fastest seconds of one product over `reps` calls (after one
/// warm-up call).
fn time(m: usize, n: usize, k: usize, ta: bool, tb: bool, reps: usize) -> (f64, f64) {
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.01)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.01)
        .collect();
    let mut c = vec![0.0f32; m * n];
    let g = kiln::Gemm::dense(m, n, k, ta, tb);
    Backend::<f32>::gemm(&Cpu, &g, &a, &b, &mut c).unwrap();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            Backend::<f32>::gemm(&Cpu, &g, &a, &b, &mut c).unwrap();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    std::hint::black_box(&c);
    (t[reps / 2], t[0])
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let threads = arg("--threads", 2);
    let rounds = arg("--rounds", 5);
    kiln::set_threads(threads).unwrap();
    let caps = [(GemmIsa::Avx512, "wide"), (GemmIsa::Avx2, "avx2")];
    set_gemm_kernel_cap(GemmIsa::Avx512);
    let wide = gemm_kernel_name::<f32>();
    set_gemm_kernel_cap(GemmIsa::Avx2);
    let narrow = gemm_kernel_name::<f32>();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("gemm_ab: {threads} threads, {rounds} rounds, `{wide}` vs `{narrow}`; load {load}");
    // times[shape][kernel] over rounds
    let mut times = vec![[Vec::new(), Vec::new()]; SHAPES.len()];
    for _ in 0..rounds {
        for (s, &(_, m, n, k, ta, tb)) in SHAPES.iter().enumerate() {
            let reps = (2e9 / (2.0 * (m * n * k) as f64)).clamp(5.0, 200.0) as usize;
            for (i, &(cap, _)) in caps.iter().enumerate() {
                set_gemm_kernel_cap(cap);
                times[s][i].push(time(m, n, k, ta, tb, reps).0);
            }
        }
    }
    println!(
        "| product | m×n×k | {wide} | GFLOP/s | {narrow} | GFLOP/s | wide ÷ AVX2 time (min–max over rounds) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (s, &(label, m, n, k, _, _)) in SHAPES.iter().enumerate() {
        let ratios: Vec<f64> = (0..rounds)
            .map(|r| times[s][0][r] / times[s][1][r])
            .collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
        let w = median(&mut times[s][0].clone());
        let a = median(&mut times[s][1].clone());
        let gf = |t: f64| 2.0 * (m * n * k) as f64 / t / 1e9;
        println!(
            "| {label} | {m}×{n}×{k} | {:.1} µs | {:.0} | {:.1} µs | {:.0} | **{:.2}×** ({lo:.2}–{hi:.2}) |",
            w * 1e6,
            gf(w),
            a * 1e6,
            gf(a),
            median(&mut ratios.clone()),
        );
    }
    if std::env::args().any(|a| a == "--fit") {
        set_gemm_kernel_cap(GemmIsa::Avx512);
        let ms = [12usize, 24, 36, 48, 72, 96];
        let mut pts = Vec::new();
        for &m in &ms {
            let t: Vec<f64> = (0..rounds)
                .map(|_| time(m, 2048, 512, false, true, 50).1)
                .collect();
            // The fastest call: on a loaded machine the least disturbed.
            pts.push((m as f64, t.iter().copied().fold(f64::MAX, f64::min)));
        }
        let n = pts.len() as f64;
        let (sx, sy) = pts.iter().fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
        let (mx, my) = (sx / n, sy / n);
        let t1 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
            / pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
        let t0 = my - t1 * mx;
        for (m, t) in &pts {
            println!("fit: M = {m:>4}: {:.1} µs", t * 1e6);
        }
        println!(
            "fit: t = {:.1} µs + M·{:.2} µs ({wide}, {threads} threads): at M = 32, the fixed part is {:.0} % of a call",
            t0 * 1e6,
            t1 * 1e6,
            100.0 * t0 / (t0 + 32.0 * t1)
        );
    }
    set_gemm_kernel_cap(GemmIsa::Avx512);
}

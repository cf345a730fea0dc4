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
//!
//! With `--packed` it times instead, interleaved, what the recurrent layers
//! do since `Backend::pack_gemm_b`: the two step products with `W_hh`
//! packed on every call (`gemm`) and packed once (`gemm_packed_b`; the
//! packing itself timed apart), and `∂L/∂W_hh` as 32 products of 99 rows
//! (one per sample, as before) and as one of 3200 rows.
//!
//! ```sh
//! cargo run --release --example gemm_ab -- --threads 2 --rounds 7 --packed
//! ```
//!
//! With `--fused` it times, interleaved, a dense layer followed by an
//! activation as `network!` emitted it before issue 17's fusion (`gemm`, then
//! `add_bias`, then `act_fwd`: three passes over the output) and as it emits
//! it now (`gemm_bias_act`: the bias and the function applied to each tile
//! while it is in cache), on the shapes of W1's two hidden layers, W4's and
//! `char_gpt`'s MLP.
//!
//! ```sh
//! cargo run --release --example gemm_ab -- --threads 2 --rounds 15 --fused
//! ```

//! With `--floor` it times the products of one `char_lstm` training step
//! (the bench's W6: batch 32, 100 steps, two 512-unit layers on 64 then 512
//! inputs, the 84-way head over all 3,200 rows) alone, called as the layers
//! call them (the same shapes, strides and packing, in the step's order),
//! with no element-wise work between them: the time a W6 step would take if
//! everything but its products were free, by group (the per-step products
//! of 32 rows, the products over all 3,200 rows, packing `W_hh`), each
//! group's rate as a share of the FMA peak.
//!
//! ```sh
//! cargo run --release --example gemm_ab -- --threads 2 --rounds 9 --floor
//! ```

//! With `--wide` it times, interleaved, the element-wise functions'
//! forward and backward passes (`act_fwd`, `act_bwd`) over `char_gpt`'s MLP
//! activations (768×512) at the baseline vector width (the cap at
//! `portable`) and at the CPU's widest (`kiln::cpu::elementwise_isa`).
//!
//! ```sh
//! cargo run --release --example gemm_ab -- --threads 2 --rounds 15 --wide
//! ```

#[path = "common/ab.rs"]
mod ab;
use ab::{arg, median, min_max, time_fn, vals};
use kiln::cpu::{elementwise_isa, gemm_kernel_name, set_gemm_kernel_cap, GemmIsa};
use kiln::prelude::*;
use kiln::{Act, Gemm, PackedB};
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

/// Median and fastest seconds of one product over `reps` calls (after one
/// warm-up call).
fn time(m: usize, n: usize, k: usize, ta: bool, tb: bool, reps: usize) -> (f64, f64) {
    let a = vals(m * k, 7);
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

/// `--packed`: the recurrent products with `W_hh` packed per call and once,
/// and `∂L/∂W_hh` per sample and in one product; median over rounds of each
/// round's median.
fn packed_ab(rounds: usize) {
    let w = vals(2048 * 512, 5);
    let mut rows: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    let mut pack_t = Vec::new();
    for _ in 0..rounds {
        for (i, (label, g)) in [
            (
                "fwd h·W_hhᵀ 32×2048×512",
                Gemm::dense(32, 2048, 512, false, true),
            ),
            (
                "bwd δ·W_hh 32×512×2048",
                Gemm::dense(32, 512, 2048, false, false),
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let a = vals(g.m * g.k, 7);
            let mut c = vec![0.0f32; g.m * g.n];
            let mut p = PackedB::new();
            let tp = time_fn(20, || {
                Backend::<f32>::pack_gemm_b(&Cpu, &g, &w, &mut p).unwrap()
            })
            .0;
            pack_t.push(tp);
            let t0 = time_fn(100, || {
                Backend::<f32>::gemm(&Cpu, &g, &a, &w, &mut c).unwrap()
            })
            .0;
            let t1 = time_fn(100, || {
                Backend::<f32>::gemm_packed_b(&Cpu, &g, &a, &w, &p, &mut c).unwrap()
            })
            .0;
            if rows.len() <= i {
                rows.push((label.to_string(), Vec::new(), Vec::new()));
            }
            rows[i].1.push(t0);
            rows[i].2.push(t1);
        }
        // ∂L/∂W_hh: δ [3200, 2048] (rows b·100 + t), h_prev [3200, 512].
        let (d, h) = (vals(3200 * 2048, 3), vals(3200 * 512, 7));
        let mut dw = vec![0.0f32; 2048 * 512];
        let t0 = time_fn(3, || {
            for b in 0..32 {
                let g = Gemm {
                    a_off: (b * 100 + 1) * 2048,
                    b_off: b * 100 * 512,
                    ..Gemm::dense(2048, 512, 99, true, false)
                }
                .acc(if b == 0 { Acc::Set } else { Acc::Add });
                Backend::<f32>::gemm(&Cpu, &g, &d, &h, &mut dw).unwrap();
            }
        })
        .0;
        let g = Gemm::dense(2048, 512, 3200, true, false);
        let t1 = time_fn(3, || {
            Backend::<f32>::gemm(&Cpu, &g, &d, &h, &mut dw).unwrap()
        })
        .0;
        if rows.len() <= 2 {
            rows.push((
                "∂L/∂W_hh: 32 × (2048×512×99) vs 2048×512×3200".into(),
                Vec::new(),
                Vec::new(),
            ));
        }
        rows[2].1.push(t0);
        rows[2].2.push(t1);
    }
    println!("| product | before (packed per call / per sample) | after (packed once / one product) | after ÷ before (min–max over rounds) |");
    println!("|---|---|---|---|");
    for (label, before, after) in &rows {
        let r: Vec<f64> = before.iter().zip(after).map(|(b, a)| a / b).collect();
        let (lo, hi) = min_max(&r);
        println!(
            "| {label} | {:.1} µs | {:.1} µs | **{:.2}×** ({lo:.2}–{hi:.2}) |",
            median(&mut before.clone()) * 1e6,
            median(&mut after.clone()) * 1e6,
            median(&mut r.clone())
        );
    }
    println!(
        "packing W_hh (2048×512) once: {:.1} µs (median)",
        median(&mut pack_t) * 1e6
    );
}

/// `--fused`: a dense layer's forward and its activation unfused (three
/// passes) and fused (one call); median over rounds of each round's median.
fn fused_ab(rounds: usize) {
    // (label, batch rows, out, in, function)
    let shapes: [(&str, usize, usize, usize, Act); 4] = [
        ("W1 fc1 + ReLU", 128, 256, 784, Act::Relu),
        ("W1 fc2 + ReLU", 128, 128, 256, Act::Relu),
        ("char_gpt MLP fc + GELU", 768, 512, 128, Act::Gelu),
        ("W4 fc + ReLU", 512, 4096, 4096, Act::Relu),
    ];
    let mut rows: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); shapes.len()];
    let mut alone: Vec<Vec<f64>> = vec![Vec::new(); shapes.len()];
    for round in 0..rounds {
        for (s, &(_, m, n, k, f)) in shapes.iter().enumerate() {
            let g = Gemm::dense(m, n, k, false, true);
            let (x, w, b) = (vals(m * k, 7), vals(n * k, 5), vals(n, 3));
            let (mut pre, mut y) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
            let reps = (2e9 / (2.0 * (m * n * k) as f64)).clamp(5.0, 400.0) as usize;
            let unfused = |pre: &mut Vec<f32>, y: &mut Vec<f32>| {
                time_fn(reps, || {
                    Backend::<f32>::gemm(&Cpu, &g, &x, &w, pre).unwrap();
                    Backend::<f32>::add_bias(&Cpu, pre, &b, m, n).unwrap();
                    Backend::<f32>::act_fwd(&Cpu, f, pre, y, m * n).unwrap();
                })
                .0
            };
            let fused = |pre: &mut Vec<f32>, y: &mut Vec<f32>| {
                time_fn(reps, || {
                    Backend::<f32>::gemm_bias_act(
                        &Cpu,
                        &g,
                        &x,
                        &w,
                        pre,
                        Some(&b),
                        Some((f, &mut *y)),
                    )
                    .unwrap();
                })
                .0
            };
            // Each goes first in every other round, so that an order effect
            // (the clock, the caches) falls on both alike.
            let (t0, t1) = if round % 2 == 0 {
                let t0 = unfused(&mut pre, &mut y);
                (t0, fused(&mut pre, &mut y))
            } else {
                let t1 = fused(&mut pre, &mut y);
                (unfused(&mut pre, &mut y), t1)
            };
            // The product alone: what the two separate passes add to it is
            // all that fusing them could save.
            let t2 = time_fn(reps, || {
                Backend::<f32>::gemm(&Cpu, &g, &x, &w, &mut pre).unwrap();
            })
            .0;
            rows[s].0.push(t0);
            rows[s].1.push(t1);
            alone[s].push(t2);
        }
    }
    println!("| layer | rows×out×in | product alone (gemm) | unfused (gemm, add_bias, act_fwd) | fused (gemm_bias_act) | fused ÷ unfused (min–max over rounds) |");
    println!("|---|---|---|---|---|---|");
    for ((&(label, m, n, k, _), (before, after)), t2) in shapes.iter().zip(&rows).zip(&alone) {
        let r: Vec<f64> = before.iter().zip(after).map(|(b, a)| a / b).collect();
        let (lo, hi) = min_max(&r);
        println!(
            "| {label} | {m}×{n}×{k} | {:.1} µs | {:.1} µs | {:.1} µs | **{:.3}×** ({lo:.2}–{hi:.2}) |",
            median(&mut t2.clone()) * 1e6,
            median(&mut before.clone()) * 1e6,
            median(&mut after.clone()) * 1e6,
            median(&mut r.clone())
        );
    }
}

/// `--wide`: each element-wise function's forward and backward pass at the
/// baseline width and at the widest; median over rounds of each round's median.
fn wide_ab(rounds: usize) {
    let n = 768 * 512;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7 % 101) as f32 - 50.0) * 0.06)
        .collect();
    let dy = vals(n, 5);
    let fs = [
        ("GELU (erf)", Act::Gelu),
        ("GELU (tanh)", Act::GeluTanh),
        ("sigmoid", Act::Sigmoid),
        ("tanh", Act::Tanh),
        ("ReLU", Act::Relu),
    ];
    let widest = elementwise_isa();
    // [function][fwd base, fwd wide, bwd base, bwd wide] → per-round medians
    let mut t: Vec<[Vec<f64>; 4]> = (0..fs.len()).map(|_| Default::default()).collect();
    let (mut y, mut dx) = (vec![0.0f32; n], vec![0.0f32; n]);
    for round in 0..rounds {
        for (i, &(_, f)) in fs.iter().enumerate() {
            let order = if round % 2 == 0 {
                [GemmIsa::Portable, widest]
            } else {
                [widest, GemmIsa::Portable]
            };
            for cap in order {
                set_gemm_kernel_cap(cap);
                let w = usize::from(cap != GemmIsa::Portable);
                let fwd = time_fn(20, || {
                    Backend::<f32>::act_fwd(&Cpu, f, &x, &mut y, n).unwrap()
                })
                .0;
                let bwd = time_fn(20, || {
                    Backend::<f32>::act_bwd(&Cpu, f, &x, &y, &dy, &mut dx, n, kiln::Acc::Set)
                        .unwrap()
                })
                .0;
                t[i][w].push(fwd);
                t[i][2 + w].push(bwd);
            }
        }
    }
    set_gemm_kernel_cap(GemmIsa::Avx512);
    println!("| function | forward, baseline | forward, {widest:?} | ratio | backward, baseline | backward, {widest:?} | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for ((label, _), v) in fs.iter().zip(&mut t) {
        let [a, b, c, d] = v;
        let (a, b, c, d) = (median(a), median(b), median(c), median(d));
        println!(
            "| {label} | {:.1} µs | {:.1} µs | **{:.2}×** | {:.1} µs | {:.1} µs | **{:.2}×** |",
            a * 1e6,
            b * 1e6,
            b / a,
            c * 1e6,
            d * 1e6,
            d / c
        );
    }
}

/// `--floor`: one W6 step's products alone, in the step's order, by group;
/// the medians over rounds of each group's total.
fn floor_w6(rounds: usize, threads: usize) {
    const B: usize = 32;
    const T: usize = 100;
    const H: usize = 512;
    const G: usize = 4 * H;
    const V: usize = 84;
    let rows = B * T;
    // Each layer's input, W_ih and ∂W_ih, ∂x (input widths 64 and 512).
    let mut layers: Vec<_> = [64usize, 512]
        .iter()
        .map(|&i| {
            (
                i,
                vals(rows * i, 7),
                vals(G * i, 5),
                vec![0.0f32; G * i],
                vec![0.0f32; rows * i],
            )
        })
        .collect();
    let (mut gates, dgates, y) = (vals(rows * G, 3), vals(rows * G, 5), vals(rows * H, 7));
    let (whh, mut dwhh, mut dh) = (vals(G * H, 11), vec![0.0f32; G * H], vec![0.0f32; B * H]);
    let mut packed = PackedB::new();
    let (head_w, mut head_dw) = (vals(V * H, 5), vec![0.0f32; V * H]);
    let (mut logits, dlogits, mut dy) = (
        vec![0.0f32; rows * V],
        vals(rows * V, 3),
        vec![0.0f32; rows * H],
    );
    // (seconds, FLOPs) of each group, per round: 0 the 32-row step products,
    // 1 the products over all rows, 2 packing W_hh.
    let mut per_round: Vec<[(f64, f64); 3]> = Vec::new();
    let timed = |acc: &mut (f64, f64), flops: usize, f: &mut dyn FnMut()| {
        let s = Instant::now();
        f();
        acc.0 += s.elapsed().as_secs_f64();
        acc.1 += 2.0 * flops as f64;
    };
    let gemm = |g: Gemm, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>| {
        Backend::<f32>::gemm(&Cpu, &g, a, b, c).unwrap()
    };
    let macs = |g: &Gemm| g.m * g.n * g.k;
    for round in 0..=rounds {
        let mut acc = [(0.0, 0.0); 3];
        for (i, x, w_ih, dw_ih, dx) in layers.iter_mut() {
            let i = *i;
            // Forward: the input product over every row, then the steps.
            let g = Gemm::dense(rows, G, i, false, true);
            timed(&mut acc[1], macs(&g), &mut || gemm(g, x, w_ih, &mut gates));
            let g = Gemm::dense(B, G, H, false, true);
            timed(&mut acc[2], 0, &mut || {
                Backend::<f32>::pack_gemm_b(&Cpu, &g, &whh, &mut packed).unwrap()
            });
            timed(&mut acc[0], (T - 1) * macs(&g), &mut || {
                for t in 1..T {
                    let g = Gemm {
                        a_off: (t - 1) * H,
                        lda: T * H,
                        c_off: t * G,
                        ldc: T * G,
                        ..g
                    }
                    .acc(Acc::Add);
                    Backend::<f32>::gemm_packed_b(&Cpu, &g, &y, &whh, &packed, &mut gates).unwrap();
                }
            });
            // Backward: the steps, then the weight and input gradients.
            let g = Gemm::dense(B, H, G, false, false);
            timed(&mut acc[2], 0, &mut || {
                Backend::<f32>::pack_gemm_b(&Cpu, &g, &whh, &mut packed).unwrap()
            });
            timed(&mut acc[0], (T - 1) * macs(&g), &mut || {
                for t in (1..T).rev() {
                    let g = Gemm {
                        a_off: t * G,
                        lda: T * G,
                        ..g
                    };
                    Backend::<f32>::gemm_packed_b(&Cpu, &g, &dgates, &whh, &packed, &mut dh)
                        .unwrap();
                }
            });
            let g = Gemm::dense(G, i, rows, true, false);
            timed(&mut acc[1], macs(&g), &mut || gemm(g, &dgates, x, dw_ih));
            let g = Gemm::dense(G, H, rows, true, false);
            timed(&mut acc[1], macs(&g), &mut || {
                gemm(g, &dgates, &y, &mut dwhh)
            });
            let g = Gemm::dense(rows, i, G, false, false);
            timed(&mut acc[1], macs(&g), &mut || gemm(g, &dgates, w_ih, dx));
        }
        // The head over every row: forward, weight and input gradients.
        let g = Gemm::dense(rows, V, H, false, true);
        timed(&mut acc[1], macs(&g), &mut || {
            gemm(g, &y, &head_w, &mut logits)
        });
        let g = Gemm::dense(V, H, rows, true, false);
        timed(&mut acc[1], macs(&g), &mut || {
            gemm(g, &dlogits, &y, &mut head_dw)
        });
        let g = Gemm::dense(rows, H, V, false, false);
        timed(&mut acc[1], macs(&g), &mut || {
            gemm(g, &dlogits, &head_w, &mut dy)
        });
        if round > 0 {
            per_round.push(acc); // round 0 warms up
        }
    }
    let peak = kiln::cpu::fma_peak_gflops(kiln::cpu::gemm_kernel_isa::<f32>(), threads)
        .unwrap_or(f64::NAN);
    println!("FMA peak ({threads} threads): {peak:.1} GFLOP/s");
    println!("| group | time per step (median; min–max) | GFLOP | GFLOP/s | share of the peak |");
    println!("|---|---|---|---|---|");
    let row = |label: &str, mut t: Vec<f64>, flops: f64| {
        let (lo, hi) = min_max(&t);
        let tm = median(&mut t);
        let rate = flops / tm / 1e9;
        if flops > 0.0 {
            println!(
                "| {label} | {:.1} ms ({:.1}–{:.1}) | {:.2} | {rate:.0} | {:.0} % |",
                tm * 1e3,
                lo * 1e3,
                hi * 1e3,
                flops / 1e9,
                100.0 * rate / peak
            );
        } else {
            println!(
                "| {label} | {:.1} ms ({:.1}–{:.1}) | – | – | – |",
                tm * 1e3,
                lo * 1e3,
                hi * 1e3
            );
        }
    };
    let labels = [
        "per-step products, 32 rows (h·W_hhᵀ, δ·W_hh; 4 × 99 calls)",
        "products over all 3,200 rows (input, ∂W_ih, ∂W_hh, ∂x, head)",
        "packing W_hh (4 times)",
    ];
    for (k, label) in labels.iter().enumerate() {
        row(
            label,
            per_round.iter().map(|a| a[k].0).collect(),
            per_round[0][k].1,
        );
    }
    row(
        "**all the step's products**",
        per_round
            .iter()
            .map(|a| a.iter().map(|g| g.0).sum())
            .collect(),
        per_round[0].iter().map(|g| g.1).sum(),
    );
    std::hint::black_box((&layers, &dwhh, &dh, &head_dw, &logits, &dy));
}

fn main() {
    let threads = arg("--threads", 2);
    let rounds = arg("--rounds", 5);
    kiln::set_threads(threads).unwrap();
    if std::env::args().any(|a| a == "--wide") {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "gemm_ab --wide: {threads} threads, {rounds} rounds, 768×512 f32 values; load {load}"
        );
        wide_ab(rounds);
        return;
    }
    if std::env::args().any(|a| a == "--packed") {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "gemm_ab --packed: {threads} threads, {rounds} rounds, `{}`; load {load}",
            gemm_kernel_name::<f32>()
        );
        packed_ab(rounds);
        return;
    }
    if std::env::args().any(|a| a == "--floor") {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "gemm_ab --floor: {threads} threads, {rounds} rounds, `{}`; load {load}",
            gemm_kernel_name::<f32>()
        );
        floor_w6(rounds, threads);
        return;
    }
    if std::env::args().any(|a| a == "--fused") {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "gemm_ab --fused: {threads} threads, {rounds} rounds, `{}`; load {load}",
            gemm_kernel_name::<f32>()
        );
        fused_ab(rounds);
        return;
    }
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
        let (lo, hi) = min_max(&ratios);
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

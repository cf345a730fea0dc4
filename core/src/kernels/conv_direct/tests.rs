//! The direct kernels against their formulas evaluated term by term in
//! `f64`, the input gradient against the adjoint identity, and the cases
//! they take and decline. On a CPU without AVX-512F the kernel never runs: the tests
//! say so and check only that it declines.

use super::*;
use crate::testing::random_input;

fn has_avx512() -> bool {
    let yes = crate::simd::avx512();
    if !yes {
        eprintln!(
            "conv_direct: skipped, this CPU has no AVX-512F (the kernel declines every case)"
        );
    }
    yes
}

/// The module doc's sums, term by term in `f64`: the value and the sum of
/// the terms' magnitudes (the scale of the rounding error).
fn reference(
    g: &Window2d,
    co: usize,
    w: &[f32],
    src: &[f32],
    batch: usize,
    pass: DirectPass,
) -> (Vec<f64>, Vec<f64>) {
    let ci = g.channels;
    let (dc, dh, dw) = match pass {
        DirectPass::Forward => (co, g.oh, g.ow),
        DirectPass::InputGrad => (ci, g.h, g.w),
    };
    let mut y = vec![0.0; batch * dc * dh * dw];
    let mut mag = y.clone();
    for s in 0..batch {
        for o in 0..co {
            for c in 0..ci {
                for a in 0..g.kh {
                    for b in 0..g.kw {
                        let wv = w[((o * ci + c) * g.kh + a) * g.kw + b] as f64;
                        for r in 0..g.oh {
                            for j in 0..g.ow {
                                let iy = (r + a) as isize - g.ph as isize;
                                let ix = (j + b) as isize - g.pw as isize;
                                if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w {
                                    continue;
                                }
                                let (iy, ix) = (iy as usize, ix as usize);
                                let xi = ((s * ci + c) * g.h + iy) * g.w + ix;
                                let yi = ((s * co + o) * g.oh + r) * g.ow + j;
                                // Forward: y[yi] += w·x[xi]; input gradient:
                                // dx[xi] += w·dy[yi] (the same pairs of
                                // positions, read the other way).
                                let (t, at) = match pass {
                                    DirectPass::Forward => (wv * src[xi] as f64, yi),
                                    DirectPass::InputGrad => (wv * src[yi] as f64, xi),
                                };
                                y[at] += t;
                                mag[at] += t.abs();
                            }
                        }
                    }
                }
            }
        }
    }
    (y, mag)
}

/// `(ci, co, h, w, kh, kw, ph, pw)`: the W5 and LeNet layers, row ends
/// (widths 5, 16, 17, 33, 40), channel counts that are not multiples of 8,
/// rectangular kernels, no padding and the largest padding.
/// `(ci, co, h, w, kh, kw, ph, pw)` of one case.
type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

const CASES: [Case; 12] = [
    (16, 16, 32, 32, 3, 3, 1, 1),
    (3, 16, 32, 32, 3, 3, 1, 1),
    (1, 6, 28, 28, 5, 5, 0, 0),
    (6, 16, 12, 12, 5, 5, 0, 0),
    (16, 16, 8, 8, 3, 3, 1, 1),
    (5, 3, 7, 5, 3, 3, 2, 2),
    (2, 9, 6, 17, 3, 1, 1, 0),
    (4, 13, 9, 33, 1, 3, 0, 1),
    (8, 8, 5, 40, 3, 3, 1, 1),
    (3, 5, 16, 16, 2, 2, 1, 0),
    (1, 1, 3, 3, 3, 3, 0, 0),
    (16, 4, 4, 4, 3, 3, 2, 2),
];

fn geometry(case: Case) -> (Window2d, usize) {
    let (ci, co, h, w, kh, kw, ph, pw) = case;
    let g = Window2d::new("test", ci, (h, w), (kh, kw), (1, 1), (ph, pw), (1, 1)).unwrap();
    (g, co)
}

#[test]
fn both_passes_match_the_formulas() {
    if !has_avx512() {
        return;
    }
    let mut rng = crate::rng(7);
    let mut scratch = Vec::new();
    let batch = 3;
    for case in CASES {
        let (g, co) = geometry(case);
        let w: Vec<f32> = random_input(co * g.rows(), &mut rng)
            .iter()
            .map(|&v| v as f32)
            .collect();
        for pass in [DirectPass::Forward, DirectPass::InputGrad] {
            let (sn, dn) = match pass {
                DirectPass::Forward => (g.channels * g.in_plane(), co * g.out_plane()),
                DirectPass::InputGrad => (co * g.out_plane(), g.channels * g.in_plane()),
            };
            let src: Vec<f32> = random_input(batch * sn, &mut rng)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let old: Vec<f32> = random_input(batch * dn, &mut rng)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let (want, mag) = reference(&g, co, &w, &src, batch, pass);
            for acc in [Acc::Set, Acc::Add] {
                let mut dst = old.clone();
                assert!(run(
                    &g,
                    co,
                    &w,
                    &src,
                    &mut dst,
                    batch,
                    pass,
                    acc,
                    &mut scratch
                ));
                for i in 0..dst.len() {
                    let base = if acc == Acc::Add { old[i] as f64 } else { 0.0 };
                    let (got, exp) = (dst[i] as f64, base + want[i]);
                    let tol = 1e-6 * (mag[i] + base.abs()) + 1e-30;
                    assert!(
                        (got - exp).abs() <= tol,
                        "{case:?} {pass:?} {acc:?} at {i}: {got} against {exp} (tolerance {tol:e})"
                    );
                }
            }
        }
    }
}

/// `⟨F(x), dy⟩ = ⟨x, G(dy)⟩`: the input gradient is the forward's adjoint,
/// checked through the kernel alone (f64 inner products of f32 results).
#[test]
fn input_grad_is_the_forwards_adjoint() {
    if !has_avx512() {
        return;
    }
    let mut rng = crate::rng(11);
    let mut scratch = Vec::new();
    let batch = 2;
    for case in CASES {
        let (g, co) = geometry(case);
        let f = |v: Vec<f64>| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let w = f(random_input(co * g.rows(), &mut rng));
        let x = f(random_input(batch * g.channels * g.in_plane(), &mut rng));
        let dy = f(random_input(batch * co * g.out_plane(), &mut rng));
        let mut y = vec![0.0f32; dy.len()];
        let mut dx = vec![0.0f32; x.len()];
        assert!(run(
            &g,
            co,
            &w,
            &x,
            &mut y,
            batch,
            DirectPass::Forward,
            Acc::Set,
            &mut scratch
        ));
        assert!(run(
            &g,
            co,
            &w,
            &dy,
            &mut dx,
            batch,
            DirectPass::InputGrad,
            Acc::Set,
            &mut scratch
        ));
        let dot = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(&u, &v)| u as f64 * v as f64)
                .sum::<f64>()
        };
        let scale = dot(
            &y.iter().map(|v| v.abs()).collect::<Vec<_>>(),
            &dy.iter().map(|v| v.abs()).collect::<Vec<_>>(),
        );
        let (l, r) = (dot(&y, &dy), dot(&x, &dx));
        assert!(
            (l - r).abs() <= 1e-5 * scale,
            "{case:?}: ⟨F x, dy⟩ = {l}, ⟨x, G dy⟩ = {r}"
        );
    }
}

#[test]
fn declines_what_it_does_not_cover() {
    let g = |ci, k, s, p, d| {
        Window2d::new("test", ci, (12, 12), (k, k), (s, s), (p, p), (d, d)).unwrap()
    };
    let (w, x) = (vec![0.0f32; 65 * 65 * 9], vec![0.0f32; 65 * 144]);
    let mut y = vec![1.0f32; 65 * 144];
    let mut scratch = Vec::new();
    for (geom, why) in [
        (g(4, 3, 2, 1, 1), "stride 2"),
        (g(4, 3, 1, 2, 2), "dilation 2"),
        (g(4, 3, 1, 3, 1), "padding as large as the kernel"),
        (g(65, 3, 1, 1, 1), "65·9 terms per output, either way"),
    ] {
        for pass in [DirectPass::Forward, DirectPass::InputGrad] {
            assert!(!applies(&geom, 65, pass), "{why}");
            assert!(
                !conv_direct(&geom, 65, &w, &x, &mut y, 1, pass, Acc::Set, &mut scratch),
                "{why}"
            );
        }
    }
    assert!(
        y.iter().all(|&v| v == 1.0),
        "a declined call wrote its output"
    );
    // Under a kernel cap below AVX-512 it declines every case.
    crate::gemm::with_kernel_cap(crate::gemm::Isa::Avx2, || {
        assert!(!applies(&g(4, 3, 1, 1, 1), 16, DirectPass::Forward));
    });
}

/// Which layers it takes by default: few taps, enough output channels.
#[test]
fn takes_few_taps_and_enough_channels() {
    if !has_avx512() {
        return;
    }
    let g =
        |ci, hw, k, p| Window2d::new("test", ci, (hw, hw), (k, k), (1, 1), (p, p), (1, 1)).unwrap();
    use DirectPass::{Forward, InputGrad};
    for (geom, co, pass, want, why) in [
        (g(16, 32, 3, 1), 16, Forward, true, "W5's block, 144 taps"),
        (g(16, 32, 3, 1), 16, InputGrad, true, "W5's block, 144 taps"),
        (g(32, 14, 3, 1), 64, Forward, true, "32 channels, 288 taps"),
        (
            g(32, 14, 3, 1),
            64,
            InputGrad,
            true,
            "its gradient sums 64·9 = 576 taps, 2 × 288",
        ),
        (g(40, 14, 3, 1), 72, InputGrad, false, "72·9 = 648 taps"),
        (g(40, 14, 3, 1), 72, Forward, false, "40·9 = 360 taps"),
        (
            g(1, 28, 5, 0),
            6,
            Forward,
            true,
            "LeNet's first layer, 6 of 8 channels",
        ),
        (
            g(1, 28, 5, 0),
            6,
            InputGrad,
            false,
            "its input gradient has 1 channel of 8",
        ),
        (
            g(3, 32, 3, 1),
            16,
            InputGrad,
            false,
            "3 image channels of 8",
        ),
        (
            g(6, 12, 5, 0),
            16,
            Forward,
            true,
            "LeNet's second layer, 150 taps",
        ),
        (
            g(6, 12, 5, 0),
            16,
            InputGrad,
            true,
            "its gradient sums 16·25 = 400 taps",
        ),
    ] {
        assert_eq!(applies(&geom, co, pass), want, "{why}");
    }
}

#[test]
fn weight_grad_matches_the_formula() {
    if !has_avx512() {
        return;
    }
    let mut rng = crate::rng(13);
    let mut scratch = Vec::new();
    // 5 samples: groups of 3 or 4 with a shorter last one (`wgrad::run`).
    let batch = 5;
    let f = |v: Vec<f64>| v.iter().map(|&v| v as f32 - 0.5).collect::<Vec<f32>>();
    for case in CASES {
        let (g, co) = geometry(case);
        let x = f(random_input(batch * g.channels * g.in_plane(), &mut rng));
        let dy = f(random_input(batch * co * g.out_plane(), &mut rng));
        let old = f(random_input(co * g.rows(), &mut rng));
        let (ci, kh, kw) = (g.channels, g.kh, g.kw);
        let (mut want, mut mag) = (vec![0.0f64; old.len()], vec![0.0f64; old.len()]);
        for s in 0..batch {
            for o in 0..co {
                for c in 0..ci {
                    for a in 0..kh {
                        for b in 0..kw {
                            let k = ((o * ci + c) * kh + a) * kw + b;
                            for r in 0..g.oh {
                                for j in 0..g.ow {
                                    let iy = (r + a) as isize - g.ph as isize;
                                    let ix = (j + b) as isize - g.pw as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w
                                    {
                                        continue;
                                    }
                                    let t = dy[((s * co + o) * g.oh + r) * g.ow + j] as f64
                                        * x[((s * ci + c) * g.h + iy as usize) * g.w + ix as usize]
                                            as f64;
                                    want[k] += t;
                                    mag[k] += t.abs();
                                }
                            }
                        }
                    }
                }
            }
        }
        for acc in [Acc::Set, Acc::Add] {
            let mut dw = old.clone();
            assert!(
                wgrad::run(&g, co, &x, &dy, &mut dw, batch, acc, &mut scratch),
                "{case:?}"
            );
            for i in 0..dw.len() {
                let base = if acc == Acc::Add { old[i] as f64 } else { 0.0 };
                let (got, exp) = (dw[i] as f64, base + want[i]);
                let tol = 1e-6 * (mag[i] + base.abs()) + 1e-30;
                assert!(
                    (got - exp).abs() <= tol,
                    "{case:?} {acc:?} at {i}: {got} against {exp} (tolerance {tol:e})"
                );
            }
        }
    }
}

#[test]
fn weight_grad_takes_few_taps_wide_outputs_and_enough_channels() {
    use wgrad::wgrad_applies;
    let g = |ci, hw, k, s, p| {
        Window2d::new("test", ci, (hw, hw), (k, k), (s, s), (p, p), (1, 1)).unwrap()
    };
    if !has_avx512() {
        assert!(!wgrad_applies(&g(16, 32, 3, 1, 1), 16));
        return;
    }
    for (geom, co, want, why) in [
        (g(16, 32, 3, 1, 1), 16, true, "W5's block"),
        (g(3, 32, 3, 1, 1), 16, true, "W5's stem"),
        (
            g(1, 28, 5, 1, 0),
            6,
            true,
            "LeNet's first layer: 6 channels of a block of 4 × 2",
        ),
        (
            g(6, 12, 5, 1, 0),
            16,
            false,
            "LeNet's second layer: output 8 wide",
        ),
        (g(32, 14, 3, 1, 1), 64, false, "output 14 wide"),
        (
            g(32, 28, 3, 1, 1),
            64,
            true,
            "32 channels, 288 taps, 28 wide",
        ),
        (g(33, 28, 3, 1, 1), 64, false, "33·9 taps"),
        (
            g(4, 28, 7, 1, 3),
            16,
            false,
            "a kernel 7 wide (4·49 = 196 taps)",
        ),
        (g(16, 56, 3, 2, 1), 16, false, "stride 2"),
        (g(16, 12, 3, 1, 1), 4, false, "4 channels of a block of 8"),
    ] {
        assert_eq!(wgrad_applies(&geom, co), want, "{why}");
    }
}

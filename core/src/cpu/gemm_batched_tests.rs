use crate::device::{Backend, Gemm, GemmBatched};
use crate::{rng, Cpu};
use rand::Rng as _;

/// `C_i = α·op(A_i)·op(B_i) + β·C_i` by the definition, in f64.
fn naive(g: &GemmBatched, a: &[f64], b: &[f64], c: &mut [f64]) {
    let p = &g.gemm;
    for t in 0..g.batch {
        let (ao, bo, co) = (
            p.a_off + t * g.stride_a,
            p.b_off + t * g.stride_b,
            p.c_off + t * g.stride_c,
        );
        for i in 0..p.m {
            for j in 0..p.n {
                let mut s = 0.0;
                for l in 0..p.k {
                    let av = if p.trans_a {
                        a[ao + l * p.lda + i]
                    } else {
                        a[ao + i * p.lda + l]
                    };
                    let bv = if p.trans_b {
                        b[bo + j * p.ldb + l]
                    } else {
                        b[bo + l * p.ldb + j]
                    };
                    s += av * bv;
                }
                let cv = &mut c[co + i * p.ldc + j];
                *cv = p.alpha * s + if p.beta == 0.0 { 0.0 } else { p.beta * *cv };
            }
        }
    }
}

fn span(off: usize, rows: usize, ld: usize, cols: usize) -> usize {
    off + (rows - 1) * ld + cols
}

/// Strided-batched products against the definition, through every GEMM
/// kernel this CPU runs (AVX-512, AVX2, portable).
#[test]
fn matches_a_loop_of_gemm_and_the_definition() {
    for cap in crate::gemm::available_caps() {
        crate::gemm::with_kernel_cap(cap, batched_matches);
    }
}

fn batched_matches() {
    let mut r = rng(5);
    let mut cases = 0;
    for &(m, n, k, batch) in &[
        (1, 1, 1, 1),
        (3, 5, 4, 4),
        (7, 2, 9, 3),
        (16, 16, 8, 5),
        (40, 70, 33, 2),
    ] {
        for ta in [false, true] {
            for tb in [false, true] {
                for (bcast_a, bcast_b) in [(false, false), (true, false), (false, true)] {
                    for beta in [0.0, 1.0] {
                        let mut g = Gemm::dense(m, n, k, ta, tb);
                        g.alpha = 0.75;
                        g.beta = beta;
                        g.a_off = r.random_range(0..4);
                        g.b_off = r.random_range(0..4);
                        g.c_off = r.random_range(0..4);
                        g.lda += r.random_range(0..3);
                        g.ldb += r.random_range(0..3);
                        g.ldc += r.random_range(0..3);
                        let (ar, ac) = if ta { (k, m) } else { (m, k) };
                        let (br, bc) = if tb { (n, k) } else { (k, n) };
                        let fa = span(0, ar, g.lda, ac);
                        let fb = span(0, br, g.ldb, bc);
                        let fc = span(0, m, g.ldc, n);
                        let gb = GemmBatched {
                            gemm: g,
                            batch,
                            stride_a: if bcast_a { 0 } else { fa + 2 },
                            stride_b: if bcast_b { 0 } else { fb + 1 },
                            stride_c: fc + 3,
                        };
                        let len = |off: usize, s: usize, f: usize| off + (batch - 1) * s + f + 1;
                        let a: Vec<f64> = (0..len(g.a_off, gb.stride_a, fa))
                            .map(|_| r.random_range(-1.0..1.0))
                            .collect();
                        let b: Vec<f64> = (0..len(g.b_off, gb.stride_b, fb))
                            .map(|_| r.random_range(-1.0..1.0))
                            .collect();
                        let c: Vec<f64> = (0..len(g.c_off, gb.stride_c, fc))
                            .map(|_| r.random_range(-1.0..1.0))
                            .collect();
                        let mut got = c.clone();
                        Backend::<f64>::gemm_batched(&Cpu, &gb, &a, &b, &mut got).unwrap();
                        let mut looped = c.clone();
                        for i in 0..batch {
                            Backend::<f64>::gemm(
                                &Cpu,
                                &gb.product(i).unwrap(),
                                &a,
                                &b,
                                &mut looped,
                            )
                            .unwrap();
                        }
                        let mut want = c.clone();
                        naive(&gb, &a, &b, &mut want);
                        for i in 0..c.len() {
                            assert!(
                                (got[i] - want[i]).abs() <= 1e-12 * (1.0 + want[i].abs()),
                                "{gb:?}: C[{i}] = {} vs {}",
                                got[i],
                                want[i]
                            );
                            assert_eq!(got[i], looped[i], "{gb:?}: C[{i}] differs from the loop");
                        }
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 5 * 4 * 3 * 2);
}

#[test]
fn heads_side_by_side_in_one_row_stride() {
    // Two heads of d = 2 written into a [T = 2, H·d = 4] output:
    // C_h[t, j] = Σ_l A[t, l]·B_h[l, j], ldc = 4, stride_c = 2.
    let a = vec![1.0, 2.0, 3.0, 4.0]; // A [2×2], broadcast
    let b = vec![1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0]; // B_0 = I, B_1 = 2I
    let mut g = Gemm::dense(2, 2, 2, false, false);
    g.ldc = 4;
    let gb = GemmBatched {
        gemm: g,
        batch: 2,
        stride_a: 0,
        stride_b: 4,
        stride_c: 2,
    };
    let mut c = vec![0.0f64; 8];
    Backend::<f64>::gemm_batched(&Cpu, &gb, &a, &b, &mut c).unwrap();
    assert_eq!(c, vec![1.0, 2.0, 2.0, 4.0, 3.0, 4.0, 6.0, 8.0]);
}

#[test]
fn rejects_bad_batches_naming_the_operand() {
    let g = Gemm::dense(2, 3, 4, false, false); // A 2×4 = 8, B 4×3 = 12, C 2×3 = 6
    let ok = GemmBatched {
        gemm: g,
        batch: 3,
        stride_a: 8,
        stride_b: 12,
        stride_c: 6,
    };
    let (a, b, c) = (vec![0.0f64; 24], vec![0.0f64; 36], vec![0.0f64; 18]);
    let run = |gb: &GemmBatched, a: &[f64], b: &[f64]| {
        let mut c2 = c.clone();
        Backend::<f64>::gemm_batched(&Cpu, gb, &a.to_vec(), &b.to_vec(), &mut c2)
            .map_err(|e| e.to_string())
    };
    run(&ok, &a, &b).unwrap();
    // the last A reaches past the buffer
    let e = run(&ok, &a[..23], &b).unwrap_err();
    assert!(e.contains("gemm A") && e.contains("product 2"), "{e}");
    let e = run(&GemmBatched { stride_b: 13, ..ok }, &a, &b).unwrap_err();
    assert!(e.contains("gemm B") && e.contains("needs 38"), "{e}");
    // C's products overlap (5 < footprint 6, and not side by side)
    let e = run(&GemmBatched { stride_c: 5, ..ok }, &a, &b).unwrap_err();
    assert!(
        e.contains("gemm_batched C") && e.contains("stride_c = 5") && e.contains("footprint 6"),
        "{e}"
    );
    let e = run(&GemmBatched { stride_c: 0, ..ok }, &a, &b).unwrap_err();
    assert!(e.contains("gemm_batched C"), "{e}");
    // a leading dimension below the row length
    let mut bad = g;
    bad.lda = 3;
    let e = run(&GemmBatched { gemm: bad, ..ok }, &a, &b).unwrap_err();
    assert!(e.contains("gemm A") && e.contains("lda = 3"), "{e}");
    // broadcasting A with stride 0 is fine; one product needs no C stride
    run(&GemmBatched { stride_a: 0, ..ok }, &a[..8], &b).unwrap();
    run(
        &GemmBatched {
            batch: 1,
            stride_c: 0,
            ..ok
        },
        &a,
        &b,
    )
    .unwrap();
}

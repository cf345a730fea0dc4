//! The cuBLAS arguments kiln computes for a row-major product, checked
//! without a GPU: a column-major reference GEMM with BLAS semantics runs on
//! exactly `cublas_args(&g)` and must agree with the CPU device's `gemm`, for
//! every combination of transposes, offsets, padded strides and β.

use kiln_core::{rng, Backend, Cpu, Gemm, GemmBatched};
use kiln_cuda::blas::{
    cublas_args, cublas_batched_args, reference_gemm, reference_gemm_batched, CublasArgs, Operand,
};
use rand::Rng as _;

fn span(off: usize, rows: usize, ld: usize, cols: usize) -> usize {
    if rows == 0 || cols == 0 {
        off + 1
    } else {
        off + (rows - 1) * ld + cols
    }
}

/// cuBLAS's own argument rules (`cublasSgemm` returns INVALID_VALUE otherwise).
fn valid_for_cublas(x: &CublasArgs) -> bool {
    let a_rows = if x.transa { x.k } else { x.m };
    let b_rows = if x.transb { x.n } else { x.k };
    x.lda >= a_rows.max(1) && x.ldb >= b_rows.max(1) && x.ldc >= x.m.max(1)
}

#[test]
fn reference_on_cublas_args_matches_the_cpu() {
    let mut r = rng(11);
    let mut cases = 0;
    for &(m, n, k) in &[
        (1, 1, 1),
        (1, 7, 3),
        (7, 1, 3),
        (4, 4, 1),
        (5, 3, 8),
        (16, 9, 33),
        (2, 2, 0),
        (31, 17, 64),
    ] {
        for ta in [false, true] {
            for tb in [false, true] {
                for beta in [0.0, 1.0, 0.5] {
                    for padded in [false, true] {
                        let mut g = Gemm::dense(m, n, k, ta, tb);
                        g.beta = beta;
                        if padded {
                            g.alpha = -1.25;
                            g.a_off = r.random_range(0..5);
                            g.b_off = r.random_range(0..5);
                            g.c_off = r.random_range(0..5);
                            g.lda += r.random_range(1..4);
                            g.ldb += r.random_range(1..4);
                            g.ldc += r.random_range(1..4);
                        }
                        let (ar, ac) = if ta { (k, m) } else { (m, k) };
                        let (br, bc) = if tb { (n, k) } else { (k, n) };
                        let a: Vec<f64> = (0..span(g.a_off, ar, g.lda, ac) + 2)
                            .map(|_| r.random_range(-1.0..1.0))
                            .collect();
                        let b: Vec<f64> = (0..span(g.b_off, br, g.ldb, bc) + 2)
                            .map(|_| r.random_range(-1.0..1.0))
                            .collect();
                        let c: Vec<f64> = (0..span(g.c_off, m, g.ldc, n) + 2)
                            .map(|_| r.random_range(-1.0..1.0))
                            .collect();

                        let mut want = c.clone();
                        <Cpu as Backend<f64>>::gemm(&Cpu, &g, &a, &b, &mut want).unwrap();

                        let x = cublas_args(&g);
                        assert!(
                            valid_for_cublas(&x),
                            "{g:?} → {x:?} breaks cuBLAS's leading-dimension rules"
                        );
                        assert_eq!(
                            (x.a, x.b),
                            (Operand::B, Operand::A),
                            "operands swap: Cᵀ = op(B)ᵀ·op(A)ᵀ"
                        );
                        let pick = |o: Operand| if o == Operand::A { &a } else { &b };
                        let mut got = c.clone();
                        reference_gemm(&x, pick(x.a), pick(x.b), &mut got);

                        for (i, (u, v)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                (u - v).abs() <= 1e-12 * (1.0 + v.abs()),
                                "{g:?} → {x:?}: C[{i}] = {u} vs CPU {v}"
                            );
                        }
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 8 * 4 * 3 * 2);
}

#[test]
fn the_swap_is_what_the_module_doc_says() {
    // C[2×3] = A[2×4]·B[4×3], row-major, contiguous.
    let x = cublas_args(&Gemm::dense(2, 3, 4, false, false));
    assert_eq!((x.transa, x.transb, x.m, x.n, x.k), (false, false, 3, 2, 4));
    assert_eq!((x.lda, x.ldb, x.ldc), (3, 4, 3));
    // dW = dyᵀ·x as in Linear's backward: C[O×I] = A[B×O]ᵀ·B[B×I].
    let x = cublas_args(&Gemm::dense(5, 7, 9, true, false));
    assert_eq!((x.transa, x.transb, x.m, x.n, x.k), (false, true, 7, 5, 9));
    assert_eq!((x.lda, x.ldb, x.ldc), (7, 5, 7));
    // y = x·Wᵀ: C[B×O] = A[B×I]·B[O×I]ᵀ.
    let x = cublas_args(&Gemm::dense(4, 6, 8, false, true));
    assert_eq!((x.transa, x.transb, x.m, x.n, x.k), (true, false, 6, 4, 8));
    assert_eq!((x.lda, x.ldb, x.ldc), (8, 8, 6));
}

#[test]
fn batched_reference_on_cublas_args_matches_the_cpu() {
    let mut r = rng(12);
    let mut cases = 0;
    for &(m, n, k, batch) in &[(1, 1, 1, 2), (5, 3, 8, 3), (4, 7, 2, 4)] {
        for ta in [false, true] {
            for tb in [false, true] {
                for (sa0, sb0) in [(false, false), (true, false), (false, true)] {
                    for beta in [0.0, 1.0] {
                        let mut g = Gemm::dense(m, n, k, ta, tb);
                        g.beta = beta;
                        g.alpha = 1.5;
                        g.a_off = r.random_range(0..3);
                        g.b_off = r.random_range(0..3);
                        g.c_off = r.random_range(0..3);
                        g.lda += r.random_range(0..2);
                        g.ldb += r.random_range(0..2);
                        let (ar, ac) = if ta { (k, m) } else { (m, k) };
                        let (br, bc) = if tb { (n, k) } else { (k, n) };
                        let (fa, fb, fc) = (
                            span(0, ar, g.lda, ac),
                            span(0, br, g.ldb, bc),
                            span(0, m, g.ldc, n),
                        );
                        let gb = GemmBatched {
                            gemm: g,
                            batch,
                            stride_a: if sa0 { 0 } else { fa + 1 },
                            stride_b: if sb0 { 0 } else { fb + 2 },
                            stride_c: fc + 1,
                        };
                        let len = |off: usize, s: usize, f: usize| off + (batch - 1) * s + f;
                        let a: Vec<f64> = (0..len(g.a_off, gb.stride_a, fa))
                            .map(|_| r.random_range(-1.0..1.0))
                            .collect();
                        let b: Vec<f64> = (0..len(g.b_off, gb.stride_b, fb))
                            .map(|_| r.random_range(-1.0..1.0))
                            .collect();
                        let c: Vec<f64> = (0..len(g.c_off, gb.stride_c, fc))
                            .map(|_| r.random_range(-1.0..1.0))
                            .collect();
                        let mut want = c.clone();
                        <Cpu as Backend<f64>>::gemm_batched(&Cpu, &gb, &a, &b, &mut want).unwrap();

                        let x = cublas_batched_args(&gb);
                        assert!(valid_for_cublas(&x.args), "{gb:?} → {x:?}");
                        // cuBLAS's first operand is kiln's B: the strides swap with it.
                        assert_eq!(
                            (x.stride_a, x.stride_b, x.stride_c, x.batch),
                            (gb.stride_b, gb.stride_a, gb.stride_c, batch)
                        );
                        let mut got = c.clone();
                        reference_gemm_batched(&x, &b, &a, &mut got);
                        for (i, (u, v)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                (u - v).abs() <= 1e-12 * (1.0 + v.abs()),
                                "{gb:?} → {x:?}: C[{i}] = {u} vs CPU {v}"
                            );
                        }
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 3 * 4 * 3 * 2);
}

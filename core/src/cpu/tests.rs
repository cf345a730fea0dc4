use super::*;

/// Naive reference product with the same sub-matrix semantics.
fn naive(g: &Gemm, a: &[f64], b: &[f64], c: &mut [f64]) {
    for i in 0..g.m {
        for j in 0..g.n {
            let mut s = 0.0;
            for p in 0..g.k {
                let av = if g.trans_a {
                    a[g.a_off + p * g.lda + i]
                } else {
                    a[g.a_off + i * g.lda + p]
                };
                let bv = if g.trans_b {
                    b[g.b_off + j * g.ldb + p]
                } else {
                    b[g.b_off + p * g.ldb + j]
                };
                s += av * bv;
            }
            let cv = &mut c[g.c_off + i * g.ldc + j];
            *cv = g.alpha * s + g.beta * *cv;
        }
    }
}

#[test]
fn gemm_matches_naive_for_all_transposes_and_offsets() {
    let mut seed = 1u64;
    let mut r = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    };
    for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
        for &beta in &[0.0, 1.0, 0.5] {
            let (m, n, k) = (7, 5, 9);
            let mut g = Gemm::dense(m, n, k, ta, tb);
            g.beta = beta;
            g.alpha = 1.5;
            g.a_off = 3;
            g.lda += 2;
            g.c_off = 1;
            g.ldc += 4;
            let a: Vec<f64> = (0..200).map(|_| r()).collect();
            let b: Vec<f64> = (0..200).map(|_| r()).collect();
            let c0: Vec<f64> = (0..200).map(|_| r()).collect();
            let mut c1 = c0.clone();
            let mut c2 = c0.clone();
            Cpu::gemm_slices(&g, &a, &b, &mut c1).unwrap();
            naive(&g, &a, &b, &mut c2);
            for (x, y) in c1.iter().zip(&c2) {
                assert!((x - y).abs() < 1e-12, "{ta} {tb} {beta}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn gemm_rejects_short_buffers() {
    let g = Gemm::dense(4, 4, 4, false, false);
    let a = vec![0.0f32; 15];
    let b = vec![0.0f32; 16];
    let mut c = vec![0.0f32; 16];
    assert!(Cpu::gemm_slices(&g, &a, &b, &mut c).is_err());
}

/// A leading dimension below the row length would make rows overlap (for
/// `C`, two threads of the parallel split would then write one element):
/// rejected for each operand, through the safe `Backend::gemm`, with the
/// buffers left as they were.
#[test]
fn gemm_rejects_leading_dimensions_below_the_row_length() {
    let dev = Cpu;
    let (m, n, k) = (64, 64, 64);
    let a = vec![1.0f32; m * k];
    let b = vec![1.0f32; k * n];
    let cases = [
        (
            "gemm A",
            "lda",
            Gemm {
                lda: k - 1,
                ..Gemm::dense(m, n, k, false, false)
            },
        ),
        (
            "gemm A",
            "lda",
            Gemm {
                lda: m - 1,
                ..Gemm::dense(m, n, k, true, false)
            },
        ),
        (
            "gemm B",
            "ldb",
            Gemm {
                ldb: n - 1,
                ..Gemm::dense(m, n, k, false, false)
            },
        ),
        (
            "gemm B",
            "ldb",
            Gemm {
                ldb: k - 1,
                ..Gemm::dense(m, n, k, false, true)
            },
        ),
        (
            "gemm C",
            "ldc",
            Gemm {
                ldc: n - 1,
                ..Gemm::dense(m, n, k, false, false)
            },
        ),
        (
            "gemm C",
            "ldc",
            Gemm {
                ldc: 1,
                ..Gemm::dense(m, n, k, false, false)
            },
        ),
    ];
    for (what, ld, g) in cases {
        let mut c = vec![7.0f32; m * n];
        let err = dev.gemm(&g, &a, &b, &mut c).unwrap_err().to_string();
        assert!(err.contains(what) && err.contains(ld), "{err}");
        assert!(err.contains("smaller than the row length"), "{err}");
        assert!(
            c.iter().all(|&v| v == 7.0),
            "C was written before the check"
        );
    }
    // Equal leading dimensions and larger ones (sub-matrices) still work.
    let g = Gemm {
        ldc: n + 3,
        ..Gemm::dense(m, n, k, false, false)
    };
    let mut c = vec![0.0f32; (m - 1) * (n + 3) + n];
    dev.gemm(&g, &a, &b, &mut c).unwrap();
    assert_eq!(c[(m - 1) * (n + 3) + n - 1], k as f32);
    assert_eq!(c[n], 0.0, "the gap between rows of C is not written");
}

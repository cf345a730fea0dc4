//! The product's tests: every kernel, thread count and transpose against a
//! naive `f64` product, and results that do not depend on the thread count.

use super::*;

fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
}

/// Checks one shape against a naive f64 product, for every transpose
/// combination, β ∈ {0, 1, 0.5}, and the given kernel and thread count.
fn check<E: Elem>(kern: Kernel<E>, threads: usize, m: usize, n: usize, k: usize, tol: f64) {
    let mut seed = (m * 131 + n * 7 + k) as u64;
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for beta in [0.0, 1.0, 0.5] {
            let (lda, ldb, ldc) = (
                if ta { m } else { k } + 1,
                if tb { k } else { n } + 2,
                n + 3,
            );
            let a: Vec<E> = (0..(if ta { k } else { m }) * lda + 1)
                .map(|_| E::of(lcg(&mut seed)))
                .collect();
            let b: Vec<E> = (0..(if tb { n } else { k }) * ldb + 1)
                .map(|_| E::of(lcg(&mut seed)))
                .collect();
            let mut c: Vec<E> = (0..m * ldc).map(|_| E::of(lcg(&mut seed))).collect();
            if beta == 0.0 {
                c.iter_mut().for_each(|v| *v = E::nan()); // β = 0 must not read C
            }
            let c0 = c.clone();
            let am = if ta {
                Mat {
                    ptr: a.as_ptr(),
                    rs: 1,
                    cs: lda as isize,
                }
            } else {
                Mat {
                    ptr: a.as_ptr(),
                    rs: lda as isize,
                    cs: 1,
                }
            };
            let bm = if tb {
                Mat {
                    ptr: b.as_ptr(),
                    rs: 1,
                    cs: ldb as isize,
                }
            } else {
                Mat {
                    ptr: b.as_ptr(),
                    rs: ldb as isize,
                    cs: 1,
                }
            };
            let alpha = 1.25;
            // SAFETY: `a`, `b` and `c` are vectors sized for the strides
            // (`lda`, `ldb`, `ldc ≥ n`) of `m × k`, `k × n` and `m × n`
            // operands, distinct allocations; `kern` comes from
            // `all_kernels_*`, which lists AVX2 only where available.
            unsafe {
                gemm_with(
                    kern,
                    threads,
                    m,
                    n,
                    k,
                    E::of(alpha),
                    am,
                    bm,
                    E::of(beta),
                    c.as_mut_ptr(),
                    ldc,
                )
            };
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for p in 0..k {
                        // SAFETY: `(i, p)` and `(p, j)` are elements of
                        // the operands, inside `a` and `b`.
                        let av = unsafe { *am.at(i, p) }.f64();
                        // SAFETY: as above.
                        let bv = unsafe { *bm.at(p, j) }.f64();
                        s += av * bv;
                    }
                    let old = if beta == 0.0 {
                        0.0
                    } else {
                        c0[i * ldc + j].f64() * beta
                    };
                    let want = alpha * s + old;
                    let got = c[i * ldc + j].f64();
                    assert!(
                        (got - want).abs() <= tol * (1.0 + want.abs()) * (k as f64).sqrt(),
                        "{} m{m} n{n} k{k} ta{ta} tb{tb} β{beta} t{threads} ({i},{j}): {got} vs {want}",
                        kern.name
                    );
                }
            }
            // Padding columns of C are untouched.
            for i in 0..m {
                for j in n..ldc {
                    assert!(c[i * ldc + j].f64().to_bits() == c0[i * ldc + j].f64().to_bits());
                }
            }
        }
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 37, 19),
    (1, 300, 260),
    (5, 3, 2),
    (6, 16, 8),
    (7, 17, 9),
    (13, 33, 1),
    (64, 10, 128),
    (150, 40, 300),
    (37, 300, 70),
    (3, 4100, 3),
    (16, 100, 150),
    (6, 25, 600),
    (5, 7, 513),
    (16, 150, 1030),
    (12, 32, 256),
    (24, 64, 257),
    (32, 96, 520),
    (25, 47, 300),
];

/// Every edge of every kernel's tile: `m` in `1..=13` (up to `MR + 1` of
/// the widest kernel, 12 rows), `n` around the tile widths 8, 16 and 32, and
/// short contractions.
#[test]
fn edge_tiles_match_naive() {
    let ns = [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 65];
    for m in 1..=13 {
        for &n in &ns {
            for k in [1, 2, 3, 17] {
                for kern in all_kernels_f64() {
                    check(kern, 1, m, n, k, 1e-14);
                }
                for kern in all_kernels_f32() {
                    check(kern, 1, m, n, k, 2e-6);
                }
            }
        }
    }
}

/// The kernels tested are the ones this CPU runs, the widest first in line.
#[test]
fn the_widest_kernel_is_the_default() {
    let caps = available_caps();
    let widest = *caps.last().unwrap();
    assert_eq!(kernel::<f32>().isa, widest);
    assert_eq!(kernel::<f64>().isa, widest);
    assert_eq!(kernel_capped::<f32>(Isa::Portable).name, "portable 4×8");
    assert_eq!(
        with_kernel_cap(Isa::Portable, kernel_name::<f32>),
        "portable 4×8"
    );
    eprintln!(
        "gemm tests: kernels {:?}",
        all_kernels_f32().iter().map(|k| k.name).collect::<Vec<_>>()
    );
}

/// Every kernel this CPU runs (portable, AVX2, AVX-512 where present; the
/// ones it lacks are named on stderr by `available_caps`).
fn all_kernels<E: Elem>() -> Vec<Kernel<E>> {
    available_caps()
        .into_iter()
        .map(kernel_capped::<E>)
        .collect()
}

fn all_kernels_f64() -> Vec<Kernel<f64>> {
    all_kernels()
}

fn all_kernels_f32() -> Vec<Kernel<f32>> {
    all_kernels()
}

#[test]
fn f64_matches_naive() {
    for kern in all_kernels_f64() {
        for &(m, n, k) in SHAPES {
            for threads in [1, 2, 3] {
                check(kern, threads, m, n, k, 1e-14);
            }
        }
    }
}

#[test]
fn f32_matches_naive() {
    for kern in all_kernels_f32() {
        for &(m, n, k) in SHAPES {
            for threads in [1, 2] {
                check(kern, threads, m, n, k, 2e-6);
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // Split by columns (n ≥ m) and by rows (m > n).
    for (m, n, k) in [(70, 90, 600), (300, 70, 600)] {
        let mut seed = 3;
        let a: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|_| lcg(&mut seed) as f32).collect();
        for kern in all_kernels_f32() {
            thread_count_independent(kern, m, n, k, &a, &b);
        }
    }
}

fn thread_count_independent(kern: Kernel<f32>, m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) {
    let run = |t: usize| {
        let mut c = vec![0.0f32; m * n];
        let am = Mat {
            ptr: a.as_ptr(),
            rs: k as isize,
            cs: 1,
        };
        let bm = Mat {
            ptr: b.as_ptr(),
            rs: n as isize,
            cs: 1,
        };
        // SAFETY: `a` is `m × k`, `b` `k × n` and `c` `m × n`, all
        // row-major and separate; `kern` is one this CPU runs.
        unsafe { gemm_with(kern, t, m, n, k, 1.0, am, bm, 0.0, c.as_mut_ptr(), n) };
        c
    };
    let one = run(1);
    assert_eq!(one, run(2), "{}", kern.name);
    assert_eq!(one, run(3), "{}", kern.name);
}

// ---- pre-packed B ------------------------------------------------------------

/// `m × k` row-major `A` (row stride `k + 1`) or its transpose, and a `k × n`
/// `B` stored row-major (`tb = false`, row stride `n + 2`) or as the
/// transpose of an `n × k` matrix (`tb = true`: a weight used as `Wᵀ`).
fn operands<E: Elem>(
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    seed: &mut u64,
) -> (Vec<E>, Mat<E>, Vec<E>, Mat<E>) {
    let (lda, ldb) = (if ta { m } else { k } + 1, if tb { k } else { n } + 2);
    let a: Vec<E> = (0..(if ta { k } else { m }) * lda + 1)
        .map(|_| E::of(lcg(seed)))
        .collect();
    let b: Vec<E> = (0..(if tb { n } else { k }) * ldb + 1)
        .map(|_| E::of(lcg(seed)))
        .collect();
    let (ars, acs) = if ta {
        (1, lda as isize)
    } else {
        (lda as isize, 1)
    };
    let (brs, bcs) = if tb {
        (1, ldb as isize)
    } else {
        (ldb as isize, 1)
    };
    let am = Mat {
        ptr: a.as_ptr(),
        rs: ars,
        cs: acs,
    };
    let bm = Mat {
        ptr: b.as_ptr(),
        rs: brs,
        cs: bcs,
    };
    (a, am, b, bm)
}

/// Whether [`gemm_with`] takes the blocked path for this product (not the
/// GEMV of `m = 1` or the dot products of tiny `f32` outputs, which sum in
/// another order than the packed product).
fn blocked_path<E: Elem>(
    kern: &Kernel<E>,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<E>,
    b: Mat<E>,
) -> bool {
    let gemv = m == 1 && a.cs == 1 && b.rs == 1;
    let dot = TypeId::of::<E>() == TypeId::of::<f32>()
        && kern.isa >= Isa::Avx2
        && a.cs == 1
        && b.rs == 1
        && m * n <= DOT_MAX_MN
        && k >= DOT_MIN_K;
    !gemv && !dot
}

/// One `B` packed once, then products with several `A` of different row
/// counts, both transposes of each operand, β ∈ {0, 1}: bitwise the unpacked
/// product with the same kernel and thread count where that takes the
/// blocked path, and within `tol` of it elsewhere.
fn check_packed<E: Elem>(kern: Kernel<E>, threads: usize, n: usize, k: usize, tol: f64) {
    let mut seed = (n * 31 + k * 7 + threads) as u64;
    for tb in [false, true] {
        let (_b, bm) = {
            let (_, _, b, bm) = operands::<E>(1, n, k, false, tb, &mut seed);
            (b, bm)
        };
        let mut packed = PackedB::new();
        // SAFETY: `bm` describes `_b`, a live `k × n` operand; `kern` is one
        // this CPU runs (`all_kernels`).
        unsafe { packed::pack_b_with(kern, threads, k, n, bm, &mut packed) };
        assert_eq!(packed.packed_shape(), Some((k, n)));
        for m in [1, 2, 5, 12, 13, 32, 37] {
            for ta in [false, true] {
                for beta in [0.0, 1.0] {
                    let (_a, am, _, _) = operands::<E>(m, n, k, ta, false, &mut seed);
                    let ldc = n + 3;
                    let c0: Vec<E> = (0..m * ldc).map(|_| E::of(lcg(&mut seed))).collect();
                    let (mut want, mut got) = (c0.clone(), c0.clone());
                    // SAFETY: `am`/`bm` are `m × k`/`k × n` operands inside
                    // `_a`/`_b`; `want`/`got` hold `m` rows of `ldc ≥ n`;
                    // `packed` holds `bm` packed with `kern`.
                    unsafe {
                        gemm_with(
                            kern,
                            threads,
                            m,
                            n,
                            k,
                            E::of(0.75),
                            am,
                            bm,
                            E::of(beta),
                            want.as_mut_ptr(),
                            ldc,
                        );
                        packed::gemm_packed_b_with(
                            threads,
                            m,
                            E::of(0.75),
                            am,
                            &packed,
                            E::of(beta),
                            got.as_mut_ptr(),
                            ldc,
                        );
                    }
                    let bitwise = blocked_path(&kern, m, n, k, am, bm);
                    for i in 0..m {
                        for j in 0..ldc {
                            let (g, w) = (got[i * ldc + j].f64(), want[i * ldc + j].f64());
                            let what = format!(
                                "{} t{threads} m{m} n{n} k{k} ta{ta} tb{tb} β{beta} ({i},{j}): {g} vs {w}",
                                kern.name
                            );
                            if bitwise || j >= n {
                                assert_eq!(g.to_bits(), w.to_bits(), "{what}");
                            } else {
                                assert!(
                                    (g - w).abs() <= tol * (1.0 + w.abs()) * (k as f64).sqrt(),
                                    "{what}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Shapes around every kernel's `NR` (8, 16, 32) and `KC` (256), and the
/// recurrent layers' own (`W_hhᵀ` of a 4·24-unit LSTM and its transpose).
const PACKED_SHAPES: &[(usize, usize)] = &[
    (1, 1),
    (7, 3),
    (17, 1),
    (33, 19),
    (65, 300),
    (96, 24),
    (24, 96),
    (40, 513),
];

#[test]
fn packed_b_matches_the_unpacked_product_f64() {
    for kern in all_kernels_f64() {
        for &(n, k) in PACKED_SHAPES {
            for threads in [1, 2, 3] {
                check_packed(kern, threads, n, k, 1e-14);
            }
        }
    }
}

#[test]
fn packed_b_matches_the_unpacked_product_f32() {
    for kern in all_kernels_f32() {
        for &(n, k) in PACKED_SHAPES {
            for threads in [1, 2] {
                check_packed(kern, threads, n, k, 2e-6);
            }
        }
    }
}

/// A recurrent layer's product, through the device API: `h·W_hhᵀ` (32 rows)
/// and `δ·W_hh`, packed once and used with several `A`, equal bitwise to
/// `Backend::gemm`; a packed operand of another `B` (or none) is refused;
/// repacking the same size keeps the buffer.
#[test]
fn device_api_packs_once_and_refuses_another_b() {
    use crate::{Backend, Cpu, Gemm};
    let (h, g4, batch) = (40, 160, 32);
    let mut seed = 9;
    let w: Vec<f32> = (0..g4 * h).map(|_| lcg(&mut seed) as f32).collect();
    let w2 = w.clone();
    for cap in available_caps() {
        with_kernel_cap(cap, || {
            for (g, a_len) in [
                (Gemm::dense(batch, g4, h, false, true), batch * h),
                (Gemm::dense(batch, h, g4, false, false), batch * g4),
            ] {
                let mut packed = PackedB::new();
                Backend::<f32>::pack_gemm_b(&Cpu, &g, &w, &mut packed).unwrap();
                assert_eq!(packed.isa(), Some(cap));
                let ptr = packed.ptr();
                Backend::<f32>::pack_gemm_b(&Cpu, &g, &w, &mut packed).unwrap();
                assert_eq!(ptr, packed.ptr(), "repacking the same size reallocated");
                for _ in 0..3 {
                    let a: Vec<f32> = (0..a_len).map(|_| lcg(&mut seed) as f32).collect();
                    let mut want = vec![0.0f32; batch * g.n];
                    let mut got = vec![f32::NAN; batch * g.n];
                    Cpu.gemm(&g, &a, &w, &mut want).unwrap();
                    Cpu.gemm_packed_b(&g, &a, &w, &packed, &mut got).unwrap();
                    assert_eq!(got, want, "{cap:?} {g:?}");
                    assert!(want.iter().any(|v| v.abs() > 0.1));
                    // Another buffer with the same values is another operand.
                    let e = Cpu
                        .gemm_packed_b(&g, &a, &w2, &packed, &mut got)
                        .unwrap_err();
                    assert!(e.to_string().contains("pack it with pack_gemm_b"), "{e}");
                }
                let e = Cpu
                    .gemm_packed_b(
                        &g,
                        &vec![0.0; a_len],
                        &w,
                        &PackedB::new(),
                        &mut vec![0.0; batch * g.n],
                    )
                    .unwrap_err();
                assert!(e.to_string().contains("not this product's B"), "{e}");
            }
        });
    }
}

/// The epilogue (`gemm_epi_with`: bias, then an element-wise function into
/// `y`) gives bitwise the values of the product followed by `add_bias`'s and
/// `act_fwd`'s passes, for every kernel, one and two threads, and shapes that
/// take each path: the blocked product split by columns and by rows, the
/// direct-B one (`m ≤ 18`), several `KC` blocks (`k > 256`, so the epilogue
/// must wait for the last), the one-row GEMV and `f32`'s dot-product path.
#[test]
fn epilogue_is_bitwise_the_separate_passes() {
    use crate::kernels::unary::Act;
    fn run<E: Elem>(cap: Isa) {
        let shapes = [
            (128, 256, 784),
            (300, 40, 64),
            (7, 33, 20),
            (1, 100, 256),
            (40, 60, 600),
            (5, 9, 1),
        ];
        for &(m, n, k) in &shapes {
            let mut seed = (m * 31 + n + k) as u64;
            let a: Vec<E> = (0..m * k).map(|_| E::of(lcg(&mut seed))).collect();
            // B as Wᵀ of a `[n, k]` weight (a dense layer's forward).
            let w: Vec<E> = (0..n * k).map(|_| E::of(lcg(&mut seed))).collect();
            let bias: Vec<E> = (0..n).map(|_| E::of(lcg(&mut seed))).collect();
            let am = Mat {
                ptr: a.as_ptr(),
                rs: k as isize,
                cs: 1,
            };
            let bm = Mat {
                ptr: w.as_ptr(),
                rs: 1,
                cs: k as isize,
            };
            for threads in [1, 2] {
                for f in [
                    None,
                    Some(Act::Relu),
                    Some(Act::LeakyRelu(0.2)),
                    Some(Act::Gelu),
                ] {
                    for with_bias in [true, false] {
                        if f.is_none() && !with_bias {
                            continue;
                        }
                        // The separate passes.
                        let mut c0 = vec![E::zero(); m * n];
                        // SAFETY: dense `m × k`, `k × n` (`[n, k]` read
                        // transposed) and `m × n` operands in their own vectors;
                        // `kernel_capped` returns a kernel this CPU runs.
                        unsafe {
                            gemm_with(
                                kernel_capped::<E>(cap),
                                threads,
                                m,
                                n,
                                k,
                                E::one(),
                                am,
                                bm,
                                E::zero(),
                                c0.as_mut_ptr(),
                                n,
                            )
                        };
                        if with_bias {
                            for row in c0.chunks_exact_mut(n) {
                                for (v, b) in row.iter_mut().zip(&bias) {
                                    *v = *v + *b;
                                }
                            }
                        }
                        let mut y0 = vec![E::zero(); m * n];
                        if let Some(f) = f {
                            f.map(&c0, &mut y0);
                        }
                        // The fused call.
                        let mut c1 = vec![E::nan(); m * n];
                        let mut y1 = vec![E::nan(); m * n];
                        let epi = Epi {
                            bias: if with_bias {
                                bias.as_ptr()
                            } else {
                                std::ptr::null()
                            },
                            f,
                            y: if f.is_some() {
                                y1.as_mut_ptr()
                            } else {
                                std::ptr::null_mut()
                            },
                        };
                        // SAFETY: as above; the bias holds `n` values and `y1`
                        // `m·n`, each in its own vector.
                        unsafe {
                            gemm_epi_with(
                                kernel_capped::<E>(cap),
                                threads,
                                m,
                                n,
                                k,
                                E::one(),
                                am,
                                bm,
                                E::zero(),
                                c1.as_mut_ptr(),
                                n,
                                epi,
                            )
                        };
                        let what = format!(
                            "{} {cap:?} m{m} n{n} k{k} t{threads} {f:?} bias {with_bias}",
                            E::NAME
                        );
                        let bits =
                            |v: &[E]| v.iter().map(|x| x.f64().to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&c1), bits(&c0), "pre-activation, {what}");
                        if f.is_some() {
                            assert_eq!(bits(&y1), bits(&y0), "activation, {what}");
                        }
                    }
                }
            }
        }
    }
    for cap in available_caps() {
        run::<f32>(cap);
        run::<f64>(cap);
    }
}

/// The kernels' four-step loop (a packed B, `ldb = NR`) gives bitwise the
/// one-step loop's tile (the same B at a wider stride), for every kernel,
/// row count and a `kc` with and without a remainder of four steps.
#[test]
fn unrolled_steps_are_bitwise_the_single_steps() {
    fn run<E: Elem>(kern: Kernel<E>) {
        let (mr, nr) = (kern.mr, kern.nr);
        let mut seed = 11u64;
        for kc in [1usize, 3, 4, 7, 64, 257] {
            let a: Vec<E> = (0..kc * mr).map(|_| E::of(lcg(&mut seed))).collect();
            let b: Vec<E> = (0..kc * nr).map(|_| E::of(lcg(&mut seed))).collect();
            // The same B, `nr + 3` apart per step (not the packed stride).
            let wide_ld = nr + 3;
            let mut bw = vec![E::zero(); kc * wide_ld];
            for p in 0..kc {
                bw[p * wide_ld..][..nr].copy_from_slice(&b[p * nr..][..nr]);
            }
            for rows in 1..=mr {
                let c0: Vec<E> = (0..mr * nr).map(|_| E::of(lcg(&mut seed))).collect();
                let (mut c1, mut c2) = (c0.clone(), c0.clone());
                let (alpha, beta) = (E::of(0.75), E::of(0.5));
                // SAFETY: `a` holds `kc·MR` values, each B `NR` values at
                // every step of its stride, C `MR × NR` values at `ldc = NR`;
                // the kernels come from `all_kernels`, which lists only the
                // ones this CPU runs.
                unsafe {
                    (kern.f)(
                        kc,
                        a.as_ptr(),
                        b.as_ptr(),
                        nr,
                        c1.as_mut_ptr(),
                        nr,
                        rows,
                        nr,
                        alpha,
                        beta,
                    );
                    (kern.f)(
                        kc,
                        a.as_ptr(),
                        bw.as_ptr(),
                        wide_ld,
                        c2.as_mut_ptr(),
                        nr,
                        rows,
                        nr,
                        alpha,
                        beta,
                    );
                }
                let bits = |v: &[E]| v.iter().map(|x| x.f64().to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&c1), bits(&c2), "{}: kc {kc}, {rows} rows", kern.name);
            }
        }
    }
    for kern in all_kernels_f32() {
        run(kern);
    }
    for kern in all_kernels_f64() {
        run(kern);
    }
}

// ---- panel width ---------------------------------------------------------------

/// Narrow panels (several `jc` blocks of B, the A block packed again for
/// each) give the naive product, and bitwise the values of one wide panel:
/// the panel width only regroups whole columns of C, never the sums.
#[test]
fn panel_width_changes_no_value() {
    let (m, n, k) = (37, 300, 530);
    let mut seed = 11;
    let a: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed) as f32).collect();
    let b: Vec<f32> = (0..k * n).map(|_| lcg(&mut seed) as f32).collect();
    for kern in all_kernels_f32() {
        let run = |nc: usize| {
            let mut c = vec![0.0f32; m * n];
            let kern = Kernel { nc, ..kern };
            let (am, bm) = (
                Mat {
                    ptr: a.as_ptr(),
                    rs: k as isize,
                    cs: 1,
                },
                // B as the transpose of an `n × k` matrix: packed, not read in place.
                Mat {
                    ptr: b.as_ptr(),
                    rs: 1,
                    cs: k as isize,
                },
            );
            // SAFETY: `a` is `m × k` row-major, `b` holds the `n × k`
            // matrix whose transpose is B, `c` is `m × n`; `kern` runs here.
            unsafe { gemm_with(kern, 1, m, n, k, 1.0, am, bm, 0.0, c.as_mut_ptr(), n) };
            c
        };
        let wide = run(4096);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[j * k + p] as f64)
                    .sum();
                let got = wide[i * n + j] as f64;
                assert!(
                    (got - want).abs() <= 2e-6 * k as f64,
                    "{}: ({i}, {j}) {got} vs {want}",
                    kern.name
                );
            }
        }
        for nc in [kern.nr, 2 * kern.nr, 96.max(kern.nr)] {
            assert_eq!(run(nc), wide, "{}: nc = {nc}", kern.name);
        }
    }
}

/// The panel fills half the L2 but at least 1 MiB, in whole slivers, never
/// more columns than the kernel's cap and never fewer than one sliver.
#[test]
fn panel_columns_follow_the_l2() {
    // Emerald Rapids, 2 MiB: 1 MiB of f32 at kc = 256 is 1024 columns.
    assert_eq!(super::choice::panel_cols(4096, 256, 32, 4, 2 << 20), 1024);
    assert_eq!(super::choice::panel_cols(4096, 256, 16, 8, 2 << 20), 512);
    // Zen 4/5, 1 MiB: never less than a 1 MiB panel.
    assert_eq!(super::choice::panel_cols(4096, 256, 32, 4, 1 << 20), 1024);
    assert_eq!(super::choice::panel_cols(4096, 256, 16, 8, 1 << 20), 512);
    // A huge L2 is capped by the kernel's own width; a tiny one keeps the
    // 1 MiB floor, and a huge contraction step keeps one sliver.
    assert_eq!(super::choice::panel_cols(4096, 256, 32, 4, 64 << 20), 4096);
    assert_eq!(super::choice::panel_cols(4096, 256, 32, 4, 16 << 10), 1024);
    assert_eq!(super::choice::panel_cols(4096, 1 << 20, 32, 4, 2 << 20), 32);
    // Not a multiple of the sliver: rounded down to one.
    assert_eq!(super::choice::panel_cols(4096, 256, 6, 4, 1 << 20), 1020);
    // Between 1 MiB and 2 MiB of L2 the floor decides; above, half the L2.
    assert_eq!(super::choice::panel_cols(4096, 256, 32, 4, 3 << 20), 1536);
    assert_eq!(super::choice::parse_cache_size("2048K"), Some(2 << 20));
    assert_eq!(super::choice::parse_cache_size("1M"), Some(1 << 20));
    assert_eq!(super::choice::parse_cache_size("524288"), Some(512 << 10));
    assert_eq!(super::choice::parse_cache_size("0K"), None);
    assert_eq!(super::choice::parse_cache_size("big"), None);
    eprintln!("this machine's L2: {} KiB", super::choice::l2_bytes() >> 10);
}

//! Microkernels: `C[mr×nr] = α·Σ_p a_p ⊗ b_p + β·C` over `kc` steps, where
//! `a` holds `kc` packed slivers of `MR` values and `b` holds `kc` rows of
//! `NR` values, `ldb` apart (`NR` when packed; B's own row stride when read in
//! place).
//! `mr ≤ MR`, `nr ≤ NR` are the valid part of the tile (edges); `C` is
//! row-major with row stride `ldc`. With `β = 0`, `C` is not read (it may hold
//! anything, NaN included), as in BLAS.

use crate::elem::Elem;

/// A microkernel for element type `E`, type-erased so that the driver picks
/// one at run time.
///
/// # Safety
/// The contract every kernel of this file shares (the driver, `blocked` in
/// `blocked.rs`, upholds it):
/// * `mr ≤ MR` and `nr ≤ NR` for the kernel's tile `MR × NR`;
/// * `a` is readable for `kc · MR` values (`kc` packed slivers);
/// * `b` is readable for `NR` values at `b + p·ldb` for every `p < kc`
///   (all `NR` columns, even when `nr < NR`: a narrow sliver must be packed
///   and zero-padded first);
/// * `c` is writable, and readable when `β ≠ 0`, at `c + r·ldc + j` for
///   `r < mr`, `j < nr`, and overlaps neither `a` nor `b`;
/// * the instruction set the kernel was compiled for is present on this CPU
///   (`avx2::available()` for the AVX2 kernels, `avx512::available()` for
///   the AVX-512 ones).
pub(crate) type KernelFn<E> = unsafe fn(
    kc: usize,
    a: *const E,
    b: *const E,
    ldb: usize,
    c: *mut E,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: E,
    beta: E,
);

/// The instruction sets kiln's GEMM has microkernels for, from the most
/// portable to the widest (the order [`super::kernel`] caps by).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2 + FMA: 256-bit vectors, 16 registers.
    Avx2,
    /// AVX-512F: 512-bit vectors, 32 registers.
    Avx512,
}

/// Blocking parameters and the microkernel of one instruction set.
#[derive(Clone, Copy)]
pub(crate) struct Kernel<E> {
    /// What the kernel needs from the CPU (`Avx2` and up also allow the
    /// AVX2 dot-product paths of `dot.rs`).
    pub isa: Isa,
    pub mr: usize,
    pub nr: usize,
    /// Rows of A packed at once (an L2-resident block).
    pub mc: usize,
    /// Depth of one packed step (A's sliver × B's sliver stay in L1).
    pub kc: usize,
    /// Columns of B packed at once: the most a panel may have;
    /// [`super::choice::kernel_capped`] lowers it so that the `kc × nc` panel fills
    /// half of this core's L2 but at least 1 MiB (`choice::panel_cols`; the
    /// tile loop streams it from there).
    pub nc: usize,
    pub f: KernelFn<E>,
    pub name: &'static str,
}

/// Writes `α·acc + β·C` for the valid `mr × nr` part of a tile held in
/// `acc` (row-major, `NR` per row).
///
/// # Safety
/// `c + r·ldc + j` is writable (and readable when `β ≠ 0`) for `r < mr`,
/// `j < nr`, and does not overlap `acc`; `nr ≤ NR` (`acc` is indexed safely).
#[inline(always)]
unsafe fn store_tile<E: Elem, const NR: usize>(
    acc: &[E],
    c: *mut E,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: E,
    beta: E,
) {
    for r in 0..mr {
        for j in 0..nr {
            let v = alpha * acc[r * NR + j];
            // SAFETY: `r < mr` and `j < nr`, so `c + r·ldc + j` is one of the
            // elements the caller vouched for (writable; read only when β ≠ 0).
            unsafe {
                let d = c.add(r * ldc + j);
                *d = if beta == E::zero() { v } else { v + beta * *d };
            }
        }
    }
}

/// The portable kernel (any `Elem`, any target): `MR × NR` accumulators in
/// an array the compiler keeps in vector registers where it can.
///
/// # Safety
/// The [`KernelFn`] contract (any CPU will do).
#[allow(clippy::too_many_arguments)] // a BLAS microkernel's argument list, shared with the AVX2 kernels through `KernelFn`
pub(crate) unsafe fn generic<E: Elem, const MR: usize, const NR: usize>(
    kc: usize,
    a: *const E,
    b: *const E,
    ldb: usize,
    c: *mut E,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: E,
    beta: E,
) {
    let mut acc = [[E::zero(); NR]; MR];
    for p in 0..kc {
        // SAFETY: by the `KernelFn` contract, `a` holds `kc` slivers of `MR`
        // values (`p < kc`) and every row `b + p·ldb` holds `NR` readable values.
        let (ap, bp) = unsafe {
            (
                std::slice::from_raw_parts(a.add(p * MR), MR),
                std::slice::from_raw_parts(b.add(p * ldb), NR),
            )
        };
        for r in 0..MR {
            for j in 0..NR {
                acc[r][j] = acc[r][j] + ap[r] * bp[j];
            }
        }
    }
    // SAFETY: `[[E; NR]; MR]` is `MR · NR` values of `E` laid out contiguously
    // (arrays have no padding between elements), in a live local.
    let flat: &[E] = unsafe { std::slice::from_raw_parts(acc.as_ptr() as *const E, MR * NR) };
    // SAFETY: the caller's `KernelFn` contract is exactly `store_tile`'s for
    // `c`, `ldc`, `mr`, `nr`; `flat` is a local, so it cannot overlap `c`.
    unsafe { store_tile::<E, NR>(flat, c, ldc, mr, nr, alpha, beta) };
}

pub(crate) fn generic_kernel<E: Elem>() -> Kernel<E> {
    Kernel {
        isa: Isa::Portable,
        mr: 4,
        nr: 8,
        mc: 128,
        kc: 256,
        nc: 4096,
        f: generic::<E, 4, 8>,
        name: "portable 4×8",
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    //! AVX2 + FMA kernels: 6×16 for `f32` and 6×8 for `f64` (12 accumulator
    //! registers of 8 or 4 lanes, two B loads and one A broadcast in flight),
    //! the BLIS shape for Zen and Haswell.
    use super::Kernel;
    use std::arch::x86_64::*;

    pub(crate) fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    pub(crate) fn f32_kernel() -> Kernel<f32> {
        Kernel {
            isa: super::Isa::Avx2,
            mr: 6,
            nr: 16,
            mc: 144,
            kc: 256,
            nc: 4080,
            f: sgemm_6x16,
            name: "AVX2+FMA 6×16",
        }
    }

    pub(crate) fn f64_kernel() -> Kernel<f64> {
        Kernel {
            isa: super::Isa::Avx2,
            mr: 6,
            nr: 8,
            mc: 72,
            kc: 256,
            nc: 4080,
            f: dgemm_6x8,
            name: "AVX2+FMA 6×8",
        }
    }

    macro_rules! kernel {
        ($name:ident, $t:ty, $lanes:expr, $v:ty, $zero:ident, $load:ident, $store:ident, $bcast:ident, $fma:ident, $mul:ident, $set1:ident) => {
            /// # Safety
            /// The [`KernelFn`](super::KernelFn) contract with `MR = 6`,
            /// `NR = 2 × lanes`, on a CPU with AVX2 and FMA
            /// ([`available`] returned true).
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)] // the `KernelFn` signature
            pub(crate) unsafe fn $name(
                kc: usize,
                mut a: *const $t,
                mut b: *const $t,
                ldb: usize,
                c: *mut $t,
                ldc: usize,
                mr: usize,
                nr: usize,
                alpha: $t,
                beta: $t,
            ) {
                const L: usize = $lanes;
                // Start fetching the C tile now: its rows are far apart (a
                // row of C each), and it is needed only after the loop.
                // (A prefetch never faults; `wrapping_add` because the last
                // line may lie past the end of a narrow edge tile.)
                // Short loops (a convolution's `k` of 16) cannot hide the
                // latency anyway and their C is usually in cache: skip.
                if kc >= 64 {
                    for r in 0..mr {
                        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * ldc) as *const i8);
                        _mm_prefetch::<_MM_HINT_T0>(
                            c.wrapping_add(r * ldc + 2 * L - 1) as *const i8
                        );
                    }
                }
                let mut acc = [[$zero(); 2]; 6];
                let mut steps = kc;
                if ldb == 2 * L {
                    // A packed B (`ldb = NR`): four steps per iteration at
                    // constant offsets, so the loop's integer work is paid
                    // once per 48 FMAs instead of once per 12 (as in
                    // `avx512.rs`); each accumulator still sums `k` in order.
                    while steps >= 4 {
                        for u in 0..4 {
                            let b0 = $load(b.add(u * 2 * L));
                            let b1 = $load(b.add(u * 2 * L + L));
                            for r in 0..6 {
                                let ar = $bcast(&*a.add(u * 6 + r));
                                acc[r][0] = $fma(ar, b0, acc[r][0]);
                                acc[r][1] = $fma(ar, b1, acc[r][1]);
                            }
                        }
                        a = a.add(4 * 6);
                        b = b.add(4 * 2 * L);
                        steps -= 4;
                    }
                }
                for _ in 0..steps {
                    let b0 = $load(b);
                    let b1 = $load(b.add(L));
                    let a0 = $bcast(&*a);
                    acc[0][0] = $fma(a0, b0, acc[0][0]);
                    acc[0][1] = $fma(a0, b1, acc[0][1]);
                    let a1 = $bcast(&*a.add(1));
                    acc[1][0] = $fma(a1, b0, acc[1][0]);
                    acc[1][1] = $fma(a1, b1, acc[1][1]);
                    let a2 = $bcast(&*a.add(2));
                    acc[2][0] = $fma(a2, b0, acc[2][0]);
                    acc[2][1] = $fma(a2, b1, acc[2][1]);
                    let a3 = $bcast(&*a.add(3));
                    acc[3][0] = $fma(a3, b0, acc[3][0]);
                    acc[3][1] = $fma(a3, b1, acc[3][1]);
                    let a4 = $bcast(&*a.add(4));
                    acc[4][0] = $fma(a4, b0, acc[4][0]);
                    acc[4][1] = $fma(a4, b1, acc[4][1]);
                    let a5 = $bcast(&*a.add(5));
                    acc[5][0] = $fma(a5, b0, acc[5][0]);
                    acc[5][1] = $fma(a5, b1, acc[5][1]);
                    a = a.add(6);
                    b = b.add(ldb);
                }
                let va = $set1(alpha);
                if mr == 6 && nr == 2 * L {
                    for r in 0..6 {
                        let d = c.add(r * ldc);
                        let mut x0 = $mul(va, acc[r][0]);
                        let mut x1 = $mul(va, acc[r][1]);
                        if beta != 0.0 {
                            let vb = $set1(beta);
                            x0 = $fma(vb, $load(d), x0);
                            x1 = $fma(vb, $load(d.add(L)), x1);
                        }
                        $store(d, x0);
                        $store(d.add(L), x1);
                    }
                } else {
                    let mut tmp = [0.0 as $t; 12 * L];
                    for r in 0..6 {
                        $store(tmp.as_mut_ptr().add(r * 2 * L), acc[r][0]);
                        $store(tmp.as_mut_ptr().add(r * 2 * L + L), acc[r][1]);
                    }
                    for r in 0..mr {
                        for j in 0..nr {
                            let v = alpha * tmp[r * 2 * L + j];
                            let d = c.add(r * ldc + j);
                            *d = if beta == 0.0 { v } else { beta.mul_add(*d, v) };
                        }
                    }
                }
            }
        };
    }

    kernel!(
        sgemm_6x16,
        f32,
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_broadcast_ss,
        _mm256_fmadd_ps,
        _mm256_mul_ps,
        _mm256_set1_ps
    );
    kernel!(
        dgemm_6x8,
        f64,
        4,
        __m256d,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_broadcast_sd,
        _mm256_fmadd_pd,
        _mm256_mul_pd,
        _mm256_set1_pd
    );

    /// Dot products of 4 rows of A with 3 rows of B over `len` values (a
    /// multiple of 8), accumulated into `acc`: twelve partial-sum vectors of
    /// eight lanes, `acc[(i·3 + j)·8 ..]`.
    ///
    /// # Safety
    /// AVX2 and FMA present; every pointer of `a` and `b` is readable for
    /// `len` values (only the first `len / 8 · 8` are read); `acc` is readable
    /// and writable for 96 values and overlaps none of them.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn sdot_4x3_acc(
        len: usize,
        a: [*const f32; 4],
        b: [*const f32; 3],
        acc: *mut f32,
    ) {
        let mut v = [[_mm256_setzero_ps(); 3]; 4];
        for i in 0..4 {
            for j in 0..3 {
                v[i][j] = _mm256_loadu_ps(acc.add((i * 3 + j) * 8));
            }
        }
        let mut p = 0;
        while p + 8 <= len {
            let b0 = _mm256_loadu_ps(b[0].add(p));
            let b1 = _mm256_loadu_ps(b[1].add(p));
            let b2 = _mm256_loadu_ps(b[2].add(p));
            for i in 0..4 {
                let av = _mm256_loadu_ps(a[i].add(p));
                v[i][0] = _mm256_fmadd_ps(av, b0, v[i][0]);
                v[i][1] = _mm256_fmadd_ps(av, b1, v[i][1]);
                v[i][2] = _mm256_fmadd_ps(av, b2, v[i][2]);
            }
            p += 8;
        }
        for i in 0..4 {
            for j in 0..3 {
                _mm256_storeu_ps(acc.add((i * 3 + j) * 8), v[i][j]);
            }
        }
    }

    /// The eight lanes at `p` summed in a fixed order.
    ///
    /// # Safety
    /// AVX2 and FMA present (the function is compiled with them); `p` is
    /// readable for 8 values.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn hsum8(p: *const f32) -> f32 {
        hsum(_mm256_loadu_ps(p))
    }

    /// The eight lanes of `v` summed in a fixed order.
    ///
    /// # Safety
    /// AVX present (its callers are compiled with AVX2 and checked by
    /// [`available`]).
    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Eight dot products of `x` with the rows `w[r]` over `n` elements (one
    /// load of `x` serves eight rows), eight lanes each, lanes summed in a
    /// fixed order, the tail added last.
    ///
    /// # Safety
    /// AVX2 and FMA present; `x` and every `w[r]` hold `n` values.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn sdot8(n: usize, x: *const f32, w: [*const f32; 8]) -> [f32; 8] {
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut i = 0;
        while i + 8 <= n {
            let xv = _mm256_loadu_ps(x.add(i));
            for r in 0..8 {
                acc[r] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w[r].add(i)), acc[r]);
            }
            i += 8;
        }
        let mut out = [0.0f32; 8];
        for r in 0..8 {
            let mut t = hsum(acc[r]);
            for k in i..n {
                t = (*x.add(k)).mul_add(*w[r].add(k), t);
            }
            out[r] = t;
        }
        out
    }

    /// `Σ x_i·y_i` over `n` elements, eight lanes × four accumulators.
    ///
    /// # Safety
    /// AVX2 and FMA present; `x` and every `w[r]` are readable for `n` values.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn sdot4(n: usize, x: *const f32, w: [*const f32; 4]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 8 <= n {
            let xv = _mm256_loadu_ps(x.add(i));
            for r in 0..4 {
                acc[r] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w[r].add(i)), acc[r]);
            }
            i += 8;
        }
        let mut out = [0.0f32; 4];
        for r in 0..4 {
            let mut t = hsum(acc[r]);
            for k in i..n {
                t = (*x.add(k)).mul_add(*w[r].add(k), t);
            }
            out[r] = t;
        }
        out
    }
}

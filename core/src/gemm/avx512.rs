//! AVX-512F microkernels: 12×32 for `f32` and 12×16 for `f64`.
//!
//! **Shape.** A row of the tile is two 512-bit vectors (32 `f32` or 16 `f64`
//! columns, one packed-B step loaded as two vectors), and each of the 12 rows
//! of A is one broadcast: 24 accumulators, 2 B vectors and 1 broadcast
//! register, so 27 of the 32 `zmm` registers are live (the compiled loop,
//! checked with `objdump`: 2 `vmovups`, 12 `vbroadcastss` from memory (a load
//! each, no ALU work on Intel), 24 `vfmadd231ps` per step, no spills; with a
//! packed B, four steps per iteration and four integer instructions for
//! the pointers and the count, where one step per iteration had three). Per step of `k` that is 24 FMAs against 2 vector loads
//! and 12 broadcasts (14 loads in the 12 cycles two FMA ports need: under the
//! 2 loads per cycle that Intel and Zen cores sustain for 512-bit operands),
//! and 24 independent chains cover the FMA latency (4 cycles × 2 ports = 8
//! chains at least). It is BLIS's Skylake-X `sgemm` 32×12 transposed (kiln
//! keeps the vectors along the columns of C, BLIS along its rows). 14 rows
//! (28 accumulators, BLIS's `dgemm` 16×14) would leave 4 registers for B and
//! the broadcasts, and tiles 32 rows of C (the LSTM's recurrent product) as
//! 14 + 14 + 4, where 12 rows tile it as 12 + 12 + 8 with the 8-row variant
//! below: no wasted rows.
//!
//! **Edges.** A sliver of fewer than 12 rows (A is packed zero-padded to 12)
//! runs a 12-, 8- or 4-row loop, whichever is the smallest that covers it;
//! a tile narrower than `NR` is written with masked loads and stores (B is
//! packed zero-padded), so no temporary tile is needed.
//!
//! **Blocking** (the 48 KB L1d and 2 MB L2 per core of the Xeon these were
//! tuned on): `KC = 256`, so an A sliver is 12 KB and stays in L1 while the
//! panel's 32 KB B slivers stream past it from L2; `MC` = 480 `f32` / 240
//! `f64` rows (a 480 KB A block); `NC` at most 4096 columns, lowered at run
//! time to fill half of the L2 but no less than 1 MiB
//! (`super::choice::panel_cols`: 1024 `f32` or 512 `f64` columns, a 1 MiB
//! panel, on both the 2 MiB-L2 Xeon and a 1 MiB-L2 Zen 4).

use super::kernels::{Isa, Kernel};
use std::arch::x86_64::*;

/// Rows of the tile (A's packed sliver width).
const MR: usize = 12;

/// True when this CPU runs the AVX-512F kernels.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

pub(crate) fn f32_kernel() -> Kernel<f32> {
    Kernel {
        isa: Isa::Avx512,
        mr: MR,
        nr: 32,
        mc: 480,
        kc: 256,
        nc: 4096,
        f: sgemm_12x32,
        name: "AVX-512F 12×32",
    }
}

pub(crate) fn f64_kernel() -> Kernel<f64> {
    Kernel {
        isa: Isa::Avx512,
        mr: MR,
        nr: 16,
        mc: 240,
        kc: 256,
        nc: 4096,
        f: dgemm_12x16,
        name: "AVX-512F 12×16",
    }
}

macro_rules! kernel {
    ($name:ident, $tile:ident, $t:ty, $lanes:expr, $mask:ty, $zero:ident, $load:ident,
     $maskz_load:ident, $store:ident, $mask_store:ident, $set1:ident, $fma:ident,
     $mul:ident) => {
        /// The tile with `ROWS` rows of accumulators (`mr ≤ ROWS ≤ MR`).
        ///
        /// # Safety
        /// The [`KernelFn`](super::kernels::KernelFn) contract with
        /// `MR = 12`, `NR = 2 × lanes`, and `mr ≤ ROWS`, on a CPU with
        /// AVX-512F ([`available`] returned true).
        #[target_feature(enable = "avx512f")]
        #[inline]
        #[allow(clippy::too_many_arguments)] // the `KernelFn` signature
        unsafe fn $tile<const ROWS: usize>(
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
            let mut acc = [[$zero(); 2]; ROWS];
            let mut steps = kc;
            if ldb == 2 * L {
                // A packed B (`ldb = NR`): four steps per iteration, at
                // constant offsets from `a` and `b`, so that the loop's
                // integer work (two pointer updates and the count) is paid
                // once per 96 FMAs instead of once per 24: on Intel's cores
                // those integer operations can take ports 0 and 5 from the
                // FMAs. Each accumulator still sums its `k` in order, so the
                // result is bitwise the one-step loop's.
                while steps >= 4 {
                    // SAFETY: by the contract, `b` holds `NR = 2·L` readable
                    // values at each of the next 4 steps (`ldb = 2·L` apart)
                    // and `a` a sliver of `MR ≥ ROWS` values per step; both
                    // advance by 4 steps (`steps ≥ 4` remain).
                    unsafe {
                        for u in 0..4 {
                            let b0 = $load(b.add(u * 2 * L));
                            let b1 = $load(b.add(u * 2 * L + L));
                            for r in 0..ROWS {
                                let ar = $set1(*a.add(u * MR + r));
                                acc[r][0] = $fma(ar, b0, acc[r][0]);
                                acc[r][1] = $fma(ar, b1, acc[r][1]);
                            }
                        }
                        a = a.add(4 * MR);
                        b = b.add(4 * 2 * L);
                    }
                    steps -= 4;
                }
            }
            for _ in 0..steps {
                // SAFETY: by the contract, `b` holds `NR = 2·L` readable
                // values at this step and `a` a sliver of `MR ≥ ROWS`
                // values; both advance by one step (`kc` steps in all).
                unsafe {
                    let b0 = $load(b);
                    let b1 = $load(b.add(L));
                    for r in 0..ROWS {
                        let ar = $set1(*a.add(r));
                        acc[r][0] = $fma(ar, b0, acc[r][0]);
                        acc[r][1] = $fma(ar, b1, acc[r][1]);
                    }
                    a = a.add(MR);
                    b = b.add(ldb);
                }
            }
            let va = $set1(alpha);
            // Lanes of the two vectors of a row that lie inside the tile.
            let (m0, m1): ($mask, $mask) = if nr >= 2 * L {
                (!0, !0)
            } else if nr > L {
                (!0, ((1u64 << (nr - L)) - 1) as $mask)
            } else {
                (((1u64 << nr) - 1) as $mask, 0)
            };
            for r in 0..ROWS {
                if r >= mr {
                    break;
                }
                // SAFETY: `r < mr`: row `r` of C is writable (readable when
                // β ≠ 0) for the `nr` columns the masks select; masked-off
                // lanes are neither read nor written, and fault on nothing,
                // so the second half's address is formed with `wrapping_add`
                // (it may lie past a narrow tile's end).
                unsafe {
                    let d = c.add(r * ldc);
                    let d1 = d.wrapping_add(L);
                    let mut x0 = $mul(va, acc[r][0]);
                    let mut x1 = $mul(va, acc[r][1]);
                    if m1 == !0 {
                        if beta != 0.0 {
                            let vb = $set1(beta);
                            x0 = $fma(vb, $load(d), x0);
                            x1 = $fma(vb, $load(d1), x1);
                        }
                        $store(d, x0);
                        $store(d1, x1);
                    } else {
                        if beta != 0.0 {
                            let vb = $set1(beta);
                            x0 = $fma(vb, $maskz_load(m0, d), x0);
                            x1 = $fma(vb, $maskz_load(m1, d1), x1);
                        }
                        $mask_store(d, m0, x0);
                        $mask_store(d1, m1, x1);
                    }
                }
            }
        }

        /// # Safety
        /// The [`KernelFn`](super::kernels::KernelFn) contract with
        /// `MR = 12`, `NR = 2 × lanes`, on a CPU with AVX-512F
        /// ([`available`] returned true).
        #[target_feature(enable = "avx512f")]
        #[allow(clippy::too_many_arguments)] // the `KernelFn` signature
        pub(crate) unsafe fn $name(
            kc: usize,
            a: *const $t,
            b: *const $t,
            ldb: usize,
            c: *mut $t,
            ldc: usize,
            mr: usize,
            nr: usize,
            alpha: $t,
            beta: $t,
        ) {
            // Start fetching the C tile now (as the AVX2 kernels do): its
            // rows are far apart and needed only after the loop. A prefetch
            // never faults, hence `wrapping_add`.
            if kc >= 64 {
                for r in 0..mr {
                    _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * ldc) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(
                        c.wrapping_add(r * ldc + 2 * $lanes - 1) as *const i8
                    );
                }
            }
            // SAFETY: the caller's contract, and `mr ≤ ROWS` in each arm
            // (`mr ≤ MR = 12` by the contract).
            unsafe {
                if mr > 8 {
                    $tile::<12>(kc, a, b, ldb, c, ldc, mr, nr, alpha, beta)
                } else if mr > 4 {
                    $tile::<8>(kc, a, b, ldb, c, ldc, mr, nr, alpha, beta)
                } else {
                    $tile::<4>(kc, a, b, ldb, c, ldc, mr, nr, alpha, beta)
                }
            }
        }
    };
}

kernel!(
    sgemm_12x32,
    sgemm_tile,
    f32,
    16,
    __mmask16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_maskz_loadu_ps,
    _mm512_storeu_ps,
    _mm512_mask_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_mul_ps
);
kernel!(
    dgemm_12x16,
    dgemm_tile,
    f64,
    8,
    __mmask8,
    _mm512_setzero_pd,
    _mm512_loadu_pd,
    _mm512_maskz_loadu_pd,
    _mm512_storeu_pd,
    _mm512_mask_storeu_pd,
    _mm512_set1_pd,
    _mm512_fmadd_pd,
    _mm512_mul_pd
);

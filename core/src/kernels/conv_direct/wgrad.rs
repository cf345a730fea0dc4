//! The weight gradient of a stride-1 convolution without im2col:
//!
//! `dw[o, c, a, b] (acc)= Σ_s Σ_{r, j} dy[s, o, r, j] · x[s, c, r − ph + a, j − pw + b]`
//!
//! (terms outside the image are zero), a correlation of the input with the
//! upstream gradient, summed over the batch.
//!
//! **How.** One task per group of samples (one sample at 32×32, more for
//! smaller maps, so that every accumulator sums about 1,024 positions before
//! its lanes are reduced) computes the group's whole `dw` into its own row
//! of the scratch; the rows are then added in group order, so the result
//! does not depend on the thread count. Within a sample, a tile is a
//! block of output channels × the `kw` taps of one kernel row `a` of one
//! input channel `c`: 8 × 3 (or 8 × 1, 8 × 2, 4 × 4, 4 × 5) vector
//! accumulators of 16 lanes, which run along the output row `j`. Per
//! 16-wide stretch of a row: one `dy` load per output channel, one `x` load
//! per tap (masked where the tap falls in the padding or past the row's
//! end, so the input needs no padded copy), and an FMA per pair: 24 FMAs
//! for 11 loads at 8 × 3. After the group's rows the accumulators are
//! reduced across their lanes. The `dy` planes of a block (32 KB at 8 × 32
//! × 32) stay in L1 across the input channels and kernel rows that read them.

use super::{max_taps, Acc, Window2d};

/// Narrowest output for which the direct weight gradient runs: measured
/// (`examples/conv_direct_ab`, log #19) at 0.27–0.36 of the GEMM path's time
/// on outputs 24, 28 and 32 wide, but 0.94–1.21 on outputs 8 to 16 wide,
/// where few vector steps per row leave the GEMM's dot-product tiles over
/// the long contraction as fast or faster.
const MIN_WIDTH: usize = 24;

/// Whether [`conv_direct_wgrad`] runs for this layer on this CPU: stride 1,
/// dilation 1, padding below the kernel, a kernel 1 to 5 wide, an output
/// at least [`MIN_WIDTH`] wide, at most [`max_taps`] terms per forward
/// output, at least 5 output channels (a block of 8, or 4 for kernels 4 and
/// 5 wide, more than half used), AVX-512F.
pub(crate) fn wgrad_applies(g: &Window2d, co: usize) -> bool {
    (g.sh, g.sw, g.dh, g.dw) == (1, 1, 1, 1)
        && g.ph < g.kh
        && g.pw < g.kw
        && (1..=5).contains(&g.kw)
        && g.rows() <= max_taps()
        && g.ow >= MIN_WIDTH
        && 2 * co > co.div_ceil(block_of(g.kw)) * block_of(g.kw)
        && g.oh > 0
        && g.ow > 0
        && crate::simd::avx512()
}

/// Output channels per tile for a kernel `kw` wide (accumulators: at most 24).
fn block_of(kw: usize) -> usize {
    if kw <= 3 {
        8
    } else {
        4
    }
}

/// `dw (acc)=` the module doc's sum over `batch` samples, where
/// [`wgrad_applies`]; returns `false` and touches nothing where it does not.
/// `x` is `[batch, g.channels, h, w]`, `dy` `[batch, co, oh, ow]`, `dw`
/// `[co, g.channels, kh, kw]`; `scratch` is resized (its capacity kept).
#[allow(clippy::too_many_arguments)] // the operands of the formula above
pub(crate) fn conv_direct_wgrad(
    g: &Window2d,
    co: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    batch: usize,
    acc: Acc,
    scratch: &mut Vec<f32>,
) -> bool {
    if !wgrad_applies(g, co) {
        return false;
    }
    run(g, co, x, dy, dw, batch, acc, scratch)
}

/// [`conv_direct_wgrad`] without the choice of [`wgrad_applies`] (any
/// channel count), for the tests; still `false` without AVX-512F or for a
/// geometry the kernel cannot compute.
#[allow(clippy::too_many_arguments)] // the operands of the formula above
pub(super) fn run(
    g: &Window2d,
    co: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    batch: usize,
    acc: Acc,
    scratch: &mut Vec<f32>,
) -> bool {
    let geometry = (g.sh, g.sw, g.dh, g.dw) == (1, 1, 1, 1)
        && g.ph < g.kh
        && g.pw < g.kw
        && (1..=5).contains(&g.kw);
    if !geometry || !crate::simd::avx512() || g.oh == 0 || g.ow == 0 {
        return false;
    }
    let n = co * g.rows();
    let (xn, dyn_) = (g.channels * g.in_plane(), co * g.out_plane());
    assert!(x.len() >= batch * xn && dy.len() >= batch * dyn_ && dw.len() >= n);
    // Samples per task: enough that each accumulator sums ~1,024 output
    // positions (64 vector steps) before its lanes are reduced: one sample
    // at 32×32, four at 16×16, eight at 8×8. Fixed by the shapes alone.
    let per = g.oh * g.ow.div_ceil(16) * 16;
    let group = 1024usize.div_ceil(per).clamp(1, batch.max(1));
    let groups = batch.div_ceil(group);
    scratch.resize(groups * n, 0.0);
    let rows = crate::gemm::par::SyncPtr(scratch.as_mut_ptr());
    let one = |t: usize| {
        // SAFETY: group `t` owns row `t` of the scratch (disjoint, inside it).
        let part = unsafe { rows.slice(t * n, n) };
        let (s0, s1) = (t * group, ((t + 1) * group).min(batch));
        samples(
            g,
            co,
            &x[s0 * xn..s1 * xn],
            &dy[s0 * dyn_..s1 * dyn_],
            s1 - s0,
            part,
        );
    };
    let work = batch * n * g.out_plane();
    if work >= 1 << 18 && groups > 1 {
        crate::gemm::par::for_each(groups, &one);
    } else {
        (0..groups).for_each(one);
    }
    // The groups' rows added in order (a fixed order: the same sums at any
    // thread count), at the CPU's widest vectors.
    let parts: &[f32] = scratch;
    crate::simd::wide(|| {
        let dw = &mut dw[..n];
        if acc == Acc::Set {
            dw.fill(0.0);
        }
        for row in parts.chunks_exact(n).take(groups) {
            for (d, v) in dw.iter_mut().zip(row) {
                *d += *v;
            }
        }
    });
    true
}

/// The `dw` of `count` consecutive samples into `out` (`[co, ci, kh, kw]`,
/// overwritten).
fn samples(g: &Window2d, co: usize, x: &[f32], dy: &[f32], count: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        assert!(crate::simd::avx512());
        assert!(
            x.len() >= count * g.channels * g.in_plane() && dy.len() >= count * co * g.out_plane()
        );
        assert!(out.len() >= co * g.rows());
        // SAFETY: AVX-512F is present (asserted); the lengths the kernel
        // indexes are asserted above.
        unsafe {
            match g.kw {
                1 => avx512::samples::<8, 1>(g, co, x, dy, count, out),
                2 => avx512::samples::<8, 2>(g, co, x, dy, count, out),
                3 => avx512::samples::<8, 3>(g, co, x, dy, count, out),
                4 => avx512::samples::<4, 4>(g, co, x, dy, count, out),
                _ => avx512::samples::<4, 5>(g, co, x, dy, count, out),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (g, co, x, dy, count, out);
        unreachable!("conv_direct_wgrad runs only where AVX-512F is present")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Window2d;
    use std::arch::x86_64::*;

    const LANES: usize = 16;

    /// Lanes `lo .. hi` of a 16-lane mask (empty when `hi ≤ lo`).
    fn lanes(lo: isize, hi: isize) -> __mmask16 {
        let (lo, hi) = (lo.clamp(0, 16) as u32, hi.clamp(0, 16) as u32);
        if hi <= lo {
            return 0;
        }
        let upto = |n: u32| if n >= 16 { 0xffffu32 } else { (1u32 << n) - 1 };
        (upto(hi) & !upto(lo)) as __mmask16
    }

    /// The `dw` of `count` samples: blocks of `OB` output channels × the
    /// `KW` taps of each (input channel, kernel row), summed over the
    /// samples in the accumulators, then reduced across lanes.
    ///
    /// # Safety
    /// AVX-512F is present; `x`, `dy` hold `count` samples' planes and `out`
    /// a whole `dw` (the caller asserts it); `g.kw == KW`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn samples<const OB: usize, const KW: usize>(
        g: &Window2d,
        co: usize,
        x: &[f32],
        dy: &[f32],
        count: usize,
        out: &mut [f32],
    ) {
        let (xn, dyn_) = (g.channels * g.in_plane(), co * g.out_plane());
        let (ci, kh) = (g.channels, g.kh);
        let (h, w, oh, ow) = (g.h as isize, g.w, g.oh, g.ow);
        let (ph, pw) = (g.ph as isize, g.pw as isize);
        let (xp, dp) = (x.as_ptr(), dy.as_ptr());
        let plane = oh * ow;
        for o0 in (0..co).step_by(OB) {
            let oc = OB.min(co - o0);
            // Plane offsets of the block's channels; channels past `co`
            // repeat the block's first (their sums are dropped below).
            let offs: [usize; OB] =
                std::array::from_fn(|o| if o < oc { (o0 + o) * plane } else { o0 * plane });
            for c in 0..ci {
                for a in 0..kh {
                    let mut s = [[_mm512_setzero_ps(); KW]; OB];
                    for t in 0..count {
                        let (xs, ds) = (t * xn, t * dyn_);
                        // Rows `r` whose input row `r − ph + a` is inside.
                        let r0 = (ph - a as isize).max(0) as usize;
                        let r1 = (h + ph - a as isize).clamp(0, oh as isize) as usize;
                        for j0 in (0..ow).step_by(LANES) {
                            // The lanes' masks depend on the column alone:
                            // `dy`'s lanes `< jn`; tap `b`'s input column of
                            // lane `l` is `j0 + l − pw + b`, inside `0 .. w`.
                            let jn = (ow - j0).min(LANES) as isize;
                            let dm = lanes(0, jn);
                            let shift: [isize; KW] =
                                std::array::from_fn(|b| j0 as isize - pw + b as isize);
                            let xm: [__mmask16; KW] = std::array::from_fn(|b| {
                                lanes(-shift[b], (w as isize - shift[b]).min(jn))
                            });
                            for r in r0..r1 {
                                let xrow = (xs
                                    + (c * g.h + (r as isize - ph + a as isize) as usize) * w)
                                    as isize;
                                let drow = ds + r * ow + j0;
                                // SAFETY: the unmasked lanes read columns
                                // `0 .. w` of an input row inside plane `c`
                                // of sample `t`; the pointer is only formed
                                // (wrapping), the masked-off lanes are not read.
                                let xv: [__m512; KW] = std::array::from_fn(|b| unsafe {
                                    _mm512_maskz_loadu_ps(
                                        xm[b],
                                        xp.wrapping_offset(xrow + shift[b]),
                                    )
                                });
                                for (so, off) in s.iter_mut().zip(&offs) {
                                    // SAFETY: lanes `< jn` of row `r` of a
                                    // plane `< co` of sample `t`'s `dy`.
                                    let d =
                                        unsafe { _mm512_maskz_loadu_ps(dm, dp.add(drow + off)) };
                                    for (sb, xb) in so.iter_mut().zip(&xv) {
                                        *sb = _mm512_fmadd_ps(d, *xb, *sb);
                                    }
                                }
                            }
                        }
                    }
                    for (o, so) in s.iter().enumerate().take(oc) {
                        for (b, v) in so.iter().enumerate() {
                            out[(((o0 + o) * ci + c) * kh + a) * KW + b] = _mm512_reduce_add_ps(*v);
                        }
                    }
                }
            }
        }
    }
}

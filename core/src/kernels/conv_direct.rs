//! Direct convolution for few channels (issue 17): the forward pass and the
//! input gradient of a stride-1 convolution without `im2col`, `col2im` or a
//! GEMM, on the CPU for `f32` on a core with AVX-512.
//!
//! **What it computes.** For a layer with weight `w[co, ci, kh, kw]`,
//! padding `(ph, pw)`, stride 1, dilation 1 and one group:
//!
//! * forward: `y[s, o, r, j] (acc)= Σ_{c, a, b} w[o, c, a, b] · x[s, c, r − ph + a, j − pw + b]`;
//! * input gradient: `dx[s, c, r, j] (acc)= Σ_{o, a, b} w[o, c, a, b] · dy[s, o, r + ph − a, j + pw − b]`
//!   (terms outside the image are zero), the adjoint of the forward. It is
//!   the same kind of sum: `dy` padded by `kh − 1 − ph` and `kw − 1 − pw`,
//!   correlated with the kernel flipped in both axes and its channel axes
//!   swapped, `w'[c, o, a, b] = w[o, c, kh − 1 − a, kw − 1 − b]`. One loop
//!   serves both passes; only the weights it packs and the padding differ.
//!
//! The weight gradient has a kernel of its own, in `conv_direct/wgrad.rs`
//! (`conv_direct_wgrad`): its sum runs over the whole image and the batch,
//! so it accumulates along the rows instead of producing them. Where it
//! declines (outputs narrower than 24) it stays `dY · im2col(x)ᵀ`.
//!
//! **Why.** With few channels the im2col matrix is `ci·kh·kw` times the input
//! (9× for 3×3) and the GEMM's `M` (the output channels, 16 in W5) fills
//! little of its 12-row tile; the input gradient's GEMM has a contraction of
//! only `co` and col2im then scatters `kh·kw` values into every pixel. Here
//! each input row is read from L1 once per tap and output channel block, and
//! nothing but the padded input is written besides the output.
//!
//! **How.** Per sample, the input planes are copied once into a zero-padded
//! scratch (`(oh + kh − 1) × (ow + kw − 1)` per channel), so every tap is an
//! unaligned load with no edge tests. A tile is 8 output channels × two
//! 16-lane vectors: two halves of a 32-wide row stretch, or two consecutive
//! rows where the output is at most 16 wide; masked loads and stores cover
//! the row ends. Per tap: two vector loads, eight weight broadcasts (the
//! weights packed as `[c][a][b][8 channels]`, zero-padded to a multiple of
//! 8), sixteen FMAs into sixteen accumulators. Pieces (a sample × a block of
//! 8 output channels) are split over the pool's threads in fixed, contiguous
//! ranges, each thread with its own padded scratch, so the result does not
//! depend on the thread count.

use crate::device::{Acc, Window2d};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which sum of the module doc a call computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectPass {
    /// `src` is `x` (`[batch, ci, h, w]`), `dst` is `y` (`[batch, co, oh, ow]`).
    Forward,
    /// `src` is `dy` (`[batch, co, oh, ow]`), `dst` is `dx` (`[batch, ci, h, w]`).
    InputGrad,
}

/// Output channels per tile.
const OB: usize = 8;
/// Lanes of a vector (`f32` in 512 bits).
const LANES: usize = 16;
/// Elements past each padded plane set that a masked load's pointer may
/// reach (its masked-off lanes are never read, but the pointer stays in the
/// buffer).
const SLACK: usize = 2 * LANES;
/// Largest `channels_in · kh · kw` (the sum per output) for which the
/// direct forward pass and weight gradient run by default: 32 channels ×
/// 3×3 (the input gradient: twice as many). Measured with
/// `examples/conv_direct_ab` (`docs/performance.md`, log #19): at 288 taps
/// the direct forward pass took 0.38–0.65 of im2col + GEMM's time, at 576
/// 1.10 (64 → 64 channels at 8×8), where the GEMM's reuse of each loaded
/// value wins; the input gradient 0.70–0.76 at 576.
pub(crate) const MAX_TAPS: usize = 32 * 9;

/// The limit in force: [`MAX_TAPS`] unless [`set_max_taps`] changed it.
static LIMIT: AtomicUsize = AtomicUsize::new(MAX_TAPS);

/// Sets the largest `channels_in · kh · kw` the direct kernels take for the
/// forward pass and the weight gradient (the input gradient: twice it),
/// process-wide (0: never); for benchmarks that compare it with im2col +
/// GEMM (`kiln::cpu::set_conv_direct_max_taps`).
pub fn set_max_taps(n: usize) {
    LIMIT.store(n, Ordering::Relaxed);
}

/// The largest `channels_in · kh · kw` the direct kernel takes now.
pub fn max_taps() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// The sizes of one pass: `src` planes `cin × ih × iw`, `dst` planes
/// `cout × oh × ow`, kernel `kh × kw`, `src` padded by `pt` rows on top and
/// `pl` columns on the left (and as many as the sum needs at the bottom and
/// the right).
#[derive(Clone, Copy, Debug)]
struct Plan {
    cin: usize,
    ih: usize,
    iw: usize,
    cout: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    pt: usize,
    pl: usize,
}

impl Plan {
    fn of(g: &Window2d, co: usize, pass: DirectPass) -> Option<Plan> {
        if (g.sh, g.sw, g.dh, g.dw) != (1, 1, 1, 1) || g.ph >= g.kh || g.pw >= g.kw {
            return None;
        }
        Some(match pass {
            DirectPass::Forward => Plan {
                cin: g.channels,
                ih: g.h,
                iw: g.w,
                cout: co,
                oh: g.oh,
                ow: g.ow,
                kh: g.kh,
                kw: g.kw,
                pt: g.ph,
                pl: g.pw,
            },
            DirectPass::InputGrad => Plan {
                cin: co,
                ih: g.oh,
                iw: g.ow,
                cout: g.channels,
                oh: g.h,
                ow: g.w,
                kh: g.kh,
                kw: g.kw,
                pt: g.kh - 1 - g.ph,
                pl: g.kw - 1 - g.pw,
            },
        })
    }
    fn hp(&self) -> usize {
        self.oh + self.kh - 1
    }
    fn wp(&self) -> usize {
        self.ow + self.kw - 1
    }
    /// Elements of one sample's padded planes, with the slack.
    fn padded(&self) -> usize {
        self.cin * self.hp() * self.wp() + SLACK
    }
    fn blocks(&self) -> usize {
        self.cout.div_ceil(OB)
    }
    /// Elements of the packed weights.
    fn packed(&self) -> usize {
        self.blocks() * self.cin * self.kh * self.kw * OB
    }
}

/// Whether the direct kernel runs this pass on this CPU (and under the
/// kernel cap): stride 1, dilation 1, padding below the kernel size, at most
/// [`max_taps`] terms per output ([`MAX_TAPS`] by default; twice that for
/// the input gradient), more than half of each 8-channel tile's channels
/// used, AVX-512F. The caller checks one group.
pub(crate) fn applies(g: &Window2d, co: usize, pass: DirectPass) -> bool {
    let Some(p) = Plan::of(g, co, pass) else {
        return false;
    };
    // A tile computes 8 output channels: with fewer than 5 (the input
    // gradient of a first layer: 1 or 3 image channels) most of its work
    // would be thrown away (1 channel of 8 took 1.4–2.0× the GEMM path's
    // time in the measurement above).
    // The input gradient's tile reads no more per output than the
    // forward's, and stays ahead of the GEMM path to 576 taps (64 channels
    // × 3×3: 0.70–0.76 of its time), where the forward pass does not.
    let limit = match pass {
        DirectPass::Forward => max_taps(),
        DirectPass::InputGrad => max_taps().saturating_mul(2),
    };
    p.cin * p.kh * p.kw <= limit
        && 2 * p.cout > p.blocks() * OB
        && p.ow > 0
        && p.oh > 0
        && crate::simd::avx512()
}

/// Elements of scratch [`conv_direct`] needs for `parts` threads.
fn scratch_len(p: &Plan, parts: usize) -> usize {
    p.packed() + parts * p.padded()
}

/// The pass of the module doc over `batch` samples, where [`applies`];
/// returns `false` and touches nothing where it does not. `w` is the layer's
/// weight `[co, g.channels, kh, kw]`; `scratch` is resized (it keeps its
/// capacity, so steps after the first allocate nothing).
#[allow(clippy::too_many_arguments)] // the operands of the formulas above
pub(crate) fn conv_direct(
    g: &Window2d,
    co: usize,
    w: &[f32],
    src: &[f32],
    dst: &mut [f32],
    batch: usize,
    pass: DirectPass,
    acc: Acc,
    scratch: &mut Vec<f32>,
) -> bool {
    if !applies(g, co, pass) {
        return false;
    }
    run(g, co, w, src, dst, batch, pass, acc, scratch)
}

/// [`conv_direct`] without the choice of [`applies`] (any channel count),
/// for the tests; still `false` without AVX-512F or for a geometry the
/// kernel cannot compute (stride, dilation, padding).
#[allow(clippy::too_many_arguments)] // the operands of the formulas above
fn run(
    g: &Window2d,
    co: usize,
    w: &[f32],
    src: &[f32],
    dst: &mut [f32],
    batch: usize,
    pass: DirectPass,
    acc: Acc,
    scratch: &mut Vec<f32>,
) -> bool {
    let Some(p) = Plan::of(g, co, pass) else {
        return false;
    };
    if !crate::simd::avx512() || p.oh == 0 || p.ow == 0 {
        return false;
    }
    let pieces = batch * p.blocks();
    let work = pieces * OB * p.oh * p.ow * p.cin * p.kh * p.kw;
    let parts = if work >= 1 << 18 {
        crate::gemm::par::threads().min(pieces).max(1)
    } else {
        1
    };
    scratch.resize(scratch_len(&p, parts), 0.0);
    let (packed, pads) = scratch.split_at_mut(p.packed());
    pack(&p, g, w, pass, packed);
    let packed: &[f32] = packed;
    let (src_n, dst_n) = (p.cin * p.ih * p.iw, p.cout * p.oh * p.ow);
    assert!(src.len() >= batch * src_n && dst.len() >= batch * dst_n);
    let dptr = crate::gemm::par::SyncPtr(dst.as_mut_ptr());
    let pptr = crate::gemm::par::SyncPtr(pads.as_mut_ptr());
    let run = |t: usize| {
        // SAFETY: part `t` owns padded region `t` (disjoint, inside `pads`).
        let pad = unsafe { pptr.slice(t * p.padded(), p.padded()) };
        let mut padded_for = usize::MAX;
        for k in pieces * t / parts..pieces * (t + 1) / parts {
            let (s, blk) = (k / p.blocks(), k % p.blocks());
            if padded_for != s {
                pad_sample(&p, &src[s * src_n..(s + 1) * src_n], pad);
                padded_for = s;
            }
            let o0 = blk * OB;
            let oc = OB.min(p.cout - o0);
            // SAFETY: piece `k` writes only channels `o0 .. o0 + oc` of
            // sample `s`, a range no other piece touches, inside `dst`
            // (asserted above); `for_each` joins before `dst`'s borrow ends.
            let out = unsafe { dptr.slice(s * dst_n + o0 * p.oh * p.ow, oc * p.oh * p.ow) };
            let wblk = &packed[blk * p.cin * p.kh * p.kw * OB..][..p.cin * p.kh * p.kw * OB];
            block(&p, pad, wblk, out, oc, acc);
        }
    };
    if parts == 1 {
        run(0);
    } else {
        crate::gemm::par::for_each(parts, &run);
    }
    true
}

/// Packs the weights as `[block][c][a][b][8]` (the `c` of the pass's
/// source), zero-padded to whole blocks of output channels.
fn pack(p: &Plan, g: &Window2d, w: &[f32], pass: DirectPass, out: &mut [f32]) {
    let (kh, kw) = (p.kh, p.kw);
    // The layer's weight is `[co][ci][kh][kw]`, with `ci = g.channels`.
    let ci = g.channels;
    out.fill(0.0);
    for o in 0..p.cout {
        let (blk, lane) = (o / OB, o % OB);
        for c in 0..p.cin {
            for a in 0..kh {
                for b in 0..kw {
                    let v = match pass {
                        DirectPass::Forward => w[((o * ci + c) * kh + a) * kw + b],
                        // Pass output `o` is the layer's input channel, pass
                        // input `c` its output channel; the kernel flipped.
                        DirectPass::InputGrad => {
                            w[((c * ci + o) * kh + (kh - 1 - a)) * kw + (kw - 1 - b)]
                        }
                    };
                    out[(((blk * p.cin + c) * kh + a) * kw + b) * OB + lane] = v;
                }
            }
        }
    }
}

/// Copies one sample's source planes into `pad` with the zero border.
fn pad_sample(p: &Plan, src: &[f32], pad: &mut [f32]) {
    let (hp, wp) = (p.hp(), p.wp());
    for c in 0..p.cin {
        let plane = &mut pad[c * hp * wp..(c + 1) * hp * wp];
        for y in 0..hp {
            let row = &mut plane[y * wp..(y + 1) * wp];
            let sy = y as isize - p.pt as isize;
            if sy < 0 || sy >= p.ih as isize {
                row.fill(0.0);
                continue;
            }
            let s = &src[(c * p.ih + sy as usize) * p.iw..][..p.iw];
            // Columns `pl .. pl + iw` hold the row; the rest is zero (the
            // row may be cut at the right where the pass reads less of it).
            let n = p.iw.min(wp - p.pl);
            row[..p.pl].fill(0.0);
            row[p.pl..p.pl + n].copy_from_slice(&s[..n]);
            row[p.pl + n..].fill(0.0);
        }
    }
    pad[p.cin * hp * wp..].fill(0.0);
}

/// The output planes `out` (`oc` channels) of one block for one sample.
fn block(p: &Plan, pad: &[f32], w: &[f32], out: &mut [f32], oc: usize, acc: Acc) {
    #[cfg(target_arch = "x86_64")]
    {
        assert!(
            crate::simd::avx512() && pad.len() >= p.padded() && w.len() >= p.cin * p.kh * p.kw * OB
        );
        assert!(oc <= OB && out.len() >= oc * p.oh * p.ow);
        // SAFETY: AVX-512F is present (`crate::simd::avx512()`, asserted); the lengths
        // the kernel indexes are asserted above.
        unsafe { avx512::block(p, pad, w, out, oc, acc) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p, pad, w, out, oc, acc);
        unreachable!("conv_direct runs only where `applies`, on x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Acc, Plan, LANES, OB};
    use std::arch::x86_64::*;

    /// One vector of a tile: its first element's offset in a padded plane
    /// and in an output plane, and its lanes.
    #[derive(Clone, Copy)]
    struct Vec16 {
        src: usize,
        dst: usize,
        mask: __mmask16,
    }

    fn lanes(n: usize) -> __mmask16 {
        if n >= LANES {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// Runs every tile of one block: 32-wide stretches of a row where the
    /// output is wider than 16, else pairs of rows.
    ///
    /// # Safety
    /// AVX-512F is present; `pad` holds `p.padded()` elements, `w` a packed
    /// block, `out` `oc ≤ 8` planes of `oh·ow`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block(
        p: &Plan,
        pad: &[f32],
        w: &[f32],
        out: &mut [f32],
        oc: usize,
        acc: Acc,
    ) {
        let wp = p.wp();
        if p.ow > LANES {
            for r in 0..p.oh {
                for j0 in (0..p.ow).step_by(2 * LANES) {
                    let v0 = Vec16 {
                        src: r * wp + j0,
                        dst: r * p.ow + j0,
                        mask: lanes(p.ow - j0),
                    };
                    let rest = p.ow.saturating_sub(j0 + LANES);
                    let v1 = Vec16 {
                        src: v0.src + LANES,
                        dst: v0.dst + LANES,
                        mask: lanes(rest),
                    };
                    // SAFETY: as this function's.
                    unsafe { tile(p, pad, w, out, oc, acc, v0, v1) };
                }
            }
        } else {
            for r in (0..p.oh).step_by(2) {
                let v0 = Vec16 {
                    src: r * wp,
                    dst: r * p.ow,
                    mask: lanes(p.ow),
                };
                let two = r + 1 < p.oh;
                let v1 = Vec16 {
                    src: if two { v0.src + wp } else { v0.src },
                    dst: if two { v0.dst + p.ow } else { v0.dst },
                    mask: if two { lanes(p.ow) } else { 0 },
                };
                // SAFETY: as this function's.
                unsafe { tile(p, pad, w, out, oc, acc, v0, v1) };
            }
        }
    }

    /// 8 output channels × the two vectors `v0`, `v1`: 16 accumulators, and
    /// per tap 2 loads, 8 broadcasts, 16 FMAs.
    ///
    /// # Safety
    /// As [`block`]'s; the vectors' unmasked lanes lie inside their planes.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        p: &Plan,
        pad: &[f32],
        w: &[f32],
        out: &mut [f32],
        oc: usize,
        acc: Acc,
        v0: Vec16,
        v1: Vec16,
    ) {
        let (hp, wp, kh, kw) = (p.hp(), p.wp(), p.kh, p.kw);
        let mut s = [[_mm512_setzero_ps(); 2]; OB];
        let (pp, wq) = (pad.as_ptr(), w.as_ptr());
        for c in 0..p.cin {
            for a in 0..kh {
                let row = c * hp * wp + a * wp;
                let wrow = (c * kh + a) * kw * OB;
                for b in 0..kw {
                    // SAFETY: `row + b + v.src` is at most the last padded
                    // element read by an unmasked lane (`(c·hp + oh − 1 + a)·wp
                    // + ow − 1 + b`), and a masked load reads only those
                    // lanes; the pointer stays inside `pad` thanks to SLACK.
                    let (x0, x1) = unsafe {
                        (
                            _mm512_maskz_loadu_ps(v0.mask, pp.add(row + b + v0.src)),
                            _mm512_maskz_loadu_ps(v1.mask, pp.add(row + b + v1.src)),
                        )
                    };
                    let wt = wrow + b * OB;
                    for (o, so) in s.iter_mut().enumerate() {
                        // SAFETY: `wt + o < cin·kh·kw·8 ≤ w.len()`.
                        let wv = _mm512_set1_ps(unsafe { *wq.add(wt + o) });
                        so[0] = _mm512_fmadd_ps(wv, x0, so[0]);
                        so[1] = _mm512_fmadd_ps(wv, x1, so[1]);
                    }
                }
            }
        }
        let plane = p.oh * p.ow;
        let op = out.as_mut_ptr();
        for (o, so) in s.iter().enumerate().take(oc) {
            for (v, sv) in [v0, v1].iter().zip(so) {
                // SAFETY: the unmasked lanes are inside plane `o < oc` of `out`.
                unsafe {
                    let d = op.add(o * plane + v.dst);
                    let val = match acc {
                        Acc::Set => *sv,
                        Acc::Add => _mm512_add_ps(_mm512_maskz_loadu_ps(v.mask, d), *sv),
                    };
                    _mm512_mask_storeu_ps(d, v.mask, val);
                }
            }
        }
    }
}

mod wgrad;
pub(crate) use wgrad::conv_direct_wgrad;

#[cfg(test)]
mod tests;

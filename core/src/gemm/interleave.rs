//! Packing an operand whose lines run along the contraction: 16×16 `f32`
//! transposes in AVX-512 registers.
//!
//! The microkernels read a packed sliver step by step: step `p` holds the
//! sliver's `w` rows of A (or columns of B) at `p`, side by side. When the
//! operand stores each of those lines contiguously along `p` — a row-major
//! A (`cs = 1`), or a B that is a transposed row-major matrix (`rs = 1`: a
//! dense layer's `Wᵀ`, a convolution's `im2colᵀ` in its weight gradient) —
//! packing is a transpose. The scalar loop in `blocked.rs` moves one value
//! per load and store, with a store every `w·4` bytes; `perf` put it at
//! 9–11 % of W1, W4 and the contrastive pretraining (where the weight
//! gradients' `colsᵀ` take it), against 17–70 % for the microkernel.
//!
//! Here 16 lines × 16 steps are loaded as 16 vectors, transposed with 64
//! in-register shuffles (`unpacklo/hi_ps`, `shuffle_ps`, twice
//! `shuffle_f32x4`), and stored as 16 steps of 16 values: a full vector per
//! load and per store. Steps past `kb` are masked off the loads and never
//! stored; lines past the operand's edge are zero, as the scalar loop writes
//! them. The values written are the same bits as the scalar loop's (a copy).

use std::arch::x86_64::*;

/// `dst[p·w + t] = src[t·ld + p]` for `t < lines`, `p < kb`, and
/// `dst[p·w + t] = 0` for `lines ≤ t < w`: `w` interleaved lines of a packed
/// sliver (`w` = the kernel's `mr` or `nr`, a multiple of 4 up to 32).
///
/// # Safety
/// AVX-512F runs on this CPU. `src + t·ld + p` is readable for `t < lines`,
/// `p < kb`; `dst` is writable for `kb·w` values and does not overlap the
/// source; `lines ≤ w`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn interleave_f32(
    src: *const f32,
    ld: isize,
    lines: usize,
    kb: usize,
    dst: *mut f32,
    w: usize,
) {
    let zero = _mm512_setzero_ps();
    for g0 in (0..w).step_by(16) {
        // This group: lanes `g0 .. g0 + gw` of each step, `n` of them real lines.
        let gw = 16.min(w - g0);
        let n = lines.saturating_sub(g0).min(gw);
        let store_mask: __mmask16 = ((1u32 << gw) - 1) as __mmask16;
        let mut p0 = 0;
        while p0 < kb {
            let pn = 16.min(kb - p0);
            let load_mask: __mmask16 = ((1u32 << pn) - 1) as __mmask16;
            let mut v = [zero; 16];
            for (t, vt) in v.iter_mut().enumerate().take(n) {
                // SAFETY: line `g0 + t < lines`, steps `p0 .. p0 + pn ≤ kb`
                // (the lanes past `pn` are masked off, so not read).
                *vt = unsafe {
                    _mm512_maskz_loadu_ps(
                        load_mask,
                        src.offset((g0 + t) as isize * ld + p0 as isize),
                    )
                };
            }
            let out = transpose16(v);
            for (s, o) in out.iter().enumerate().take(pn) {
                // SAFETY: step `p0 + s < kb`, lanes `g0 .. g0 + gw ≤ w`: inside
                // the `kb·w` values of `dst`.
                unsafe {
                    let d = dst.add((p0 + s) * w + g0);
                    if gw == 16 {
                        _mm512_storeu_ps(d, *o);
                    } else {
                        _mm512_mask_storeu_ps(d, store_mask, *o);
                    }
                }
            }
            p0 += 16;
        }
    }
}

/// The transpose of a 16×16 block held as 16 rows: `out[c]` lane `r` =
/// `r[r]` lane `c`.
///
/// Three rounds: `unpacklo/hi_ps` interleave row pairs inside each 128-bit
/// lane; `shuffle_ps` gathers, for each group of four rows, one column per
/// vector in each 128-bit lane (`u[4g + c]`, lane `L`: rows `4g..4g+4` of
/// column `4L + c`); two rounds of `shuffle_f32x4` then bring lane `L` of
/// `u[c]`, `u[4 + c]`, `u[8 + c]`, `u[12 + c]` together as column `4L + c`.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (t0, t1, t2, t3) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
        u[4 * g] = _mm512_shuffle_ps::<0x44>(t0, t2);
        u[4 * g + 1] = _mm512_shuffle_ps::<0xEE>(t0, t2);
        u[4 * g + 2] = _mm512_shuffle_ps::<0x44>(t1, t3);
        u[4 * g + 3] = _mm512_shuffle_ps::<0xEE>(t1, t3);
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let (a, b, cc, d) = (u[c], u[4 + c], u[8 + c], u[12 + c]);
        let x0 = _mm512_shuffle_f32x4::<0x44>(a, b);
        let x1 = _mm512_shuffle_f32x4::<0xEE>(a, b);
        let y0 = _mm512_shuffle_f32x4::<0x44>(cc, d);
        let y1 = _mm512_shuffle_f32x4::<0xEE>(cc, d);
        out[c] = _mm512_shuffle_f32x4::<0x88>(x0, y0);
        out[4 + c] = _mm512_shuffle_f32x4::<0xDD>(x0, y0);
        out[8 + c] = _mm512_shuffle_f32x4::<0x88>(x1, y1);
        out[12 + c] = _mm512_shuffle_f32x4::<0xDD>(x1, y1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `(lines, kb, w)` of the kernels' widths, with partial groups of
    /// lines and of steps, against the definition; the source has a stride
    /// larger than `kb` and the destination is prefilled with NaN, so a
    /// value not written, or written in the wrong slot, shows.
    #[test]
    fn interleave_is_the_transpose_with_zero_lines() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F (interleave_f32 needs it)");
            return;
        }
        for &w in &[12usize, 16, 32] {
            for lines in [1, 5, w.min(12), w - 1, w] {
                for kb in [1usize, 7, 16, 17, 33, 256] {
                    let ld = kb as isize + 3;
                    let src: Vec<f32> = (0..lines * ld as usize).map(|i| i as f32 + 0.5).collect();
                    let mut dst = vec![f32::NAN; kb * w + 16];
                    // SAFETY: AVX-512F checked above; `src` holds `lines`
                    // lines of `ld ≥ kb` values, `dst` more than `kb·w`.
                    unsafe { interleave_f32(src.as_ptr(), ld, lines, kb, dst.as_mut_ptr(), w) };
                    for p in 0..kb {
                        for t in 0..w {
                            let want = if t < lines {
                                src[t * ld as usize + p]
                            } else {
                                0.0
                            };
                            assert_eq!(
                                dst[p * w + t].to_bits(),
                                want.to_bits(),
                                "w {w}, lines {lines}, kb {kb}: step {p}, line {t}"
                            );
                        }
                    }
                    assert!(dst[kb * w..].iter().all(|x| x.is_nan()), "wrote past kb·w");
                }
            }
        }
    }
}

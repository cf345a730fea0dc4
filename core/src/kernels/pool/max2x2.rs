//! 2×2, stride-2 max pooling of `f32` planes at AVX-512 width (LeNet's
//! pooling, a third of W2's step while it ran one output at a time).
//!
//! Per 16 outputs of a row: the 32 input values of each of the two input
//! rows are loaded as two vectors and split into even and odd columns by
//! one `vpermt2ps` each, so the four taps of 16 windows are four vectors.
//! Then the scalar loop's rule, lane by lane and in the same order (top
//! left, top right, bottom left, bottom right): a tap replaces the best so
//! far when it is greater (`_CMP_GT_OQ`, false against a NaN) or is itself
//! NaN (`_CMP_UNORD_Q`); its flat position replaces the index with it. The
//! values and indices are therefore bitwise the scalar loop's, ties and
//! NaNs included (the test below compares them).

/// Whether [`max_pool_2x2`] runs here: AVX-512F under the kernel cap.
pub(crate) fn available() -> bool {
    crate::simd::avx512()
}

/// One plane: `y[oy, ox] = max` of the 2×2 window at `(2·oy, 2·ox)` of
/// `src` (rows `w` wide), `idx` its flat position, where [`available`].
pub(crate) fn max_pool_2x2(
    src: &[f32],
    w: usize,
    oh: usize,
    ow: usize,
    y: &mut [f32],
    idx: &mut [u32],
) {
    assert!(available(), "max_pool_2x2 needs AVX-512F");
    assert!(2 * ow <= w && src.len() >= 2 * oh * w && y.len() >= oh * ow && idx.len() >= oh * ow);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (asserted); the lengths are asserted above.
    unsafe {
        avx512::plane(src, w, oh, ow, y, idx)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    fn first(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// # Safety
    /// AVX-512F is present; `2·ow ≤ w`, `src` holds `2·oh` rows of `w`, `y`
    /// and `idx` hold `oh·ow` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn plane(
        src: &[f32],
        w: usize,
        oh: usize,
        ow: usize,
        y: &mut [f32],
        idx: &mut [u32],
    ) {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let (sp, yp, ip) = (src.as_ptr(), y.as_mut_ptr(), idx.as_mut_ptr());
        for oy in 0..oh {
            let (r0, r1) = (2 * oy * w, (2 * oy + 1) * w);
            for ox in (0..ow).step_by(16) {
                let n = (ow - ox).min(16);
                let (lo, hi) = (first((2 * n).min(16)), first((2 * n).saturating_sub(16)));
                // SAFETY: the unmasked lanes read columns `2·ox .. 2·(ox + n)`
                // ≤ `2·ow ≤ w` of rows `2·oy` and `2·oy + 1`; the pointers
                // are formed wrapping, and masked-off lanes are not read.
                let load = |r: usize| unsafe {
                    let p = sp.wrapping_add(r + 2 * ox);
                    let (a, b) = (
                        _mm512_maskz_loadu_ps(lo, p),
                        _mm512_maskz_loadu_ps(hi, p.wrapping_add(16)),
                    );
                    (
                        _mm512_permutex2var_ps(a, even, b),
                        _mm512_permutex2var_ps(a, odd, b),
                    )
                };
                let ((ae, ao), (be, bo)) = (load(r0), load(r1));
                // Flat positions of the top-left taps: r0 + 2·(ox + lane).
                let at0 = _mm512_add_epi32(_mm512_set1_epi32((r0 + 2 * ox) as i32), even);
                let down = _mm512_set1_epi32(w as i32);
                let one = _mm512_set1_epi32(1);
                let (mut best, mut at) = (ae, at0);
                for (v, p) in [
                    (ao, _mm512_add_epi32(at0, one)),
                    (be, _mm512_add_epi32(at0, down)),
                    (bo, _mm512_add_epi32(_mm512_add_epi32(at0, down), one)),
                ] {
                    let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best)
                        | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                    best = _mm512_mask_blend_ps(take, best, v);
                    at = _mm512_mask_blend_epi32(take, at, p);
                }
                let m = first(n);
                let o = oy * ow + ox;
                // SAFETY: lanes `< n` are outputs `o .. o + n` ≤ `oh·ow`.
                unsafe {
                    _mm512_mask_storeu_ps(yp.add(o), m, best);
                    _mm512_mask_storeu_epi32(ip.add(o).cast(), m, at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    /// The scalar loop of `max_pool2d_fwd`'s 2×2 path.
    fn scalar(src: &[f32], w: usize, oh: usize, ow: usize) -> (Vec<f32>, Vec<u32>) {
        let (mut y, mut idx) = (vec![0.0; oh * ow], vec![0; oh * ow]);
        for oy in 0..oh {
            let (r0, r1) = (2 * oy * w, (2 * oy + 1) * w);
            for ox in 0..ow {
                let x0 = 2 * ox;
                let (mut best, mut at) = (src[r0 + x0], r0 + x0);
                for p in [r0 + x0 + 1, r1 + x0, r1 + x0 + 1] {
                    let v = src[p];
                    let take = v > best || v.is_nan();
                    best = if take { v } else { best };
                    at = if take { p } else { at };
                }
                y[oy * ow + ox] = best;
                idx[oy * ow + ox] = at as u32;
            }
        }
        (y, idx)
    }

    #[test]
    fn bitwise_the_scalar_loop_with_ties_and_nans() {
        if !available() {
            eprintln!("max_pool_2x2: skipped, this CPU has no AVX-512F");
            return;
        }
        let mut rng = crate::rng(21);
        // Widths: LeNet's 24 and 8, odd (a last column no window reads),
        // more than 32 (two vectors per row and a short one).
        for (h, w) in [(24, 24), (8, 8), (7, 9), (6, 70), (2, 2), (5, 33)] {
            let (oh, ow) = (h / 2, w / 2);
            // Few distinct values (ties), some NaNs and infinities.
            let src: Vec<f32> = (0..h * w)
                .map(|_| match rng.random_range(0..20) {
                    0 => f32::NAN,
                    1 => f32::NEG_INFINITY,
                    2 => f32::INFINITY,
                    k => (k % 5) as f32 - 2.0,
                })
                .collect();
            let (want_y, want_i) = scalar(&src, w, oh, ow);
            let (mut y, mut idx) = (vec![7.0; oh * ow], vec![7; oh * ow]);
            max_pool_2x2(&src, w, oh, ow, &mut y, &mut idx);
            assert_eq!(idx, want_i, "{h}×{w} indices");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want_y), "{h}×{w} values");
        }
    }
}

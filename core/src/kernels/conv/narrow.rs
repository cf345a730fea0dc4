//! col2im for narrow `f32` planes at AVX-512 width: one masked vector per
//! row of a tap.
//!
//! col2im adds, for every tap `(i, j)` of the window and every valid output
//! row `oy`, the row's `xhi − xlo` columns of `cols` into one image row. On a
//! 7-wide plane (the pretraining encoder's third convolution, 64 → 128
//! channels at 7×7) that is 7 values, fewer than a vector, so the generic
//! loop runs them one at a time at any width. Here each such row is one
//! masked load of the image row, one masked load of `cols`, one `vaddps` and
//! one masked store; masked-off lanes are neither read nor written.
//!
//! **Same values.** Every image value receives the same additions in the
//! same order (taps in row-major order, then rows) as in the generic loop,
//! each an IEEE `f32` addition with the image value as the first operand, so
//! the result is bitwise the generic loop's (the test in `kernels::conv`
//! compares them, set and accumulated).

use crate::device::Window2d;
use crate::kernels::cpu_util::{offsets, valid};

/// Whether [`plane`] takes this window here: `f32` is the caller's check;
/// stride 1 both ways, output rows at most 16 wide (one vector), and
/// AVX-512F under the kernel cap.
pub(crate) fn applies(g: &Window2d) -> bool {
    g.sh == 1 && g.sw == 1 && g.ow <= 16 && crate::simd::avx512()
}

/// `dst (+)= Σ_taps` the `cols` rows of sample `b` and image channel `c`
/// (`n` columns per row of `cols`), the body of col2im for one image plane
/// `dst` (`h × w`), where [`applies`]. `dst` is not cleared here.
pub(crate) fn plane(g: &Window2d, cols: &[f32], n: usize, b: usize, c: usize, dst: &mut [f32]) {
    assert!(
        applies(g),
        "narrow col2im needs AVX-512F, stride 1 and ow ≤ 16"
    );
    assert_eq!(dst.len(), g.h * g.w, "narrow col2im: one image plane");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is present (`applies`, asserted); every row the
    // kernel touches is a bounds-checked slice of at most 16 values.
    unsafe {
        avx512::plane(g, cols, n, b, c, dst)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512F is present; `g.ow ≤ 16`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn plane(
        g: &Window2d,
        cols: &[f32],
        n: usize,
        b: usize,
        c: usize,
        dst: &mut [f32],
    ) {
        let op = g.oh * g.ow;
        for i in 0..g.kh {
            for j in 0..g.kw {
                let r = (c * g.kh + i) * g.kw + j;
                let seg = &cols[r * n + b * op..][..op];
                let (offy, offx) = offsets(g, i, j);
                let (ylo, yhi) = valid(g.oh, g.h, 1, offy);
                let (xlo, xhi) = valid(g.ow, g.w, 1, offx);
                if xhi <= xlo {
                    continue;
                }
                let len = xhi - xlo;
                // `len ≤ ow ≤ 16`: the low `len` lanes.
                let m = ((1u32 << len) - 1) as __mmask16;
                let ix0 = (xlo as isize + offx) as usize;
                for oy in ylo..yhi {
                    let d = &mut dst[(oy as isize + offy) as usize * g.w + ix0..][..len];
                    let s = &seg[oy * g.ow + xlo..][..len];
                    // SAFETY: the lanes under `m` are the `len` values of
                    // `d` and `s` (bounds-checked slices above); masked-off
                    // lanes are not accessed.
                    unsafe {
                        let v = _mm512_add_ps(
                            _mm512_maskz_loadu_ps(m, d.as_ptr()),
                            _mm512_maskz_loadu_ps(m, s.as_ptr()),
                        );
                        _mm512_mask_storeu_ps(d.as_mut_ptr(), m, v);
                    }
                }
            }
        }
    }
}

//! Convolution kernels: `im2col` and its adjoint `col2im` (a convolution is
//! im2col + GEMM, its input gradient GEMM + col2im), the NCHW ↔ CNHW
//! transpose around the batched products, and the per-channel bias.
//!
//! The trait states the kernels (with their formulas) and checks their
//! arguments once for every device; the CPU bodies follow it in this file;
//! the CUDA sources are `cuda/src/kernels/*.cu` and the CUDA impl is in
//! `cuda/src/kernels/<family>.rs`.

use crate::device::{need, Acc, Backend, Window2d};
use crate::elem::Elem;
use crate::error::Result;
use crate::gemm::par::{self};
use crate::kernels::conv_direct::{self, DirectPass};
use crate::kernels::cpu_util::{offsets, pieces, valid, PAR_MIN};
use crate::Cpu;
use std::any::{Any, TypeId};

mod narrow;

/// The convolution kernels (im2col, col2im, the NCHW↔CNHW transpose, per-channel bias) of a device, for element type `E`.
///
/// Used by Conv2d, ConvTranspose2d; a layer that needs them states `D: ConvKernels<E>`,
/// so a device without them cannot compile a network that uses it. Layers
/// call the provided methods, which check arguments and lengths once for
/// every device and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no convolution kernels for `{E}`",
    label = "needed by Conv2d, ConvTranspose2d"
)]
pub trait ConvKernels<E: Elem>: Backend<E> {
    /// `im2col` of samples `first .. first + count` of the images `x` (geometry
    /// `g`): `cols` becomes the `[g.rows(), count · oh · ow]` matrix whose row
    /// `(c·kh + i)·kw + j`, column `b·oh·ow + oy·ow + ox` holds
    /// `x[first + b, c, oy·sh − ph + i·dh, ox·sw − pw + j·dw]` (0 outside the
    /// image). Samples sit side by side in the columns, so one GEMM serves the
    /// whole chunk.
    fn im2col(
        &self,
        g: &Window2d,
        x: &Self::Buf<E>,
        first: usize,
        count: usize,
        cols: &mut Self::Buf<E>,
    ) -> Result<()> {
        need(
            self,
            "im2col x",
            x,
            (first + count) * g.channels * g.in_plane(),
        )?;
        need(self, "im2col cols", cols, g.rows() * count * g.out_plane())?;
        self.raw_im2col(g, x, first, count, cols)
    }
    /// The adjoint of [`ConvKernels::im2col`]: every entry of `cols` is added to the
    /// image pixel it was read from (overlapping windows sum; padding is
    /// dropped), giving samples `first .. first + count` of `x` (acc).
    fn col2im(
        &self,
        g: &Window2d,
        cols: &Self::Buf<E>,
        x: &mut Self::Buf<E>,
        first: usize,
        count: usize,
        acc: Acc,
    ) -> Result<()> {
        need(self, "col2im cols", cols, g.rows() * count * g.out_plane())?;
        need(
            self,
            "col2im x",
            x,
            (first + count) * g.channels * g.in_plane(),
        )?;
        self.raw_col2im(g, cols, x, first, count, acc)
    }
    /// Swaps the first two axes of a `[a, b, n]` block:
    /// `dst[dst_off + (j·a + i)·n + k] (acc)= src[src_off + (i·b + j)·n + k]`
    /// (NCHW ↔ CNHW around the batched GEMMs of the convolutions).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn transpose01(
        &self,
        src: &Self::Buf<E>,
        src_off: usize,
        dst: &mut Self::Buf<E>,
        dst_off: usize,
        a: usize,
        b: usize,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        need(self, "transpose01 src", src, src_off + a * b * n)?;
        need(self, "transpose01 dst", dst, dst_off + a * b * n)?;
        self.raw_transpose01(src, src_off, dst, dst_off, a, b, n, acc)
    }
    /// `y[s, c, p] += bias[c]` for `y` of shape `[batch, channels, spatial]`.
    fn add_channel_bias(
        &self,
        y: &mut Self::Buf<E>,
        bias: &Self::Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
    ) -> Result<()> {
        need(self, "add_channel_bias y", y, batch * channels * spatial)?;
        need(self, "add_channel_bias bias", bias, channels)?;
        self.raw_add_channel_bias(y, bias, batch, channels, spatial)
    }
    /// `db[c] (acc)= Σ_{s,p} dy[s, c, p]` for `dy` of shape `[batch, channels, spatial]`.
    fn channel_bias_grad(
        &self,
        dy: &Self::Buf<E>,
        db: &mut Self::Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
        acc: Acc,
    ) -> Result<()> {
        need(self, "channel_bias_grad dy", dy, batch * channels * spatial)?;
        need(self, "channel_bias_grad db", db, channels)?;
        self.raw_channel_bias_grad(dy, db, batch, channels, spatial, acc)
    }
    /// The forward pass or the input gradient of a stride-1, one-group
    /// convolution by a direct kernel, where the device has one for the case
    /// (see [`crate::kernels::conv_direct`] for the sums): `w` is the layer's
    /// weight `[co, g.channels, kh, kw]`; for [`DirectPass::Forward`] `src`
    /// is `x` and `dst` (acc)= `y`, for [`DirectPass::InputGrad`] `src` is
    /// `dy` and `dst` (acc)= `dx`; `scratch` is the kernel's own buffer.
    /// Returns `false`, touching nothing, where the device has none for this
    /// case (the CPU's runs `f32` with AVX-512 and few channels); the layer
    /// then takes the im2col + GEMM path.
    #[allow(clippy::too_many_arguments)] // the operands of the formulas
    fn conv_direct(
        &self,
        g: &Window2d,
        co: usize,
        w: &Self::Buf<E>,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        batch: usize,
        pass: DirectPass,
        acc: Acc,
        scratch: &mut Self::Buf<E>,
    ) -> Result<bool> {
        let (xs, ys) = (
            batch * g.channels * g.in_plane(),
            batch * co * g.out_plane(),
        );
        let (sn, dn) = match pass {
            DirectPass::Forward => (xs, ys),
            DirectPass::InputGrad => (ys, xs),
        };
        need(self, "conv_direct w", w, co * g.rows())?;
        need(self, "conv_direct src", src, sn)?;
        need(self, "conv_direct dst", dst, dn)?;
        self.raw_conv_direct(g, co, w, src, dst, batch, pass, acc, scratch)
    }
    /// The weight gradient of a stride-1, one-group convolution by a direct
    /// kernel, where the device has one for the case:
    /// `dw[o, c, a, b] (acc)= Σ_s Σ_{r, j} dy[s, o, r, j] · x[s, c, r − ph + a, j − pw + b]`
    /// over `batch` samples (see `kernels::conv_direct`). Returns `false`,
    /// touching nothing, where it has none; the layer then takes
    /// `dY · im2col(x)ᵀ`.
    #[allow(clippy::too_many_arguments)] // the operands of the formula
    fn conv_direct_wgrad(
        &self,
        g: &Window2d,
        co: usize,
        x: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dw: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
        scratch: &mut Self::Buf<E>,
    ) -> Result<bool> {
        need(
            self,
            "conv_direct_wgrad x",
            x,
            batch * g.channels * g.in_plane(),
        )?;
        need(self, "conv_direct_wgrad dy", dy, batch * co * g.out_plane())?;
        need(self, "conv_direct_wgrad dw", dw, co * g.rows())?;
        self.raw_conv_direct_wgrad(g, co, x, dy, dw, batch, acc, scratch)
    }
    /// Body of [`ConvKernels::conv_direct_wgrad`] (arguments already
    /// checked): by default the device has no direct kernel.
    #[allow(clippy::too_many_arguments)] // the operands of the formula
    fn raw_conv_direct_wgrad(
        &self,
        _g: &Window2d,
        _co: usize,
        _x: &Self::Buf<E>,
        _dy: &Self::Buf<E>,
        _dw: &mut Self::Buf<E>,
        _batch: usize,
        _acc: Acc,
        _scratch: &mut Self::Buf<E>,
    ) -> Result<bool> {
        Ok(false)
    }
    /// Body of [`ConvKernels::conv_direct`] (arguments already checked): by
    /// default the device has no direct kernel.
    #[allow(clippy::too_many_arguments)] // the operands of the formulas
    fn raw_conv_direct(
        &self,
        _g: &Window2d,
        _co: usize,
        _w: &Self::Buf<E>,
        _src: &Self::Buf<E>,
        _dst: &mut Self::Buf<E>,
        _batch: usize,
        _pass: DirectPass,
        _acc: Acc,
        _scratch: &mut Self::Buf<E>,
    ) -> Result<bool> {
        Ok(false)
    }
    /// Body of [`ConvKernels::im2col`] (arguments already checked).
    fn raw_im2col(
        &self,
        g: &Window2d,
        x: &Self::Buf<E>,
        first: usize,
        count: usize,
        cols: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`ConvKernels::col2im`] (arguments already checked).
    fn raw_col2im(
        &self,
        g: &Window2d,
        cols: &Self::Buf<E>,
        x: &mut Self::Buf<E>,
        first: usize,
        count: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`ConvKernels::transpose01`] (arguments already checked).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_transpose01(
        &self,
        src: &Self::Buf<E>,
        src_off: usize,
        dst: &mut Self::Buf<E>,
        dst_off: usize,
        a: usize,
        b: usize,
        n: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`ConvKernels::add_channel_bias`] (arguments already checked).
    fn raw_add_channel_bias(
        &self,
        y: &mut Self::Buf<E>,
        bias: &Self::Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
    ) -> Result<()>;
    /// Body of [`ConvKernels::channel_bias_grad`] (arguments already checked).
    fn raw_channel_bias_grad(
        &self,
        dy: &Self::Buf<E>,
        db: &mut Self::Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
        acc: Acc,
    ) -> Result<()>;
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> ConvKernels<E> for Cpu {
    fn raw_im2col(
        &self,
        g: &Window2d,
        x: &Vec<E>,
        first: usize,
        count: usize,
        cols: &mut Vec<E>,
    ) -> Result<()> {
        im2col(g, x, first, count, cols)
    }

    fn raw_col2im(
        &self,
        g: &Window2d,
        cols: &Vec<E>,
        x: &mut Vec<E>,
        first: usize,
        count: usize,
        acc: Acc,
    ) -> Result<()> {
        col2im(g, cols, x, first, count, acc)
    }

    fn raw_transpose01(
        &self,
        src: &Vec<E>,
        so: usize,
        dst: &mut Vec<E>,
        d_o: usize,
        a: usize,
        b: usize,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        transpose01(src, so, dst, d_o, a, b, n, acc)
    }

    fn raw_conv_direct(
        &self,
        g: &Window2d,
        co: usize,
        w: &Vec<E>,
        src: &Vec<E>,
        dst: &mut Vec<E>,
        batch: usize,
        pass: DirectPass,
        acc: Acc,
        scratch: &mut Vec<E>,
    ) -> Result<bool> {
        // The direct kernel is `f32`'s: any other `E` (the downcasts fail)
        // takes the GEMM path.
        let (Some(w), Some(src)) = (
            (w as &dyn Any).downcast_ref::<Vec<f32>>(),
            (src as &dyn Any).downcast_ref::<Vec<f32>>(),
        ) else {
            return Ok(false);
        };
        let (Some(dst), Some(scratch)) = (
            (dst as &mut dyn Any).downcast_mut::<Vec<f32>>(),
            (scratch as &mut dyn Any).downcast_mut::<Vec<f32>>(),
        ) else {
            return Ok(false);
        };
        Ok(conv_direct::conv_direct(
            g, co, w, src, dst, batch, pass, acc, scratch,
        ))
    }

    fn raw_conv_direct_wgrad(
        &self,
        g: &Window2d,
        co: usize,
        x: &Vec<E>,
        dy: &Vec<E>,
        dw: &mut Vec<E>,
        batch: usize,
        acc: Acc,
        scratch: &mut Vec<E>,
    ) -> Result<bool> {
        // `f32` only, as `raw_conv_direct`.
        let (Some(x), Some(dy)) = (
            (x as &dyn Any).downcast_ref::<Vec<f32>>(),
            (dy as &dyn Any).downcast_ref::<Vec<f32>>(),
        ) else {
            return Ok(false);
        };
        let (Some(dw), Some(scratch)) = (
            (dw as &mut dyn Any).downcast_mut::<Vec<f32>>(),
            (scratch as &mut dyn Any).downcast_mut::<Vec<f32>>(),
        ) else {
            return Ok(false);
        };
        Ok(conv_direct::conv_direct_wgrad(
            g, co, x, dy, dw, batch, acc, scratch,
        ))
    }

    fn raw_add_channel_bias(
        &self,
        y: &mut Vec<E>,
        bias: &Vec<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
    ) -> Result<()> {
        add_channel_bias(y, bias, batch, channels, spatial)
    }

    fn raw_channel_bias_grad(
        &self,
        dy: &Vec<E>,
        db: &mut Vec<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
        acc: Acc,
    ) -> Result<()> {
        channel_bias_grad(dy, db, batch, channels, spatial, acc)
    }
}

pub(crate) fn im2col<E: Elem>(
    g: &Window2d,
    x: &[E],
    first: usize,
    count: usize,
    cols: &mut [E],
) -> Result<()> {
    let (plane, op) = (g.in_plane(), g.out_plane());
    let n = count * op;
    let kk = g.kh * g.kw;
    // One piece per (row r, sample b): the `op` columns of sample b in row r.
    pieces(&mut cols[..g.rows() * n], op, |k, dst| {
        let (r, b) = (k / count, k % count);
        let (c, i, j) = (r / kk, (r / g.kw) % g.kh, r % g.kw);
        let (offy, offx) = offsets(g, i, j);
        let (ylo, yhi) = valid(g.oh, g.h, g.sh, offy);
        let (xlo, xhi) = valid(g.ow, g.w, g.sw, offx);
        let src = &x[((first + b) * g.channels + c) * plane..][..plane];
        if g.sh == 1 && g.sw == 1 && g.ow == g.w {
            // "Same"-width, stride 1 (3×3 pad 1, 5×5 pad 2, …): the valid rows
            // of this tap are one contiguous run of the plane shifted by
            // `offy·w + offx`, copied at once; only the `|offx|` edge columns
            // of each row (which the run fills from the neighbouring image
            // row) and the rows outside the image are then zeroed.
            let (lo, hi) = (ylo * g.ow, yhi * g.ow);
            dst[..lo].fill(E::zero());
            dst[hi..].fill(E::zero());
            if lo < hi {
                let s0 = (ylo as isize + offy) * g.w as isize + offx;
                // Clip the run to the plane; what is clipped is edge columns.
                let skip = (-s0).max(0) as usize;
                let end = (s0 + (hi - lo) as isize).min(plane as isize);
                let start = s0.max(0);
                if end > start {
                    let n = (end - start) as usize;
                    dst[lo + skip..lo + skip + n]
                        .copy_from_slice(&src[start as usize..start as usize + n]);
                }
                for oy in ylo..yhi {
                    let d = &mut dst[oy * g.ow..][..g.ow];
                    for v in &mut d[..xlo] {
                        *v = E::zero();
                    }
                    for v in &mut d[xhi..] {
                        *v = E::zero();
                    }
                }
            }
            return;
        }
        for oy in 0..g.oh {
            let d = &mut dst[oy * g.ow..][..g.ow];
            if oy < ylo || oy >= yhi {
                d.fill(E::zero());
                continue;
            }
            let row = &src[((oy * g.sh) as isize + offy) as usize * g.w..][..g.w];
            // Guarded: an empty `fill` is still a call to `memset`.
            if xlo > 0 {
                d[..xlo].fill(E::zero());
            }
            if xhi < g.ow {
                d[xhi..].fill(E::zero());
            }
            let ix0 = ((xlo * g.sw) as isize + offx) as usize;
            if g.sw == 1 {
                d[xlo..xhi].copy_from_slice(&row[ix0..ix0 + (xhi - xlo)]);
            } else {
                for (t, v) in d[xlo..xhi].iter_mut().enumerate() {
                    *v = row[ix0 + t * g.sw];
                }
            }
        }
    });
    Ok(())
}

pub(crate) fn col2im<E: Elem>(
    g: &Window2d,
    cols: &[E],
    x: &mut [E],
    first: usize,
    count: usize,
    acc: Acc,
) -> Result<()> {
    let (plane, op) = (g.in_plane(), g.out_plane());
    let n = count * op;
    let x = &mut x[first * g.channels * plane..(first + count) * g.channels * plane];
    // `f32` planes at most 16 wide: one masked vector per row (`narrow`).
    let narrow = TypeId::of::<E>() == TypeId::of::<f32>() && narrow::applies(g);
    // One piece per image plane (sample b, channel c): it gathers its kh·kw rows.
    pieces(x, plane, |k, dst| {
        let (b, c) = (k / g.channels, k % g.channels);
        if acc == Acc::Set {
            dst.fill(E::zero());
        }
        if narrow {
            // SAFETY: `E` is `f32` (equal `TypeId`s), so these are `f32`
            // slices of the same lengths.
            let (cols, dst) = unsafe {
                (
                    std::slice::from_raw_parts(cols.as_ptr().cast::<f32>(), cols.len()),
                    std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<f32>(), dst.len()),
                )
            };
            narrow::plane(g, cols, n, b, c, dst);
            return;
        }
        // At the CPU's widest vectors: the same additions in the same order.
        crate::simd::wide(
            #[inline(always)]
            || {
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let r = (c * g.kh + i) * g.kw + j;
                        let seg = &cols[r * n + b * op..][..op];
                        let (offy, offx) = offsets(g, i, j);
                        let (ylo, yhi) = valid(g.oh, g.h, g.sh, offy);
                        let (xlo, xhi) = valid(g.ow, g.w, g.sw, offx);
                        for oy in ylo..yhi {
                            let row =
                                &mut dst[((oy * g.sh) as isize + offy) as usize * g.w..][..g.w];
                            let ix0 = ((xlo * g.sw) as isize + offx) as usize;
                            let s = &seg[oy * g.ow + xlo..oy * g.ow + xhi];
                            if g.sw == 1 {
                                for (d, v) in row[ix0..ix0 + s.len()].iter_mut().zip(s) {
                                    *d = *d + *v;
                                }
                            } else {
                                for (t, v) in s.iter().enumerate() {
                                    let d = &mut row[ix0 + t * g.sw];
                                    *d = *d + *v;
                                }
                            }
                        }
                    }
                }
            },
        )
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn transpose01<E: Elem>(
    src: &[E],
    src_off: usize,
    dst: &mut [E],
    dst_off: usize,
    a: usize,
    b: usize,
    n: usize,
    acc: Acc,
) -> Result<()> {
    let total = a * b * n;
    pieces(&mut dst[dst_off..dst_off + total], n, |k, d| {
        let (j, i) = (k / a, k % a);
        let s = &src[src_off + (i * b + j) * n..][..n];
        match acc {
            Acc::Set => d.copy_from_slice(s),
            Acc::Add => d.iter_mut().zip(s).for_each(|(d, s)| *d = *d + *s),
        }
    });
    Ok(())
}

pub(crate) fn add_channel_bias<E: Elem>(
    y: &mut [E],
    bias: &[E],
    batch: usize,
    channels: usize,
    spatial: usize,
) -> Result<()> {
    pieces(&mut y[..batch * channels * spatial], spatial, |k, row| {
        let b = bias[k % channels];
        row.iter_mut().for_each(|v| *v = *v + b);
    });
    Ok(())
}

pub(crate) fn channel_bias_grad<E: Elem>(
    dy: &[E],
    db: &mut [E],
    batch: usize,
    channels: usize,
    spatial: usize,
    acc: Acc,
) -> Result<()> {
    let sum = |c: usize, d: &mut E| {
        let mut s = E::zero();
        for b in 0..batch {
            s = s + dy[(b * channels + c) * spatial..][..spatial]
                .iter()
                .copied()
                .sum::<E>();
        }
        acc.put(d, s);
    };
    par::pieces(
        &mut db[..channels],
        1,
        batch * channels * spatial >= PAR_MIN,
        |c, d| sum(c, &mut d[0]),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::testing::{at_baseline_width, bits};
    use rand::Rng;

    /// col2im through [`crate::simd::wide`] (and, for `f32` planes at most
    /// 16 wide on AVX-512, `narrow`'s masked rows) gives the baseline width's
    /// values bit for bit (the same additions in the same order), in f32 and
    /// f64, for "same" 3×3 windows, strided, dilated and unpadded ones, set
    /// and accumulated. Under `PAR_MIN`, so on this thread and its kernel cap.
    fn col2im_wide_is_bitwise<E: Elem>() {
        let windows = [
            ((17, 19), (3, 3), (1, 1), (1, 1), (1, 1)),
            ((17, 19), (3, 2), (2, 2), (1, 0), (1, 1)),
            ((17, 19), (3, 3), (1, 2), (2, 2), (2, 2)),
            // Output rows of at most 16 (f32 on AVX-512: `narrow`): the
            // pretraining's 7×7, an unpadded 5×5 (W2's second layer), a
            // 16-wide edge, a dilated window, a padding wider than the
            // reach of some taps, and a stride that falls back.
            ((7, 7), (3, 3), (1, 1), (1, 1), (1, 1)),
            ((12, 12), (5, 5), (1, 1), (0, 0), (1, 1)),
            ((16, 16), (3, 3), (1, 1), (1, 1), (1, 1)),
            ((9, 11), (3, 3), (1, 1), (2, 2), (2, 2)),
            ((5, 6), (2, 3), (1, 1), (1, 2), (1, 1)),
            ((9, 9), (3, 3), (2, 2), (1, 1), (1, 1)),
        ];
        let mut r = crate::rng(5);
        for (hw, k, s, p, d) in windows {
            let g = Window2d::new("test", 3, hw, k, s, p, d).unwrap();
            let count = 2;
            let len = g.rows() * count * g.out_plane();
            let cols: Vec<E> = (0..len).map(|_| E::of(r.random_range(-1.0..1.0))).collect();
            let x0: Vec<E> = (0..count * g.channels * g.in_plane())
                .map(|_| E::of(r.random_range(-1.0..1.0)))
                .collect();
            assert!(x0.len() < PAR_MIN);
            for acc in [Acc::Set, Acc::Add] {
                let run = || {
                    let mut x = x0.clone();
                    col2im(&g, &cols, &mut x, 0, count, acc).unwrap();
                    bits(&x)
                };
                let base = at_baseline_width(run);
                assert_eq!(run(), base, "{g:?} {acc:?}");
            }
        }
    }

    #[test]
    fn col2im_wide_is_bitwise_f32() {
        col2im_wide_is_bitwise::<f32>();
    }

    #[test]
    fn col2im_wide_is_bitwise_f64() {
        col2im_wide_is_bitwise::<f64>();
    }
}

//! Pooling kernels: max pooling with its argmax indices, the routing of values
//! through those indices (max pooling's backward, max unpooling and its
//! backward), and average pooling.
//!
//! The trait states the kernels (with their formulas) and checks their
//! arguments once for every device; the CPU bodies follow it in this file;
//! the CUDA sources are `cuda/src/kernels/*.cu` and the CUDA impl is in
//! `cuda/src/kernels/<family>.rs`.

use crate::device::{need, Acc, Backend, Window2d};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::cpu_util::{pieces, pieces2, window_taps, PAR_MIN};
use crate::Cpu;
use std::any::TypeId;

mod max2x2;

/// The pooling and unpooling kernels of a device, for element type `E`.
///
/// Used by MaxPool2d, AvgPool2d, GlobalAvgPool, MaxUnpool2d; a layer that needs them states `D: PoolKernels<E>`,
/// so a device without them cannot compile a network that uses it. Layers
/// call the provided methods, which check arguments and lengths once for
/// every device and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no pooling and unpooling kernels for `{E}`",
    label = "needed by MaxPool2d, AvgPool2d, GlobalAvgPool, MaxUnpool2d"
)]
pub trait PoolKernels<E: Elem>: Backend<E> {
    /// Max pooling of `batch` images: `y[s, c, oy, ox]` is the largest value in
    /// the window (padding never wins; the first maximum in row-major window
    /// order wins ties; NaN propagates), and `indices` receives its flat
    /// position `iy·w + ix` in the input plane (PyTorch's `return_indices`).
    fn max_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        indices: &mut Self::Buf<u32>,
        batch: usize,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need(self, "max_pool2d x", x, planes * g.in_plane())?;
        need(self, "max_pool2d y", y, planes * g.out_plane())?;
        need(self, "max_pool2d indices", indices, planes * g.out_plane())?;
        self.raw_max_pool2d_fwd(g, x, y, indices, batch)
    }
    /// Routes each small-plane value to its recorded position in the large
    /// plane: `dst[s, c, indices[s, c, o]] (acc)= Σ src[s, c, o]`, where `src`
    /// and `indices` are `[batch, channels, oh·ow]` and `dst` is
    /// `[batch, channels, h·w]`; positions that receive nothing are 0 (with
    /// `Set`). Max pooling's backward and max unpooling's forward.
    fn max_unpool2d(
        &self,
        g: &Window2d,
        indices: &Self::Buf<u32>,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need(
            self,
            "max_unpool2d indices",
            indices,
            planes * g.out_plane(),
        )?;
        need(self, "max_unpool2d src", src, planes * g.out_plane())?;
        need(self, "max_unpool2d dst", dst, planes * g.in_plane())?;
        self.raw_max_unpool2d(g, indices, src, dst, batch, acc)
    }
    /// The adjoint of [`PoolKernels::max_unpool2d`]: `dst[s, c, o] (acc)=
    /// src[s, c, indices[s, c, o]]` (max unpooling's backward).
    fn max_unpool2d_bwd(
        &self,
        g: &Window2d,
        indices: &Self::Buf<u32>,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need(
            self,
            "max_unpool2d_bwd indices",
            indices,
            planes * g.out_plane(),
        )?;
        need(self, "max_unpool2d_bwd src", src, planes * g.in_plane())?;
        need(self, "max_unpool2d_bwd dst", dst, planes * g.out_plane())?;
        self.raw_max_unpool2d_bwd(g, indices, src, dst, batch, acc)
    }
    /// Average pooling with zero padding counted in the divisor (PyTorch's
    /// `count_include_pad=True`): `y = Σ_window x / (kh·kw)`.
    fn avg_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        batch: usize,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need(self, "avg_pool2d x", x, planes * g.in_plane())?;
        need(self, "avg_pool2d y", y, planes * g.out_plane())?;
        self.raw_avg_pool2d_fwd(g, x, y, batch)
    }
    /// `dx[p] (acc)= Σ_{windows ∋ p} dy / (kh·kw)`.
    fn avg_pool2d_bwd(
        &self,
        g: &Window2d,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need(self, "avg_pool2d_bwd dy", dy, planes * g.out_plane())?;
        need(self, "avg_pool2d_bwd dx", dx, planes * g.in_plane())?;
        self.raw_avg_pool2d_bwd(g, dy, dx, batch, acc)
    }
    /// Body of [`PoolKernels::max_pool2d_fwd`] (arguments already checked).
    fn raw_max_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        indices: &mut Self::Buf<u32>,
        batch: usize,
    ) -> Result<()>;
    /// Body of [`PoolKernels::max_unpool2d`] (arguments already checked).
    fn raw_max_unpool2d(
        &self,
        g: &Window2d,
        indices: &Self::Buf<u32>,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`PoolKernels::max_unpool2d_bwd`] (arguments already checked).
    fn raw_max_unpool2d_bwd(
        &self,
        g: &Window2d,
        indices: &Self::Buf<u32>,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`PoolKernels::avg_pool2d_fwd`] (arguments already checked).
    fn raw_avg_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        batch: usize,
    ) -> Result<()>;
    /// Body of [`PoolKernels::avg_pool2d_bwd`] (arguments already checked).
    fn raw_avg_pool2d_bwd(
        &self,
        g: &Window2d,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()>;
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> PoolKernels<E> for Cpu {
    fn raw_max_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Vec<E>,
        y: &mut Vec<E>,
        indices: &mut Vec<u32>,
        batch: usize,
    ) -> Result<()> {
        max_pool2d_fwd(g, x, y, indices, batch)
    }

    fn raw_max_unpool2d(
        &self,
        g: &Window2d,
        idx: &Vec<u32>,
        src: &Vec<E>,
        dst: &mut Vec<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        max_unpool2d(g, idx, src, dst, batch, acc)
    }

    fn raw_max_unpool2d_bwd(
        &self,
        g: &Window2d,
        idx: &Vec<u32>,
        src: &Vec<E>,
        dst: &mut Vec<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        max_unpool2d_bwd(g, idx, src, dst, batch, acc)
    }

    fn raw_avg_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Vec<E>,
        y: &mut Vec<E>,
        batch: usize,
    ) -> Result<()> {
        avg_pool2d_fwd(g, x, y, batch)
    }

    fn raw_avg_pool2d_bwd(
        &self,
        g: &Window2d,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        avg_pool2d_bwd(g, dy, dx, batch, acc)
    }
}

pub(crate) fn max_pool2d_fwd<E: Elem>(
    g: &Window2d,
    x: &[E],
    y: &mut [E],
    idx: &mut [u32],
    batch: usize,
) -> Result<()> {
    let (planes, plane, op) = (batch * g.channels, g.in_plane(), g.out_plane());
    let work = |k: usize, (yp, ip): (&mut [E], &mut [u32])| {
        let src = &x[k * plane..][..plane];
        for oy in 0..g.oh {
            let (by, ilo, ihi) = window_taps(oy, g.sh, g.ph, g.dh, g.kh, g.h);
            for ox in 0..g.ow {
                let (bx, jlo, jhi) = window_taps(ox, g.sw, g.pw, g.dw, g.kw, g.w);
                // Start from the first tap inside the image (none: −∞ at no position).
                let (mut best, mut at) = (E::neg_infinity(), u32::MAX);
                if ilo < ihi && jlo < jhi {
                    at = ((by + (ilo * g.dh) as isize) as usize * g.w
                        + (bx + (jlo * g.dw) as isize) as usize) as u32;
                    best = src[at as usize];
                }
                for i in ilo..ihi {
                    let r = (by + (i * g.dh) as isize) as usize * g.w;
                    for j in jlo..jhi {
                        let p = r + (bx + (j * g.dw) as isize) as usize;
                        let v = src[p];
                        // Branch-free select (random data mispredicts a branch half the time).
                        let take = v > best || v.is_nan();
                        best = if take { v } else { best };
                        at = if take { p as u32 } else { at };
                    }
                }
                yp[oy * g.ow + ox] = best;
                ip[oy * g.ow + ox] = at;
            }
        }
    };
    // The common case (no padding, no dilation: every window lies inside the
    // image) without per-window bounds: the same taps in the same order, so
    // the same results, ties and NaNs included.
    let plain = |k: usize, (yp, ip): (&mut [E], &mut [u32])| {
        let src = &x[k * plane..][..plane];
        for oy in 0..g.oh {
            let r0 = oy * g.sh * g.w;
            let (yr, ir) = (&mut yp[oy * g.ow..][..g.ow], &mut ip[oy * g.ow..][..g.ow]);
            for ox in 0..g.ow {
                let p0 = r0 + ox * g.sw;
                let (mut best, mut at) = (src[p0], p0);
                for i in 0..g.kh {
                    let row = &src[p0 + i * g.w..][..g.kw];
                    for (j, &v) in row.iter().enumerate() {
                        let take = v > best || v.is_nan();
                        best = if take { v } else { best };
                        at = if take { p0 + i * g.w + j } else { at };
                    }
                }
                yr[ox] = best;
                ir[ox] = at as u32;
            }
        }
    };
    let (y, idx) = (&mut y[..planes * op], &mut idx[..planes * op]);
    if op == 0 {
        return Ok(());
    }
    if g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1 && (g.kh, g.kw, g.sh, g.sw) == (2, 2, 2, 2)
    {
        // 2×2, stride 2 (LeNet's, VGG's): four taps in the same order.
        // `f32` on an AVX-512 CPU: 16 windows at a time, the same values.
        let wide = TypeId::of::<E>() == TypeId::of::<f32>() && max2x2::available();
        pieces2(
            y,
            op,
            idx,
            op,
            planes,
            planes * plane >= PAR_MIN,
            |k, yp, ip| {
                let src = &x[k * plane..][..plane];
                if wide {
                    // SAFETY: `E` is `f32` (equal `TypeId`s), so the slices
                    // are `f32` slices of the same lengths.
                    let (s, y) = unsafe {
                        (
                            std::slice::from_raw_parts(src.as_ptr().cast::<f32>(), src.len()),
                            std::slice::from_raw_parts_mut(yp.as_mut_ptr().cast::<f32>(), yp.len()),
                        )
                    };
                    max2x2::max_pool_2x2(s, g.w, g.oh, g.ow, y, ip);
                    return;
                }
                for oy in 0..g.oh {
                    let (r0, r1) = (2 * oy * g.w, (2 * oy + 1) * g.w);
                    let (a, b) = (&src[r0..r0 + g.w], &src[r1..r1 + g.w]);
                    let (yr, ir) = (&mut yp[oy * g.ow..][..g.ow], &mut ip[oy * g.ow..][..g.ow]);
                    for ox in 0..g.ow {
                        let x0 = 2 * ox;
                        let (mut best, mut at) = (a[x0], r0 + x0);
                        for (v, p) in [
                            (a[x0 + 1], r0 + x0 + 1),
                            (b[x0], r1 + x0),
                            (b[x0 + 1], r1 + x0 + 1),
                        ] {
                            let take = v > best || v.is_nan();
                            best = if take { v } else { best };
                            at = if take { p } else { at };
                        }
                        yr[ox] = best;
                        ir[ox] = at as u32;
                    }
                }
            },
        );
        return Ok(());
    }
    if g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1 {
        pieces2(
            y,
            op,
            idx,
            op,
            planes,
            planes * plane >= PAR_MIN,
            |k, yp, ip| plain(k, (yp, ip)),
        );
        return Ok(());
    }
    pieces2(
        y,
        op,
        idx,
        op,
        planes,
        planes * plane >= PAR_MIN,
        |k, yp, ip| work(k, (yp, ip)),
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn max_unpool2d<E: Elem>(
    g: &Window2d,
    idx: &[u32],
    src: &[E],
    dst: &mut [E],
    batch: usize,
    acc: Acc,
) -> Result<()> {
    let (planes, plane, op) = (batch * g.channels, g.in_plane(), g.out_plane());
    pieces(&mut dst[..planes * plane], plane, |k, d| {
        if acc == Acc::Set {
            d.fill(E::zero());
        }
        for (t, v) in idx[k * op..][..op].iter().zip(&src[k * op..][..op]) {
            // An index past the plane marks a window without any input pixel.
            if let Some(d) = d.get_mut(*t as usize) {
                *d = *d + *v;
            }
        }
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn max_unpool2d_bwd<E: Elem>(
    g: &Window2d,
    idx: &[u32],
    src: &[E],
    dst: &mut [E],
    batch: usize,
    acc: Acc,
) -> Result<()> {
    let (planes, plane, op) = (batch * g.channels, g.in_plane(), g.out_plane());
    pieces(&mut dst[..planes * op], op, |k, d| {
        let s = &src[k * plane..][..plane];
        for (d, t) in d.iter_mut().zip(&idx[k * op..][..op]) {
            acc.put(d, s.get(*t as usize).copied().unwrap_or(E::zero()));
        }
    });
    Ok(())
}

pub(crate) fn avg_pool2d_fwd<E: Elem>(
    g: &Window2d,
    x: &[E],
    y: &mut [E],
    batch: usize,
) -> Result<()> {
    let (planes, plane, op) = (batch * g.channels, g.in_plane(), g.out_plane());
    let inv = E::one() / E::of((g.kh * g.kw) as f64);
    pieces(&mut y[..planes * op], op, |k, yp| {
        let src = &x[k * plane..][..plane];
        for oy in 0..g.oh {
            let (by, ilo, ihi) = window_taps(oy, g.sh, g.ph, g.dh, g.kh, g.h);
            for ox in 0..g.ow {
                let (bx, jlo, jhi) = window_taps(ox, g.sw, g.pw, g.dw, g.kw, g.w);
                let mut s = E::zero();
                for i in ilo..ihi {
                    let row = &src[(by + (i * g.dh) as isize) as usize * g.w..][..g.w];
                    for j in jlo..jhi {
                        s = s + row[(bx + (j * g.dw) as isize) as usize];
                    }
                }
                yp[oy * g.ow + ox] = s * inv;
            }
        }
    });
    Ok(())
}

pub(crate) fn avg_pool2d_bwd<E: Elem>(
    g: &Window2d,
    dy: &[E],
    dx: &mut [E],
    batch: usize,
    acc: Acc,
) -> Result<()> {
    let (planes, plane, op) = (batch * g.channels, g.in_plane(), g.out_plane());
    let inv = E::one() / E::of((g.kh * g.kw) as f64);
    pieces(&mut dx[..planes * plane], plane, |k, d| {
        if acc == Acc::Set {
            d.fill(E::zero());
        }
        let gp = &dy[k * op..][..op];
        for oy in 0..g.oh {
            let (by, ilo, ihi) = window_taps(oy, g.sh, g.ph, g.dh, g.kh, g.h);
            for ox in 0..g.ow {
                let (bx, jlo, jhi) = window_taps(ox, g.sw, g.pw, g.dw, g.kw, g.w);
                let v = gp[oy * g.ow + ox] * inv;
                for i in ilo..ihi {
                    let row = &mut d[(by + (i * g.dh) as isize) as usize * g.w..][..g.w];
                    for j in jlo..jhi {
                        let t = &mut row[(bx + (j * g.dw) as isize) as usize];
                        *t = *t + v;
                    }
                }
            }
        }
    });
    Ok(())
}

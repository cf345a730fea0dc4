//! Upsampling kernels (nearest and bilinear with `align_corners=False`).
//!
//! The trait states the kernels (with their formulas) and checks their
//! arguments once for every device; the CPU bodies follow it in this file;
//! the CUDA sources are `cuda/src/kernels/*.cu` and the CUDA impl is in
//! `cuda/src/kernels/<family>.rs`.

use crate::device::{need, Acc, Backend, Resize2d, UpsampleMode};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::cpu_util::pieces;
use crate::Cpu;

/// The upsampling kernels of a device, for element type `E`.
///
/// Used by Upsample; a layer that needs them states `D: UpsampleKernels<E>`,
/// so a device without them cannot compile a network that uses it. Layers
/// call the provided methods, which check arguments and lengths once for
/// every device and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no upsampling kernels for `{E}`",
    label = "needed by Upsample"
)]
pub trait UpsampleKernels<E: Elem>: Backend<E> {
    /// Upsampling of `batch` images (see [`UpsampleMode`] for the formulas).
    fn upsample2d_fwd(
        &self,
        g: &Resize2d,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        batch: usize,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need(self, "upsample2d x", x, planes * g.h * g.w)?;
        need(self, "upsample2d y", y, planes * g.oh * g.ow)?;
        self.raw_upsample2d_fwd(g, x, y, batch)
    }
    /// The adjoint of [`UpsampleKernels::upsample2d_fwd`]: each `dy` value goes back to
    /// the input pixels it was interpolated from, with the same weights (acc).
    fn upsample2d_bwd(
        &self,
        g: &Resize2d,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need(self, "upsample2d_bwd dy", dy, planes * g.oh * g.ow)?;
        need(self, "upsample2d_bwd dx", dx, planes * g.h * g.w)?;
        self.raw_upsample2d_bwd(g, dy, dx, batch, acc)
    }
    /// Body of [`UpsampleKernels::upsample2d_fwd`] (arguments already checked).
    fn raw_upsample2d_fwd(
        &self,
        g: &Resize2d,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        batch: usize,
    ) -> Result<()>;
    /// Body of [`UpsampleKernels::upsample2d_bwd`] (arguments already checked).
    fn raw_upsample2d_bwd(
        &self,
        g: &Resize2d,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()>;
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> UpsampleKernels<E> for Cpu {
    fn raw_upsample2d_fwd(
        &self,
        g: &Resize2d,
        x: &Vec<E>,
        y: &mut Vec<E>,
        batch: usize,
    ) -> Result<()> {
        upsample2d_fwd(g, x, y, batch)
    }

    fn raw_upsample2d_bwd(
        &self,
        g: &Resize2d,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        upsample2d_bwd(g, dy, dx, batch, acc)
    }
}

/// PyTorch's bilinear source coordinate (`align_corners=False`) of output
/// index `o` for an input of `n` and an output of `on`: the two neighbours and
/// their weights `(i0, i1, w0, w1)`.
#[inline]
pub(crate) fn bilinear_src(o: usize, n: usize, on: usize) -> (usize, usize, f64, f64) {
    let src = ((o as f64 + 0.5) * (n as f64 / on as f64) - 0.5).max(0.0);
    let i0 = (src as usize).min(n - 1);
    let i1 = if i0 + 1 < n { i0 + 1 } else { i0 };
    let w1 = src - i0 as f64;
    (i0, i1, 1.0 - w1, w1)
}

pub(crate) fn upsample2d_fwd<E: Elem>(
    g: &Resize2d,
    x: &[E],
    y: &mut [E],
    batch: usize,
) -> Result<()> {
    let planes = batch * g.channels;
    let (plane, op) = (g.h * g.w, g.oh * g.ow);
    pieces(&mut y[..planes * op], op, |k, yp| {
        let src = &x[k * plane..][..plane];
        for oy in 0..g.oh {
            let row = &mut yp[oy * g.ow..][..g.ow];
            match g.mode {
                UpsampleMode::Nearest => {
                    let s = &src[oy * g.h / g.oh * g.w..][..g.w];
                    for (ox, v) in row.iter_mut().enumerate() {
                        *v = s[ox * g.w / g.ow];
                    }
                }
                UpsampleMode::Bilinear => {
                    let (y0, y1, a0, a1) = bilinear_src(oy, g.h, g.oh);
                    let (r0, r1) = (&src[y0 * g.w..][..g.w], &src[y1 * g.w..][..g.w]);
                    let (a0, a1) = (E::of(a0), E::of(a1));
                    for (ox, v) in row.iter_mut().enumerate() {
                        let (x0, x1, b0, b1) = bilinear_src(ox, g.w, g.ow);
                        let (b0, b1) = (E::of(b0), E::of(b1));
                        *v = a0 * (b0 * r0[x0] + b1 * r0[x1]) + a1 * (b0 * r1[x0] + b1 * r1[x1]);
                    }
                }
            }
        }
    });
    Ok(())
}

pub(crate) fn upsample2d_bwd<E: Elem>(
    g: &Resize2d,
    dy: &[E],
    dx: &mut [E],
    batch: usize,
    acc: Acc,
) -> Result<()> {
    let planes = batch * g.channels;
    let (plane, op) = (g.h * g.w, g.oh * g.ow);
    pieces(&mut dx[..planes * plane], plane, |k, d| {
        if acc == Acc::Set {
            d.fill(E::zero());
        }
        let gp = &dy[k * op..][..op];
        for oy in 0..g.oh {
            let grow = &gp[oy * g.ow..][..g.ow];
            match g.mode {
                UpsampleMode::Nearest => {
                    let r = oy * g.h / g.oh * g.w;
                    for (ox, v) in grow.iter().enumerate() {
                        let t = &mut d[r + ox * g.w / g.ow];
                        *t = *t + *v;
                    }
                }
                UpsampleMode::Bilinear => {
                    let (y0, y1, a0, a1) = bilinear_src(oy, g.h, g.oh);
                    let (a0, a1) = (E::of(a0), E::of(a1));
                    for (ox, v) in grow.iter().enumerate() {
                        let (x0, x1, b0, b1) = bilinear_src(ox, g.w, g.ow);
                        let (b0, b1) = (E::of(b0), E::of(b1));
                        for (r, a) in [(y0, a0), (y1, a1)] {
                            for (c, b) in [(x0, b0), (x1, b1)] {
                                let t = &mut d[r * g.w + c];
                                *t = *t + *v * a * b;
                            }
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

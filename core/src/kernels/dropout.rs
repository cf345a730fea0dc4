//! Inverted-dropout kernels with a counter-based mask (the same mask on
//! every device for the same seed, recomputed in backward).
//!
//! The trait states the kernels (with their formulas) and checks their
//! arguments once for every device; the CPU bodies follow it in this file;
//! the CUDA sources are `cuda/src/kernels/*.cu` and the CUDA impl is in
//! `cuda/src/kernels/<family>.rs`.

use crate::device::{dropout_keep, dropout_threshold, need, Acc, Backend};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::cpu_util::pieces;
use crate::Cpu;

/// The dropout kernels of a device, for element type `E`.
///
/// Used by Dropout; a layer that needs them states `D: DropoutKernels<E>`,
/// so a device without them cannot compile a network that uses it. Layers
/// call the provided methods, which check arguments and lengths once for
/// every device and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no dropout kernels for `{E}`",
    label = "needed by Dropout"
)]
pub trait DropoutKernels<E: Elem>: Backend<E> {
    /// Inverted dropout of `n` elements: `y_i = x_i · keep_i / (1 − p)` with
    /// `keep_i = dropout_keep(seed, i, dropout_threshold(p))` (0 for `p = 1`).
    /// A product, as PyTorch's `input * mask / (1 − p)`: a dropped NaN or
    /// infinity gives NaN, not 0.
    fn dropout_fwd(
        &self,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
    ) -> Result<()> {
        need(self, "dropout x", x, n)?;
        need(self, "dropout y", y, n)?;
        self.raw_dropout_fwd(x, y, n, p, seed)
    }
    /// `dx_i (acc)= dy_i · keep_i / (1 − p)`, the same mask as the forward pass
    /// (a product too: a NaN `dy_i` stays NaN where dropped, as PyTorch).
    fn dropout_bwd(
        &self,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
        acc: Acc,
    ) -> Result<()> {
        need(self, "dropout_bwd dy", dy, n)?;
        need(self, "dropout_bwd dx", dx, n)?;
        self.raw_dropout_bwd(dy, dx, n, p, seed, acc)
    }
    /// Body of [`DropoutKernels::dropout_fwd`] (arguments already checked).
    fn raw_dropout_fwd(
        &self,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
    ) -> Result<()>;
    /// Body of [`DropoutKernels::dropout_bwd`] (arguments already checked).
    fn raw_dropout_bwd(
        &self,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
        acc: Acc,
    ) -> Result<()>;
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> DropoutKernels<E> for Cpu {
    fn raw_dropout_fwd(
        &self,
        x: &Vec<E>,
        y: &mut Vec<E>,
        n: usize,
        p: f64,
        seed: u64,
    ) -> Result<()> {
        dropout_fwd(x, y, n, p, seed)
    }

    fn raw_dropout_bwd(
        &self,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        n: usize,
        p: f64,
        seed: u64,
        acc: Acc,
    ) -> Result<()> {
        dropout_bwd(dy, dx, n, p, seed, acc)
    }
}

/// `1/(1 − p)`, or 0 when everything is dropped.
fn keep_scale(p: f64) -> f64 {
    if p >= 1.0 {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}

pub(crate) fn dropout_fwd<E: Elem>(
    x: &[E],
    y: &mut [E],
    n: usize,
    p: f64,
    seed: u64,
) -> Result<()> {
    let (thr, scale) = (dropout_threshold(p), E::of(keep_scale(p)));
    pieces(&mut y[..n], 1 << 12, |k, c| {
        let o = k << 12;
        for (t, v) in c.iter_mut().enumerate() {
            let i = o + t;
            // A product with the mask, not a select: a dropped NaN stays NaN.
            *v = x[i]
                * if dropout_keep(seed, i as u64, thr) {
                    scale
                } else {
                    E::zero()
                };
        }
    });
    Ok(())
}

pub(crate) fn dropout_bwd<E: Elem>(
    dy: &[E],
    dx: &mut [E],
    n: usize,
    p: f64,
    seed: u64,
    acc: Acc,
) -> Result<()> {
    let (thr, scale) = (dropout_threshold(p), E::of(keep_scale(p)));
    pieces(&mut dx[..n], 1 << 12, |k, c| {
        let o = k << 12;
        for (t, v) in c.iter_mut().enumerate() {
            let i = o + t;
            let g = dy[i]
                * if dropout_keep(seed, i as u64, thr) {
                    scale
                } else {
                    E::zero()
                };
            acc.put(v, g);
        }
    });
    Ok(())
}

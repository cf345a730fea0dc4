//! PReLU kernels: the forward with a learned slope per channel, the input
//! gradient and the slopes' gradient.
//!
//! The input is seen as `[batch, channels, inner]` (row-major): element `i`
//! belongs to channel `c = (i / inner) % channels`. One shared slope is
//! `channels = 1`, `inner` = the whole sample.
//!
//! The trait states the kernels (with their formulas) and checks their
//! arguments once for every device; the CPU bodies follow it in this file;
//! the CUDA source is `cuda/src/kernels/prelu.cu` and the CUDA impl is in
//! `cuda/src/kernels/<family>.rs`.

use crate::device::{need, Acc, Backend};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::cpu_util::{pieces, pieces2, PAR_MIN};
use crate::Cpu;

/// The layout a PReLU kernel sees: `batch` samples of `channels × inner`
/// values, one slope per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PReluDims {
    /// Samples.
    pub batch: usize,
    /// Slopes (1 for a shared slope).
    pub channels: usize,
    /// Values per channel and sample.
    pub inner: usize,
}

impl PReluDims {
    /// Every value: `batch · channels · inner`.
    pub fn numel(&self) -> usize {
        self.batch * self.channels * self.inner
    }
}

/// The PReLU kernels of a device, for element type `E`.
///
/// Used by `PRelu`; a layer that needs them states `D: PReluKernels<E>`, so a
/// device without them cannot compile a network that uses it. Layers call the
/// provided methods, which check arguments and lengths once for every device
/// and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no PReLU kernels for `{E}`",
    label = "needed by PRelu"
)]
pub trait PReluKernels<E: Elem>: Backend<E> {
    /// `y = x` if `x > 0` else `a[c]·x` (a NaN takes the second branch, so
    /// `prelu(NaN) = NaN`, as PyTorch).
    fn prelu_fwd(
        &self,
        d: &PReluDims,
        x: &Self::Buf<E>,
        a: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
    ) -> Result<()> {
        need(self, "prelu_fwd x", x, d.numel())?;
        need(self, "prelu_fwd weight", a, d.channels)?;
        need(self, "prelu_fwd y", y, d.numel())?;
        self.raw_prelu_fwd(d, x, a, y)
    }
    /// `da[c] (gacc)= Σ dy·x·[not x > 0]` over the batch and the channel's
    /// positions, and, when `dx` is given, `dx (acc)= dy · (1 if x > 0 else
    /// a[c])`. A NaN `x` counts as `not x > 0`, as in PyTorch's
    /// `prelu_backward`: its `dx` is `dy·a[c]` and `da[c]` becomes NaN.
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn prelu_bwd(
        &self,
        d: &PReluDims,
        x: &Self::Buf<E>,
        a: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: Option<(&mut Self::Buf<E>, Acc)>,
        da: &mut Self::Buf<E>,
        gacc: Acc,
    ) -> Result<()> {
        need(self, "prelu_bwd x", x, d.numel())?;
        need(self, "prelu_bwd weight", a, d.channels)?;
        need(self, "prelu_bwd dy", dy, d.numel())?;
        need(self, "prelu_bwd weight gradient", da, d.channels)?;
        if let Some((dx, _)) = &dx {
            need(self, "prelu_bwd dx", &**dx, d.numel())?;
        }
        self.raw_prelu_bwd(d, x, a, dy, dx, da, gacc)
    }
    /// Body of [`PReluKernels::prelu_fwd`] (arguments already checked).
    fn raw_prelu_fwd(
        &self,
        d: &PReluDims,
        x: &Self::Buf<E>,
        a: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`PReluKernels::prelu_bwd`] (arguments already checked).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_prelu_bwd(
        &self,
        d: &PReluDims,
        x: &Self::Buf<E>,
        a: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: Option<(&mut Self::Buf<E>, Acc)>,
        da: &mut Self::Buf<E>,
        gacc: Acc,
    ) -> Result<()>;
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> PReluKernels<E> for Cpu {
    fn raw_prelu_fwd(&self, d: &PReluDims, x: &Vec<E>, a: &Vec<E>, y: &mut Vec<E>) -> Result<()> {
        if d.inner == 0 {
            return Ok(());
        }
        pieces(&mut y[..d.numel()], d.inner, |k, row| {
            let s = a[k % d.channels];
            for (v, &xv) in row.iter_mut().zip(&x[k * d.inner..][..d.inner]) {
                *v = if xv > E::zero() { xv } else { s * xv };
            }
        });
        Ok(())
    }

    fn raw_prelu_bwd(
        &self,
        d: &PReluDims,
        x: &Vec<E>,
        a: &Vec<E>,
        dy: &Vec<E>,
        dx: Option<(&mut Vec<E>, Acc)>,
        da: &mut Vec<E>,
        gacc: Acc,
    ) -> Result<()> {
        if d.inner == 0 {
            return Ok(());
        }
        // da: per channel, in f64, in a fixed order (sample by sample).
        let big = d.numel() >= PAR_MIN;
        let mut none: [E; 0] = [];
        pieces2(
            &mut da[..d.channels],
            1,
            &mut none,
            0,
            d.channels,
            big,
            |c, g, _| {
                let mut s = 0.0f64;
                for b in 0..d.batch {
                    let o = (b * d.channels + c) * d.inner;
                    for (&xv, &gv) in x[o..o + d.inner].iter().zip(&dy[o..o + d.inner]) {
                        // Not `x > 0` (NaN included): a NaN input makes the
                        // weight's gradient NaN, as PyTorch's.
                        if xv.is_nan() || xv <= E::zero() {
                            s += gv.f64() * xv.f64();
                        }
                    }
                }
                gacc.put(&mut g[0], E::of(s));
            },
        );
        if let Some((dx, acc)) = dx {
            pieces(&mut dx[..d.numel()], d.inner, |k, row| {
                let s = a[k % d.channels];
                let (xr, gr) = (&x[k * d.inner..][..d.inner], &dy[k * d.inner..][..d.inner]);
                for ((v, &xv), &gv) in row.iter_mut().zip(xr).zip(gr) {
                    acc.put(v, if xv > E::zero() { gv } else { s * gv });
                }
            });
        }
        Ok(())
    }
}

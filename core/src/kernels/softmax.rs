//! Row-wise softmax and its backward.
//!
//! The trait states the kernels (with their formulas) and checks their
//! arguments once for every device; the CPU bodies follow it in this file;
//! the CUDA sources are `cuda/src/kernels/*.cu` and the CUDA impl is in
//! `cuda/src/kernels/<family>.rs`.

use crate::device::{need, Acc, Backend};
use crate::elem::Elem;
use crate::error::Result;
use crate::Cpu;

/// The row-wise softmax kernels of a device, for element type `E`.
///
/// Used by Softmax; a layer that needs them states `D: SoftmaxKernels<E>`,
/// so a device without them cannot compile a network that uses it. Layers
/// call the provided methods, which check arguments and lengths once for
/// every device and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no row-wise softmax kernels for `{E}`",
    label = "needed by Softmax"
)]
pub trait SoftmaxKernels<E: Elem>: Backend<E> {
    /// Row-wise softmax of a `rows × cols` matrix: `y_j = e^{x_j − m} / Σ_k e^{x_k − m}`
    /// with `m` the row's maximum (so nothing overflows).
    fn softmax_fwd(
        &self,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        need(self, "softmax x", x, rows * cols)?;
        need(self, "softmax y", y, rows * cols)?;
        if rows * cols == 0 {
            return Ok(());
        }
        self.raw_softmax_fwd(x, y, rows, cols)
    }
    /// `dx_j (acc)= y_j (dy_j − Σ_k dy_k y_k)` per row.
    fn softmax_bwd(
        &self,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let n = rows * cols;
        need(self, "softmax_bwd y", y, n)?;
        need(self, "softmax_bwd dy", dy, n)?;
        need(self, "softmax_bwd dx", dx, n)?;
        if n == 0 {
            return Ok(());
        }
        self.raw_softmax_bwd(y, dy, dx, rows, cols, acc)
    }
    /// Body of [`SoftmaxKernels::softmax_fwd`] (arguments already checked).
    fn raw_softmax_fwd(
        &self,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// Body of [`SoftmaxKernels::softmax_bwd`] (arguments already checked).
    fn raw_softmax_bwd(
        &self,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()>;
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> SoftmaxKernels<E> for Cpu {
    fn raw_softmax_fwd(&self, x: &Vec<E>, y: &mut Vec<E>, rows: usize, cols: usize) -> Result<()> {
        for (xr, yr) in x[..rows * cols]
            .chunks_exact(cols)
            .zip(y[..rows * cols].chunks_exact_mut(cols))
        {
            softmax_row(xr, yr);
        }
        Ok(())
    }

    fn raw_softmax_bwd(
        &self,
        y: &Vec<E>,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        for r in 0..rows {
            let yr = &y[r * cols..][..cols];
            let dyr = &dy[r * cols..][..cols];
            let dot: E = yr.iter().zip(dyr).map(|(a, b)| *a * *b).sum();
            for j in 0..cols {
                acc.put(&mut dx[r * cols + j], yr[j] * (dyr[j] - dot));
            }
        }
        Ok(())
    }
}

/// Stable softmax of one row: subtract the maximum before exponentiating.
pub(crate) fn softmax_row<E: Elem>(x: &[E], y: &mut [E]) {
    let m = x.iter().copied().fold(E::neg_infinity(), E::max);
    let mut s = E::zero();
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = (*xi - m).exp();
        s = s + *yi;
    }
    let inv = E::one() / s;
    for yi in y.iter_mut() {
        *yi = *yi * inv;
    }
}

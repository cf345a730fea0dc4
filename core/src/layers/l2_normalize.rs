//! L2 normalisation over the last dimension (PyTorch's
//! `torch.nn.functional.normalize(x, p=2, dim=-1, eps=1e-12)`), with its
//! kernel family, [`L2NormalizeKernels`]: the layer, the kernels' trait and
//! their CPU bodies are this one file (the CUDA source is
//! `cuda/src/kernels/l2_normalize.cu`).
//!
//! The input `S` is seen as rows of the last dimension's `N` values (`rows =
//! batch · numel(S)/N`: `[N]` gives one row per sample, `[T, N]` one per
//! position). Per row, with `n = ‖x‖₂ = √(Σ x²)`:
//!
//! * forward: `y = x / max(n, ε)`, so a row of norm above `ε` has norm 1
//!   afterwards and a row of norm at most `ε` (a zero row) is divided by `ε`
//!   (a zero row stays zero);
//! * backward, with `g = ∂L/∂y`: when `n > ε`,
//!   `∂L/∂x = (g − y (y·g)) / n` (the Jacobian of `x/‖x‖`,
//!   `(I − y yᵀ)/n`, applied to `g`); when `n ≤ ε` the clamp is active, the
//!   denominator is the constant `ε`, and `∂L/∂x = g / ε`. (PyTorch's
//!   autograd gives the same: `clamp_min` passes no gradient to the norm
//!   where it clamps.)
//!
//! Nothing is cached: the backward recomputes each row's `n` from the input
//! (one more pass over the row, which the kernel reads anyway for `y·g =
//! x·g/n`), so the layer has no state and is built in place like softmax.
//! Sums of squares and dot products are accumulated in `f64` on every
//! device; `ε` is taken in the element type (`f32(1e-12)` for `f32`, as
//! PyTorch's `clamp_min` does). A NaN anywhere in a row makes the whole row NaN, forward and
//! backward, as in PyTorch (the clamp `max(NaN, ε)` keeps the NaN).
//!
//! ONNX has `LpNormalization(p = 2)`, which divides by the norm without `ε`
//! (a zero row gives NaN there); the export is instead the exact formula,
//! `Div(x, Max(ReduceL2(x, axes = [-1], keepdims = 1), ε))`.
//!
//! # Shapes
//! `L2Normalize<S>`: input and output `S` (`S1<N>`, `S2<T, N>`, …), any rank.

use super::activation::no_params;
use super::conv_common::prepare_dx;
use super::fit;
use crate::device::{need, Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::cpu_util::pieces;
use crate::module::{Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, single, Graph, Onnx};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::Cpu;
use std::marker::PhantomData;

// ---- the kernel family ---------------------------------------------------------

/// The layout an L2-normalisation kernel sees: `rows` rows of `cols`
/// values, normalised one by one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct L2NormalizeDims {
    /// Rows (`batch · numel/cols`).
    pub rows: usize,
    /// Values per row (the normalised width).
    pub cols: usize,
    /// ε, the smallest denominator (`> 0`).
    pub eps: f64,
}

/// The L2-normalisation kernels of a device, for element type `E`.
///
/// Used by [`L2Normalize`], which states `D: L2NormalizeKernels<E>`, so a
/// device without them cannot compile a network that uses it. Layers call
/// the provided methods, which check arguments and lengths once for every
/// device and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no L2-normalisation kernels for `{E}`",
    label = "needed by L2Normalize"
)]
pub trait L2NormalizeKernels<E: Elem>: Backend<E> {
    /// Per row: `n = √(Σ x²)` (in `f64`), `y = x / max(n, ε)`.
    fn l2_normalize_fwd(
        &self,
        d: &L2NormalizeDims,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
    ) -> Result<()> {
        check_eps(d.eps)?;
        let n = d.rows * d.cols;
        need(self, "l2_normalize_fwd x", x, n)?;
        need(self, "l2_normalize_fwd y", y, n)?;
        self.raw_l2_normalize_fwd(d, x, y)
    }
    /// Per row, with `n = √(Σ x²)` and `s = Σ x·dy` (both recomputed, in
    /// `f64`): `dx (acc)= (dy − x·s/n²)/n` when `n > ε` (that is
    /// `(g − y (y·g))/n`), `dx (acc)= dy/ε` when `n ≤ ε`.
    fn l2_normalize_bwd(
        &self,
        d: &L2NormalizeDims,
        x: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        acc: Acc,
    ) -> Result<()> {
        check_eps(d.eps)?;
        let n = d.rows * d.cols;
        need(self, "l2_normalize_bwd x", x, n)?;
        need(self, "l2_normalize_bwd dy", dy, n)?;
        need(self, "l2_normalize_bwd dx", dx, n)?;
        self.raw_l2_normalize_bwd(d, x, dy, dx, acc)
    }
    /// Body of [`L2NormalizeKernels::l2_normalize_fwd`] (arguments already checked).
    fn raw_l2_normalize_fwd(
        &self,
        d: &L2NormalizeDims,
        x: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`L2NormalizeKernels::l2_normalize_bwd`] (arguments already checked).
    fn raw_l2_normalize_bwd(
        &self,
        d: &L2NormalizeDims,
        x: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        acc: Acc,
    ) -> Result<()>;
}

/// `ε` must be a positive number (`ε = 0` would divide a zero row by zero).
fn check_eps(eps: f64) -> Result<()> {
    if eps.is_nan() || eps <= 0.0 {
        return Err(Error::invalid(
            "L2Normalize",
            format!("need eps > 0, got {eps}"),
        ));
    }
    Ok(())
}

/// `ε` as the element type holds it (PyTorch's `clamp_min` on a `float32`
/// tensor compares with `float(ε)` and divides by it; the CUDA kernels take
/// it as `T` too).
fn eps_of<E: Elem>(eps: f64) -> f64 {
    E::of(eps).f64()
}

/// The row's norm `n` and denominator `max(n, ε)` (NaN when `n` is).
fn norm_of<E: Elem>(xr: &[E], eps: f64) -> (f64, f64) {
    let n = xr.iter().map(|v| v.f64() * v.f64()).sum::<f64>().sqrt();
    (n, if n <= eps { eps } else { n })
}

// ---- CPU bodies ------------------------------------------------------------------

impl<E: Elem> L2NormalizeKernels<E> for Cpu {
    fn raw_l2_normalize_fwd(&self, d: &L2NormalizeDims, x: &Vec<E>, y: &mut Vec<E>) -> Result<()> {
        let (rows, cols) = (d.rows, d.cols);
        if rows * cols == 0 {
            return Ok(());
        }
        pieces(&mut y[..rows * cols], cols, |r, yr| {
            let xr = &x[r * cols..][..cols];
            let (_, den) = norm_of(xr, eps_of::<E>(d.eps));
            for (v, &xv) in yr.iter_mut().zip(xr) {
                *v = E::of(xv.f64() / den);
            }
        });
        Ok(())
    }

    fn raw_l2_normalize_bwd(
        &self,
        d: &L2NormalizeDims,
        x: &Vec<E>,
        dy: &Vec<E>,
        dx: &mut Vec<E>,
        acc: Acc,
    ) -> Result<()> {
        let (rows, cols) = (d.rows, d.cols);
        if rows * cols == 0 {
            return Ok(());
        }
        pieces(&mut dx[..rows * cols], cols, |r, row| {
            let (xr, gr) = (&x[r * cols..][..cols], &dy[r * cols..][..cols]);
            let eps = eps_of::<E>(d.eps);
            let (n, den) = norm_of(xr, eps);
            // Clamped: dx = g/ε. Otherwise dx = (g − x·(x·g)/n²)/n.
            let c = if n <= eps {
                0.0
            } else {
                xr.iter()
                    .zip(gr)
                    .map(|(a, b)| a.f64() * b.f64())
                    .sum::<f64>()
                    / (n * n)
            };
            for ((v, &xv), &gv) in row.iter_mut().zip(xr).zip(gr) {
                acc.put(v, E::of((gv.f64() - xv.f64() * c) / den));
            }
        });
        Ok(())
    }
}

// ---- the layer -------------------------------------------------------------------

/// L2 normalisation of each row of the last dimension of `S` (see the
/// module doc). No parameters; `eps` defaults to PyTorch's `1e-12`.
#[derive(Clone, Copy, Debug)]
pub struct L2Normalize<S> {
    /// ε: rows of norm at most `ε` are divided by `ε` instead.
    pub eps: f64,
    _s: PhantomData<S>,
}
no_params!(L2Normalize<S>);

impl<S> L2Normalize<S> {
    /// `F.normalize(x, p=2, dim=-1, eps=eps)`; `eps` must be positive
    /// (checked when the layer runs: forward and backward return an error
    /// otherwise).
    pub const fn new(eps: f64) -> Self {
        L2Normalize {
            eps,
            _s: PhantomData,
        }
    }
}

impl<S> Default for L2Normalize<S> {
    /// PyTorch's default, `eps = 1e-12`.
    fn default() -> Self {
        Self::new(1e-12)
    }
}

impl<S: Shape> L2Normalize<S> {
    /// The length of the last dimension: the size of one normalised row.
    const COLS: usize = S::DIMS[S::RANK - 1];
    fn dims(&self, batch: usize) -> L2NormalizeDims {
        L2NormalizeDims {
            rows: batch * (S::NUMEL / Self::COLS.max(1)),
            cols: Self::COLS,
            eps: self.eps,
        }
    }
}

impl<E: Elem, D: L2NormalizeKernels<E>, S: Shape> Layer<E, D> for L2Normalize<S> {
    type In = S;
    type Out = S;
    type Cache = ();
    const FLOPS: usize = 3 * S::NUMEL;
    fn cache(&self) -> Result<()> {
        Ok(())
    }

    /// `y = x / max(‖x‖, ε)` per row.
    fn forward(&self, x: &Tensor<S, E, D>, y: &mut Tensor<S, E, D>, _: &mut ()) -> Result<()> {
        fit(y, x.batch())?;
        x.device()
            .l2_normalize_fwd(&self.dims(x.batch()), &x.buf, &mut y.buf)
    }

    /// The same as evaluation.
    fn forward_train(
        &mut self,
        x: &Tensor<S, E, D>,
        y: &mut Tensor<S, E, D>,
        _: &mut (),
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, &mut ())
    }

    /// `dx (acc)= (g − y (y·g))/n`, or `g/ε` where `n ≤ ε` (`n` recomputed
    /// from `x`; `y` is not read).
    fn backward(
        &self,
        x: &Tensor<S, E, D>,
        _: &Tensor<S, E, D>,
        _: &mut (),
        dy: &Tensor<S, E, D>,
        dx: Option<(&mut Tensor<S, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        crate::error::check_batch(
            "L2Normalize backward",
            "input",
            x.batch(),
            "output gradient",
            dy.batch(),
        )?;
        if let Some((dx, acc)) = dx {
            prepare_dx(dx, acc, x.batch())?;
            x.device().l2_normalize_bwd(
                &self.dims(x.batch()),
                &x.buf,
                &dy.buf,
                &mut dx.buf,
                acc,
            )?;
        }
        Ok(())
    }
}

/// ONNX: `Div(x, Max(ReduceL2(x, axes = [-1], keepdims = 1), ε))`, the
/// formula itself (opset 17's `ReduceL2` takes `axes` as an attribute);
/// `LpNormalization` would divide a zero row by zero.
impl<S: Shape> Onnx for L2Normalize<S> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        check_eps(self.eps)?;
        let x = single(at, inputs)?;
        let attrs = vec![graph::ints("axes", &[-1]), graph::int("keepdims", 1)];
        let n = g.op("ReduceL2", at, &[x], attrs);
        let eps = g.scalar(&format!("{at}_eps"), self.eps)?;
        let den = g.op("Max", at, &[&n, &eps], Vec::new());
        Ok(vec![g.op("Div", at, &[x, &den], Vec::new())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{S1, S2, S3};
    use crate::testing::{check_layer, random_input};

    fn run<S: Shape>(l: &L2Normalize<S>, xv: &[f64], gv: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let x = Tensor::<S, f64>::from_slice(&Cpu, xv).unwrap();
        let dy = Tensor::<S, f64>::from_slice(&Cpu, gv).unwrap();
        let (mut y, mut dx) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
        l.forward(&x, &mut y, &mut ()).unwrap();
        l.backward(
            &x,
            &y,
            &mut (),
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut (),
            Acc::Set,
        )
        .unwrap();
        (y.to_vec().unwrap(), dx.to_vec().unwrap())
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * y.abs().max(1.0), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn worked_numbers() {
        // [3, 4]: n = 5, y = (0.6, 0.8). With g = (1, 0): y·g = 0.6,
        // dx = ((1, 0) − 0.6·(0.6, 0.8))/5 = (0.64, −0.48)/5 = (0.128, −0.096).
        let l = L2Normalize::<S1<2>>::default();
        let (y, dx) = run(&l, &[3., 4.], &[1., 0.]);
        close(&y, &[0.6, 0.8], 1e-16);
        close(&dx, &[0.128, -0.096], 1e-16);
        // The gradient is orthogonal to y (moving along y does not change it).
        assert!((dx[0] * y[0] + dx[1] * y[1]).abs() < 1e-16);
        // A zero row stays zero, and its gradient is g/ε (the clamp is active).
        let (y, dx) = run(&l, &[0., 0., 3., 4.], &[1., -2., 0., 1.]);
        assert_eq!(y[..2], [0., 0.]);
        close(&y[2..], &[0.6, 0.8], 1e-16);
        assert_eq!(dx[..2], [1e12, -2e12]);
        // (0, 1) − 0.8·(0.6, 0.8) = (−0.48, 0.36), over 5.
        close(&dx[2..], &[-0.096, 0.072], 1e-16);
    }

    #[test]
    fn rows_below_eps_are_divided_by_eps() {
        // n = 5 ≤ ε = 10: y = x/10, dx = g/10.
        let l = L2Normalize::<S1<2>>::new(10.0);
        let (y, dx) = run(&l, &[3., 4.], &[1., -3.]);
        close(&y, &[0.3, 0.4], 1e-16);
        close(&dx, &[0.1, -0.3], 1e-16);
    }

    #[test]
    fn gradchecks() {
        // Ranks 1–3, the usual branch (random rows have norms ≫ 1e-12).
        let e1 = check_layer(&mut L2Normalize::<S1<6>>::default(), 3, 5).unwrap();
        let e2 = check_layer(&mut L2Normalize::<S2<4, 3>>::default(), 2, 6).unwrap();
        let e3 = check_layer(&mut L2Normalize::<S3<2, 2, 5>>::default(), 2, 7).unwrap();
        // The clamped branch: rows of 3 values in ±[0.05, 1) have n < √3 < 2.
        let e4 = check_layer(&mut L2Normalize::<S2<3, 3>>::new(2.0), 2, 8).unwrap();
        println!("L2Normalize gradcheck: rank 1 {e1:.2e}, rank 2 {e2:.2e}, rank 3 {e3:.2e}, clamped {e4:.2e}");
        for e in [e1, e2, e3, e4] {
            assert!(e < 1e-6, "{e}");
        }
    }

    /// Every row of `[T, N]` has norm 1 afterwards and is the direction of
    /// its input row.
    #[test]
    fn rows_have_norm_one() {
        let l = L2Normalize::<S2<3, 5>>::default();
        let xv: Vec<f64> = random_input(2 * 15, &mut crate::rng(1))
            .iter()
            .map(|v| 7.0 * v)
            .collect();
        let (y, _) = run(&l, &xv, &xv);
        for (yr, xr) in y.chunks(5).zip(xv.chunks(5)) {
            let n2: f64 = yr.iter().map(|v| v * v).sum();
            assert!((n2 - 1.0).abs() < 1e-15, "{n2}");
            let nx = xr.iter().map(|v| v * v).sum::<f64>().sqrt();
            for (a, b) in yr.iter().zip(xr) {
                assert!((a - b / nx).abs() < 1e-16);
            }
        }
        // f32 too.
        let x =
            Tensor::<S2<3, 5>>::from_slice(&Cpu, &xv.iter().map(|&v| v as f32).collect::<Vec<_>>())
                .unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        l.forward(&x, &mut y, &mut ()).unwrap();
        for yr in y.to_vec().unwrap().chunks(5) {
            let n2: f32 = yr.iter().map(|v| v * v).sum();
            assert!((n2 - 1.0).abs() < 1e-6, "{n2}");
        }
    }

    #[test]
    fn nan_fills_its_row_and_bad_eps_is_an_error() {
        let l = L2Normalize::<S1<3>>::default();
        let (y, dx) = run(&l, &[f64::NAN, 1., 2., 1., 2., 2.], &[1.; 6]);
        assert!(y[..3].iter().chain(&dx[..3]).all(|v| v.is_nan()));
        close(&y[3..], &[1. / 3., 2. / 3., 2. / 3.], 1e-16);
        for eps in [0.0, -1.0, f64::NAN] {
            let x = Tensor::<S1<3>, f64>::from_slice(&Cpu, &[1., 2., 3.]).unwrap();
            let mut y = Tensor::empty(&Cpu).unwrap();
            let e = L2Normalize::<S1<3>>::new(eps)
                .forward(&x, &mut y, &mut ())
                .unwrap_err()
                .to_string();
            assert!(e.contains("L2Normalize") && e.contains("eps > 0"), "{e}");
        }
    }
}

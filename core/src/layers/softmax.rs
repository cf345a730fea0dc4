//! Softmax over the last dimension (PyTorch's `nn.Softmax(dim=-1)`): over
//! the features of a vector, and at every position of a sequence `[T, N]`
//! (or any rank), each row of `N` normalised on its own.
//!
//! * forward: `y_j = e^{x_j − m} / Σ_k e^{x_k − m}` with `m = max_k x_k`
//!   (subtracting the maximum changes nothing mathematically and keeps the
//!   exponentials from overflowing);
//! * backward: `∂L/∂x_j = y_j (∂L/∂y_j − Σ_k ∂L/∂y_k · y_k)` — the Jacobian
//!   `diag(y) − y yᵀ` applied to `∂L/∂y`, using the cached output.
//!
//! For classification, feed logits to [`crate::loss::cross_entropy`], which
//! fuses softmax with the log-likelihood (`∂L/∂x = p − onehot(y)`), instead of
//! this layer.
//!
//! # Shapes
//! `Softmax<S>`: input and output `S` (`S1<N>`, `S2<T, N>`, …); a batch of
//! `B` samples is `B · NUMEL / N` rows of `N`.

use super::activation::no_params;
use super::fit;
use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::SoftmaxKernels;
use crate::module::{Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, single, Graph, Onnx};
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::marker::PhantomData;

/// Softmax over the last dimension.
#[derive(Clone, Copy, Debug, Default)]
pub struct Softmax<S> {
    _s: PhantomData<S>,
}
no_params!(Softmax<S>);

/// ONNX: `Softmax(axis = -1)` (opset 13 and later normalise that one axis,
/// as this layer does).
impl<S: Shape> Onnx for Softmax<S> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        Ok(vec![g.op(
            "Softmax",
            at,
            &[x],
            vec![graph::int("axis", -1)],
        )])
    }
}

impl<S: Shape> Softmax<S> {
    /// The length of the last dimension: the size of one normalised row.
    const COLS: usize = S::DIMS[S::RANK - 1];
    /// Rows in a batch of `batch` samples.
    fn rows(batch: usize) -> usize {
        batch * (S::NUMEL / Self::COLS)
    }
}

impl<E: Elem, D: SoftmaxKernels<E>, S: Shape> Layer<E, D> for Softmax<S> {
    type In = S;
    type Out = S;
    type Cache = ();
    const FLOPS: usize = 3 * S::NUMEL;
    fn cache(&self) -> Result<()> {
        Ok(())
    }
    fn forward(&self, x: &Tensor<S, E, D>, y: &mut Tensor<S, E, D>, _: &mut ()) -> Result<()> {
        fit(y, x.batch())?;
        x.device()
            .softmax_fwd(&x.buf, &mut y.buf, Self::rows(x.batch()), Self::COLS)
    }
    fn forward_train(
        &mut self,
        x: &Tensor<S, E, D>,
        y: &mut Tensor<S, E, D>,
        _: &mut (),
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, &mut ())
    }
    fn backward(
        &self,
        x: &Tensor<S, E, D>,
        y: &Tensor<S, E, D>,
        _: &mut (),
        dy: &Tensor<S, E, D>,
        dx: Option<(&mut Tensor<S, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        if let Some((dx, acc)) = dx {
            if acc == Acc::Set {
                fit(dx, x.batch())?;
            }
            x.device().softmax_bwd(
                &y.buf,
                &dy.buf,
                &mut dx.buf,
                Self::rows(x.batch()),
                Self::COLS,
                acc,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{S1, S2, S3};
    use crate::testing::check_layer;
    use crate::Cpu;

    #[test]
    fn course_example() {
        // Softmax of the cat scores (3.2, 5.1, −1.7) is (0.13, 0.87, 0.00).
        let x = Tensor::<S1<3>, f64>::from_slice(&Cpu, &[3.2, 5.1, -1.7]).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        Softmax::<S1<3>>::default()
            .forward(&x, &mut y, &mut ())
            .unwrap();
        let y = y.to_vec().unwrap();
        assert_eq!(
            y.iter()
                .map(|v| (v * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            vec![0.13, 0.87, 0.0]
        );
        assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        // Large logits do not overflow.
        let x = Tensor::<S1<3>, f64>::from_slice(&Cpu, &[1000.0, 1000.0, -1000.0]).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        Softmax::<S1<3>>::default()
            .forward(&x, &mut y, &mut ())
            .unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![0.5, 0.5, 0.0]);
    }

    #[test]
    fn gradcheck() {
        assert!(check_layer(&mut Softmax::<S1<6>>::default(), 3, 5).unwrap() < 1e-6);
        assert!(check_layer(&mut Softmax::<S2<4, 3>>::default(), 2, 6).unwrap() < 1e-6);
        assert!(check_layer(&mut Softmax::<S3<2, 2, 3>>::default(), 2, 7).unwrap() < 1e-6);
    }

    /// On `[T, N]` each position is normalised on its own: every row sums
    /// to 1, and a row equals the vector softmax of that row.
    #[test]
    fn each_position_is_normalised() {
        let xs = [3.2, 5.1, -1.7, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, -4.0, 9.0, 2.5];
        let x = Tensor::<S2<2, 3>, f64>::from_slice(&Cpu, &xs).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        Softmax::<S2<2, 3>>::default()
            .forward(&x, &mut y, &mut ())
            .unwrap();
        let y = y.to_vec().unwrap();
        let xr = Tensor::<S1<3>, f64>::from_slice(&Cpu, &xs).unwrap();
        let mut yr = Tensor::empty(&Cpu).unwrap();
        Softmax::<S1<3>>::default()
            .forward(&xr, &mut yr, &mut ())
            .unwrap();
        assert_eq!(y, yr.to_vec().unwrap());
        for row in y.chunks(3) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        }
        assert!((y[3] - 1.0 / 3.0).abs() < 1e-15);
    }
}

//! Softmax over the features of each sample (PyTorch's `nn.Softmax(dim=-1)`
//! on a `[B, N]` input).
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
//! `Softmax<S1<N>>`: input and output `S1<N>`.

use super::activation::no_params;
use super::fit;
use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::SoftmaxKernels;
use crate::module::{Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::shape::S1;
use crate::tensor::Tensor;
use std::marker::PhantomData;

/// Softmax over the last dimension.
#[derive(Clone, Copy, Debug, Default)]
pub struct Softmax<S> {
    _s: PhantomData<S>,
}
no_params!(Softmax<S>);

impl<E: Elem, D: SoftmaxKernels<E>, const N: usize> Layer<E, D> for Softmax<S1<N>> {
    type In = S1<N>;
    type Out = S1<N>;
    type Cache = ();
    const FLOPS: usize = 3 * N;
    fn cache(&self) -> Result<()> {
        Ok(())
    }
    fn forward(
        &self,
        x: &Tensor<S1<N>, E, D>,
        y: &mut Tensor<S1<N>, E, D>,
        _: &mut (),
    ) -> Result<()> {
        fit(y, x.batch())?;
        x.device().softmax_fwd(&x.buf, &mut y.buf, x.batch(), N)
    }
    fn forward_train(
        &mut self,
        x: &Tensor<S1<N>, E, D>,
        y: &mut Tensor<S1<N>, E, D>,
        _: &mut (),
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, &mut ())
    }
    fn backward(
        &self,
        x: &Tensor<S1<N>, E, D>,
        y: &Tensor<S1<N>, E, D>,
        _: &mut (),
        dy: &Tensor<S1<N>, E, D>,
        dx: Option<(&mut Tensor<S1<N>, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        if let Some((dx, acc)) = dx {
            if acc == Acc::Set {
                fit(dx, x.batch())?;
            }
            x.device()
                .softmax_bwd(&y.buf, &dy.buf, &mut dx.buf, x.batch(), N, acc)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    }
}

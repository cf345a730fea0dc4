//! Flatten (or any reshape) of each sample: the values stay in row-major
//! order and only the per-sample shape changes, as `torch.flatten(x, 1)`.
//!
//! * forward: `y = x` viewed as `Out`;
//! * backward: `∂L/∂x = ∂L/∂y` viewed as `In`.
//!
//! The macro checks at expansion time that `In` and `Out` hold the same
//! number of values (`flatten` of `[16, 5, 5]` gives `[400]`).
//!
//! # Shapes
//! `Flatten<In, Out>` with `In::NUMEL == Out::NUMEL`.

use super::activation::no_params;
use super::fit;
use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::module::{Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{join, single, Graph, Onnx};
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::marker::PhantomData;

/// Reshape from `I` to `O` (equal element counts).
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten<I, O> {
    _s: PhantomData<(I, O)>,
}
no_params!(Flatten<I, O>);

/// ONNX: `Reshape(x, [-1, O…])`, the batch kept and every other dimension
/// static.
impl<I: Shape, O: Shape> Onnx for Flatten<I, O> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        check_sizes::<I, O>()?;
        let mut dims = vec![-1i64];
        dims.extend(O::DIMS.iter().map(|&d| d as i64));
        let shape = g.int64s(&join(at, "shape"), &dims)?;
        Ok(vec![g.op("Reshape", at, &[x, &shape], Vec::new())])
    }
}

/// Fails unless `I` and `O` hold as many values per sample (the macro never
/// writes such a pair, but the type is public and a hand-written one would
/// copy past the end of the output): checked in release builds too.
fn check_sizes<I: Shape, O: Shape>() -> Result<()> {
    if I::NUMEL == O::NUMEL {
        return Ok(());
    }
    Err(Error::invalid(
        "Flatten",
        format!(
            "cannot reshape {:?} ({} values per sample) into {:?} ({})",
            I::DIMS,
            I::NUMEL,
            O::DIMS,
            O::NUMEL
        ),
    ))
}

/// `reshape([a, b])` in `network!`: the same row-major copy as [`Flatten`],
/// between any two shapes of equal size (PyTorch's `x.reshape(B, a, b)`);
/// backward copies the gradient back unchanged.
pub type Reshape<I, O> = Flatten<I, O>;

impl<E: Elem, D: Backend<E>, I: Shape, O: Shape> Layer<E, D> for Flatten<I, O> {
    type In = I;
    type Out = O;
    type Cache = ();
    const FLOPS: usize = 0;
    fn cache(&self) -> Result<()> {
        Ok(())
    }
    fn forward(&self, x: &Tensor<I, E, D>, y: &mut Tensor<O, E, D>, _: &mut ()) -> Result<()> {
        check_sizes::<I, O>()?;
        fit(y, x.batch())?;
        x.device().copy(&x.buf, &mut y.buf, x.numel())
    }
    fn forward_train(
        &mut self,
        x: &Tensor<I, E, D>,
        y: &mut Tensor<O, E, D>,
        _: &mut (),
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, &mut ())
    }
    fn backward(
        &self,
        x: &Tensor<I, E, D>,
        _: &Tensor<O, E, D>,
        _: &mut (),
        dy: &Tensor<O, E, D>,
        dx: Option<(&mut Tensor<I, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        check_sizes::<I, O>()?;
        if let Some((dx, acc)) = dx {
            if acc == Acc::Set {
                fit(dx, x.batch())?;
            }
            x.device()
                .axpy(E::one(), &dy.buf, &mut dx.buf, x.numel(), acc)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unequal_sizes_are_an_error_in_every_build() {
        use crate::shape::S1;
        use crate::Cpu;
        let f = Flatten::<S1<3>, S1<4>>::default();
        let x = Tensor::<S1<3>, f32>::from_slice(&Cpu, &[1.0, 2.0, 3.0]).unwrap();
        let mut y = Tensor::<S1<4>, f32>::empty(&Cpu).unwrap();
        let e = Layer::<f32, Cpu>::forward(&f, &x, &mut y, &mut ()).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot reshape [3] (3 values per sample) into [4] (4)"),
            "{e}"
        );
    }
    use crate::shape::{S1, S3};
    use crate::testing::check_layer;
    use crate::Cpu;

    #[test]
    fn keeps_row_major_order() {
        let v: Vec<f64> = (0..24).map(|i| i as f64).collect();
        let x = Tensor::<S3<2, 3, 2>, f64>::from_slice(&Cpu, &v).unwrap();
        let mut y = Tensor::<S1<12>, f64>::empty(&Cpu).unwrap();
        Flatten::<S3<2, 3, 2>, S1<12>>::default()
            .forward(&x, &mut y, &mut ())
            .unwrap();
        assert_eq!(y.batch(), 2);
        assert_eq!(y.to_vec().unwrap(), v);
    }

    #[test]
    fn gradcheck() {
        assert!(check_layer(&mut Flatten::<S3<2, 3, 2>, S1<12>>::default(), 2, 1).unwrap() < 1e-6);
    }
}

//! Parametric ReLU (PyTorch's `nn.PReLU`): a ReLU whose negative slope is
//! learned, one slope shared by every value (`nn.PReLU()`) or one per channel
//! (`nn.PReLU(num_parameters = C)`).
//!
//! With `a_c` the slope of the channel of `x`:
//!
//! * forward: `y = x` if `x > 0` else `a_c·x`;
//! * backward: `∂L/∂x = ∂L/∂y · (1 if x > 0 else a_c)`, and
//!   `∂L/∂a_c = Σ ∂L/∂y · x · [x ≤ 0]` over the batch and every position of
//!   channel `c` (PyTorch's convention at `x = 0`).
//!
//! NaN propagates as in PyTorch: a NaN `x` takes the `x ≤ 0` branch
//! (`not x > 0`), so its output is `a_c·NaN = NaN`, its `∂L/∂x` is
//! `∂L/∂y·a_c` and `∂L/∂a_c` becomes NaN.
//!
//! No cache: the tape holds `x`.
//!
//! # Shapes
//! `PRelu<E, D, S, C>` maps `S` to `S`. `C = 1` shares one slope; otherwise
//! the channel is the first per-sample dimension (dimension 1 of the batched
//! input, as in PyTorch: `C` of `[C, H, W]`, the features of `[F]`) and `C`
//! must equal it. The parameter is `weight`, `[C]`, initialised to `0.25`.

use super::conv_common::prepare_dx;
use super::fit;
use crate::device::{Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::{PReluDims, PReluKernels};
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{join, single, Graph, Onnx};
use crate::shape::{Shape, S1};
use crate::tensor::Tensor;
use crate::Rng;
use std::marker::PhantomData;

/// Options of a [`PRelu`] (PyTorch's default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PReluConfig {
    /// The initial slope of every channel (default `0.25`, PyTorch's `init`).
    pub init: f64,
}

impl Default for PReluConfig {
    fn default() -> Self {
        PReluConfig { init: 0.25 }
    }
}

/// Parametric ReLU on inputs `S` with `C` slopes (see the module doc).
pub struct PRelu<E: Elem, D: Backend<E>, S: Shape, const C: usize> {
    /// The slopes `a`, `[C]`.
    pub weight: Tensor<S1<C>, E, D>,
    _s: PhantomData<S>,
}

/// Gradients of a [`PRelu`].
pub struct PReluGrads<E: Elem, D: Backend<E>, const C: usize> {
    /// `∂L/∂a`.
    pub weight: Tensor<S1<C>, E, D>,
}

impl<E: Elem, D: Backend<E>, S: Shape, const C: usize> PRelu<E, D, S, C> {
    fn dims(batch: usize) -> PReluDims {
        PReluDims {
            batch,
            channels: C,
            inner: S::NUMEL / C,
        }
    }
}

impl<E: Elem, D: Backend<E>, S: Shape, const C: usize> Build<E, D> for PRelu<E, D, S, C> {
    type Config = PReluConfig;
    fn build(dev: &D, _: &mut Rng, cfg: PReluConfig) -> Result<Self> {
        if C == 0 || (C != 1 && S::DIMS.first() != Some(&C)) {
            return Err(Error::invalid(
                "PRelu",
                format!(
                    "{C} slopes for input shape {:?}: need 1 (shared) or the channel count {}",
                    S::DIMS,
                    S::DIMS.first().copied().unwrap_or(0)
                ),
            ));
        }
        Ok(PRelu {
            weight: Tensor::from_vec(dev, 1, vec![E::of(cfg.init); C])?,
            _s: PhantomData,
        })
    }
}

impl<E: Elem, D: Backend<E>, S: Shape, const C: usize> Module<E, D> for PRelu<E, D, S, C> {
    type Grads = PReluGrads<E, D, C>;
    fn grads(&self) -> Result<Self::Grads> {
        Ok(PReluGrads {
            weight: Tensor::zeros(self.weight.device(), 1)?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        f(
            &path.child("weight"),
            ParamRef::of(&self.weight, Role::Param),
        );
    }
    fn visit_grads(
        &mut self,
        g: &Self::Grads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
        f(
            &path.child("weight"),
            ParamMut::of(&mut self.weight, Some(&g.weight)),
        );
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    ) {
        f(
            &path.child("weight"),
            ParamMut::of(&mut self.weight, None),
            Role::Param,
        );
    }
}

impl<E: Elem, D: PReluKernels<E>, S: Shape, const C: usize> Layer<E, D> for PRelu<E, D, S, C> {
    type In = S;
    type Out = S;
    type Cache = ();
    const FLOPS: usize = S::NUMEL;
    fn cache(&self) -> Result<()> {
        Ok(())
    }

    /// `y = x` if `x > 0` else `a_c·x`.
    fn forward(&self, x: &Tensor<S, E, D>, y: &mut Tensor<S, E, D>, _: &mut ()) -> Result<()> {
        fit(y, x.batch())?;
        let d = Self::dims(x.batch());
        x.device()
            .prelu_fwd(&d, &x.buf, &self.weight.buf, &mut y.buf)
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

    /// `da (gacc)= Σ dy·x·[x ≤ 0]`, `dx (acc)= dy·(1 if x > 0 else a_c)`.
    fn backward(
        &self,
        x: &Tensor<S, E, D>,
        _: &Tensor<S, E, D>,
        _: &mut (),
        dy: &Tensor<S, E, D>,
        dx: Option<(&mut Tensor<S, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()> {
        crate::error::check_batch(
            "PRelu backward",
            "input",
            x.batch(),
            "output gradient",
            dy.batch(),
        )?;
        let dx = match dx {
            Some((t, acc)) => {
                prepare_dx(t, acc, x.batch())?;
                Some((&mut t.buf, acc))
            }
            None => None,
        };
        let d = Self::dims(x.batch());
        x.device().prelu_bwd(
            &d,
            &x.buf,
            &self.weight.buf,
            &dy.buf,
            dx,
            &mut grads.weight.buf,
            gacc,
        )
    }
}

/// The input gradient alone, `dx (acc)= dy·(1 if x > 0 else a_c)`. The
/// kernel computes the slopes' gradient with it, so it goes to a `C`-value
/// buffer made for the call and dropped: the layer has no cache to keep one
/// in (`Cache = ()`), and one small allocation per call is what
/// `backward_from` through a PReLU costs (the visualisation tools and attacks
/// run it once per batch).
impl<E: Elem, D: PReluKernels<E>, S: Shape, const C: usize> crate::input_grad::InputGrad<E, D>
    for PRelu<E, D, S, C>
{
    fn backward_input(
        &self,
        x: &Tensor<S, E, D>,
        _y: &Tensor<S, E, D>,
        _: &mut (),
        dy: &Tensor<S, E, D>,
        dx: Option<(&mut Tensor<S, E, D>, Acc)>,
        _mode: crate::input_grad::GradMode,
    ) -> Result<()> {
        crate::error::check_batch(
            "PRelu backward",
            "input",
            x.batch(),
            "output gradient",
            dy.batch(),
        )?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        prepare_dx(dx, acc, x.batch())?;
        let dev = x.device();
        let mut da = dev.zeros(C)?;
        let d = Self::dims(x.batch());
        let dx = Some((&mut dx.buf, acc));
        dev.prelu_bwd(&d, &x.buf, &self.weight.buf, &dy.buf, dx, &mut da, Acc::Set)
    }
}

/// ONNX: `PRelu(x, slope)`, the slope `{path}.weight` (`[C]`) reshaped to
/// `[C, 1, …]` so that it broadcasts over the channel axis (ONNX broadcasts
/// from the last axis).
impl<E: Elem, D: Backend<E>, S: Shape, const C: usize> Onnx for PRelu<E, D, S, C> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let w = g.param(&join(at, "weight"), &self.weight)?;
        let mut dims = vec![C as i64];
        if C > 1 {
            dims.extend(std::iter::repeat_n(1, S::RANK - 1));
        }
        let shape = g.int64s(&join(at, "slope_shape"), &dims)?;
        let slope = g.op("Reshape", &join(at, "slope"), &[&w, &shape], Vec::new());
        Ok(vec![g.op("PRelu", at, &[x, &slope], Vec::new())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::S3;
    use crate::testing::{check_layer, random_input};
    use crate::Cpu;

    #[test]
    fn values_and_gradients() {
        // Two channels of [2, 2, 1] → slopes (0.25, −0.5).
        let mut l = PRelu::<f64, Cpu, S3<2, 2, 1>, 2>::build(
            &Cpu,
            &mut crate::rng(0),
            PReluConfig::default(),
        )
        .unwrap();
        assert_eq!(l.weight.to_vec().unwrap(), vec![0.25, 0.25]);
        l.weight.copy_from_slice(&[0.25, -0.5]).unwrap();
        let x = Tensor::<S3<2, 2, 1>, f64>::from_slice(&Cpu, &[-2., 3., 0., -4.]).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        l.forward(&x, &mut y, &mut ()).unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![-0.5, 3.0, 0.0, 2.0]);
        let dy = Tensor::<S3<2, 2, 1>, f64>::from_slice(&Cpu, &[1., 2., 3., 4.]).unwrap();
        let (mut dx, mut g) = (Tensor::empty(&Cpu).unwrap(), l.grads().unwrap());
        l.backward(
            &x,
            &y,
            &mut (),
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut g,
            Acc::Set,
        )
        .unwrap();
        assert_eq!(dx.to_vec().unwrap(), vec![0.25, 2.0, -1.5, -2.0]);
        // da_0 = 1·(−2) (x = 3 is positive), da_1 = 3·0 + 4·(−4).
        assert_eq!(g.weight.to_vec().unwrap(), vec![-2.0, -16.0]);
    }

    #[test]
    fn slope_count_must_fit_the_channels() {
        let e = PRelu::<f32, Cpu, S3<3, 2, 2>, 2>::build(
            &Cpu,
            &mut crate::rng(0),
            PReluConfig::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("PRelu") && e.contains("2 slopes"), "{e}");
    }

    #[test]
    fn visits_pytorch_names() {
        let l = PRelu::<f32, Cpu, S1<5>, 5>::build(&Cpu, &mut crate::rng(0), Default::default())
            .unwrap();
        let mut seen = Vec::new();
        l.visit(&Path::ROOT.child("act"), &mut |p, r| {
            seen.push((p.to_string(), r.dims.to_vec()))
        });
        assert_eq!(seen, vec![("act.weight".to_string(), vec![5])]);
    }

    #[test]
    fn gradchecks() {
        let mut rng = crate::rng(4);
        let mut shared =
            PRelu::<f64, Cpu, S3<3, 2, 2>, 1>::build(&Cpu, &mut rng, Default::default()).unwrap();
        assert!(check_layer(&mut shared, 3, 1).unwrap() < 1e-6);
        let mut per =
            PRelu::<f64, Cpu, S3<3, 2, 2>, 3>::build(&Cpu, &mut rng, Default::default()).unwrap();
        per.weight
            .copy_from_slice(&random_input(3, &mut rng))
            .unwrap();
        assert!(check_layer(&mut per, 3, 2).unwrap() < 1e-6);
        let mut feat =
            PRelu::<f64, Cpu, S1<6>, 6>::build(&Cpu, &mut rng, Default::default()).unwrap();
        assert!(check_layer(&mut feat, 4, 3).unwrap() < 1e-6);
    }
}

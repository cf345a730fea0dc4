//! Pooling over the time axis of a sequence, `[T, F] → [F]` (PyTorch's
//! `x.mean(dim=1)` and `x.max(dim=1).values` on a `[B, T, F]` batch).
//!
//! * [`MeanOverTime`]: `y[f] = (1/T) Σ_t x[t, f]`; backward
//!   `∂L/∂x[t, f] = ∂L/∂y[f] / T` at every step.
//! * [`MaxOverTime`]: `y[f] = max_t x[t, f]`, recording `t*(f)`, the first
//!   step that reaches the maximum (first wins ties; a NaN step wins, the
//!   last if several, so `y[f]` is NaN as PyTorch's); backward routes the
//!   gradient to it: `∂L/∂x[t, f] = ∂L/∂y[f]` if `t = t*(f)`, else 0.
//!
//! Both are the pooling kernels of [`PoolKernels`] on the sequence seen as
//! one `T × F` plane with a `T × 1` window (the argmax routing and the
//! averaging are those of `MaxPool2d` and `AvgPool2d`, already written for
//! every device), so they add no kernel.
//!
//! # Shapes
//! `MeanOverTime<T, F>`, `MaxOverTime<T, F>`: input `S2<T, F>`, output `S1<F>`.

use super::conv_common::{no_params_const, prepare_dx, same_batch};
use super::fit;
use super::pool::{recorded, PoolIndices};
use crate::device::{Acc, Window2d};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::PoolKernels;
use crate::module::{Layer, TrainCtx};
use crate::onnx::{graph, single, Graph, Onnx};
use crate::shape::{S1, S2};
use crate::tensor::Tensor;

/// One `T × F` plane per sample, one window of `T × 1` per feature.
const fn time_window(t: usize, f: usize) -> Window2d {
    Window2d {
        channels: 1,
        h: t,
        w: f,
        kh: t,
        kw: 1,
        sh: 1,
        sw: 1,
        ph: 0,
        pw: 0,
        dh: 1,
        dw: 1,
        oh: 1,
        ow: f,
    }
}

/// The mean over the `T` steps of each of `F` features (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub struct MeanOverTime<const T: usize, const F: usize>;
no_params_const!(MeanOverTime<T, F>);

impl<const T: usize, const F: usize> MeanOverTime<T, F> {
    const GEOM: Window2d = time_window(T, F);
}

impl<E: Elem, D: PoolKernels<E>, const T: usize, const F: usize> Layer<E, D>
    for MeanOverTime<T, F>
{
    type In = S2<T, F>;
    type Out = S1<F>;
    type Cache = ();
    const FLOPS: usize = T * F;
    fn cache(&self) -> Result<()> {
        Ok(())
    }

    /// `y[f] = (1/T) Σ_t x[t, f]`.
    fn forward(
        &self,
        x: &Tensor<S2<T, F>, E, D>,
        y: &mut Tensor<S1<F>, E, D>,
        _: &mut (),
    ) -> Result<()> {
        fit(y, x.batch())?;
        x.device()
            .avg_pool2d_fwd(&Self::GEOM, &x.buf, &mut y.buf, x.batch())
    }

    fn forward_train(
        &mut self,
        x: &Tensor<S2<T, F>, E, D>,
        y: &mut Tensor<S1<F>, E, D>,
        _: &mut (),
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, &mut ())
    }

    /// `∂L/∂x[t, f] (acc)= ∂L/∂y[f] / T`.
    fn backward(
        &self,
        x: &Tensor<S2<T, F>, E, D>,
        _: &Tensor<S1<F>, E, D>,
        _: &mut (),
        dy: &Tensor<S1<F>, E, D>,
        dx: Option<(&mut Tensor<S2<T, F>, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        same_batch("mean_over_time backward", x, dy)?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        prepare_dx(dx, acc, x.batch())?;
        x.device()
            .avg_pool2d_bwd(&Self::GEOM, &dy.buf, &mut dx.buf, x.batch(), acc)
    }
}

/// The maximum over the `T` steps of each of `F` features (see the module
/// doc); its cache records the argmax steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct MaxOverTime<const T: usize, const F: usize>;
no_params_const!(MaxOverTime<T, F>);

impl<const T: usize, const F: usize> MaxOverTime<T, F> {
    const GEOM: Window2d = time_window(T, F);
}

impl<E: Elem, D: PoolKernels<E>, const T: usize, const F: usize> Layer<E, D> for MaxOverTime<T, F> {
    type In = S2<T, F>;
    type Out = S1<F>;
    /// Flat positions `t*(f)·F + f` of the maxima, `[batch, F]`.
    type Cache = PoolIndices<D, 1, T, F, 1, F>;
    const FLOPS: usize = T * F;
    fn cache(&self) -> Result<Self::Cache> {
        Ok(PoolIndices::new())
    }

    /// `y[f] = max_t x[t, f]`, recording the first argmax.
    fn forward(
        &self,
        x: &Tensor<S2<T, F>, E, D>,
        y: &mut Tensor<S1<F>, E, D>,
        cache: &mut Self::Cache,
    ) -> Result<()> {
        let (b, dev) = (x.batch(), x.device());
        fit(y, b)?;
        let n = b * F;
        cache.batch = b;
        let idx = match &mut cache.buf {
            Some(buf) => {
                dev.resize(buf, n)?;
                buf
            }
            None => cache.buf.insert(dev.zeros(n)?),
        };
        dev.max_pool2d_fwd(&Self::GEOM, &x.buf, &mut y.buf, idx, b)
    }

    fn forward_train(
        &mut self,
        x: &Tensor<S2<T, F>, E, D>,
        y: &mut Tensor<S1<F>, E, D>,
        cache: &mut Self::Cache,
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, cache)
    }

    /// `∂L/∂x[t, f] (acc)= ∂L/∂y[f]` at the recorded `t*(f)`, 0 elsewhere.
    fn backward(
        &self,
        x: &Tensor<S2<T, F>, E, D>,
        _: &Tensor<S1<F>, E, D>,
        cache: &mut Self::Cache,
        dy: &Tensor<S1<F>, E, D>,
        dx: Option<(&mut Tensor<S2<T, F>, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        same_batch("max_over_time backward", x, dy)?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        let idx = recorded(cache, x.batch(), "max_over_time backward")?;
        prepare_dx(dx, acc, x.batch())?;
        x.device()
            .max_unpool2d(&Self::GEOM, idx, &dy.buf, &mut dx.buf, x.batch(), acc)
    }
}

/// ONNX: `ReduceMax(axes = [1], keepdims = 0)` over the positions.
impl<const T: usize, const F: usize> Onnx for MaxOverTime<T, F> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        time_reduce(g, at, inputs, "ReduceMax")
    }
}

/// ONNX: `ReduceMean(axes = [1], keepdims = 0)` over the positions.
impl<const T: usize, const F: usize> Onnx for MeanOverTime<T, F> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        time_reduce(g, at, inputs, "ReduceMean")
    }
}

/// `op` over axis 1 (the positions of `[batch, T, F]`), the axis dropped
/// (opset 17's `ReduceMean`/`ReduceMax` take `axes` as an attribute).
fn time_reduce(g: &mut Graph, at: &str, inputs: &[&str], op: &str) -> Result<Vec<String>> {
    let x = single(at, inputs)?;
    let attrs = vec![graph::ints("axes", &[1]), graph::int("keepdims", 0)];
    Ok(vec![g.op(op, at, &[x], attrs)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_layer;
    use crate::Cpu;

    fn x() -> Tensor<S2<3, 2>, f64> {
        // Two samples of three steps and two features.
        Tensor::from_slice(
            &Cpu,
            &[1., 5., 4., -2., 4., 0., -1., -3., -2., -3., -5., -3.],
        )
        .unwrap()
    }

    #[test]
    fn mean_and_max_values() {
        let x = x();
        let mut y = Tensor::empty(&Cpu).unwrap();
        MeanOverTime::<3, 2>.forward(&x, &mut y, &mut ()).unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![3., 1., -8. / 3., -3.]);
        let l = MaxOverTime::<3, 2>;
        let mut c = Layer::<f64, Cpu>::cache(&l).unwrap();
        l.forward(&x, &mut y, &mut c).unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![4., 5., -1., -3.]);
    }

    /// The gradient goes to the argmax, the first of tied steps: feature 0
    /// of sample 0 ties at t = 1 and t = 2 (4), feature 1 of sample 1 at all
    /// three steps (−3).
    #[test]
    fn max_routes_to_the_first_argmax() {
        let x = x();
        let l = MaxOverTime::<3, 2>;
        let mut c = Layer::<f64, Cpu>::cache(&l).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        l.forward(&x, &mut y, &mut c).unwrap();
        let dy = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[10., 20., 30., 40.]).unwrap();
        let mut dx = Tensor::empty(&Cpu).unwrap();
        l.backward(
            &x,
            &y,
            &mut c,
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut (),
            Acc::Set,
        )
        .unwrap();
        assert_eq!(
            dx.to_vec().unwrap(),
            vec![0., 20., 10., 0., 0., 0., 30., 40., 0., 0., 0., 0.]
        );
        // Mean: every step gets dy / T.
        let m = MeanOverTime::<3, 2>;
        m.backward(
            &x,
            &y,
            &mut (),
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut (),
            Acc::Set,
        )
        .unwrap();
        let t = 1.0 / 3.0;
        let want = [10., 20., 10., 20., 10., 20., 30., 40., 30., 40., 30., 40.];
        for (a, b) in dx.to_vec().unwrap().iter().zip(want) {
            assert!((a - b * t).abs() < 1e-15);
        }
    }

    #[test]
    fn gradcheck() {
        assert!(check_layer(&mut MeanOverTime::<4, 3>, 2, 1).unwrap() < 1e-6);
        assert!(check_layer(&mut MaxOverTime::<4, 3>, 2, 2).unwrap() < 1e-6);
    }
}

//! Max unpooling (PyTorch's `nn.MaxUnpool2d`), the decoder's mirror of a
//! [`MaxPool2d`]: each value is copied back to the position its window's
//! maximum came from in the encoder, and the rest of the output is zero.
//!
//! With `idx[q]` the argmax (flat position in the large plane) that the paired
//! max pooling recorded for its output `q`:
//!
//! * forward: `y[t] = Σ_{q: idx[q] = t} x[q]` — as the course prescribes,
//!   overlapping windows whose maxima sit at the same place **sum** (the
//!   course's `[[300,450],[100,250]]` through the 2×2, stride-1 positions of
//!   `[[120,150,120],[100,50,110],[25,25,10]]` gives
//!   `[[0,750,0],[100,0,250],[0,0,0]]`). PyTorch instead writes one of the
//!   colliding values; without overlapping windows the two agree;
//! * backward: `∂L/∂x[q] = ∂L/∂y[idx[q]]` — a gather through the same indices
//!   (the indices are discrete and get no gradient).
//!
//! Nothing is cached: the indices live in the pooling layer's cache
//! ([`PoolIndices`]), which the generated code passes to both passes. The
//! pairing is checked by the types: a `MaxUnpool2d<C, H, W, OH, OW>` takes the
//! indices of a `MaxPool2d<C, OH, OW, H, W>`.
//!
//! # Shapes
//! `MaxUnpool2d<C, H, W, OH, OW>`: input `S3<C, H, W>` (the pooled size),
//! output `S3<C, OH, OW>` (the size before pooling).

use super::conv_common::{no_params_const, prepare_dx};
use super::fit;
use super::pool::{recorded, PoolIndices};
#[cfg(doc)]
use super::MaxPool2d;
use crate::device::{Acc, Backend, Window2d};
use crate::elem::Elem;
use crate::error::Result;
use crate::kernels::PoolKernels;
use crate::module::Build;
use crate::onnx::{join, Graph, Onnx};
use crate::shape::S3;
use crate::tensor::Tensor;
use crate::Rng;

/// Max unpooling from `C × H × W` to `C × OH × OW` (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub struct MaxUnpool2d<
    const C: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>;
no_params_const!(MaxUnpool2d<C, H, W, OH, OW>);

impl<
        E: Elem,
        D: Backend<E>,
        const C: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Build<E, D> for MaxUnpool2d<C, H, W, OH, OW>
{
    type Config = ();
    fn build(_: &D, _: &mut Rng, _: ()) -> Result<Self> {
        Ok(MaxUnpool2d)
    }
}

impl<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize>
    MaxUnpool2d<C, H, W, OH, OW>
{
    /// The paired pooling's planes: large `OH × OW`, small `H × W`.
    const GEOM: Window2d = Window2d {
        channels: C,
        h: OH,
        w: OW,
        kh: 1,
        kw: 1,
        sh: 1,
        sw: 1,
        ph: 0,
        pw: 0,
        dh: 1,
        dw: 1,
        oh: H,
        ow: W,
    };
    /// Copies per sample, for summaries.
    pub const FLOPS: usize = C * H * W;

    /// `y[t] = Σ_{q: idx[q] = t} x[q]` with the indices `pool` recorded.
    pub fn forward<E: Elem, D: PoolKernels<E>>(
        &self,
        x: &Tensor<S3<C, H, W>, E, D>,
        pool: &PoolIndices<D, C, OH, OW, H, W>,
        y: &mut Tensor<S3<C, OH, OW>, E, D>,
    ) -> Result<()> {
        let idx = recorded(pool, x.batch(), "MaxUnpool2d")?;
        fit(y, x.batch())?;
        x.device()
            .max_unpool2d(&Self::GEOM, idx, &x.buf, &mut y.buf, x.batch(), Acc::Set)
    }

    /// `dx[q] (acc)= dy[idx[q]]`.
    pub fn backward<E: Elem, D: PoolKernels<E>>(
        &self,
        pool: &PoolIndices<D, C, OH, OW, H, W>,
        dy: &Tensor<S3<C, OH, OW>, E, D>,
        dx: &mut Tensor<S3<C, H, W>, E, D>,
        acc: Acc,
    ) -> Result<()> {
        let idx = recorded(pool, dy.batch(), "MaxUnpool2d backward")?;
        prepare_dx(dx, acc, dy.batch())?;
        dy.device()
            .max_unpool2d_bwd(&Self::GEOM, idx, &dy.buf, &mut dx.buf, dy.batch(), acc)
    }
}

/// Not through [`Onnx`], which knows only the input: the unpooling needs
/// its pool's indices, so `network!` calls [`MaxUnpool2d::onnx_with_pool`].
impl<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize> Onnx
    for MaxUnpool2d<C, H, W, OH, OW>
{
}

impl<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize>
    MaxUnpool2d<C, H, W, OH, OW>
{
    /// ONNX: `MaxUnpool(x, indices, Shape(pool's input))` with the pool's
    /// window, reading what the `MaxPool2d` at `pool_at` left in the graph
    /// (its `Indices` output, in ONNX's own convention, and its input, whose
    /// shape is the output's). Where windows overlap and two maxima land on
    /// one position, this layer sums them and ONNX Runtime keeps one (as
    /// PyTorch): the export matches for non-overlapping windows (stride ≥
    /// kernel), the usual encoder–decoder.
    pub fn onnx_with_pool(
        &self,
        g: &mut Graph,
        at: &str,
        x: &str,
        pool_at: &str,
    ) -> Result<Vec<String>> {
        let Some(side) = g.side(pool_at).cloned() else {
            return Err(crate::Error::invalid(
                "ONNX export",
                format!("`{at}` restores the positions of `{pool_at}`, which wrote no indices (it must be a MaxPool2d exported before it)"),
            ));
        };
        let [idx, input] = &side.values[..] else {
            return Err(crate::Error::invalid(
                "ONNX export",
                format!(
                    "`{pool_at}` left {} values for `{at}`, not its indices and input",
                    side.values.len()
                ),
            ));
        };
        let shape = g.op("Shape", &join(at, "shape"), &[input], Vec::new());
        Ok(vec![g.op("MaxUnpool", at, &[x, idx, &shape], side.attrs)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{MaxPool2d, Pool2dConfig};
    use crate::module::{Layer, TrainCtx};
    use crate::testing::check_layer;
    use crate::Cpu;

    #[test]
    fn course_example_sums_shared_positions() {
        let x = Tensor::<S3<1, 3, 3>, f64>::from_slice(
            &Cpu,
            &[120., 150., 120., 100., 50., 110., 25., 25., 10.],
        )
        .unwrap();
        let pool = MaxPool2d::<1, 3, 3, 2, 2>::new(Pool2dConfig {
            stride: (1, 1),
            ..Pool2dConfig::new((2, 2))
        })
        .unwrap();
        let mut pooled = Tensor::empty(&Cpu).unwrap();
        let mut idx = PoolIndices::new();
        pool.forward(&x, &mut pooled, &mut idx).unwrap();
        let z = Tensor::<S3<1, 2, 2>, f64>::from_slice(&Cpu, &[300., 450., 100., 250.]).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        MaxUnpool2d::<1, 2, 2, 3, 3>
            .forward(&z, &idx, &mut y)
            .unwrap();
        assert_eq!(
            y.to_vec().unwrap(),
            vec![0., 750., 0., 100., 0., 250., 0., 0., 0.]
        );
        // Backward gathers: both windows that chose x(0,1) read its gradient.
        let dy =
            Tensor::<S3<1, 3, 3>, f64>::from_slice(&Cpu, &[1., 2., 3., 4., 5., 6., 7., 8., 9.])
                .unwrap();
        let mut dz = Tensor::empty(&Cpu).unwrap();
        MaxUnpool2d::<1, 2, 2, 3, 3>
            .backward(&idx, &dy, &mut dz, Acc::Set)
            .unwrap();
        assert_eq!(dz.to_vec().unwrap(), vec![2., 2., 4., 6.]);
        // Indices recorded for another batch size are an error, not garbage.
        let z2 = Tensor::<S3<1, 2, 2>, f64>::from_slice(&Cpu, &[0.; 8]).unwrap();
        assert!(MaxUnpool2d::<1, 2, 2, 3, 3>
            .forward(&z2, &idx, &mut y)
            .is_err());
    }

    /// Max pooling followed by unpooling, as one layer, to gradient-check both
    /// backward passes through `check_layer`.
    struct PoolUnpool<
        const C: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > {
        pool: MaxPool2d<C, H, W, OH, OW>,
    }
    no_params_const!(PoolUnpool<C, H, W, OH, OW>);

    struct Mid<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize> {
        idx: PoolIndices<Cpu, C, H, W, OH, OW>,
        mid: Tensor<S3<C, OH, OW>, f64>,
        dmid: Tensor<S3<C, OH, OW>, f64>,
    }

    impl<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize>
        Layer<f64, Cpu> for PoolUnpool<C, H, W, OH, OW>
    {
        type In = S3<C, H, W>;
        type Out = S3<C, H, W>;
        type Cache = Mid<C, H, W, OH, OW>;
        const FLOPS: usize = 0;
        fn cache(&self) -> Result<Self::Cache> {
            Ok(Mid {
                idx: PoolIndices::new(),
                mid: Tensor::empty(&Cpu)?,
                dmid: Tensor::empty(&Cpu)?,
            })
        }
        fn forward(
            &self,
            x: &Tensor<S3<C, H, W>, f64>,
            y: &mut Tensor<S3<C, H, W>, f64>,
            c: &mut Self::Cache,
        ) -> Result<()> {
            self.pool.forward(x, &mut c.mid, &mut c.idx)?;
            MaxUnpool2d::<C, OH, OW, H, W>.forward(&c.mid, &c.idx, y)
        }
        fn forward_train(
            &mut self,
            x: &Tensor<S3<C, H, W>, f64>,
            y: &mut Tensor<S3<C, H, W>, f64>,
            c: &mut Self::Cache,
            _: &mut TrainCtx,
        ) -> Result<()> {
            self.forward(x, y, c)
        }
        fn backward(
            &self,
            x: &Tensor<S3<C, H, W>, f64>,
            _: &Tensor<S3<C, H, W>, f64>,
            c: &mut Self::Cache,
            dy: &Tensor<S3<C, H, W>, f64>,
            dx: Option<(&mut Tensor<S3<C, H, W>, f64>, Acc)>,
            _: &mut (),
            _: Acc,
        ) -> Result<()> {
            MaxUnpool2d::<C, OH, OW, H, W>.backward(&c.idx, dy, &mut c.dmid, Acc::Set)?;
            self.pool
                .backward(x, &c.mid, &mut c.idx, &c.dmid, dx, &mut (), Acc::Set)
        }
    }

    #[test]
    fn gradcheck_through_pool_and_unpool() {
        let k2 = Pool2dConfig::new((2, 2));
        let mut a = PoolUnpool::<2, 4, 6, 2, 3> {
            pool: MaxPool2d::new(k2).unwrap(),
        };
        assert!(check_layer(&mut a, 3, 1).unwrap() < 1e-6);
        let overlapping = Pool2dConfig {
            stride: (1, 1),
            ..k2
        };
        let mut b = PoolUnpool::<3, 4, 5, 3, 4> {
            pool: MaxPool2d::new(overlapping).unwrap(),
        };
        assert!(check_layer(&mut b, 2, 2).unwrap() < 1e-6);
        let padded = Pool2dConfig {
            stride: (2, 2),
            padding: (1, 1),
            ..Pool2dConfig::new((3, 3))
        };
        let mut c = PoolUnpool::<1, 5, 5, 3, 3> {
            pool: MaxPool2d::new(padded).unwrap(),
        };
        assert!(check_layer(&mut c, 2, 3).unwrap() < 1e-6);
    }
}

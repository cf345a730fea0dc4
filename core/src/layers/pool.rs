//! Pooling: [`MaxPool2d`], [`AvgPool2d`] (PyTorch's `nn.MaxPool2d`,
//! `nn.AvgPool2d`) and [`GlobalAvgPool`] (`nn.AdaptiveAvgPool2d(1)` followed
//! by a flatten). No parameters; each channel is pooled on its own.
//!
//! With window `k`, stride `s`, padding `p` and dilation `d`, the window of
//! output `(r, c)` covers rows `r·s − p + a·d` and columns `c·s − p + b·d`
//! for `a < kh`, `b < kw`:
//!
//! * max: `y[r, c] = max_window x` (padding never wins; the first maximum in
//!   row-major window order wins ties; a NaN wins, the last if several, as
//!   PyTorch's `val > maxval || isnan(val)`, so the output is NaN and the
//!   gradient goes to the NaN; `∞` wins as a value); `∂L/∂x[q] = Σ_{(r,c): argmax(r,c) = q}
//!   ∂L/∂y[r, c]` — the gradient is routed to the recorded argmax, and windows
//!   that share their argmax add. Cached: the argmax of every output as its
//!   flat index `iy·W + ix` in the input plane (`u32`, on the device, as
//!   PyTorch's `return_indices`) — both for backward and for a paired
//!   [`super::MaxUnpool2d`], so [`MaxPool2d`] records them in evaluation mode
//!   too. The course's 2×2, stride-1 pooling of
//!   `[[120,150,120],[100,50,110],[25,25,10]]` gives `[[150,150],[100,110]]`.
//! * average: `y[r, c] = Σ_window x / (kh·kw)` (zero padding counts in the
//!   divisor, PyTorch's `count_include_pad=True`); `∂L/∂x[q] = Σ_{windows ∋ q}
//!   ∂L/∂y[r, c] / (kh·kw)`. Nothing cached.
//! * global average: `y[ch] = Σ_{r,c} x[ch, r, c] / (H·W)`;
//!   `∂L/∂x[ch, r, c] = ∂L/∂y[ch] / (H·W)`. Nothing cached.
//!
//! The course's patch `[[200,150,150],[100,50,100],[25,25,10]]` has max 200
//! and mean 90.
//!
//! # Shapes
//! `MaxPool2d<C, H, W, OH, OW>` and `AvgPool2d<C, H, W, OH, OW>`: input
//! `S3<C, H, W>`, output `S3<C, OH, OW>`, `OH = (H + 2p − d(kh − 1) − 1)/s + 1`
//! (floor; [`Build::build`] checks it). `GlobalAvgPool<C, H, W>`: input
//! `S3<C, H, W>`, output `S1<C>`.

use super::conv_common::{no_params_const, prepare_dx, same_batch};
use super::fit;
use crate::device::{Acc, Backend, Device, Window2d};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::PoolKernels;
use crate::module::{Build, Layer, TrainCtx};
use crate::onnx::{graph, join, single, Graph, Onnx};
use crate::shape::{S1, S3};
use crate::tensor::Tensor;
use crate::Rng;

/// Window of a [`MaxPool2d`] or [`AvgPool2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dConfig {
    /// `(kh, kw)`.
    pub kernel: (usize, usize),
    /// `(sh, sw)`; PyTorch's default is the kernel size.
    pub stride: (usize, usize),
    /// Padding `(ph, pw)`, at most half the (dilated) kernel.
    pub padding: (usize, usize),
    /// Tap spacing `(dh, dw)`, default `(1, 1)`.
    pub dilation: (usize, usize),
}

impl Pool2dConfig {
    /// PyTorch's defaults for `kernel`: stride = kernel, no padding, no dilation.
    pub fn new(kernel: (usize, usize)) -> Self {
        Pool2dConfig {
            kernel,
            stride: kernel,
            padding: (0, 0),
            dilation: (1, 1),
        }
    }

    /// The window over `C × H × W`, checked against the type's `OH × OW` and
    /// PyTorch's padding limit.
    fn window(
        &self,
        op: &'static str,
        c: usize,
        hw: (usize, usize),
        out: (usize, usize),
    ) -> Result<Window2d> {
        let g = Window2d::new(
            op,
            c,
            hw,
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
        )?;
        g.expect_out(op, out.0, out.1)?;
        // PyTorch: ((k − 1)·d + 1) / 2 ≥ p.
        let half = |k: usize, d: usize| (d * (k - 1)).div_ceil(2);
        if self.padding.0 > half(g.kh, g.dh) || self.padding.1 > half(g.kw, g.dw) {
            return Err(Error::invalid(
                op,
                format!(
                    "padding {:?} must be at most half the (dilated) kernel {:?}",
                    self.padding, self.kernel
                ),
            ));
        }
        Ok(g)
    }
}

/// The argmax positions a [`MaxPool2d`] records (its cache), to be reused by
/// its backward pass and by a [`super::MaxUnpool2d`].
pub struct PoolIndices<
    D: Device,
    const C: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
> {
    /// `[batch, C, OH·OW]` flat positions in the `H × W` input planes;
    /// allocated on the first forward pass.
    pub(crate) buf: Option<D::Buf<u32>>,
    /// Samples recorded.
    pub(crate) batch: usize,
}

impl<
        D: Device,
        const C: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > PoolIndices<D, C, H, W, OH, OW>
{
    /// Nothing recorded yet.
    pub fn new() -> Self {
        PoolIndices {
            buf: None,
            batch: 0,
        }
    }
    /// Samples recorded by the last forward pass.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// The recorded positions (`None` before the first forward pass).
    pub fn buf(&self) -> Option<&D::Buf<u32>> {
        self.buf.as_ref()
    }
}

impl<
        D: Device,
        const C: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Default for PoolIndices<D, C, H, W, OH, OW>
{
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! pool_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize> {
            geom: Window2d,
        }
        no_params_const!($name<C, H, W, OH, OW>);
        impl<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize> $name<C, H, W, OH, OW> {
            /// The layer for a window, checked against the sizes in the type.
            pub fn new(cfg: Pool2dConfig) -> Result<Self> {
                Ok($name { geom: cfg.window(stringify!($name), C, (H, W), (OH, OW))? })
            }
            /// The window geometry.
            pub fn geometry(&self) -> &Window2d {
                &self.geom
            }
        }
        impl<E: Elem, D: Backend<E>, const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize> Build<E, D>
            for $name<C, H, W, OH, OW>
        {
            type Config = Pool2dConfig;
            fn build(_: &D, _: &mut Rng, cfg: Pool2dConfig) -> Result<Self> {
                Self::new(cfg)
            }
        }
    };
}

pool_type!(
    /// Max pooling (see the module doc).
    MaxPool2d
);
pool_type!(
    /// Average pooling (see the module doc).
    AvgPool2d
);

impl<
        E: Elem,
        D: PoolKernels<E>,
        const C: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Layer<E, D> for MaxPool2d<C, H, W, OH, OW>
{
    type In = S3<C, H, W>;
    type Out = S3<C, OH, OW>;
    type Cache = PoolIndices<D, C, H, W, OH, OW>;
    /// Comparisons, about one per input value for non-overlapping windows.
    const FLOPS: usize = C * H * W;
    fn cache(&self) -> Result<Self::Cache> {
        Ok(PoolIndices::new())
    }

    /// `y = max_window x`, recording the argmax positions in `cache`.
    fn forward(
        &self,
        x: &Tensor<S3<C, H, W>, E, D>,
        y: &mut Tensor<S3<C, OH, OW>, E, D>,
        cache: &mut Self::Cache,
    ) -> Result<()> {
        let (b, dev) = (x.batch(), x.device());
        fit(y, b)?;
        let n = b * C * OH * OW;
        cache.batch = b;
        let idx = match &mut cache.buf {
            Some(buf) => {
                dev.resize(buf, n)?;
                buf
            }
            None => cache.buf.insert(dev.zeros(n)?),
        };
        dev.max_pool2d_fwd(&self.geom, &x.buf, &mut y.buf, idx, b)
    }

    fn forward_train(
        &mut self,
        x: &Tensor<S3<C, H, W>, E, D>,
        y: &mut Tensor<S3<C, OH, OW>, E, D>,
        cache: &mut Self::Cache,
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, cache)
    }

    /// `dx (acc)=` each `dy` routed to its recorded argmax (shared argmaxes add).
    fn backward(
        &self,
        x: &Tensor<S3<C, H, W>, E, D>,
        _: &Tensor<S3<C, OH, OW>, E, D>,
        cache: &mut Self::Cache,
        dy: &Tensor<S3<C, OH, OW>, E, D>,
        dx: Option<(&mut Tensor<S3<C, H, W>, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        same_batch("MaxPool2d backward", x, dy)?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        let idx = recorded(cache, x.batch(), "MaxPool2d backward")?;
        prepare_dx(dx, acc, x.batch())?;
        x.device()
            .max_unpool2d(&self.geom, idx, &dy.buf, &mut dx.buf, x.batch(), acc)
    }
}

/// The recorded indices, checked to be for `batch` samples.
pub(crate) fn recorded<
    'a,
    D: Device,
    const C: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    p: &'a PoolIndices<D, C, H, W, OH, OW>,
    batch: usize,
    op: &'static str,
) -> Result<&'a D::Buf<u32>> {
    match &p.buf {
        Some(b) if p.batch == batch => Ok(b),
        _ => Err(Error::BatchMismatch {
            op,
            left_name: "tensor",
            left: batch,
            right_name: "recorded max-pooling indices",
            right: if p.buf.is_some() { p.batch } else { 0 },
        }),
    }
}

impl<
        E: Elem,
        D: PoolKernels<E>,
        const C: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Layer<E, D> for AvgPool2d<C, H, W, OH, OW>
{
    type In = S3<C, H, W>;
    type Out = S3<C, OH, OW>;
    type Cache = ();
    /// Additions, about one per input value for non-overlapping windows.
    const FLOPS: usize = C * H * W;
    fn cache(&self) -> Result<()> {
        Ok(())
    }

    /// `y = Σ_window x / (kh·kw)`.
    fn forward(
        &self,
        x: &Tensor<S3<C, H, W>, E, D>,
        y: &mut Tensor<S3<C, OH, OW>, E, D>,
        _: &mut (),
    ) -> Result<()> {
        fit(y, x.batch())?;
        x.device()
            .avg_pool2d_fwd(&self.geom, &x.buf, &mut y.buf, x.batch())
    }

    fn forward_train(
        &mut self,
        x: &Tensor<S3<C, H, W>, E, D>,
        y: &mut Tensor<S3<C, OH, OW>, E, D>,
        _: &mut (),
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, &mut ())
    }

    /// `dx (acc)= Σ_{windows ∋ q} dy / (kh·kw)`.
    fn backward(
        &self,
        x: &Tensor<S3<C, H, W>, E, D>,
        _: &Tensor<S3<C, OH, OW>, E, D>,
        _: &mut (),
        dy: &Tensor<S3<C, OH, OW>, E, D>,
        dx: Option<(&mut Tensor<S3<C, H, W>, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        same_batch("AvgPool2d backward", x, dy)?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        prepare_dx(dx, acc, x.batch())?;
        x.device()
            .avg_pool2d_bwd(&self.geom, &dy.buf, &mut dx.buf, x.batch(), acc)
    }
}

/// Global average pooling from `C × H × W` to `C` (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalAvgPool<const C: usize, const H: usize, const W: usize>;
no_params_const!(GlobalAvgPool<C, H, W>);

impl<const C: usize, const H: usize, const W: usize> GlobalAvgPool<C, H, W> {
    /// The whole plane as one window.
    const GEOM: Window2d = Window2d {
        channels: C,
        h: H,
        w: W,
        kh: H,
        kw: W,
        sh: 1,
        sw: 1,
        ph: 0,
        pw: 0,
        dh: 1,
        dw: 1,
        oh: 1,
        ow: 1,
    };
}

impl<E: Elem, D: Backend<E>, const C: usize, const H: usize, const W: usize> Build<E, D>
    for GlobalAvgPool<C, H, W>
{
    type Config = ();
    fn build(_: &D, _: &mut Rng, _: ()) -> Result<Self> {
        Ok(GlobalAvgPool)
    }
}

impl<E: Elem, D: PoolKernels<E>, const C: usize, const H: usize, const W: usize> Layer<E, D>
    for GlobalAvgPool<C, H, W>
{
    type In = S3<C, H, W>;
    type Out = S1<C>;
    type Cache = ();
    const FLOPS: usize = C * H * W;
    fn cache(&self) -> Result<()> {
        Ok(())
    }

    /// `y[c] = mean of plane c`.
    fn forward(
        &self,
        x: &Tensor<S3<C, H, W>, E, D>,
        y: &mut Tensor<S1<C>, E, D>,
        _: &mut (),
    ) -> Result<()> {
        fit(y, x.batch())?;
        x.device()
            .avg_pool2d_fwd(&Self::GEOM, &x.buf, &mut y.buf, x.batch())
    }

    fn forward_train(
        &mut self,
        x: &Tensor<S3<C, H, W>, E, D>,
        y: &mut Tensor<S1<C>, E, D>,
        _: &mut (),
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, &mut ())
    }

    /// `dx[c, ·] (acc)= dy[c] / (H·W)`.
    fn backward(
        &self,
        x: &Tensor<S3<C, H, W>, E, D>,
        _: &Tensor<S1<C>, E, D>,
        _: &mut (),
        dy: &Tensor<S1<C>, E, D>,
        dx: Option<(&mut Tensor<S3<C, H, W>, E, D>, Acc)>,
        _: &mut (),
        _: Acc,
    ) -> Result<()> {
        same_batch("GlobalAvgPool backward", x, dy)?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        prepare_dx(dx, acc, x.batch())?;
        x.device()
            .avg_pool2d_bwd(&Self::GEOM, &dy.buf, &mut dx.buf, x.batch(), acc)
    }
}

/// ONNX: `MaxPool` with the window's `kernel_shape`, `strides`, `pads`,
/// `dilations` (floor mode; padding never wins, as here). Its second
/// output, the argmax of every window, is written too and left, with the
/// input and the window, for a `MaxUnpool2d` that names this layer
/// (`Graph::side` under `{path}`): ONNX's `MaxUnpool` reads indices in
/// `MaxPool`'s own convention.
impl<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize> Onnx
    for MaxPool2d<C, H, W, OH, OW>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let y = g.fresh(if at.is_empty() { "MaxPool" } else { at });
        let idx = g.fresh(&join(at, "indices"));
        let attrs = graph::window(&self.geom, true);
        g.node("MaxPool", at, &[x], &[&y, &idx], attrs.clone());
        let mut unpool = attrs;
        unpool.pop(); // MaxUnpool has no dilations
        g.set_side(
            at,
            graph::Side {
                values: vec![idx, x.to_string()],
                attrs: unpool,
            },
        );
        Ok(vec![y])
    }
}

/// ONNX: `AveragePool` with `count_include_pad = 1` (the zero padding
/// counts in the divisor, as here). Opset 17's `AveragePool` has no
/// dilation, so a dilated average pool has no ONNX form (an error naming it).
impl<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize> Onnx
    for AvgPool2d<C, H, W, OH, OW>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        if self.geom.dh != 1 || self.geom.dw != 1 {
            return Err(crate::onnx::unsupported::<Self>(at));
        }
        let mut attrs = graph::window(&self.geom, false);
        attrs.push(graph::int("count_include_pad", 1));
        Ok(vec![g.op("AveragePool", at, &[x], attrs)])
    }
}

/// ONNX: `GlobalAveragePool` (`[N, C, 1, 1]`), then `Flatten(axis = 1)` to `[N, C]`.
impl<const C: usize, const H: usize, const W: usize> Onnx for GlobalAvgPool<C, H, W> {
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let p = g.op("GlobalAveragePool", at, &[x], Vec::new());
        Ok(vec![g.op(
            "Flatten",
            at,
            &[&p],
            vec![graph::int("axis", 1)],
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_layer;
    use crate::Cpu;

    const PATCH: [f64; 9] = [200., 150., 150., 100., 50., 100., 25., 25., 10.];
    const IMAGE: [f64; 9] = [120., 150., 120., 100., 50., 110., 25., 25., 10.];

    #[test]
    fn course_examples() {
        let x = Tensor::<S3<1, 3, 3>, f64>::from_slice(&Cpu, &PATCH).unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        let max = MaxPool2d::<1, 3, 3, 1, 1>::new(Pool2dConfig::new((3, 3))).unwrap();
        Layer::<f64, Cpu>::forward(&max, &x, &mut y, &mut PoolIndices::new()).unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![200.0]);
        let avg = AvgPool2d::<1, 3, 3, 1, 1>::new(Pool2dConfig::new((3, 3))).unwrap();
        avg.forward(&x, &mut y, &mut ()).unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![90.0]);
        let mut g = Tensor::<S1<1>, f64>::empty(&Cpu).unwrap();
        GlobalAvgPool::<1, 3, 3>
            .forward(&x, &mut g, &mut ())
            .unwrap();
        assert_eq!(g.to_vec().unwrap(), vec![90.0]);

        // 2×2 max pooling, stride 1: [[150, 150], [100, 110]], argmaxes
        // x(0,1), x(0,1), x(1,0), x(1,2).
        let x = Tensor::<S3<1, 3, 3>, f64>::from_slice(&Cpu, &IMAGE).unwrap();
        let pool = MaxPool2d::<1, 3, 3, 2, 2>::new(Pool2dConfig {
            stride: (1, 1),
            ..Pool2dConfig::new((2, 2))
        })
        .unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        let mut idx = Layer::<f64, Cpu>::cache(&pool).unwrap();
        pool.forward(&x, &mut y, &mut idx).unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![150., 150., 100., 110.]);
        assert_eq!(idx.buf().unwrap(), &vec![1, 1, 3, 5]);
        // Backward routes to the argmaxes; the two windows sharing x(0,1) add.
        let dy = Tensor::<S3<1, 2, 2>, f64>::from_slice(&Cpu, &[1., 2., 3., 4.]).unwrap();
        let mut dx = Tensor::empty(&Cpu).unwrap();
        pool.backward(
            &x,
            &y,
            &mut idx,
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut (),
            Acc::Set,
        )
        .unwrap();
        assert_eq!(
            dx.to_vec().unwrap(),
            vec![0., 3., 0., 3., 0., 4., 0., 0., 0.]
        );
    }

    #[test]
    fn padding_never_wins_and_averages_count_it() {
        // All-negative image, 2×2 windows, stride 2, padding 1.
        let x = Tensor::<S3<1, 2, 2>, f64>::from_slice(&Cpu, &[-1., -2., -3., -4.]).unwrap();
        let cfg = Pool2dConfig {
            padding: (1, 1),
            ..Pool2dConfig::new((2, 2))
        };
        let mut y = Tensor::empty(&Cpu).unwrap();
        let max = MaxPool2d::<1, 2, 2, 2, 2>::new(cfg).unwrap();
        Layer::<f64, Cpu>::forward(&max, &x, &mut y, &mut PoolIndices::new()).unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![-1., -2., -3., -4.]);
        AvgPool2d::<1, 2, 2, 2, 2>::new(cfg)
            .unwrap()
            .forward(&x, &mut y, &mut ())
            .unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![-0.25, -0.5, -0.75, -1.0]);
        assert!(MaxPool2d::<1, 2, 2, 3, 3>::new(Pool2dConfig {
            padding: (2, 2),
            ..Pool2dConfig::new((2, 2))
        })
        .is_err());
        assert!(MaxPool2d::<1, 4, 4, 3, 3>::new(Pool2dConfig::new((2, 2))).is_err());
    }

    #[test]
    fn gradchecks() {
        let k2 = Pool2dConfig::new((2, 2));
        let k3s2p1 = Pool2dConfig {
            stride: (2, 2),
            padding: (1, 1),
            ..Pool2dConfig::new((3, 3))
        };
        let k2s1 = Pool2dConfig {
            stride: (1, 1),
            ..k2
        };
        let dil = Pool2dConfig {
            dilation: (2, 1),
            stride: (1, 2),
            ..k2
        };
        assert!(
            check_layer(&mut MaxPool2d::<2, 4, 6, 2, 3>::new(k2).unwrap(), 3, 1).unwrap() < 1e-6
        );
        assert!(
            check_layer(&mut MaxPool2d::<3, 5, 5, 3, 3>::new(k3s2p1).unwrap(), 2, 2).unwrap()
                < 1e-6
        );
        assert!(
            check_layer(&mut MaxPool2d::<1, 4, 4, 3, 3>::new(k2s1).unwrap(), 2, 3).unwrap() < 1e-6
        );
        assert!(
            check_layer(&mut MaxPool2d::<2, 5, 5, 3, 2>::new(dil).unwrap(), 2, 4).unwrap() < 1e-6
        );
        assert!(
            check_layer(&mut AvgPool2d::<2, 4, 6, 2, 3>::new(k2).unwrap(), 3, 5).unwrap() < 1e-6
        );
        assert!(
            check_layer(&mut AvgPool2d::<3, 5, 5, 3, 3>::new(k3s2p1).unwrap(), 2, 6).unwrap()
                < 1e-6
        );
        assert!(
            check_layer(&mut AvgPool2d::<2, 5, 5, 3, 2>::new(dil).unwrap(), 2, 7).unwrap() < 1e-6
        );
        assert!(check_layer(&mut GlobalAvgPool::<3, 4, 5>, 3, 8).unwrap() < 1e-6);
    }
}

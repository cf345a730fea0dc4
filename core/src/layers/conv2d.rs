//! 2-D convolution (PyTorch's `nn.Conv2d`): a cross-correlation of the input
//! with `COUT` learned kernels, plus a bias per output channel.
//!
//! With stride `s`, zero padding `p`, dilation `d` and `G` groups (input
//! channel `c` of output channel `o` ranges over the `CG = CIN/G` channels of
//! `o`'s group; `G = CIN` is a depthwise convolution):
//!
//! * forward (the course's cross-correlation, with stride, padding, dilation):
//!   `y[o, r, c] = b[o] + Σ_{ci, a, b'} x[ci, r·s − p + a·d, c·s − p + b'·d] · W[o, ci, a, b']`
//!   (the course's 3×3 patch `[[200,150,150],[100,50,100],[25,25,10]]` against
//!   `[[1,0,−1],[2,0,−2],[1,0,−1]]` gives 65);
//! * `∂L/∂W[o, ci, a, b'] = Σ_{r, c} ∂L/∂y[o, r, c] · x[ci, r·s − p + a·d, c·s − p + b'·d]`,
//!   summed over the batch — a cross-correlation of the input with the
//!   upstream gradient;
//! * `∂L/∂x[ci, r', c'] = Σ_{o, a, b'} ∂L/∂y[o, (r' + p − a·d)/s, (c' + p − b'·d)/s] · W[o, ci, a, b']`
//!   over the terms whose divisions are exact and in range — for stride 1 and
//!   no padding the course's `Σ_{a,b} ∂L/∂y(r' − a, c' − b) · k(a, b)`, a
//!   convolution of the upstream gradient with the kernel (the flipped
//!   kernel's cross-correlation);
//! * `∂L/∂b[o] = Σ_{batch, r, c} ∂L/∂y[o, r, c]`.
//!
//! Computed as the course vectorises it: `im2col` lays the receptive fields
//! out as the columns of a `[CIN·KH·KW, n]` matrix (`n` = samples of a chunk ×
//! `OH·OW`), so per group the forward pass is one GEMM `Y = W·cols`, the weight
//! gradient `dW = dY·colsᵀ` and the input gradient `col2im(Wᵀ·dY)`, where
//! `col2im` adds every column entry back to the pixel it came from
//! (overlapping windows sum). The batch is cut into chunks whose `cols` fit in
//! [`super::conv_common::COLS_BUDGET`] elements (a cache-sized buffer); a
//! chunk of one sample multiplies straight into and out of the NCHW tensors,
//! a chunk of several goes through a channel-major scratch and a transpose.
//!
//! **Direct kernels for few channels.** Where the device has them
//! ([`ConvKernels::conv_direct`], [`ConvKernels::conv_direct_wgrad`]: on the
//! CPU for `f32` on an AVX-512 core, stride 1, dilation 1, one group, at most
//! 288 terms per output), the forward pass, the input gradient and the
//! weight gradient skip im2col, col2im and the GEMM: each is computed from
//! the formulas above, tile by tile in registers (`kernels::conv_direct`).
//! Each pass falls back to the im2col path by itself where its kernel
//! declines (for example the input gradient of a first layer with one image
//! channel). The results agree with the im2col path to `f32` rounding, not
//! bitwise (the sums run in another order).
//!
//! Cached: the `cols` buffer (when the whole batch fits in one chunk it still
//! holds `im2col(x)` at backward time, which then skips recomputing it) and a
//! `[COUT, n]` scratch for `Y` and `dY` in channel-major order. Both keep their
//! capacity, so steps after the first allocate nothing.
//!
//! # Shapes
//! `Conv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>`: input `S3<CIN, H, W>`,
//! output `S3<COUT, OH, OW>`, weight `S4<COUT, CG, KH, KW>` (PyTorch's layout,
//! `CG = CIN / groups`), bias `S1<COUT>`, with
//! `OH = (H + 2·p − d·(KH − 1) − 1)/s + 1` (floor) and likewise `OW`;
//! [`Build::build`] checks the configuration against these sizes.
//!
//! ```
//! use kiln_core::{layers::{Conv2d, Conv2dConfig}, Build, Cpu, Layer, Tensor, S3, rng};
//! let cfg = Conv2dConfig { bias: false, ..Default::default() };
//! let mut conv = Conv2d::<f64, Cpu, 1, 1, 1, 3, 3, 3, 3, 1, 1>::build(&Cpu, &mut rng(0), cfg).unwrap();
//! conv.weight.copy_from_slice(&[1., 0., -1., 2., 0., -2., 1., 0., -1.]).unwrap();
//! let x = Tensor::<S3<1, 3, 3>, f64>::from_slice(&Cpu, &[200., 150., 150., 100., 50., 100., 25., 25., 10.]).unwrap();
//! let mut y = Tensor::empty(&Cpu).unwrap();
//! conv.forward(&x, &mut y, &mut conv.cache().unwrap()).unwrap();
//! assert_eq!(y.to_vec().unwrap(), vec![65.0]);
//! ```

use super::conv_common::{
    check_groups, chunk, gemm_cols, gemm_out, gemm_weight, init_bias, prepare_dx, same_batch,
    Grouped, COLS_BUDGET,
};
use super::fit;
use crate::device::{Acc, Backend, Window2d};
use crate::elem::Elem;
use crate::error::Result;
use crate::init::Init;
use crate::kernels::{ConvKernels, DirectPass};
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, join, single, Graph, Onnx};
use crate::shape::{S1, S3, S4};
use crate::tensor::Tensor;
use crate::Rng;

/// Options of a [`Conv2d`] (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    /// `(sh, sw)`, default `(1, 1)`.
    pub stride: (usize, usize),
    /// Zero padding `(ph, pw)` on each side, default `(0, 0)`.
    pub padding: (usize, usize),
    /// Spacing of the kernel taps `(dh, dw)`, default `(1, 1)`.
    pub dilation: (usize, usize),
    /// Channel groups, default 1; must equal `CIN / CG` and divide `COUT`.
    pub groups: usize,
    /// Whether the layer has a bias (default true).
    pub bias: bool,
    /// Weight initialiser (default: PyTorch's).
    pub init: Init,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
            init: Init::TorchDefault,
        }
    }
}

/// A 2-D convolution from `CIN × H × W` to `COUT × OH × OW` (see the module doc).
pub struct Conv2d<
    E: Elem,
    D: Backend<E>,
    const CIN: usize,
    const COUT: usize,
    const CG: usize,
    const KH: usize,
    const KW: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
> {
    /// `[COUT, CIN/groups, KH, KW]`, PyTorch's layout.
    pub weight: Tensor<S4<COUT, CG, KH, KW>, E, D>,
    /// `[COUT]`, absent with `bias = false`.
    pub bias: Option<Tensor<S1<COUT>, E, D>>,
    geom: Window2d,
    groups: usize,
}

/// Gradients of a [`Conv2d`].
pub struct Conv2dGrads<
    E: Elem,
    D: Backend<E>,
    const COUT: usize,
    const CG: usize,
    const KH: usize,
    const KW: usize,
> {
    /// `∂L/∂W`, `[COUT, CG, KH, KW]`.
    pub weight: Tensor<S4<COUT, CG, KH, KW>, E, D>,
    /// `∂L/∂b`, `[COUT]`.
    pub bias: Option<Tensor<S1<COUT>, E, D>>,
}

/// Scratch of a [`Conv2d`] or [`super::ConvTranspose2d`] (see the module doc).
pub struct ConvCache<E: Elem, D: Backend<E>> {
    /// The im2col matrix of the current chunk.
    pub(crate) cols: D::Buf<E>,
    /// Channel-major outputs or output gradients of the current chunk.
    pub(crate) tmp: D::Buf<E>,
    /// Channel-major input of the current chunk (transposed convolution only).
    pub(crate) xt: D::Buf<E>,
    /// The direct kernel's padded inputs and packed weights
    /// ([`ConvKernels::conv_direct`]).
    pub(crate) direct: D::Buf<E>,
    /// `cols` (or `xt`) still holds the whole batch's data from the forward pass.
    pub(crate) hold: bool,
    /// Largest im2col buffer, in elements.
    pub(crate) budget: usize,
}

impl<E: Elem, D: Backend<E>> ConvCache<E, D> {
    pub(crate) fn new(dev: &D) -> Result<Self> {
        Ok(ConvCache {
            cols: dev.zeros(0)?,
            tmp: dev.zeros(0)?,
            xt: dev.zeros(0)?,
            direct: dev.zeros(0)?,
            hold: false,
            budget: COLS_BUDGET,
        })
    }
}

impl<
        E: Elem,
        D: Backend<E>,
        const CIN: usize,
        const COUT: usize,
        const CG: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Conv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    /// The window geometry (stride, padding, dilation, sizes).
    pub fn geometry(&self) -> &Window2d {
        &self.geom
    }
    /// The number of channel groups.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// The pass by the device's direct kernel where it has one for this
    /// layer (one group; see [`ConvKernels::conv_direct`]); `false` where
    /// the caller takes the im2col + GEMM path.
    #[allow(clippy::too_many_arguments)] // the operands of the pass
    fn direct(
        &self,
        dev: &D,
        w: &D::Buf<E>,
        src: &D::Buf<E>,
        dst: &mut D::Buf<E>,
        b: usize,
        pass: DirectPass,
        acc: Acc,
        cache: &mut ConvCache<E, D>,
    ) -> Result<bool>
    where
        D: ConvKernels<E>,
    {
        if self.groups != 1 {
            return Ok(false);
        }
        dev.conv_direct(
            &self.geom,
            COUT,
            w,
            src,
            dst,
            b,
            pass,
            acc,
            &mut cache.direct,
        )
    }
    fn grouped(&self) -> Grouped {
        Grouped {
            groups: self.groups,
            co: COUT,
            kg: CG * KH * KW,
        }
    }
}

impl<
        E: Elem,
        D: Backend<E>,
        const CIN: usize,
        const COUT: usize,
        const CG: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Build<E, D> for Conv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    type Config = Conv2dConfig;
    fn build(dev: &D, rng: &mut Rng, cfg: Conv2dConfig) -> Result<Self> {
        let geom = Window2d::new(
            "Conv2d",
            CIN,
            (H, W),
            (KH, KW),
            cfg.stride,
            cfg.padding,
            cfg.dilation,
        )?;
        geom.expect_out("Conv2d", OH, OW)?;
        check_groups("Conv2d", cfg.groups, CIN, CG, COUT)?;
        let weight = cfg.init.tensor::<S4<COUT, CG, KH, KW>, E, D>(dev, rng)?;
        let bias = if cfg.bias {
            Some(init_bias(dev, rng, cfg.init, &[COUT, CG, KH, KW])?)
        } else {
            None
        };
        Ok(Conv2d {
            weight,
            bias,
            geom,
            groups: cfg.groups,
        })
    }
}

impl<
        E: Elem,
        D: Backend<E>,
        const CIN: usize,
        const COUT: usize,
        const CG: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Module<E, D> for Conv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    type Grads = Conv2dGrads<E, D, COUT, CG, KH, KW>;
    fn grads(&self) -> Result<Self::Grads> {
        let dev = self.weight.device();
        let bias = match self.bias {
            Some(_) => Some(Tensor::zeros(dev, 1)?),
            None => None,
        };
        Ok(Conv2dGrads {
            weight: Tensor::zeros(dev, 1)?,
            bias,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        f(
            &path.child("weight"),
            ParamRef::of(&self.weight, Role::Param),
        );
        if let Some(b) = &self.bias {
            f(&path.child("bias"), ParamRef::of(b, Role::Param));
        }
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
        if let (Some(b), Some(gb)) = (&mut self.bias, &g.bias) {
            f(&path.child("bias"), ParamMut::of(b, Some(gb)));
        }
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
        if let Some(b) = &mut self.bias {
            f(&path.child("bias"), ParamMut::of(b, None), Role::Param);
        }
    }
}

impl<
        E: Elem,
        D: ConvKernels<E>,
        const CIN: usize,
        const COUT: usize,
        const CG: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Layer<E, D> for Conv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    type In = S3<CIN, H, W>;
    type Out = S3<COUT, OH, OW>;
    type Cache = ConvCache<E, D>;
    const FLOPS: usize = COUT * OH * OW * CG * KH * KW;
    fn cache(&self) -> Result<ConvCache<E, D>> {
        ConvCache::new(self.weight.device())
    }

    /// Per chunk: `cols = im2col(x)`, `Y[COUT, n] = W·cols` per group, then
    /// `Y` transposed into NCHW `y`; finally `y += b`.
    fn forward(
        &self,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        y: &mut Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut ConvCache<E, D>,
    ) -> Result<()> {
        self.forward_weight(&self.weight.buf, x, y, cache)
    }

    fn forward_train(
        &mut self,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        y: &mut Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut ConvCache<E, D>,
        _ctx: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, cache)
    }

    /// Per chunk: `dY[COUT, n]` from NCHW `dy`, `dW (acc)= dY·colsᵀ`, and when
    /// asked `dx (acc)= col2im(Wᵀ·dY)`; finally `db (acc)= Σ dy`.
    fn backward(
        &self,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        _y: &Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut ConvCache<E, D>,
        dy: &Tensor<S3<COUT, OH, OW>, E, D>,
        dx: Option<(&mut Tensor<S3<CIN, H, W>, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()> {
        let db = grads.bias.as_mut().map(|b| (&mut b.buf, gacc));
        self.backward_weight(
            &self.weight.buf,
            x,
            cache,
            dy,
            dx,
            &mut grads.weight.buf,
            gacc,
            db,
        )
    }
}

impl<
        E: Elem,
        D: ConvKernels<E>,
        const CIN: usize,
        const COUT: usize,
        const CG: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Conv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    /// [`Layer::forward`] with the weight `w` (`[COUT, CG, KH, KW]`) in place
    /// of `self.weight`: [`super::MaskedConv2d`] passes its masked copy.
    pub(crate) fn forward_weight(
        &self,
        w: &D::Buf<E>,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        y: &mut Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut ConvCache<E, D>,
    ) -> Result<()> {
        let (b, dev, g, op) = (x.batch(), x.device(), &self.geom, OH * OW);
        fit(y, b)?;
        if self.direct(
            dev,
            w,
            &x.buf,
            &mut y.buf,
            b,
            DirectPass::Forward,
            Acc::Set,
            cache,
        )? {
            if let Some(bias) = &self.bias {
                dev.add_channel_bias(&mut y.buf, &bias.buf, b, COUT, op)?;
            }
            cache.hold = false;
            return Ok(());
        }
        let nb = chunk(cache.budget, b, g.rows() * op);
        dev.resize(&mut cache.cols, g.rows() * nb * op)?;
        if nb > 1 {
            dev.resize(&mut cache.tmp, COUT * nb * op)?;
        }
        for b0 in (0..b).step_by(nb) {
            let nc = nb.min(b - b0);
            dev.im2col(g, &x.buf, b0, nc, &mut cache.cols)?;
            if nc == 1 {
                // One sample: `Y[COUT, op]` is the sample's NCHW output.
                gemm_out(
                    dev,
                    self.grouped(),
                    op,
                    w,
                    &cache.cols,
                    &mut y.buf,
                    b0 * COUT * op,
                )?;
            } else {
                gemm_out(
                    dev,
                    self.grouped(),
                    nc * op,
                    w,
                    &cache.cols,
                    &mut cache.tmp,
                    0,
                )?;
                dev.transpose01(
                    &cache.tmp,
                    0,
                    &mut y.buf,
                    b0 * COUT * op,
                    COUT,
                    nc,
                    op,
                    Acc::Set,
                )?;
            }
        }
        if let Some(bias) = &self.bias {
            dev.add_channel_bias(&mut y.buf, &bias.buf, b, COUT, op)?;
        }
        cache.hold = nb >= b;
        Ok(())
    }

    /// [`Layer::backward`] with the weight `w` in place of `self.weight`,
    /// writing `∂L/∂W` to `dw` in mode `wacc` and `∂L/∂b` to `db` in its mode.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward_weight(
        &self,
        w: &D::Buf<E>,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        cache: &mut ConvCache<E, D>,
        dy: &Tensor<S3<COUT, OH, OW>, E, D>,
        mut dx: Option<(&mut Tensor<S3<CIN, H, W>, E, D>, Acc)>,
        dw: &mut D::Buf<E>,
        wacc: Acc,
        db: Option<(&mut D::Buf<E>, Acc)>,
    ) -> Result<()> {
        same_batch("Conv2d backward", x, dy)?;
        let (b, dev, g, op) = (x.batch(), x.device(), &self.geom, OH * OW);
        let nb = chunk(cache.budget, b, g.rows() * op);
        let reuse = cache.hold && nb >= b;
        dev.resize(&mut cache.cols, g.rows() * nb * op)?;
        if nb > 1 {
            dev.resize(&mut cache.tmp, COUT * nb * op)?;
        }
        let mut dx_done = false;
        if let Some((dx, acc)) = &mut dx {
            prepare_dx(dx, *acc, b)?;
            dx_done = self.direct(
                dev,
                w,
                &dy.buf,
                &mut dx.buf,
                b,
                DirectPass::InputGrad,
                *acc,
                cache,
            )?;
        }
        let mut dx = if dx_done { None } else { dx };
        let w_done = self.groups == 1
            && dev.conv_direct_wgrad(g, COUT, &x.buf, &dy.buf, dw, b, wacc, &mut cache.direct)?;
        // The chunks: what is left of the weight and input gradients.
        let chunks = if w_done && dx.is_none() { 0 } else { b };
        for b0 in (0..chunks).step_by(nb) {
            let nc = nb.min(b - b0);
            let n = nc * op;
            if !w_done && !reuse {
                dev.im2col(g, &x.buf, b0, nc, &mut cache.cols)?;
            }
            let acc0 = if b0 == 0 { wacc } else { Acc::Add };
            // One sample: its NCHW `dy` is `dY[COUT, op]` as it stands.
            let (dout, off) = if nc == 1 {
                (&dy.buf, b0 * COUT * op)
            } else {
                dev.transpose01(
                    &dy.buf,
                    b0 * COUT * op,
                    &mut cache.tmp,
                    0,
                    nc,
                    COUT,
                    op,
                    Acc::Set,
                )?;
                (&cache.tmp, 0)
            };
            if !w_done {
                gemm_weight(dev, self.grouped(), n, dout, &cache.cols, dw, acc0, off)?;
            }
            if let Some((dx, acc)) = &mut dx {
                gemm_cols(dev, self.grouped(), n, w, dout, &mut cache.cols, off)?;
                cache.hold = false;
                dev.col2im(g, &cache.cols, &mut dx.buf, b0, nc, *acc)?;
            }
        }
        if let Some((gb, bacc)) = db {
            dev.channel_bias_grad(&dy.buf, gb, b, COUT, op, bacc)?;
        }
        Ok(())
    }
}

/// The input gradient alone, `dx (acc)= col2im(Wᵀ·dY)` per chunk (the
/// same formula and chunks as [`Layer::backward`]); no `im2col` of the
/// input and no weight or bias gradient.
impl<
        E: Elem,
        D: ConvKernels<E>,
        const CIN: usize,
        const COUT: usize,
        const CG: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > crate::input_grad::InputGrad<E, D> for Conv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    fn backward_input(
        &self,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        _y: &Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut ConvCache<E, D>,
        dy: &Tensor<S3<COUT, OH, OW>, E, D>,
        dx: Option<(&mut Tensor<S3<CIN, H, W>, E, D>, Acc)>,
        _mode: crate::input_grad::GradMode,
    ) -> Result<()> {
        self.backward_input_weight(&self.weight.buf, x, cache, dy, dx)
    }
}

impl<
        E: Elem,
        D: ConvKernels<E>,
        const CIN: usize,
        const COUT: usize,
        const CG: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Conv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    /// [`InputGrad::backward_input`](crate::InputGrad) with the weight `w`
    /// in place of `self.weight`: [`super::MaskedConv2d`] passes its masked copy.
    pub(crate) fn backward_input_weight(
        &self,
        w: &D::Buf<E>,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        cache: &mut ConvCache<E, D>,
        dy: &Tensor<S3<COUT, OH, OW>, E, D>,
        dx: Option<(&mut Tensor<S3<CIN, H, W>, E, D>, Acc)>,
    ) -> Result<()> {
        same_batch("Conv2d backward", x, dy)?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        let (b, dev, g, op) = (x.batch(), x.device(), &self.geom, OH * OW);
        let nb = chunk(cache.budget, b, g.rows() * op);
        dev.resize(&mut cache.cols, g.rows() * nb * op)?;
        if nb > 1 {
            dev.resize(&mut cache.tmp, COUT * nb * op)?;
        }
        prepare_dx(dx, acc, b)?;
        if self.direct(
            dev,
            w,
            &dy.buf,
            &mut dx.buf,
            b,
            DirectPass::InputGrad,
            acc,
            cache,
        )? {
            return Ok(());
        }
        // `cols` is overwritten: the forward's im2col is no longer held.
        cache.hold = false;
        for b0 in (0..b).step_by(nb) {
            let nc = nb.min(b - b0);
            let (dout, off) = if nc == 1 {
                (&dy.buf, b0 * COUT * op)
            } else {
                dev.transpose01(
                    &dy.buf,
                    b0 * COUT * op,
                    &mut cache.tmp,
                    0,
                    nc,
                    COUT,
                    op,
                    Acc::Set,
                )?;
                (&cache.tmp, 0)
            };
            gemm_cols(dev, self.grouped(), nc * op, w, dout, &mut cache.cols, off)?;
            dev.col2im(g, &cache.cols, &mut dx.buf, b0, nc, acc)?;
        }
        Ok(())
    }
}

/// ONNX: `Conv(x, W, b)` with the window's `kernel_shape`, `strides`,
/// `pads`, `dilations` and `group`; `W`, `b` are `{path}.weight`,
/// `{path}.bias`, in PyTorch's layout (ONNX's too).
impl<
        E: Elem,
        D: Backend<E>,
        const CIN: usize,
        const COUT: usize,
        const CG: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Onnx for Conv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let w = g.param(&join(at, "weight"), &self.weight)?;
        let mut ins = vec![x.to_string(), w];
        if let Some(b) = &self.bias {
            ins.push(g.param(&join(at, "bias"), b)?);
        }
        let mut attrs = graph::window(&self.geom, true);
        attrs.push(graph::int("group", self.groups as i64));
        let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
        Ok(vec![g.op("Conv", at, &ins, attrs)])
    }
}

#[cfg(test)]
mod tests;

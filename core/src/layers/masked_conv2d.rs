//! Masked 2-D convolution (PixelCNN, van den Oord et al. 2016): a
//! [`Conv2d`] whose kernel sees only the pixels before the centre in raster
//! order, so that a stack of them predicts each pixel from the ones above it
//! and to its left.
//!
//! The mask `M` (`[KH, KW]`, the same for every input and output channel: the
//! paper's mask for one colour channel) is 1 on every kernel row above the
//! centre row, on the centre row left of the centre and, for type `B`, on the
//! centre itself; 0 elsewhere. Type `A` (the first layer) excludes the pixel
//! being predicted, type `B` (later layers, whose centre already only saw
//! earlier pixels) includes it. In raster order of the kernel taps the 1s are
//! a prefix of `(KH/2)·KW + KW/2` taps (`+ 1` for `B`), which is why the
//! kernel sides must be odd (a centre must exist).
//!
//! With `Ŵ = W ⊙ M` (per output channel `o` and input channel `ci`):
//!
//! * forward: `y = conv(x, Ŵ) + b`, i.e.
//!   `y[o, r, c] = b[o] + Σ_{ci, a, b'} x[ci, r − p + a·d, c − p + b'·d] · W[o, ci, a, b'] · M[a, b']`;
//! * `∂L/∂W = (Σ_{r, c} ∂L/∂y[o, r, c] · x[ci, r − p + a·d, c − p + b'·d]) ⊙ M`:
//!   the convolution's weight gradient, masked; a masked-out weight has
//!   gradient exactly 0 (it does not reach the output);
//! * `∂L/∂x` = the convolution's input gradient with `Ŵ`:
//!   `Σ_{o, a, b'} ∂L/∂y[o, r' + p − a·d, c' + p − b'·d] · Ŵ[o, ci, a, b']`;
//! * `∂L/∂b[o] = Σ_{batch, r, c} ∂L/∂y[o, r, c]`.
//!
//! **Where the mask is applied.** At every forward pass `Ŵ` is written into
//! a buffer of the cache (one strided `copy_block` of the visible prefix of
//! each `[KH·KW]` row; the rest of the buffer is zero from its allocation
//! and never written), and the [`Conv2d`] kernels run with it; the backward
//! pass computes the convolution's full weight gradient into a scratch of
//! the cache and copies its visible prefix into `∂L/∂W` (the masked-out part
//! of the gradient buffer is never written, so it keeps the 0 it was created
//! with). Masking the weight itself once (at initialisation, keeping it
//! invariant by masking the gradient) would cost nothing per step, but would
//! be wrong for a user who loads a checkpoint written by other code (e.g.
//! PyTorch's `nn.Conv2d` with the mask applied in `forward`, whose stored
//! weights keep their masked-out entries) or who sets `weight` by hand, and
//! weight decay applied by the optimizer would still see those entries.
//! Masking at forward time makes the layer correct whatever the stored
//! weight holds, for a copy of `COUT·CG·KH·KW` numbers per pass. The CUDA
//! device needs no kernel of its own: `copy_block`, `im2col`, the GEMMs and
//! `col2im` are the ones [`Conv2d`] uses.
//!
//! The weight and bias are those of the inner [`Conv2d`] (`conv.weight`,
//! `conv.bias`), visited under PyTorch's names `weight` and `bias` (not
//! `conv.weight`), so a state dict reads as `nn.Conv2d`'s.
//!
//! # Shapes
//! `MaskedConv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>`: as [`Conv2d`]
//! (input `S3<CIN, H, W>`, output `S3<COUT, OH, OW>`, weight
//! `S4<COUT, CG, KH, KW>`), with odd `KH`, `KW` and stride 1.
//!
//! ```
//! use kiln_core::{layers::{MaskType, MaskedConv2d, MaskedConv2dConfig}, Build, Cpu, Layer, Tensor, S3, rng};
//! let cfg = MaskedConv2dConfig { mask: MaskType::A, padding: (1, 1), bias: false, ..Default::default() };
//! let mut conv = MaskedConv2d::<f64, Cpu, 1, 1, 1, 3, 3, 3, 3, 3, 3>::build(&Cpu, &mut rng(0), cfg).unwrap();
//! conv.conv.weight.copy_from_slice(&[1.0; 9]).unwrap();
//! let x = Tensor::<S3<1, 3, 3>, f64>::from_slice(&Cpu, &[1., 2., 3., 4., 5., 6., 7., 8., 9.]).unwrap();
//! let mut y = Tensor::empty(&Cpu).unwrap();
//! conv.forward(&x, &mut y, &mut conv.cache().unwrap()).unwrap();
//! // The centre sees the row above (1 + 2 + 3) and its left neighbour (4).
//! assert_eq!(y.to_vec().unwrap()[4], 10.0);
//! ```

use super::conv2d::{Conv2d, Conv2dConfig, Conv2dGrads, ConvCache};
use crate::device::{Acc, Backend, Block};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::kernels::ConvKernels;
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, join, single, Graph, Onnx};
use crate::shape::S3;
use crate::tensor::Tensor;
use crate::Rng;

/// Which PixelCNN mask (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskType {
    /// The centre excluded: the first layer, which reads the image itself.
    A,
    /// The centre included: every later layer.
    B,
}

impl MaskType {
    /// Kernel taps the mask keeps, a prefix in raster order:
    /// `(kh/2)·kw + kw/2`, plus the centre for `B`.
    pub fn visible(self, kh: usize, kw: usize) -> usize {
        (kh / 2) * kw + kw / 2 + usize::from(self == MaskType::B)
    }

    /// The mask `M[kh, kw]` in raster order (1 visible, 0 masked out).
    pub fn mask(self, kh: usize, kw: usize) -> Vec<u8> {
        let v = self.visible(kh, kw);
        (0..kh * kw).map(|i| u8::from(i < v)).collect()
    }
}

/// Options of a [`MaskedConv2d`]: the mask type and [`Conv2dConfig`]'s
/// options but the stride (always 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskedConv2dConfig {
    /// Type `A` or `B` (default `B`).
    pub mask: MaskType,
    /// Zero padding `(ph, pw)` on each side, default `(0, 0)`.
    pub padding: (usize, usize),
    /// Spacing of the kernel taps `(dh, dw)`, default `(1, 1)`.
    pub dilation: (usize, usize),
    /// Channel groups, default 1.
    pub groups: usize,
    /// Whether the layer has a bias (default true).
    pub bias: bool,
    /// Weight initialiser (default: PyTorch's `nn.Conv2d`'s).
    pub init: Init,
}

impl Default for MaskedConv2dConfig {
    fn default() -> Self {
        let c = Conv2dConfig::default();
        MaskedConv2dConfig {
            mask: MaskType::B,
            padding: c.padding,
            dilation: c.dilation,
            groups: c.groups,
            bias: c.bias,
            init: c.init,
        }
    }
}

/// A PixelCNN masked convolution (see the module doc).
pub struct MaskedConv2d<
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
    /// The convolution holding the unmasked `weight` and the `bias`.
    pub conv: Conv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>,
    mask: MaskType,
}

/// Scratch of a [`MaskedConv2d`].
pub struct MaskedConvCache<E: Elem, D: Backend<E>> {
    conv: ConvCache<E, D>,
    /// `W ⊙ M`: the visible prefix of each row, zeros elsewhere.
    masked: D::Buf<E>,
    /// The convolution's unmasked weight gradient.
    dw: D::Buf<E>,
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
    > MaskedConv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    /// The mask type.
    pub fn mask_type(&self) -> MaskType {
        self.mask
    }

    /// The weight as the layer applies it, `W ⊙ M`, on the host.
    pub fn masked_weight(&self) -> Result<Vec<E>> {
        let mut w = self.conv.weight.to_vec()?;
        let vis = self.mask.visible(KH, KW);
        for row in w.chunks_mut(KH * KW) {
            row[vis..].fill(E::zero());
        }
        Ok(w)
    }

    /// The copy of the visible prefix of every `[KH·KW]` kernel row.
    fn prefix(&self) -> Block {
        Block {
            rows: COUT * CG,
            cols: self.mask.visible(KH, KW),
            src_ld: KH * KW,
            src_off: 0,
            dst_ld: KH * KW,
            dst_off: 0,
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
    > Build<E, D> for MaskedConv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    type Config = MaskedConv2dConfig;
    fn build(dev: &D, rng: &mut Rng, cfg: MaskedConv2dConfig) -> Result<Self> {
        if KH.is_multiple_of(2) || KW.is_multiple_of(2) {
            return Err(Error::invalid(
                "MaskedConv2d",
                format!("the kernel {KH}×{KW} has no centre pixel: both sides must be odd"),
            ));
        }
        let conv = Conv2d::build(
            dev,
            rng,
            Conv2dConfig {
                stride: (1, 1),
                padding: cfg.padding,
                dilation: cfg.dilation,
                groups: cfg.groups,
                bias: cfg.bias,
                init: cfg.init,
            },
        )?;
        Ok(MaskedConv2d {
            conv,
            mask: cfg.mask,
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
    > Module<E, D> for MaskedConv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    type Grads = Conv2dGrads<E, D, COUT, CG, KH, KW>;
    fn grads(&self) -> Result<Self::Grads> {
        self.conv.grads()
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        self.conv.visit(path, f)
    }
    fn visit_grads(
        &mut self,
        g: &Self::Grads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
        self.conv.visit_grads(g, path, f)
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    ) {
        self.conv.visit_mut(path, f)
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
    > Layer<E, D> for MaskedConv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    type In = S3<CIN, H, W>;
    type Out = S3<COUT, OH, OW>;
    type Cache = MaskedConvCache<E, D>;
    const FLOPS: usize = COUT * OH * OW * CG * KH * KW;
    fn cache(&self) -> Result<MaskedConvCache<E, D>> {
        let dev = self.conv.weight.device();
        let n = COUT * CG * KH * KW;
        Ok(MaskedConvCache {
            conv: self.conv.cache()?,
            masked: dev.zeros(n)?,
            dw: dev.zeros(n)?,
        })
    }

    /// `Ŵ = W ⊙ M` into the cache, then the convolution with `Ŵ`.
    fn forward(
        &self,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        y: &mut Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut MaskedConvCache<E, D>,
    ) -> Result<()> {
        let dev = x.device();
        dev.copy_block(
            &self.prefix(),
            &self.conv.weight.buf,
            &mut cache.masked,
            Acc::Set,
        )?;
        self.conv
            .forward_weight(&cache.masked, x, y, &mut cache.conv)
    }

    fn forward_train(
        &mut self,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        y: &mut Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut MaskedConvCache<E, D>,
        _ctx: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, cache)
    }

    /// `Ŵ = W ⊙ M` again (as [`Conv2d`]'s backward reads the current weight),
    /// the convolution's backward with `Ŵ`, its weight gradient into the
    /// scratch `dw`; then
    /// `∂L/∂W (acc)= dw ⊙ M` (the visible prefix of each row).
    fn backward(
        &self,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        _y: &Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut MaskedConvCache<E, D>,
        dy: &Tensor<S3<COUT, OH, OW>, E, D>,
        dx: Option<(&mut Tensor<S3<CIN, H, W>, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()> {
        let dev = x.device();
        dev.copy_block(
            &self.prefix(),
            &self.conv.weight.buf,
            &mut cache.masked,
            Acc::Set,
        )?;
        let db = grads.bias.as_mut().map(|b| (&mut b.buf, gacc));
        self.conv.backward_weight(
            &cache.masked,
            x,
            &mut cache.conv,
            dy,
            dx,
            &mut cache.dw,
            Acc::Set,
            db,
        )?;
        dev.copy_block(&self.prefix(), &cache.dw, &mut grads.weight.buf, gacc)
    }
}

/// The input gradient alone, the convolution's with the masked weight:
/// `Ŵ = W ⊙ M` again (as [`Layer::backward`], so a weight changed since the
/// forward pass is masked too), then `dx (acc)= col2im(Ŵᵀ·dY)`; no weight
/// or bias gradient.
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
    > crate::input_grad::InputGrad<E, D>
    for MaskedConv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    fn backward_input(
        &self,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        _y: &Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut MaskedConvCache<E, D>,
        dy: &Tensor<S3<COUT, OH, OW>, E, D>,
        dx: Option<(&mut Tensor<S3<CIN, H, W>, E, D>, Acc)>,
        _mode: crate::input_grad::GradMode,
    ) -> Result<()> {
        x.device().copy_block(
            &self.prefix(),
            &self.conv.weight.buf,
            &mut cache.masked,
            Acc::Set,
        )?;
        self.conv
            .backward_input_weight(&cache.masked, x, &mut cache.conv, dy, dx)
    }
}

/// ONNX: `Conv(x, W ⊙ M, b)`, the masked weight written as the initializer
/// `{path}.weight` (what the layer applies; the masked-out entries are 0),
/// with Conv2d's window attributes. A runtime needs no mask.
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
    > Onnx for MaskedConv2d<E, D, CIN, COUT, CG, KH, KW, H, W, OH, OW>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let w = g.param_values(
            &join(at, "weight"),
            &[COUT, CG, KH, KW],
            &self.masked_weight()?,
        )?;
        let mut ins = vec![x.to_string(), w];
        if let Some(b) = &self.conv.bias {
            ins.push(g.param(&join(at, "bias"), b)?);
        }
        let mut attrs = graph::window(self.conv.geometry(), true);
        attrs.push(graph::int("group", self.conv.groups() as i64));
        let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
        Ok(vec![g.op("Conv", at, &ins, attrs)])
    }
}

#[cfg(test)]
mod tests;

//! Transposed convolution (PyTorch's `nn.ConvTranspose2d`, "deconvolution"):
//! each input pixel multiplies the kernel and stamps it onto the output,
//! overlapping stamps sum — the adjoint of [`super::Conv2d`] with the same
//! weight, so its forward pass is a convolution's input gradient and its input
//! gradient is a convolution's forward pass.
//!
//! With stride `s`, padding `p` (cropped from each side of the full output),
//! dilation `d`, output padding `op` (extra rows/columns at the bottom/right)
//! and `G` groups, weight `W[ci, o, a, b']` of shape `[CIN, COUT/G, KH, KW]`
//! (`o` indexes the output channels of `ci`'s group):
//!
//! * forward: `y[o, r·s − p + a·d, c·s − p + b'·d] += x[ci, r, c] · W[ci, o, a, b']`
//!   for every input pixel `(r, c)`, tap `(a, b')` and channel pair of a group,
//!   then `y[o] += bias[o]` (the course's `[[120,150,120],[100,50,110],[25,25,10]]`
//!   with `[[1,−1],[2,−2]]` starts with `120·K` in the top-left corner);
//! * `∂L/∂x[ci, r, c] = Σ_{o, a, b'} ∂L/∂y[o, r·s − p + a·d, c·s − p + b'·d] · W[ci, o, a, b']`
//!   — a (strided, dilated, padded) cross-correlation of the upstream gradient
//!   with the kernel, i.e. [`super::Conv2d`]'s forward pass;
//! * `∂L/∂W[ci, o, a, b'] = Σ_{batch, r, c} x[ci, r, c] · ∂L/∂y[o, r·s − p + a·d, c·s − p + b'·d]`;
//! * `∂L/∂bias[o] = Σ_{batch, pixels} ∂L/∂y[o]`.
//!
//! Computed with the convolution's machinery, reading the output as the image
//! of a convolution of geometry `COUT × OH × OW → CIN × H × W`: forward
//! `y = col2im(Wᵀ·X)` (with `X` the input in `[CIN, batch·H·W]` order), input
//! gradient `dX = W·im2col(dy)`, weight gradient `dW = X·im2col(dy)ᵀ`, per group
//! and per chunk of samples.
//!
//! Cached: `im2col`/stamp columns, the channel-major input `X` (still valid at
//! backward time when the whole batch fits one chunk) and a scratch for `dX`;
//! all keep their capacity.
//!
//! # Shapes
//! `ConvTranspose2d<E, D, CIN, COUT, OG, KH, KW, H, W, OH, OW>`: input
//! `S3<CIN, H, W>`, output `S3<COUT, OH, OW>`, weight `S4<CIN, OG, KH, KW>`
//! (PyTorch's layout, `OG = COUT / groups`), bias `S1<COUT>`, with
//! `OH = (H − 1)·s − 2p + d·(KH − 1) + op + 1` and likewise `OW`.

use super::conv2d::ConvCache;
use super::conv_common::{
    check_groups, chunk, gemm_cols, gemm_out, gemm_weight, init_bias, prepare_dx, same_batch,
    Grouped,
};
use super::fit;
use crate::device::{transposed_out_size, Acc, Backend, Window2d};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::kernels::ConvKernels;
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, join, single, Graph, Onnx};
use crate::shape::{S1, S3, S4};
use crate::tensor::Tensor;
use crate::Rng;

/// Options of a [`ConvTranspose2d`] (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTranspose2dConfig {
    /// `(sh, sw)`, default `(1, 1)`.
    pub stride: (usize, usize),
    /// Rows/columns cropped from each side of the full output, default `(0, 0)`.
    pub padding: (usize, usize),
    /// Extra rows/columns at the bottom/right, default `(0, 0)`; smaller than
    /// the stride or the dilation.
    pub output_padding: (usize, usize),
    /// Spacing of the kernel taps, default `(1, 1)`.
    pub dilation: (usize, usize),
    /// Channel groups, default 1; must equal `COUT / OG` and divide `CIN`.
    pub groups: usize,
    /// Whether the layer has a bias (default true).
    pub bias: bool,
    /// Weight initialiser (default: PyTorch's, with `fan_in = OG·KH·KW`).
    pub init: Init,
}

impl Default for ConvTranspose2dConfig {
    fn default() -> Self {
        ConvTranspose2dConfig {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
            init: Init::TorchDefault,
        }
    }
}

/// A transposed convolution from `CIN × H × W` to `COUT × OH × OW`.
pub struct ConvTranspose2d<
    E: Elem,
    D: Backend<E>,
    const CIN: usize,
    const COUT: usize,
    const OG: usize,
    const KH: usize,
    const KW: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
> {
    /// `[CIN, COUT/groups, KH, KW]`, PyTorch's layout.
    pub weight: Tensor<S4<CIN, OG, KH, KW>, E, D>,
    /// `[COUT]`, absent with `bias = false`.
    pub bias: Option<Tensor<S1<COUT>, E, D>>,
    /// The equivalent convolution's window: image `COUT × OH × OW`, `H × W` positions.
    geom: Window2d,
    groups: usize,
}

/// Gradients of a [`ConvTranspose2d`].
pub struct ConvTranspose2dGrads<
    E: Elem,
    D: Backend<E>,
    const CIN: usize,
    const COUT: usize,
    const OG: usize,
    const KH: usize,
    const KW: usize,
> {
    /// `∂L/∂W`, `[CIN, OG, KH, KW]`.
    pub weight: Tensor<S4<CIN, OG, KH, KW>, E, D>,
    /// `∂L/∂bias`, `[COUT]`.
    pub bias: Option<Tensor<S1<COUT>, E, D>>,
}

macro_rules! generics {
    ($($t:tt)*) => {
        impl<E: Elem, D: ConvKernels<E>, const CIN: usize, const COUT: usize, const OG: usize, const KH: usize, const KW: usize, const H: usize, const W: usize, const OH: usize, const OW: usize>
            $($t)*
    };
}

generics! { ConvTranspose2d<E, D, CIN, COUT, OG, KH, KW, H, W, OH, OW> {
    /// The equivalent convolution's window geometry (its image is this layer's output).
    pub fn geometry(&self) -> &Window2d {
        &self.geom
    }
    /// The number of channel groups.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// The weight read as the equivalent convolution's `[CIN, OG·KH·KW]`.
    fn grouped(&self) -> Grouped {
        Grouped { groups: self.groups, co: CIN, kg: OG * KH * KW }
    }
}}

generics! { Build<E, D> for ConvTranspose2d<E, D, CIN, COUT, OG, KH, KW, H, W, OH, OW> {
    type Config = ConvTranspose2dConfig;
    fn build(dev: &D, rng: &mut Rng, cfg: ConvTranspose2dConfig) -> Result<Self> {
        let op = "ConvTranspose2d";
        let (s, p, o, d) = (cfg.stride, cfg.padding, cfg.output_padding, cfg.dilation);
        let oh = transposed_out_size(H, KH, s.0, p.0, o.0, d.0);
        let ow = transposed_out_size(W, KW, s.1, p.1, o.1, d.1);
        if (oh, ow) != (Some(OH), Some(OW)) {
            return Err(Error::invalid(
                op,
                format!(
                    "kernel {KH}×{KW}, stride {s:?}, padding {p:?}, output_padding {o:?}, dilation {d:?} map {H}×{W} to {oh:?}×{ow:?}, but the layer's type says {OH}×{OW}"
                ),
            ));
        }
        check_groups(op, cfg.groups, COUT, OG, CIN)?;
        let geom = Window2d { channels: COUT, h: OH, w: OW, kh: KH, kw: KW, sh: s.0, sw: s.1, ph: p.0, pw: p.1, dh: d.0, dw: d.1, oh: H, ow: W };
        let weight = cfg.init.tensor::<S4<CIN, OG, KH, KW>, E, D>(dev, rng)?;
        let bias = if cfg.bias { Some(init_bias(dev, rng, cfg.init, &[CIN, OG, KH, KW])?) } else { None };
        Ok(ConvTranspose2d { weight, bias, geom, groups: cfg.groups })
    }
}}

generics! { Module<E, D> for ConvTranspose2d<E, D, CIN, COUT, OG, KH, KW, H, W, OH, OW> {
    type Grads = ConvTranspose2dGrads<E, D, CIN, COUT, OG, KH, KW>;
    fn grads(&self) -> Result<Self::Grads> {
        let dev = self.weight.device();
        let bias = match self.bias {
            Some(_) => Some(Tensor::zeros(dev, 1)?),
            None => None,
        };
        Ok(ConvTranspose2dGrads { weight: Tensor::zeros(dev, 1)?, bias })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        f(&path.child("weight"), ParamRef::of(&self.weight, Role::Param));
        if let Some(b) = &self.bias {
            f(&path.child("bias"), ParamRef::of(b, Role::Param));
        }
    }
    fn visit_grads(&mut self, g: &Self::Grads, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>)) {
        f(&path.child("weight"), ParamMut::of(&mut self.weight, Some(&g.weight)));
        if let (Some(b), Some(gb)) = (&mut self.bias, &g.bias) {
            f(&path.child("bias"), ParamMut::of(b, Some(gb)));
        }
    }
    fn visit_mut(&mut self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role)) {
        f(&path.child("weight"), ParamMut::of(&mut self.weight, None), Role::Param);
        if let Some(b) = &mut self.bias {
            f(&path.child("bias"), ParamMut::of(b, None), Role::Param);
        }
    }
}}

generics! { Layer<E, D> for ConvTranspose2d<E, D, CIN, COUT, OG, KH, KW, H, W, OH, OW> {
    type In = S3<CIN, H, W>;
    type Out = S3<COUT, OH, OW>;
    type Cache = ConvCache<E, D>;
    const FLOPS: usize = CIN * H * W * OG * KH * KW;
    fn cache(&self) -> Result<ConvCache<E, D>> {
        ConvCache::new(self.weight.device())
    }

    /// Per chunk: `X[CIN, n]` from NCHW `x`, `cols = Wᵀ·X` per group, `y =
    /// col2im(cols)` (the stamps, overlaps summed); finally `y += bias`.
    fn forward(&self, x: &Tensor<S3<CIN, H, W>, E, D>, y: &mut Tensor<S3<COUT, OH, OW>, E, D>, cache: &mut ConvCache<E, D>) -> Result<()> {
        let (b, dev, g, hw) = (x.batch(), x.device(), &self.geom, H * W);
        fit(y, b)?;
        let nb = chunk(cache.budget, b, g.rows() * hw);
        dev.resize(&mut cache.cols, g.rows() * nb * hw)?;
        dev.resize(&mut cache.xt, CIN * nb * hw)?;
        for b0 in (0..b).step_by(nb) {
            let nc = nb.min(b - b0);
            dev.transpose01(&x.buf, b0 * CIN * hw, &mut cache.xt, 0, nc, CIN, hw, Acc::Set)?;
            gemm_cols(dev, self.grouped(), nc * hw, &self.weight.buf, &cache.xt, &mut cache.cols, 0)?;
            dev.col2im(g, &cache.cols, &mut y.buf, b0, nc, Acc::Set)?;
        }
        if let Some(bias) = &self.bias {
            dev.add_channel_bias(&mut y.buf, &bias.buf, b, COUT, OH * OW)?;
        }
        cache.hold = nb >= b;
        Ok(())
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

    /// Per chunk: `cols = im2col(dy)`, `dW (acc)= X·colsᵀ`, and when asked
    /// `dx (acc)= W·cols` back in NCHW order; finally `dbias (acc)= Σ dy`.
    fn backward(
        &self,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        _y: &Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut ConvCache<E, D>,
        dy: &Tensor<S3<COUT, OH, OW>, E, D>,
        mut dx: Option<(&mut Tensor<S3<CIN, H, W>, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()> {
        same_batch("ConvTranspose2d backward", x, dy)?;
        let (b, dev, g, hw) = (x.batch(), x.device(), &self.geom, H * W);
        let nb = chunk(cache.budget, b, g.rows() * hw);
        let reuse = cache.hold && nb >= b;
        dev.resize(&mut cache.cols, g.rows() * nb * hw)?;
        dev.resize(&mut cache.xt, CIN * nb * hw)?;
        dev.resize(&mut cache.tmp, CIN * nb * hw)?;
        if let Some((dx, acc)) = &mut dx {
            prepare_dx(dx, *acc, b)?;
        }
        for b0 in (0..b).step_by(nb) {
            let nc = nb.min(b - b0);
            let n = nc * hw;
            dev.im2col(g, &dy.buf, b0, nc, &mut cache.cols)?;
            if !reuse {
                dev.transpose01(&x.buf, b0 * CIN * hw, &mut cache.xt, 0, nc, CIN, hw, Acc::Set)?;
            }
            let wacc = if b0 == 0 { gacc } else { Acc::Add };
            gemm_weight(dev, self.grouped(), n, &cache.xt, &cache.cols, &mut grads.weight.buf, wacc, 0)?;
            if let Some((dx, acc)) = &mut dx {
                gemm_out(dev, self.grouped(), n, &self.weight.buf, &cache.cols, &mut cache.tmp, 0)?;
                dev.transpose01(&cache.tmp, 0, &mut dx.buf, b0 * CIN * hw, CIN, nc, hw, *acc)?;
            }
        }
        if let Some(gb) = &mut grads.bias {
            dev.channel_bias_grad(&dy.buf, &mut gb.buf, b, COUT, OH * OW, gacc)?;
        }
        Ok(())
    }
}}

generics! { crate::input_grad::InputGrad<E, D> for ConvTranspose2d<E, D, CIN, COUT, OG, KH, KW, H, W, OH, OW> {
    /// The input gradient alone, `dx (acc)= W·im2col(dy)` per chunk (a plain
    /// convolution of `dy` with the kernel, the same formula and chunks as
    /// [`Layer::backward`]); the channel-major input `X` the forward may hold is
    /// neither read nor overwritten, and no weight or bias gradient is computed.
    fn backward_input(
        &self,
        x: &Tensor<S3<CIN, H, W>, E, D>,
        _y: &Tensor<S3<COUT, OH, OW>, E, D>,
        cache: &mut ConvCache<E, D>,
        dy: &Tensor<S3<COUT, OH, OW>, E, D>,
        dx: Option<(&mut Tensor<S3<CIN, H, W>, E, D>, Acc)>,
        _mode: crate::input_grad::GradMode,
    ) -> Result<()> {
        same_batch("ConvTranspose2d backward", x, dy)?;
        let Some((dx, acc)) = dx else { return Ok(()) };
        let (b, dev, g, hw) = (x.batch(), x.device(), &self.geom, H * W);
        let nb = chunk(cache.budget, b, g.rows() * hw);
        dev.resize(&mut cache.cols, g.rows() * nb * hw)?;
        dev.resize(&mut cache.tmp, CIN * nb * hw)?;
        prepare_dx(dx, acc, b)?;
        for b0 in (0..b).step_by(nb) {
            let nc = nb.min(b - b0);
            dev.im2col(g, &dy.buf, b0, nc, &mut cache.cols)?;
            gemm_out(dev, self.grouped(), nc * hw, &self.weight.buf, &cache.cols, &mut cache.tmp, 0)?;
            dev.transpose01(&cache.tmp, 0, &mut dx.buf, b0 * CIN * hw, CIN, nc, hw, acc)?;
        }
        Ok(())
    }
}}

/// ONNX: `ConvTranspose(x, W, b)` with `kernel_shape`, `strides`, `pads`,
/// `dilations`, `group` and `output_padding` (ONNX's output size is this
/// layer's, `(H − 1)·s − 2p + d·(KH − 1) + op + 1`); `W` and `b` are
/// `{path}.weight` (`[CIN, COUT/groups, KH, KW]`, ONNX's layout too) and
/// `{path}.bias`.
impl<
        E: Elem,
        D: Backend<E>,
        const CIN: usize,
        const COUT: usize,
        const OG: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    > Onnx for ConvTranspose2d<E, D, CIN, COUT, OG, KH, KW, H, W, OH, OW>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let x = single(at, inputs)?;
        let w = g.param(&join(at, "weight"), &self.weight)?;
        let mut ins = vec![x.to_string(), w];
        if let Some(b) = &self.bias {
            ins.push(g.param(&join(at, "bias"), b)?);
        }
        let gm = &self.geom;
        // The size without output padding, then what the type adds (`Build`
        // checked that `OH`, `OW` are at least that size).
        let full = |n: usize, s: usize, p: usize, d: usize, k: usize| {
            ((n - 1) * s + d * (k - 1) + 1).saturating_sub(2 * p)
        };
        let oph = OH.saturating_sub(full(H, gm.sh, gm.ph, gm.dh, KH));
        let opw = OW.saturating_sub(full(W, gm.sw, gm.pw, gm.dw, KW));
        let mut attrs = graph::window(gm, true);
        attrs.push(graph::int("group", self.groups as i64));
        attrs.push(graph::ints("output_padding", &[oph as i64, opw as i64]));
        let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
        Ok(vec![g.op("ConvTranspose", at, &ins, attrs)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Conv2d, Conv2dConfig};
    use crate::testing::{check_layer, random_input};
    use crate::Cpu;

    #[test]
    fn course_stamp_example() {
        let cfg = ConvTranspose2dConfig {
            bias: false,
            ..Default::default()
        };
        let mut t = ConvTranspose2d::<f64, Cpu, 1, 1, 1, 2, 2, 3, 3, 4, 4>::build(
            &Cpu,
            &mut crate::rng(0),
            cfg,
        )
        .unwrap();
        t.weight.copy_from_slice(&[1., -1., 2., -2.]).unwrap();
        let x = Tensor::<S3<1, 3, 3>, f64>::from_slice(
            &Cpu,
            &[120., 150., 120., 100., 50., 110., 25., 25., 10.],
        )
        .unwrap();
        let mut y = Tensor::empty(&Cpu).unwrap();
        t.forward(&x, &mut y, &mut t.cache().unwrap()).unwrap();
        // Stamps x(i,j)·K at (i,j). Rows of x against [1, −1] give
        // [120, 30, −30, −120], [100, −50, 60, −110], [25, 0, −15, −10]; the
        // kernel's rows (1, 2) then give output rows R0, 2R0 + R1, 2R1 + R2, 2R2.
        #[rustfmt::skip]
        let want = [
            120., 30., -30., -120.,
            340., 10., 0., -350.,
            225., -100., 105., -230.,
            50., 0., -30., -20.,
        ];
        assert_eq!(y.to_vec().unwrap(), want);
        // The first stamp alone is 120·K in the top-left corner.
        let one =
            Tensor::<S3<1, 3, 3>, f64>::from_slice(&Cpu, &[120., 0., 0., 0., 0., 0., 0., 0., 0.])
                .unwrap();
        t.forward(&one, &mut y, &mut t.cache().unwrap()).unwrap();
        assert_eq!(
            &y.to_vec().unwrap()[..6],
            &[120., -120., 0., 0., 240., -240.]
        );
    }

    /// `⟨convT(x), z⟩ = ⟨x, conv(z)⟩` for the same weight: the transposed
    /// convolution is the adjoint of the convolution.
    fn adjoint<
        const CIN: usize,
        const COUT: usize,
        const OG: usize,
        const CG: usize,
        const K: usize,
        const H: usize,
        const OH: usize,
    >(
        t: ConvTranspose2dConfig,
    ) {
        let mut rng = crate::rng(11);
        let tc = ConvTranspose2d::<f64, Cpu, CIN, COUT, OG, K, K, H, H, OH, OH>::build(
            &Cpu,
            &mut rng,
            ConvTranspose2dConfig { bias: false, ..t },
        )
        .unwrap();
        let c = Conv2dConfig {
            stride: t.stride,
            padding: t.padding,
            dilation: t.dilation,
            groups: t.groups,
            bias: false,
            init: Init::Zeros,
        };
        let mut conv =
            Conv2d::<f64, Cpu, COUT, CIN, CG, K, K, OH, OH, H, H>::build(&Cpu, &mut rng, c)
                .unwrap();
        conv.weight
            .copy_from_slice(&tc.weight.to_vec().unwrap())
            .unwrap();
        let batch = 3;
        let x = Tensor::<S3<CIN, H, H>, f64>::from_slice(
            &Cpu,
            &random_input(batch * CIN * H * H, &mut rng),
        )
        .unwrap();
        let z = Tensor::<S3<COUT, OH, OH>, f64>::from_slice(
            &Cpu,
            &random_input(batch * COUT * OH * OH, &mut rng),
        )
        .unwrap();
        let (mut tx, mut cz) = (Tensor::empty(&Cpu).unwrap(), Tensor::empty(&Cpu).unwrap());
        tc.forward(&x, &mut tx, &mut tc.cache().unwrap()).unwrap();
        conv.forward(&z, &mut cz, &mut conv.cache().unwrap())
            .unwrap();
        let dot = |a: Vec<f64>, b: Vec<f64>| a.iter().zip(&b).map(|(u, v)| u * v).sum::<f64>();
        let (l, r) = (
            dot(tx.to_vec().unwrap(), z.to_vec().unwrap()),
            dot(x.to_vec().unwrap(), cz.to_vec().unwrap()),
        );
        assert!(
            (l - r).abs() < 1e-10 * l.abs().max(1.0),
            "{t:?}: {l} vs {r}"
        );
    }

    #[test]
    fn is_the_adjoint_of_conv2d() {
        let d = ConvTranspose2dConfig::default();
        adjoint::<2, 3, 3, 3, 3, 4, 6>(d);
        adjoint::<2, 3, 3, 3, 3, 4, 9>(ConvTranspose2dConfig {
            stride: (2, 2),
            ..d
        });
        adjoint::<2, 3, 3, 3, 3, 4, 8>(ConvTranspose2dConfig {
            stride: (2, 2),
            padding: (1, 1),
            output_padding: (1, 1),
            ..d
        });
        adjoint::<4, 2, 1, 1, 3, 4, 8>(ConvTranspose2dConfig {
            dilation: (2, 2),
            groups: 2,
            ..d
        });
    }

    fn grad<
        const CIN: usize,
        const COUT: usize,
        const OG: usize,
        const KH: usize,
        const KW: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    >(
        cfg: ConvTranspose2dConfig,
    ) {
        let mut t = ConvTranspose2d::<f64, Cpu, CIN, COUT, OG, KH, KW, H, W, OH, OW>::build(
            &Cpu,
            &mut crate::rng(6),
            cfg,
        )
        .unwrap();
        let err = check_layer(&mut t, 3, 21).unwrap();
        assert!(err < 1e-6, "{cfg:?}: {err}");
    }

    #[test]
    fn gradchecks() {
        let d = ConvTranspose2dConfig::default();
        grad::<2, 3, 3, 2, 2, 3, 3, 4, 4>(d);
        grad::<2, 3, 3, 3, 3, 3, 4, 7, 9>(ConvTranspose2dConfig {
            stride: (2, 2),
            ..d
        });
        grad::<3, 2, 2, 3, 2, 3, 3, 6, 6>(ConvTranspose2dConfig {
            stride: (2, 2),
            padding: (1, 0),
            output_padding: (1, 0),
            bias: false,
            ..d
        });
        grad::<4, 6, 3, 3, 3, 3, 3, 7, 7>(ConvTranspose2dConfig {
            dilation: (2, 2),
            groups: 2,
            ..d
        });
        grad::<2, 2, 1, 2, 2, 3, 3, 6, 6>(ConvTranspose2dConfig {
            stride: (2, 2),
            groups: 2,
            ..d
        });
    }

    #[test]
    fn chunked_matches_one_chunk() {
        let cfg = ConvTranspose2dConfig {
            stride: (2, 2),
            padding: (1, 1),
            output_padding: (1, 1),
            ..Default::default()
        };
        let t = ConvTranspose2d::<f64, Cpu, 3, 2, 2, 3, 3, 4, 4, 8, 8>::build(
            &Cpu,
            &mut crate::rng(8),
            cfg,
        )
        .unwrap();
        let mut rng = crate::rng(12);
        let batch = 5;
        let x = Tensor::<S3<3, 4, 4>, f64>::from_slice(&Cpu, &random_input(batch * 48, &mut rng))
            .unwrap();
        let dy = Tensor::<S3<2, 8, 8>, f64>::from_slice(&Cpu, &random_input(batch * 128, &mut rng))
            .unwrap();
        let run = |budget: usize| {
            let mut cache = t.cache().unwrap();
            cache.budget = budget;
            let mut y = Tensor::empty(&Cpu).unwrap();
            t.forward(&x, &mut y, &mut cache).unwrap();
            let mut dx = Tensor::empty(&Cpu).unwrap();
            let mut g = t.grads().unwrap();
            t.backward(
                &x,
                &y,
                &mut cache,
                &dy,
                Some((&mut dx, Acc::Set)),
                &mut g,
                Acc::Set,
            )
            .unwrap();
            [
                y.to_vec().unwrap(),
                dx.to_vec().unwrap(),
                g.weight.to_vec().unwrap(),
                g.bias.unwrap().to_vec().unwrap(),
            ]
        };
        let (one, many) = (run(1 << 20), run(2 * 18 * 16));
        for (a, b) in one.iter().zip(&many) {
            for (u, v) in a.iter().zip(b) {
                assert!((u - v).abs() < 1e-12, "{u} vs {v}");
            }
        }
    }
}

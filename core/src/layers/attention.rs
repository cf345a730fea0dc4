//! Multi-head scaled dot-product attention (PyTorch's
//! `nn.MultiheadAttention(DM, H, batch_first=True)`), self-attention and
//! cross-attention, with an optional causal mask and an optional key-padding
//! mask, and its kernel family, [`AttentionKernels`] (the masked softmax and
//! its backward): the layer, the kernels' trait and their CPU bodies are this
//! one file (the CUDA source is `cuda/src/kernels/attention.cu`).
//!
//! Queries come from `x` `[T, DM]`, keys and values from a memory `m`
//! `[S, DM]` (`m = x` for self-attention). With `W = in_proj_weight`
//! `[3·DM, DM]` split into `W_q, W_k, W_v` (rows), `b = in_proj_bias`,
//! `d = DM/H` and, for each head `h` (columns `h·d … h·d + d`):
//!
//! * `Q = x·W_qᵀ + b_q`, `K = m·W_kᵀ + b_k`, `V = m·W_vᵀ + b_v`;
//! * scores `A_h = Q_h·K_hᵀ/√d + M` with `M_ij = −∞` where key `j` is masked
//!   for query `i` (causal: `j > i`; key padding: `ids_j = pad`), else 0;
//! * weights `P_h = softmax_rows(A_h)`: masked positions get exactly 0 (they
//!   are left out of the row's maximum and sum, not computed as `e^{−∞}`); a
//!   row whose keys are all masked is all zeros (PyTorch gives NaN), so that
//!   query's context is 0 and its output is `out_proj.bias`; a NaN score
//!   (or an infinite one) makes its whole row NaN, as PyTorch;
//! * `O_h = P_h·V_h` side by side into `O` `[T, DM]`; `y = O·W_oᵀ + b_o`
//!   (`out_proj`, a [`Linear`]).
//!
//! Backward, from `dy`: `dO = dy·W_o` (and `out_proj`'s gradients), then per
//! head `dP = dO_h·V_hᵀ`, `dV_h = P_hᵀ·dO_h`, the softmax's backward written
//! out row by row, `dA_ij = P_ij·(dP_ij − Σ_k dP_ik·P_ik)` (no `T×S` Jacobian
//! per row is formed; a masked position has `P_ij = 0`, hence `dA_ij = 0`
//! exactly, and a fully masked row is all zero), `dQ_h = dA·K_h/√d`,
//! `dK_h = dAᵀ·Q_h/√d`; finally `dW_q = dQᵀ·x`, `dW_{k,v} = dK,dVᵀ·m`,
//! `db = Σ_rows dQ, dK, dV`, `dx = dQ·W_q (+ dK·W_k + dV·W_v` for
//! self-attention), `dm = dK·W_k + dV·W_v`.
//!
//! Every per-head product is one [`Backend::gemm_batched`] call per sample
//! (the `H` heads are the batch: their columns side by side in `Q`, `K`,
//! `V`, `O`): `Q·Kᵀ` and `P·V` forward, `dO·Vᵀ`, `Pᵀ·dO`, `dA·K` and `dAᵀ·Q`
//! backward. Cached: `Q`, `K|V`, `P` and `O` (the weights `P` are what
//! [`MultiHeadAttention::attention_weights`] returns).
//!
//! Parameters as PyTorch: `in_proj_weight [3·DM, DM]` (Xavier uniform),
//! `in_proj_bias [3·DM]` (zeros), `out_proj.weight [DM, DM]` (PyTorch's
//! `Linear` default), `out_proj.bias [DM]` (zeros); `bias = false` drops both
//! biases.
//!
//! # Shapes
//! `MultiHeadAttention<E, D, T, S, DM, H, QKV>` maps `[T, DM]` (and a memory
//! `[S, DM]`) to `[T, DM]`; `QKV = 3·DM` (stable Rust cannot write `3·DM` in
//! a type, so `network!` fills it in; `build` checks it), `H` divides `DM`.
//! Self-attention (`S = T`) is a [`Layer`]; cross-attention is
//! [`MultiHeadAttention::cross_attend`].

use super::conv_common::prepare_dx;
use super::fit;
use super::linear::{Linear, LinearConfig, LinearGrads};
use crate::device::{Acc, Backend, Device, Gemm, GemmBatched};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::shape::{S1, S2};
use crate::tensor::{Tensor, Tokens};
use crate::Rng;

mod kernels;
pub use kernels::{AttentionKernels, AttnDims};

// ---- the layer -------------------------------------------------------------------

/// Options of a [`MultiHeadAttention`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiHeadAttentionConfig {
    /// `in_proj_bias` and `out_proj.bias` (default `true`, PyTorch's `bias`).
    pub bias: bool,
    /// Query `i` sees keys `j ≤ i` only (PyTorch's causal `attn_mask`).
    pub causal: bool,
    /// How `in_proj_weight` is drawn (`init = …` in `network!`; default
    /// Xavier uniform over `[3·DM, DM]`, `nn.MultiheadAttention`'s).
    pub init: Init,
    /// How `out_proj.weight` is drawn (`out_init = …`; default PyTorch's
    /// `nn.Linear` default). nanoGPT's GPT draws both from N(0, 0.02), the
    /// output projection scaled by 1/√(2·n_layer).
    pub out_init: Init,
}

impl Default for MultiHeadAttentionConfig {
    fn default() -> Self {
        MultiHeadAttentionConfig {
            bias: true,
            causal: false,
            init: Init::XavierUniform,
            out_init: Init::TorchDefault,
        }
    }
}

/// Which keys are padding: those whose id in `ids` (one per key position)
/// equals `pad` (PyTorch's `key_padding_mask = ids == pad`).
pub struct KeyPadding<'a, D: Device, const S: usize> {
    ids: &'a D::Buf<u32>,
    batch: usize,
    pad: u32,
}

impl<'a, D: Device, const S: usize> KeyPadding<'a, D, S> {
    /// The key positions of `ids` that hold `pad`.
    pub fn new<const V: usize>(ids: &'a Tokens<S1<S>, V, D>, pad: u32) -> Self {
        KeyPadding {
            ids: ids.buf(),
            batch: ids.batch(),
            pad,
        }
    }
}

/// Multi-head attention over `[T, DM]` queries and `[S, DM]` keys and values
/// (see the module doc).
pub struct MultiHeadAttention<
    E: Elem,
    D: Backend<E>,
    const T: usize,
    const S: usize,
    const DM: usize,
    const H: usize,
    const QKV: usize,
> {
    /// `[W_q; W_k; W_v]`, `[3·DM, DM]`.
    pub in_proj_weight: Tensor<S2<QKV, DM>, E, D>,
    /// `[b_q; b_k; b_v]`, `[3·DM]` (absent with `bias = false`).
    pub in_proj_bias: Option<Tensor<S1<QKV>, E, D>>,
    /// The output projection (`out_proj.weight`, `out_proj.bias`).
    pub out_proj: Linear<E, D, DM, DM, S1<T>>,
    /// Whether the causal mask applies.
    pub causal: bool,
}

/// Gradients of a [`MultiHeadAttention`].
pub struct MultiHeadAttentionGrads<E: Elem, D: Backend<E>, const DM: usize, const QKV: usize> {
    /// `∂L/∂in_proj_weight`.
    pub in_proj_weight: Tensor<S2<QKV, DM>, E, D>,
    /// `∂L/∂in_proj_bias`.
    pub in_proj_bias: Option<Tensor<S1<QKV>, E, D>>,
    /// `out_proj`'s.
    pub out_proj: LinearGrads<E, D, DM, DM>,
}

/// What the last forward pass kept (`Q`, `K|V`, the weights `P`, the context
/// `O`) and the backward pass's buffers.
pub struct AttentionCache<E: Elem, D: Backend<E>, const T: usize, const DM: usize> {
    q: D::Buf<E>,
    kv: D::Buf<E>,
    p: D::Buf<E>,
    ones: D::Buf<E>,
    ctx: Tensor<S2<T, DM>, E, D>,
    dctx: Tensor<S2<T, DM>, E, D>,
    dq: D::Buf<E>,
    dkv: D::Buf<E>,
    dp: D::Buf<E>,
    dims: Option<AttnDims>,
}

impl<E: Elem, D: Backend<E>, const T: usize, const DM: usize> AttentionCache<E, D, T, DM> {
    /// An empty cache on `dev` (buffers grow on the first forward pass).
    pub fn new(dev: &D) -> Result<Self> {
        Ok(AttentionCache {
            q: dev.zeros(0)?,
            kv: dev.zeros(0)?,
            p: dev.zeros(0)?,
            ones: dev.zeros(0)?,
            ctx: Tensor::empty(dev)?,
            dctx: Tensor::empty(dev)?,
            dq: dev.zeros(0)?,
            dkv: dev.zeros(0)?,
            dp: dev.zeros(0)?,
            dims: None,
        })
    }
}

impl<E, D, const T: usize, const S: usize, const DM: usize, const H: usize, const QKV: usize>
    Build<E, D> for MultiHeadAttention<E, D, T, S, DM, H, QKV>
where
    E: Elem,
    D: Backend<E>,
{
    type Config = MultiHeadAttentionConfig;
    fn build(dev: &D, rng: &mut Rng, cfg: MultiHeadAttentionConfig) -> Result<Self> {
        if DM == 0 || H == 0 || !DM.is_multiple_of(H) || QKV != 3 * DM || T == 0 || S == 0 {
            return Err(Error::invalid(
                "MultiHeadAttention",
                format!("need H ≥ 1 dividing DM, QKV = 3·DM, T, S ≥ 1; got T = {T}, S = {S}, DM = {DM}, H = {H}, QKV = {QKV}"),
            ));
        }
        let w = cfg.init.sample(&[QKV, DM], QKV * DM, rng);
        let in_proj_weight = Tensor::from_vec(dev, 1, w.into_iter().map(E::of).collect())?;
        let in_proj_bias = cfg.bias.then(|| Tensor::zeros(dev, 1)).transpose()?;
        let lc = LinearConfig {
            bias: cfg.bias,
            init: cfg.out_init,
        };
        let mut out_proj = Linear::build(dev, rng, lc)?;
        if let Some(b) = &mut out_proj.bias {
            dev.fill(&mut b.buf, DM, E::zero())?;
        }
        Ok(MultiHeadAttention {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            causal: cfg.causal,
        })
    }
}

impl<E, D, const T: usize, const S: usize, const DM: usize, const H: usize, const QKV: usize>
    Module<E, D> for MultiHeadAttention<E, D, T, S, DM, H, QKV>
where
    E: Elem,
    D: Backend<E>,
{
    type Grads = MultiHeadAttentionGrads<E, D, DM, QKV>;
    fn grads(&self) -> Result<Self::Grads> {
        let dev = self.in_proj_weight.device();
        Ok(MultiHeadAttentionGrads {
            in_proj_weight: Tensor::zeros(dev, 1)?,
            in_proj_bias: self
                .in_proj_bias
                .as_ref()
                .map(|_| Tensor::zeros(dev, 1))
                .transpose()?,
            out_proj: self.out_proj.grads()?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        f(
            &path.child("in_proj_weight"),
            ParamRef::of(&self.in_proj_weight, Role::Param),
        );
        if let Some(b) = &self.in_proj_bias {
            f(&path.child("in_proj_bias"), ParamRef::of(b, Role::Param));
        }
        self.out_proj.visit(&path.child("out_proj"), f);
    }
    fn visit_grads(
        &mut self,
        g: &Self::Grads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
        let w = ParamMut::of(&mut self.in_proj_weight, Some(&g.in_proj_weight));
        f(&path.child("in_proj_weight"), w);
        if let Some(b) = &mut self.in_proj_bias {
            f(
                &path.child("in_proj_bias"),
                ParamMut::of(b, g.in_proj_bias.as_ref()),
            );
        }
        self.out_proj
            .visit_grads(&g.out_proj, &path.child("out_proj"), f);
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    ) {
        let w = ParamMut::of(&mut self.in_proj_weight, None);
        f(&path.child("in_proj_weight"), w, Role::Param);
        if let Some(b) = &mut self.in_proj_bias {
            f(
                &path.child("in_proj_bias"),
                ParamMut::of(b, None),
                Role::Param,
            );
        }
        self.out_proj.visit_mut(&path.child("out_proj"), f);
    }
}

/// The per-head products of one sample as one batched GEMM over the `H`
/// heads: `A` and `B` step by `sa`, `sb` per head, `C` by `sc`.
fn heads(g: Gemm, h: usize, sa: usize, sb: usize, sc: usize) -> GemmBatched {
    GemmBatched {
        gemm: g,
        batch: h,
        stride_a: sa,
        stride_b: sb,
        stride_c: sc,
    }
}

impl<E, D, const T: usize, const S: usize, const DM: usize, const H: usize, const QKV: usize>
    MultiHeadAttention<E, D, T, S, DM, H, QKV>
where
    E: Elem,
    D: AttentionKernels<E>,
{
    /// Width of a head.
    const HD: usize = DM / H;
    /// Multiply–adds per sample: projections, `Q·Kᵀ`, `P·V`, `out_proj`.
    pub const FLOPS: usize = T * DM * DM + 2 * S * DM * DM + 2 * T * S * DM + T * DM * DM;

    fn dims(&self, batch: usize) -> AttnDims {
        AttnDims {
            batch,
            heads: H,
            queries: T,
            keys: S,
            causal: self.causal,
        }
    }

    /// Cross-attention: queries from `x`, keys and values from `memory`,
    /// keys masked where `pad` says (see the module doc).
    pub fn cross_attend(
        &self,
        x: &Tensor<S2<T, DM>, E, D>,
        memory: &Tensor<S2<S, DM>, E, D>,
        pad: Option<KeyPadding<'_, D, S>>,
        y: &mut Tensor<S2<T, DM>, E, D>,
        cache: &mut AttentionCache<E, D, T, DM>,
    ) -> Result<()> {
        crate::error::check_batch(
            "MultiHeadAttention",
            "x",
            x.batch(),
            "memory",
            memory.batch(),
        )?;
        self.run(x, &memory.buf, pad, y, cache)
    }

    /// The backward pass of [`MultiHeadAttention::cross_attend`]: gradients
    /// into `dx`, `dmemory` (each when wanted) and `grads`.
    #[allow(clippy::too_many_arguments)] // the operands of the module doc's formulas
    pub fn cross_attend_backward(
        &self,
        x: &Tensor<S2<T, DM>, E, D>,
        memory: &Tensor<S2<S, DM>, E, D>,
        cache: &mut AttentionCache<E, D, T, DM>,
        dy: &Tensor<S2<T, DM>, E, D>,
        dx: Option<(&mut Tensor<S2<T, DM>, E, D>, Acc)>,
        dmemory: Option<(&mut Tensor<S2<S, DM>, E, D>, Acc)>,
        grads: &mut MultiHeadAttentionGrads<E, D, DM, QKV>,
        gacc: Acc,
    ) -> Result<()> {
        self.grad(x, &memory.buf, cache, dy, grads, gacc)?;
        self.input_grads(x.batch(), cache, dx, false)?;
        if let Some((dm, acc)) = dmemory {
            prepare_dx(dm, acc, x.batch())?;
            let g = Gemm {
                b_off: DM * DM,
                ..Gemm::dense(x.batch() * S, DM, 2 * DM, false, false)
            };
            x.device().gemm(
                &g.acc(acc),
                &cache.dkv,
                &self.in_proj_weight.buf,
                &mut dm.buf,
            )?;
        }
        Ok(())
    }

    /// The weights `P` of the last forward pass, `[batch, H, T, S]`.
    pub fn attention_weights(&self, cache: &AttentionCache<E, D, T, DM>) -> Result<Vec<E>> {
        let n = cache.dims.map_or(0, |d| d.len());
        let mut out = vec![E::zero(); n];
        self.in_proj_weight.device().download(&cache.p, &mut out)?;
        Ok(out)
    }

    /// The forward pass with keys and values from `m` (`x`'s own buffer for
    /// self-attention).
    fn run(
        &self,
        x: &Tensor<S2<T, DM>, E, D>,
        m: &D::Buf<E>,
        pad: Option<KeyPadding<'_, D, S>>,
        y: &mut Tensor<S2<T, DM>, E, D>,
        c: &mut AttentionCache<E, D, T, DM>,
    ) -> Result<()> {
        let (batch, dev, hd) = (x.batch(), x.device(), Self::HD);
        if let Some(p) = &pad {
            crate::error::check_batch(
                "MultiHeadAttention",
                "x",
                batch,
                "key padding ids",
                p.batch,
            )?;
        }
        let d = self.dims(batch);
        c.dims = Some(d);
        fit(y, batch)?;
        fit(&mut c.ctx, batch)?;
        dev.resize(&mut c.q, batch * T * DM)?;
        dev.resize(&mut c.kv, batch * S * 2 * DM)?;
        dev.resize(&mut c.p, d.len())?;
        if batch == 0 {
            return Ok(());
        }
        let w = &self.in_proj_weight.buf;
        // Q = x·W_qᵀ, K|V = m·W_{k,v}ᵀ (+ biases, as rank-1 products with ones).
        dev.gemm(
            &Gemm::dense(batch * T, DM, DM, false, true),
            &x.buf,
            w,
            &mut c.q,
        )?;
        let g = Gemm {
            b_off: DM * DM,
            ..Gemm::dense(batch * S, 2 * DM, DM, false, true)
        };
        dev.gemm(&g, m, w, &mut c.kv)?;
        if let Some(b) = &self.in_proj_bias {
            let rows = batch * T.max(S);
            dev.resize(&mut c.ones, rows)?;
            dev.fill(&mut c.ones, rows, E::one())?;
            let ones = |rows, n, off| Gemm {
                b_off: off,
                ..Gemm::dense(rows, n, 1, false, false).acc(Acc::Add)
            };
            dev.gemm(&ones(batch * T, DM, 0), &c.ones, &b.buf, &mut c.q)?;
            dev.gemm(&ones(batch * S, 2 * DM, DM), &c.ones, &b.buf, &mut c.kv)?;
        }
        let scale = 1.0 / (hd as f64).sqrt();
        for b in 0..batch {
            // A_h = Q_h·K_hᵀ/√d into [b, h] of the weights.
            let g = Gemm {
                a_off: b * T * DM,
                lda: DM,
                b_off: b * S * 2 * DM,
                ldb: 2 * DM,
                c_off: b * H * T * S,
                alpha: scale,
                ..Gemm::dense(T, S, hd, false, true)
            };
            dev.gemm_batched(&heads(g, H, hd, hd, T * S), &c.q, &c.kv, &mut c.p)?;
        }
        dev.attn_softmax_fwd(&d, pad.as_ref().map(|p| (p.ids, p.pad)), &mut c.p)?;
        for b in 0..batch {
            // O_h = P_h·V_h, heads side by side in O's rows.
            let g = Gemm {
                a_off: b * H * T * S,
                b_off: b * S * 2 * DM + DM,
                ldb: 2 * DM,
                c_off: b * T * DM,
                ldc: DM,
                ..Gemm::dense(T, hd, S, false, false)
            };
            dev.gemm_batched(&heads(g, H, T * S, hd, hd), &c.p, &c.kv, &mut c.ctx.buf)?;
        }
        self.out_proj.forward(&c.ctx, y, &mut ())
    }

    /// The parameter gradients, leaving `dQ` and `dK|dV` in the cache for
    /// the input gradients.
    fn grad(
        &self,
        x: &Tensor<S2<T, DM>, E, D>,
        m: &D::Buf<E>,
        c: &mut AttentionCache<E, D, T, DM>,
        dy: &Tensor<S2<T, DM>, E, D>,
        grads: &mut MultiHeadAttentionGrads<E, D, DM, QKV>,
        gacc: Acc,
    ) -> Result<()> {
        let (batch, dev, hd) = (x.batch(), x.device(), Self::HD);
        crate::error::check_batch(
            "MultiHeadAttention backward",
            "x",
            batch,
            "output gradient",
            dy.batch(),
        )?;
        let d = self.dims(batch);
        if c.dims != Some(d) {
            return Err(Error::invalid(
                "MultiHeadAttention backward",
                format!("the cache holds a forward pass of {:?}, the input is {d:?} (run forward on this input first)", c.dims),
            ));
        }
        let dctx = Some((&mut c.dctx, Acc::Set));
        self.out_proj
            .backward(&c.ctx, dy, &mut (), dy, dctx, &mut grads.out_proj, gacc)?;
        dev.resize(&mut c.dq, batch * T * DM)?;
        dev.resize(&mut c.dkv, batch * S * 2 * DM)?;
        dev.resize(&mut c.dp, d.len())?;
        let scale = 1.0 / (hd as f64).sqrt();
        for b in 0..batch {
            let (o, kv, p) = (b * T * DM, b * S * 2 * DM, b * H * T * S);
            // dP_h = dO_h·V_hᵀ.
            let g = Gemm {
                a_off: o,
                lda: DM,
                b_off: kv + DM,
                ldb: 2 * DM,
                c_off: p,
                ..Gemm::dense(T, S, hd, false, true)
            };
            dev.gemm_batched(&heads(g, H, hd, hd, T * S), &c.dctx.buf, &c.kv, &mut c.dp)?;
            // dV_h = P_hᵀ·dO_h.
            let g = Gemm {
                a_off: p,
                b_off: o,
                ldb: DM,
                c_off: kv + DM,
                ldc: 2 * DM,
                ..Gemm::dense(S, hd, T, true, false)
            };
            dev.gemm_batched(&heads(g, H, T * S, hd, hd), &c.p, &c.dctx.buf, &mut c.dkv)?;
        }
        dev.attn_softmax_bwd(&d, &c.p, &mut c.dp)?;
        for b in 0..batch {
            let (o, kv, p) = (b * T * DM, b * S * 2 * DM, b * H * T * S);
            // dQ_h = dA·K_h/√d.
            let g = Gemm {
                a_off: p,
                b_off: kv,
                ldb: 2 * DM,
                c_off: o,
                ldc: DM,
                alpha: scale,
                ..Gemm::dense(T, hd, S, false, false)
            };
            dev.gemm_batched(&heads(g, H, T * S, hd, hd), &c.dp, &c.kv, &mut c.dq)?;
            // dK_h = dAᵀ·Q_h/√d.
            let g = Gemm {
                a_off: p,
                b_off: o,
                ldb: DM,
                c_off: kv,
                ldc: 2 * DM,
                alpha: scale,
                ..Gemm::dense(S, hd, T, true, false)
            };
            dev.gemm_batched(&heads(g, H, T * S, hd, hd), &c.dp, &c.q, &mut c.dkv)?;
        }
        // dW_q (gacc)= dQᵀ·x, dW_{k,v} (gacc)= dK|dVᵀ·m.
        let gw = &mut grads.in_proj_weight.buf;
        dev.gemm(
            &Gemm::dense(DM, DM, batch * T, true, false).acc(gacc),
            &c.dq,
            &x.buf,
            gw,
        )?;
        let g = Gemm {
            c_off: DM * DM,
            ..Gemm::dense(2 * DM, DM, batch * S, true, false)
        };
        dev.gemm(&g.acc(gacc), &c.dkv, m, gw)?;
        if let Some(gb) = &mut grads.in_proj_bias {
            // db (gacc)= onesᵀ·dQ, onesᵀ·dK|dV.
            let col = |rows, n, off| Gemm {
                c_off: off,
                ..Gemm::dense(1, n, rows, true, false).acc(gacc)
            };
            dev.gemm(&col(batch * T, DM, 0), &c.ones, &c.dq, &mut gb.buf)?;
            dev.gemm(&col(batch * S, 2 * DM, DM), &c.ones, &c.dkv, &mut gb.buf)?;
        }
        Ok(())
    }

    /// `dx (acc)= dQ·W_q`, plus `dK|dV·W_{k,v}` for self-attention.
    fn input_grads(
        &self,
        batch: usize,
        c: &AttentionCache<E, D, T, DM>,
        dx: Option<(&mut Tensor<S2<T, DM>, E, D>, Acc)>,
        keys_too: bool,
    ) -> Result<()> {
        let Some((dx, acc)) = dx else { return Ok(()) };
        prepare_dx(dx, acc, batch)?;
        let (dev, w) = (self.in_proj_weight.device(), &self.in_proj_weight.buf);
        dev.gemm(
            &Gemm::dense(batch * T, DM, DM, false, false).acc(acc),
            &c.dq,
            w,
            &mut dx.buf,
        )?;
        if keys_too {
            let g = Gemm {
                b_off: DM * DM,
                ..Gemm::dense(batch * S, DM, 2 * DM, false, false)
            };
            dev.gemm(&g.acc(Acc::Add), &c.dkv, w, &mut dx.buf)?;
        }
        Ok(())
    }
}

impl<E, D, const T: usize, const DM: usize, const H: usize, const QKV: usize>
    MultiHeadAttention<E, D, T, T, DM, H, QKV>
where
    E: Elem,
    D: AttentionKernels<E>,
{
    /// Self-attention (queries, keys and values from `x`), keys masked where
    /// `pad` says.
    pub fn self_attend(
        &self,
        x: &Tensor<S2<T, DM>, E, D>,
        pad: Option<KeyPadding<'_, D, T>>,
        y: &mut Tensor<S2<T, DM>, E, D>,
        cache: &mut AttentionCache<E, D, T, DM>,
    ) -> Result<()> {
        self.run(x, &x.buf, pad, y, cache)
    }

    /// The backward pass of [`MultiHeadAttention::self_attend`].
    pub fn self_attend_backward(
        &self,
        x: &Tensor<S2<T, DM>, E, D>,
        cache: &mut AttentionCache<E, D, T, DM>,
        dy: &Tensor<S2<T, DM>, E, D>,
        dx: Option<(&mut Tensor<S2<T, DM>, E, D>, Acc)>,
        grads: &mut MultiHeadAttentionGrads<E, D, DM, QKV>,
        gacc: Acc,
    ) -> Result<()> {
        self.grad(x, &x.buf, cache, dy, grads, gacc)?;
        self.input_grads(x.batch(), cache, dx, true)
    }
}

impl<E, D, const T: usize, const DM: usize, const H: usize, const QKV: usize> Layer<E, D>
    for MultiHeadAttention<E, D, T, T, DM, H, QKV>
where
    E: Elem,
    D: AttentionKernels<E>,
{
    type In = S2<T, DM>;
    type Out = S2<T, DM>;
    type Cache = AttentionCache<E, D, T, DM>;
    const FLOPS: usize = Self::FLOPS;
    fn cache(&self) -> Result<Self::Cache> {
        AttentionCache::new(self.in_proj_weight.device())
    }
    fn forward(
        &self,
        x: &Tensor<S2<T, DM>, E, D>,
        y: &mut Tensor<S2<T, DM>, E, D>,
        cache: &mut Self::Cache,
    ) -> Result<()> {
        self.self_attend(x, None, y, cache)
    }
    fn forward_train(
        &mut self,
        x: &Tensor<S2<T, DM>, E, D>,
        y: &mut Tensor<S2<T, DM>, E, D>,
        cache: &mut Self::Cache,
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.self_attend(x, None, y, cache)
    }
    fn backward(
        &self,
        x: &Tensor<S2<T, DM>, E, D>,
        _y: &Tensor<S2<T, DM>, E, D>,
        cache: &mut Self::Cache,
        dy: &Tensor<S2<T, DM>, E, D>,
        dx: Option<(&mut Tensor<S2<T, DM>, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()> {
        self.self_attend_backward(x, cache, dy, dx, grads, gacc)
    }
}

pub mod kv_cache;
pub use kv_cache::KvCache;

mod onnx;

#[cfg(test)]
mod tests;

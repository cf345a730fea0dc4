//! An Elman recurrent layer over a sequence (PyTorch's `nn.RNN(I, H,
//! nonlinearity='tanh'|'relu', batch_first=True)`, one layer, one direction),
//! with its kernel family, [`RnnKernels`]: the layer,
//! the kernels' trait and their CPU bodies are this one file (the CUDA source
//! is `cuda/src/kernels/rnn.cu`).
//! Stacked and bidirectional layers (PyTorch's `num_layers`, `bidirectional`,
//! `dropout`) are [`super::Recurrent`] over this cell (`recurrent.rs`).
//!
//! Input `[T, I]`, output `[T, H]`: every hidden state `h_t`. At step `t`,
//! from `x_t` and `h_{t−1}` (`h_{−1} = h0`: zero, or the state
//! [`super::Recurrent`] was given, see [`CellState`]):
//!
//! * `a_t = W_ih·x_t + b_ih + W_hh·h_{t−1} + b_hh`;
//! * `h_t = f(a_t)`, `f` = `tanh` (the default) or `relu`.
//!
//! Backpropagation through time, from `δh = ∂L/∂h_t` (the output's gradient
//! plus what step `t + 1` sends back), for `t = T−1 … 0`:
//!
//! * `∂L/∂a_t = δh⊙f'(a_t)`, written with the output: `1 − h_t²` for `tanh`,
//!   for `relu` the select `0 if h_t ≤ 0 else δh` (0 at 0, and NaN kept as
//!   PyTorch: `relu(NaN) = NaN` passes `δh`, a NaN `δh` is stopped where
//!   `h_t ≤ 0`; the same rules as the element-wise table's `Tanh` and
//!   `Relu`, `kernels/unary.rs`);
//! * `δh ← W_hhᵀ·∂L/∂a_t` (into step `t − 1`).
//!
//! Then, over all steps at once: `∂L/∂W_ih = Σ_t ∂L/∂a_t·x_tᵀ`,
//! `∂L/∂W_hh = Σ_t ∂L/∂a_t·h_{t−1}ᵀ` (the `t = 0` term only from a given
//! `h0`), `∂L/∂b_ih = ∂L/∂b_hh = Σ_t ∂L/∂a_t`,
//! `∂L/∂x_t = W_ihᵀ·∂L/∂a_t`.
//!
//! The products: the input part at every step is one GEMM over all `B·T`
//! rows (`x·W_ihᵀ`), the recurrent part one GEMM per step over the batch
//! (`h_{t−1}·W_hhᵀ`, rows strided by `T·H`), as are the backward's `δh`,
//! all reading `W_hh` packed once per pass (`Backend::pack_gemm_b`); the
//! weight gradients are one GEMM each (`W_hh`'s over `h_{t−1}` shifted into
//! a buffer of every row, `recurrent/hh.rs`).
//! Cached: the pre-activations `a` (the outputs are the layer's own).
//!
//! The element-wise `Backend::act_fwd`/`act_bwd` would do the nonlinearity,
//! but they work on whole buffers from their start, and a step is every
//! `T`-th row of the sequence: using them would cost a strided copy in and
//! out of scratch buffers per step (three launches forward, five backward,
//! besides the products), where the cell kernels below are one each.
//!
//! Parameters as PyTorch, each drawn from `U(−1/√H, 1/√H)`:
//! `weight_ih_l0 [H, I]`, `weight_hh_l0 [H, H]`, `bias_ih_l0 [H]`,
//! `bias_hh_l0 [H]`.
//!
//! # Shapes
//! `Rnn<E, D, T, I, H>` maps `[T, I]` to `[T, H]` (written by `network!`,
//! whose `RNN(H)` fills in the rest).

use super::conv_common::prepare_dx;
use super::fit;
use super::recurrent::hh::whh_grad;
use super::recurrent::onnx::{leave_final, CellOnnx, CellOut, CellRole, OnnxCell};
use super::recurrent::{recurrent_cell_params, CellCache, CellState, L0_NAMES};
use crate::device::{need, Acc, Backend, Gemm, PackedB};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{Graph, Onnx};
use crate::shape::{S1, S2};
use crate::tensor::Tensor;
use crate::{Cpu, Rng};

// ---- the kernel family ---------------------------------------------------------

/// The nonlinearity of an [`Rnn`] (PyTorch's `nonlinearity`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RnnNonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

impl RnnNonlinearity {
    /// `f(a)`.
    fn f<E: Elem>(self, a: E) -> E {
        match self {
            RnnNonlinearity::Tanh => a.tanh(),
            // The complement of `a ≤ 0`, so `relu(NaN) = NaN` as PyTorch.
            RnnNonlinearity::Relu if a <= E::zero() => E::zero(),
            RnnNonlinearity::Relu => a,
        }
    }
    /// `∂L/∂a` from `g = ∂L/∂h` and the output `h = f(a)`: `g·(1 − h²)`, or
    /// for `relu` `0 if h ≤ 0 else g` (a select, PyTorch's
    /// `threshold_backward(grad, result, 0)`: a NaN `h` passes `g`, a NaN `g`
    /// is stopped where `h ≤ 0`).
    fn grad<E: Elem>(self, g: E, h: E) -> E {
        match self {
            RnnNonlinearity::Tanh => g * (E::one() - h * h),
            RnnNonlinearity::Relu if h <= E::zero() => E::zero(),
            RnnNonlinearity::Relu => g,
        }
    }
}

/// The layout an RNN cell kernel sees: `batch` sequences of `steps` steps,
/// `hidden` units. Pre-activations and outputs are `[batch, steps, hidden]`,
/// the carry `[batch, hidden]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnDims {
    /// Sequences.
    pub batch: usize,
    /// Steps per sequence (`T`).
    pub steps: usize,
    /// Hidden units (`H`).
    pub hidden: usize,
}

impl RnnDims {
    fn states(&self) -> usize {
        self.batch * self.steps * self.hidden
    }
    fn carry(&self) -> usize {
        self.batch * self.hidden
    }
    fn check(&self, what: &'static str, t: usize) -> Result<()> {
        if t >= self.steps {
            return Err(Error::invalid(
                what,
                format!("step {t} of a sequence of {} steps", self.steps),
            ));
        }
        Ok(())
    }
}

/// The Elman RNN cell kernels of a device, for element type `E`: one step of
/// every sequence of the batch, element-wise over `(sample, unit)`.
///
/// Used by [`Rnn`], which states `D: RnnKernels<E>`. Layers call the provided
/// methods, which check arguments and lengths once for every device and then
/// call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no RNN kernels for `{E}`",
    label = "needed by RNN"
)]
pub trait RnnKernels<E: Elem>: Backend<E> {
    /// Step `t`: `h_t = f(a_t)` from the pre-activations `a` of step `t`.
    fn rnn_cell_fwd(
        &self,
        d: &RnnDims,
        f: RnnNonlinearity,
        t: usize,
        a: &Self::Buf<E>,
        h: &mut Self::Buf<E>,
    ) -> Result<()> {
        d.check("rnn_cell_fwd", t)?;
        need(self, "rnn_cell_fwd a", a, d.states())?;
        need(self, "rnn_cell_fwd h", h, d.states())?;
        if d.carry() == 0 {
            return Ok(());
        }
        self.raw_rnn_cell_fwd(d, f, t, a, h)
    }

    /// Step `t` of the backward pass: `∂L/∂a_t = (dy_t + dh)⊙f'`, `f'` read
    /// from the outputs `h_t`, into step `t` of `da`; `dh` is the carry `δh`
    /// from step `t + 1` (zero at the last step).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn rnn_cell_bwd(
        &self,
        d: &RnnDims,
        f: RnnNonlinearity,
        t: usize,
        h: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dh: &Self::Buf<E>,
        da: &mut Self::Buf<E>,
    ) -> Result<()> {
        d.check("rnn_cell_bwd", t)?;
        need(self, "rnn_cell_bwd h", h, d.states())?;
        need(self, "rnn_cell_bwd dy", dy, d.states())?;
        need(self, "rnn_cell_bwd dh", dh, d.carry())?;
        need(self, "rnn_cell_bwd da", da, d.states())?;
        if d.carry() == 0 {
            return Ok(());
        }
        self.raw_rnn_cell_bwd(d, f, t, h, dy, dh, da)
    }

    /// [`RnnKernels::rnn_cell_fwd`] after its checks.
    fn raw_rnn_cell_fwd(
        &self,
        d: &RnnDims,
        f: RnnNonlinearity,
        t: usize,
        a: &Self::Buf<E>,
        h: &mut Self::Buf<E>,
    ) -> Result<()>;

    /// [`RnnKernels::rnn_cell_bwd`] after its checks.
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_rnn_cell_bwd(
        &self,
        d: &RnnDims,
        f: RnnNonlinearity,
        t: usize,
        h: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dh: &Self::Buf<E>,
        da: &mut Self::Buf<E>,
    ) -> Result<()>;
}

impl<E: Elem> RnnKernels<E> for Cpu {
    fn raw_rnn_cell_fwd(
        &self,
        d: &RnnDims,
        f: RnnNonlinearity,
        t: usize,
        a: &Vec<E>,
        h: &mut Vec<E>,
    ) -> Result<()> {
        let hn = d.hidden;
        for b in 0..d.batch {
            let at = (b * d.steps + t) * hn;
            for j in at..at + hn {
                h[j] = f.f(a[j]);
            }
        }
        Ok(())
    }

    fn raw_rnn_cell_bwd(
        &self,
        d: &RnnDims,
        f: RnnNonlinearity,
        t: usize,
        h: &Vec<E>,
        dy: &Vec<E>,
        dh: &Vec<E>,
        da: &mut Vec<E>,
    ) -> Result<()> {
        let hn = d.hidden;
        for b in 0..d.batch {
            let at = (b * d.steps + t) * hn;
            for j in 0..hn {
                da[at + j] = f.grad(dy[at + j] + dh[b * hn + j], h[at + j]);
            }
        }
        Ok(())
    }
}

// ---- the layer -------------------------------------------------------------------

/// Options of an RNN layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnConfig {
    /// `bias_ih_l0` and `bias_hh_l0` (default `true`, as PyTorch's `bias`).
    pub bias: bool,
    /// `tanh` (default) or `relu`.
    pub nonlinearity: RnnNonlinearity,
}

impl Default for RnnConfig {
    fn default() -> Self {
        RnnConfig {
            bias: true,
            nonlinearity: RnnNonlinearity::Tanh,
        }
    }
}

/// An Elman RNN over sequences `[T, I]`, returning every hidden state
/// `[T, H]` (see the module doc).
pub struct Rnn<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize> {
    /// `W_ih`, `[H, I]`.
    pub weight_ih: Tensor<S2<H, I>, E, D>,
    /// `W_hh`, `[H, H]`.
    pub weight_hh: Tensor<S2<H, H>, E, D>,
    /// `b_ih`, `[H]` (absent with `bias = false`).
    pub bias_ih: Option<Tensor<S1<H>, E, D>>,
    /// `b_hh`, `[H]` (absent with `bias = false`).
    pub bias_hh: Option<Tensor<S1<H>, E, D>>,
    /// `f`.
    pub nonlinearity: RnnNonlinearity,
}

/// Gradients of an [`Rnn`].
pub struct RnnGrads<E: Elem, D: Backend<E>, const I: usize, const H: usize> {
    /// `∂L/∂W_ih`.
    pub weight_ih: Tensor<S2<H, I>, E, D>,
    /// `∂L/∂W_hh`.
    pub weight_hh: Tensor<S2<H, H>, E, D>,
    /// `∂L/∂b_ih`.
    pub bias_ih: Option<Tensor<S1<H>, E, D>>,
    /// `∂L/∂b_hh`.
    pub bias_hh: Option<Tensor<S1<H>, E, D>>,
}

/// The pre-activations of the last forward pass, their gradients, and the
/// state at the sequence's ends (`h0` and the carry, [`CellState`]).
pub struct RnnCache<E: Elem, D: Backend<E>> {
    a: D::Buf<E>,
    da: D::Buf<E>,
    state: CellState<E, D>,
    /// `W_hh` packed for the step products (`W_hhᵀ` in the forward pass,
    /// `W_hh` in the backward pass; one buffer, repacked by each pass).
    whh: PackedB<E>,
    /// The backward pass's `h_{t−1}` of every row ([`whh_grad`]).
    hprev: D::Buf<E>,
}

impl<E: Elem, D: Backend<E>> CellCache<E, D> for RnnCache<E, D> {
    fn state(&self) -> &CellState<E, D> {
        &self.state
    }
    fn state_mut(&mut self) -> &mut CellState<E, D> {
        &mut self.state
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize> Build<E, D>
    for Rnn<E, D, T, I, H>
{
    type Config = RnnConfig;
    fn build(dev: &D, rng: &mut Rng, cfg: RnnConfig) -> Result<Self> {
        if H == 0 || I == 0 || T == 0 {
            return Err(Error::invalid(
                "RNN",
                format!("need T, I, H ≥ 1; got T = {T}, I = {I}, H = {H}"),
            ));
        }
        // PyTorch: every parameter from U(−1/√H, 1/√H) (`fans([H])` is H).
        let mut draw = |n: usize| -> Vec<E> {
            Init::TorchDefault
                .sample(&[H], n, rng)
                .into_iter()
                .map(E::of)
                .collect()
        };
        let weight_ih = Tensor::from_vec(dev, 1, draw(H * I))?;
        let weight_hh = Tensor::from_vec(dev, 1, draw(H * H))?;
        let (bias_ih, bias_hh) = if cfg.bias {
            (
                Some(Tensor::from_vec(dev, 1, draw(H))?),
                Some(Tensor::from_vec(dev, 1, draw(H))?),
            )
        } else {
            (None, None)
        };
        Ok(Rnn {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            nonlinearity: cfg.nonlinearity,
        })
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize> Module<E, D>
    for Rnn<E, D, T, I, H>
{
    type Grads = RnnGrads<E, D, I, H>;
    fn grads(&self) -> Result<Self::Grads> {
        let dev = self.weight_ih.device();
        let opt =
            |p: &Option<Tensor<S1<H>, E, D>>| p.as_ref().map(|_| Tensor::zeros(dev, 1)).transpose();
        Ok(RnnGrads {
            weight_ih: Tensor::zeros(dev, 1)?,
            weight_hh: Tensor::zeros(dev, 1)?,
            bias_ih: opt(&self.bias_ih)?,
            bias_hh: opt(&self.bias_hh)?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        self.visit_named(L0_NAMES, path, f)
    }
    fn visit_grads(
        &mut self,
        g: &Self::Grads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
        self.visit_grads_named(g, L0_NAMES, path, f)
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    ) {
        self.visit_mut_named(L0_NAMES, path, f)
    }
}

// PyTorch's names under any layer index and direction (`Recurrent` stacks these).
recurrent_cell_params!(impl[E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize] Rnn<E, D, T, I, H>, RnnGrads<E, D, I, H>);

impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize> Rnn<E, D, T, I, H> {
    fn dims(batch: usize) -> RnnDims {
        RnnDims {
            batch,
            steps: T,
            hidden: H,
        }
    }
}

impl<E: Elem, D: RnnKernels<E>, const T: usize, const I: usize, const H: usize> Layer<E, D>
    for Rnn<E, D, T, I, H>
{
    type In = S2<T, I>;
    type Out = S2<T, H>;
    type Cache = RnnCache<E, D>;
    const FLOPS: usize = T * H * (I + H);
    fn cache(&self) -> Result<Self::Cache> {
        let dev = self.weight_ih.device();
        Ok(RnnCache {
            a: dev.zeros(0)?,
            da: dev.zeros(0)?,
            state: CellState::new(dev)?,
            whh: PackedB::new(),
            hprev: dev.zeros(0)?,
        })
    }

    /// The input part for all steps (one GEMM and the biases), then step by
    /// step the recurrent part (one GEMM) and the nonlinearity.
    fn forward(
        &self,
        x: &Tensor<S2<T, I>, E, D>,
        y: &mut Tensor<S2<T, H>, E, D>,
        cache: &mut Self::Cache,
    ) -> Result<()> {
        let batch = x.batch();
        fit(y, batch)?;
        let d = Self::dims(batch);
        let dev = x.device();
        let rows = batch * T;
        dev.resize(&mut cache.a, d.states())?;
        if rows == 0 {
            return Ok(());
        }
        // a = x·W_ihᵀ (+ b_ih + b_hh) for every row (sample, step).
        dev.gemm(
            &Gemm::dense(rows, H, I, false, true),
            &x.buf,
            &self.weight_ih.buf,
            &mut cache.a,
        )?;
        for b in [&self.bias_ih, &self.bias_hh].into_iter().flatten() {
            dev.add_bias(&mut cache.a, &b.buf, rows, H)?;
        }
        cache.state.start_forward(dev, d.carry(), false)?;
        let dims = (batch, T, H, H);
        cache
            .state
            .add_h0_product(dev, &self.weight_hh.buf, &mut cache.a, dims)?;
        if T > 1 {
            // W_hhᵀ packed once for the T − 1 step products below.
            let g = Gemm::dense(batch, H, H, false, true);
            dev.pack_gemm_b(&g, &self.weight_hh.buf, &mut cache.whh)?;
        }
        for t in 0..T {
            if t > 0 {
                // a_t += h_{t−1}·W_hhᵀ, rows strided by a sequence.
                let g = Gemm {
                    a_off: (t - 1) * H,
                    lda: T * H,
                    c_off: t * H,
                    ldc: T * H,
                    ..Gemm::dense(batch, H, H, false, true)
                }
                .acc(Acc::Add);
                dev.gemm_packed_b(&g, &y.buf, &self.weight_hh.buf, &cache.whh, &mut cache.a)?;
            }
            dev.rnn_cell_fwd(&d, self.nonlinearity, t, &cache.a, &mut y.buf)?;
        }
        Ok(())
    }

    /// The same as evaluation (no dropout inside one layer).
    fn forward_train(
        &mut self,
        x: &Tensor<S2<T, I>, E, D>,
        y: &mut Tensor<S2<T, H>, E, D>,
        cache: &mut Self::Cache,
        _: &mut TrainCtx,
    ) -> Result<()> {
        self.forward(x, y, cache)
    }

    /// Backpropagation through time (the module doc's formulas).
    fn backward(
        &self,
        x: &Tensor<S2<T, I>, E, D>,
        y: &Tensor<S2<T, H>, E, D>,
        cache: &mut Self::Cache,
        dy: &Tensor<S2<T, H>, E, D>,
        dx: Option<(&mut Tensor<S2<T, I>, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()> {
        let batch = x.batch();
        crate::error::check_batch(
            "RNN backward",
            "input",
            batch,
            "output gradient",
            dy.batch(),
        )?;
        crate::error::check_batch("RNN backward", "input", batch, "output", y.batch())?;
        let d = Self::dims(batch);
        let dev = x.device();
        if dev.len(&cache.a) < d.states() {
            return Err(Error::invalid(
                "RNN backward",
                format!(
                    "the cache holds the pre-activations of {} values but the input needs {} (run forward on this input first)",
                    dev.len(&cache.a),
                    d.states()
                ),
            ));
        }
        let rows = batch * T;
        dev.resize(&mut cache.da, d.states())?;
        let st = &mut cache.state;
        st.start_backward(dev, d.carry(), false)?;
        if rows > 0 {
            if T > 1 || st.given {
                // W_hh packed once for the step products below.
                let g = Gemm::dense(batch, H, H, false, false);
                dev.pack_gemm_b(&g, &self.weight_hh.buf, &mut cache.whh)?;
            }
            for t in (0..T).rev() {
                dev.rnn_cell_bwd(
                    &d,
                    self.nonlinearity,
                    t,
                    &y.buf,
                    &dy.buf,
                    &st.dh,
                    &mut cache.da,
                )?;
                if t > 0 || st.given {
                    // δh = ∂L/∂a_t·W_hh, into step t − 1 (∂L/∂h0 after step 0).
                    let g = Gemm {
                        a_off: t * H,
                        lda: T * H,
                        ..Gemm::dense(batch, H, H, false, false)
                    };
                    dev.gemm_packed_b(&g, &cache.da, &self.weight_hh.buf, &cache.whh, &mut st.dh)?;
                }
            }
        }
        // ∂L/∂W_ih (gacc)= ∂L/∂aᵀ·x over every row.
        dev.gemm(
            &Gemm::dense(H, I, rows, true, false).acc(gacc),
            &cache.da,
            &x.buf,
            &mut grads.weight_ih.buf,
        )?;
        // ∂L/∂W_hh (gacc)= Σ_b Σ_{t≥1} ∂L/∂a_{b,t}ᵀ·h_{b,t−1}: one product over every row.
        whh_grad(
            dev,
            batch,
            T,
            H,
            H,
            &cache.da,
            &y.buf,
            &mut cache.hprev,
            &mut grads.weight_hh.buf,
            gacc,
        )?;
        let (dims, dw) = ((batch, T, H, H), &mut grads.weight_hh.buf);
        st.add_h0_weight_grad(dev, &cache.da, dw, dims)?;
        for gb in [&mut grads.bias_ih, &mut grads.bias_hh]
            .into_iter()
            .flatten()
        {
            dev.bias_grad(&cache.da, &mut gb.buf, rows, H, gacc)?;
        }
        if let Some((dx, acc)) = dx {
            prepare_dx(dx, acc, batch)?;
            dev.gemm(
                &Gemm::dense(rows, I, H, false, false).acc(acc),
                &cache.da,
                &self.weight_ih.buf,
                &mut dx.buf,
            )?;
        }
        Ok(())
    }
}

/// ONNX: its `RNN` operator (one layer, forward direction, zero initial
/// state, `activations` its nonlinearity), the gate blocks reordered from PyTorch's `(one block)` to
/// ONNX's `(one block)` by nodes over the `state_dict` initializers
/// (`recurrent/onnx.rs`). With a given initial state (`state = s`) it has
/// no ONNX form yet (an error naming it).
impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize> Onnx
    for Rnn<E, D, T, I, H>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let [x] = inputs else {
            return Err(crate::onnx::unsupported::<Self>(&format!(
                "{at} (with a given initial state)"
            )));
        };
        let out = self.onnx_cell(g, at, x, CellRole::ALONE)?;
        leave_final(g, at, std::slice::from_ref(&out));
        Ok(vec![out.y])
    }
}

/// The cell's ONNX operator in a given role (alone, or one cell of a
/// [`super::Recurrent`]).
impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize> OnnxCell
    for Rnn<E, D, T, I, H>
{
    const HAS_C: bool = false;
    fn onnx_cell(&self, g: &mut Graph, at: &str, x: &str, role: CellRole<'_>) -> Result<CellOut> {
        let cell = CellOnnx {
            op: "RNN",
            hidden: H,
            order: &[0],
            weight_ih: &self.weight_ih,
            weight_hh: &self.weight_hh,
            bias_ih: self.bias_ih.as_ref(),
            bias_hh: self.bias_hh.as_ref(),
            attrs: vec![crate::onnx::graph::strings(
                "activations",
                &[match self.nonlinearity {
                    RnnNonlinearity::Tanh => "Tanh",
                    RnnNonlinearity::Relu => "Relu",
                }],
            )],
        };
        cell.write(g, at, x, role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random_input};

    fn run<const T: usize>(f: RnnNonlinearity, w_ih: f64, w_hh: f64, x: &[f64]) -> Vec<f64> {
        let cfg = RnnConfig {
            bias: false,
            nonlinearity: f,
        };
        let mut l = Rnn::<f64, Cpu, T, 1, 1>::build(&Cpu, &mut crate::rng(0), cfg).unwrap();
        l.weight_ih.copy_from_slice(&[w_ih]).unwrap();
        l.weight_hh.copy_from_slice(&[w_hh]).unwrap();
        let x = Tensor::<S2<T, 1>, f64>::from_slice(&Cpu, x).unwrap();
        let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
        l.forward(&x, &mut y, &mut c).unwrap();
        y.to_vec().unwrap()
    }

    /// By hand, H = I = 1, no biases. tanh with both weights 0.5 and
    /// x = (1, −1): h₀ = tanh(0.5), h₁ = tanh(−0.5 + 0.5·h₀) (the numbers
    /// computed independently in Python's math). relu with W_ih = 0.5,
    /// W_hh = −0.75 and x = (1, 2, −1): h = (0.5, 1 − 0.375 = 0.625,
    /// relu(−0.5 − 0.46875) = 0).
    #[test]
    fn steps_by_hand() {
        let y = run::<2>(RnnNonlinearity::Tanh, 0.5, 0.5, &[1.0, -1.0]);
        assert!((y[0] - 0.46211715726000974).abs() < 1e-15, "{y:?}");
        assert!((y[1] - -0.26263955140401585).abs() < 1e-15, "{y:?}");
        let y = run::<3>(RnnNonlinearity::Relu, 0.5, -0.75, &[1.0, 2.0, -1.0]);
        assert_eq!(y, [0.5, 0.625, 0.0]);
    }

    #[test]
    fn names_shapes_and_init_range() {
        let l =
            Rnn::<f32, Cpu, 3, 5, 4>::build(&Cpu, &mut crate::rng(0), Default::default()).unwrap();
        let mut seen = Vec::new();
        l.visit(&Path::ROOT.child("rnn"), &mut |p, r| {
            seen.push(format!("{p} {:?}", r.dims))
        });
        assert_eq!(
            seen,
            [
                "rnn.weight_ih_l0 [4, 5]",
                "rnn.weight_hh_l0 [4, 4]",
                "rnn.bias_ih_l0 [4]",
                "rnn.bias_hh_l0 [4]"
            ]
        );
        let w = l.weight_ih.to_vec().unwrap();
        assert!(w.iter().all(|v| v.abs() <= 0.5)); // 1/√4
        assert!(w.iter().any(|v| v.abs() > 0.35));
    }

    /// A sequence's output at step t depends on earlier steps only.
    #[test]
    fn outputs_do_not_depend_on_later_steps() {
        let l =
            Rnn::<f64, Cpu, 4, 3, 2>::build(&Cpu, &mut crate::rng(1), Default::default()).unwrap();
        let mut xv = random_input(12, &mut crate::rng(2));
        let run = |xv: &[f64]| {
            let x = Tensor::<S2<4, 3>, f64>::from_slice(&Cpu, xv).unwrap();
            let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
            l.forward(&x, &mut y, &mut c).unwrap();
            y.to_vec().unwrap()
        };
        let a = run(&xv);
        xv[9] += 1.0; // step 3's input
        let b = run(&xv);
        assert_eq!(a[..6], b[..6]);
        assert_ne!(a[6..], b[6..]);
    }

    #[test]
    fn gradchecks() {
        for (seed, f) in [(5, RnnNonlinearity::Tanh), (8, RnnNonlinearity::Relu)] {
            let cfg = RnnConfig {
                nonlinearity: f,
                ..Default::default()
            };
            let mut a = Rnn::<f64, Cpu, 4, 3, 5>::build(&Cpu, &mut crate::rng(seed), cfg).unwrap();
            let e = check_layer(&mut a, 3, 1).unwrap();
            assert!(e < 1e-6, "{f:?}: {e}");
            let cfg = RnnConfig { bias: false, ..cfg };
            let mut b = Rnn::<f64, Cpu, 1, 2, 3>::build(&Cpu, &mut crate::rng(seed), cfg).unwrap();
            let e = check_layer(&mut b, 2, 2).unwrap();
            assert!(e < 1e-6, "{f:?}, no bias, one step: {e}");
            let mut c = Rnn::<f64, Cpu, 6, 2, 3>::build(&Cpu, &mut crate::rng(seed), cfg).unwrap();
            let e = check_layer(&mut c, 2, 3).unwrap();
            assert!(e < 1e-6, "{f:?}, no bias: {e}");
        }
    }
}

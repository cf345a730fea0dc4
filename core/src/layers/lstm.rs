//! A long short-term memory layer over a sequence (PyTorch's `nn.LSTM(I, H,
//! batch_first=True)`, one layer, one direction), with its
//! kernel family, [`LstmKernels`]: the layer, the kernels' trait and their
//! CPU bodies are this one file (the CUDA source is
//! `cuda/src/kernels/lstm.cu`).
//! Stacked and bidirectional layers (PyTorch's `num_layers`, `bidirectional`,
//! `dropout`) are [`super::Recurrent`] over this cell (`recurrent.rs`).
//!
//! Input `[T, I]`, output `[T, H]`: every hidden state `h_t`. At step `t`,
//! from `x_t`, `h_{t−1}` and `c_{t−1}` (`h_{−1} = h0`, `c_{−1} = c0`: zero,
//! or the state [`super::Recurrent`] was given, see [`CellState`]):
//!
//! * `a = W_ih·x_t + b_ih + W_hh·h_{t−1} + b_hh`, four blocks of `H`, in
//!   PyTorch's order `i, f, g, o`;
//! * `i = σ(a_i)`, `f = σ(a_f)`, `g = tanh(a_g)`, `o = σ(a_o)`;
//! * `c_t = f⊙c_{t−1} + i⊙g`, `h_t = o⊙tanh(c_t)`.
//!
//! The course writes the gates `f, i, u, o` (its `u` is PyTorch's `g`) from
//! one matrix on `[x; h]`: the same function, with `W = [W_ih | W_hh]` and
//! the gate blocks in another order. kiln stores PyTorch's layout so that a
//! checkpoint exchanges with it.
//!
//! Backpropagation through time, from `∂L/∂h_t` (the output's gradient plus
//! what step `t + 1` sends back, `δh`) and the cell's carry `δc` (0 after the
//! last step), for `t = T−1 … 0`:
//!
//! * `∂L/∂o = δh⊙tanh(c_t)`,
//!   `∂L/∂c_t = δh⊙o⊙(1 − tanh²(c_t)) + δc`;
//! * `∂L/∂i = ∂L/∂c_t⊙g`, `∂L/∂g = ∂L/∂c_t⊙i`, `∂L/∂f = ∂L/∂c_t⊙c_{t−1}`,
//!   and the carry `δc ← ∂L/∂c_t⊙f`;
//! * through the nonlinearities: `∂L/∂a_i = ∂L/∂i⊙i(1−i)`, likewise `f`,
//!   `o`, and `∂L/∂a_g = ∂L/∂g⊙(1 − g²)`;
//! * `δh ← W_hhᵀ·∂L/∂a` (into step `t − 1`).
//!
//! Then, over all steps at once: `∂L/∂W_ih = Σ_t ∂L/∂a_t·x_tᵀ`,
//! `∂L/∂W_hh = Σ_t ∂L/∂a_t·h_{t−1}ᵀ` (the `t = 0` term only from a given
//! `h0`), `∂L/∂b_ih = ∂L/∂b_hh = Σ_t ∂L/∂a_t`,
//! `∂L/∂x_t = W_ihᵀ·∂L/∂a_t`.
//!
//! The products: the input part of every gate at every step is one GEMM over
//! all `B·T` rows (`x·W_ihᵀ`), the recurrent part one GEMM per step over the
//! batch (`h_{t−1}·W_hhᵀ`, rows strided by `T·4H`), as are the backward's
//! `δh`, all reading `W_hh` packed once per pass (`Backend::pack_gemm_b`);
//! the weight gradients are one GEMM each (`W_hh`'s over `h_{t−1}` shifted
//! into a buffer of every row, `recurrent/hh.rs`). Cached: the activated
//! gates and `c_t` of every step, the packed `W_hh` and the shifted `h_{t−1}`.
//!
//! Parameters as PyTorch, each drawn from `U(−1/√H, 1/√H)`:
//! `weight_ih_l0 [4H, I]`, `weight_hh_l0 [4H, H]`, `bias_ih_l0 [4H]`,
//! `bias_hh_l0 [4H]`.
//!
//! # Shapes
//! `Lstm<E, D, T, I, H, G>` maps `[T, I]` to `[T, H]`; `G = 4H` (checked by
//! [`Build`], and written by `network!`, whose `LSTM(H)` fills in the rest).

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

/// The layout an LSTM cell kernel sees: `batch` sequences of `steps` steps,
/// `hidden` units. Gates are `[batch, steps, 4·hidden]`, cell states and
/// outputs `[batch, steps, hidden]`, carries `[batch, hidden]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LstmDims {
    /// Sequences.
    pub batch: usize,
    /// Steps per sequence (`T`).
    pub steps: usize,
    /// Hidden units (`H`).
    pub hidden: usize,
}

impl LstmDims {
    fn gates(&self) -> usize {
        self.batch * self.steps * 4 * self.hidden
    }
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

/// The LSTM cell kernels of a device, for element type `E`: one step of every
/// sequence of the batch, element-wise over `(sample, unit)`.
///
/// Used by [`Lstm`], which states `D: LstmKernels<E>`. Layers call the
/// provided methods, which check arguments and lengths once for every device
/// and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no LSTM kernels for `{E}`",
    label = "needed by LSTM"
)]
pub trait LstmKernels<E: Elem>: Backend<E> {
    /// Step `t`: `gates` holds the pre-activations `a = (a_i, a_f, a_g, a_o)`
    /// of step `t` and is overwritten with `(σ(a_i), σ(a_f), tanh(a_g),
    /// σ(a_o))`; `c_t = f⊙c_{t−1} + i⊙g` (`c_{−1} = c0`, `[batch, H]`, read
    /// at `t = 0` only), `h_t = o⊙tanh(c_t)`.
    fn lstm_cell_fwd(
        &self,
        d: &LstmDims,
        t: usize,
        c0: &Self::Buf<E>,
        gates: &mut Self::Buf<E>,
        c: &mut Self::Buf<E>,
        h: &mut Self::Buf<E>,
    ) -> Result<()> {
        d.check("lstm_cell_fwd", t)?;
        need(self, "lstm_cell_fwd c0", c0, d.carry())?;
        need(self, "lstm_cell_fwd gates", gates, d.gates())?;
        need(self, "lstm_cell_fwd c", c, d.states())?;
        need(self, "lstm_cell_fwd h", h, d.states())?;
        if d.carry() == 0 {
            return Ok(());
        }
        self.raw_lstm_cell_fwd(d, t, c0, gates, c, h)
    }

    /// Step `t` of the backward pass (the module doc's formulas): reads the
    /// activated gates and `c` (and `c0` at `t = 0`), `dy_t` and the carries
    /// `dh` (`δh`, from step `t + 1`; at the last step zero or the final
    /// state's gradient) and `dc` (`δc`); writes `∂L/∂a_t` into step `t` of
    /// `dgates` and replaces `dc` with `∂L/∂c_t⊙f` (at `t = 0`, `∂L/∂c0`).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn lstm_cell_bwd(
        &self,
        d: &LstmDims,
        t: usize,
        c0: &Self::Buf<E>,
        gates: &Self::Buf<E>,
        c: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dh: &Self::Buf<E>,
        dc: &mut Self::Buf<E>,
        dgates: &mut Self::Buf<E>,
    ) -> Result<()> {
        d.check("lstm_cell_bwd", t)?;
        need(self, "lstm_cell_bwd c0", c0, d.carry())?;
        need(self, "lstm_cell_bwd gates", gates, d.gates())?;
        need(self, "lstm_cell_bwd c", c, d.states())?;
        need(self, "lstm_cell_bwd dy", dy, d.states())?;
        need(self, "lstm_cell_bwd dh", dh, d.carry())?;
        need(self, "lstm_cell_bwd dc", dc, d.carry())?;
        need(self, "lstm_cell_bwd dgates", dgates, d.gates())?;
        if d.carry() == 0 {
            return Ok(());
        }
        self.raw_lstm_cell_bwd(d, t, c0, gates, c, dy, dh, dc, dgates)
    }

    /// [`LstmKernels::lstm_cell_fwd`] after its checks.
    fn raw_lstm_cell_fwd(
        &self,
        d: &LstmDims,
        t: usize,
        c0: &Self::Buf<E>,
        gates: &mut Self::Buf<E>,
        c: &mut Self::Buf<E>,
        h: &mut Self::Buf<E>,
    ) -> Result<()>;

    /// [`LstmKernels::lstm_cell_bwd`] after its checks.
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_lstm_cell_bwd(
        &self,
        d: &LstmDims,
        t: usize,
        c0: &Self::Buf<E>,
        gates: &Self::Buf<E>,
        c: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dh: &Self::Buf<E>,
        dc: &mut Self::Buf<E>,
        dgates: &mut Self::Buf<E>,
    ) -> Result<()>;
}

impl<E: Elem> LstmKernels<E> for Cpu {
    /// Per sample, the four gate blocks and the cell as slices of exactly
    /// `H`, so the loop has no bounds checks or branches and vectorises (at
    /// the CPU's widest vectors, `crate::simd::wide`); σ and tanh are [`Elem::vsigmoid`] and
    /// [`Elem::vtanh`] (exact for `f64`).
    fn raw_lstm_cell_fwd(
        &self,
        d: &LstmDims,
        t: usize,
        c0: &Vec<E>,
        gates: &mut Vec<E>,
        c: &mut Vec<E>,
        h: &mut Vec<E>,
    ) -> Result<()> {
        let (hn, steps) = (d.hidden, d.steps);
        crate::simd::wide(
            #[inline(always)]
            || {
                for b in 0..d.batch {
                    let row = b * steps + t;
                    let g = &mut gates[row * 4 * hn..][..4 * hn];
                    let (before, now) = c.split_at_mut(row * hn);
                    let (cn, hs) = (&mut now[..hn], &mut h[row * hn..][..hn]);
                    let prev = if t > 0 {
                        &before[(row - 1) * hn..][..hn]
                    } else {
                        &c0[b * hn..][..hn]
                    };
                    cell_fwd_row(g, prev, cn, hs);
                }
            },
        );
        Ok(())
    }

    fn raw_lstm_cell_bwd(
        &self,
        d: &LstmDims,
        t: usize,
        c0: &Vec<E>,
        gates: &Vec<E>,
        c: &Vec<E>,
        dy: &Vec<E>,
        dh: &Vec<E>,
        dc: &mut Vec<E>,
        dgates: &mut Vec<E>,
    ) -> Result<()> {
        let (hn, steps) = (d.hidden, d.steps);
        crate::simd::wide(
            #[inline(always)]
            || {
                for b in 0..d.batch {
                    let row = b * steps + t;
                    let g = &gates[row * 4 * hn..][..4 * hn];
                    let dg = &mut dgates[row * 4 * hn..][..4 * hn];
                    let cn = &c[row * hn..][..hn];
                    let (dyr, dhr) = (&dy[row * hn..][..hn], &dh[b * hn..][..hn]);
                    let dcr = &mut dc[b * hn..][..hn];
                    let prev = if t > 0 {
                        &c[(row - 1) * hn..][..hn]
                    } else {
                        &c0[b * hn..][..hn]
                    };
                    cell_bwd_row(g, cn, prev, dyr, dhr, dcr, dg);
                }
            },
        );
        Ok(())
    }
}

/// One sample's cell at one step (the forward formulas of the module doc):
/// `g` the four gate blocks `[i | f | g | o]` of `H` each (pre-activations in,
/// activations out), `prev = c_{t−1}` (`c0` at the first step).
/// Every slice is cut to `H` first, so the loop is branch- and check-free.
#[inline(always)]
fn cell_fwd_row<E: Elem>(g: &mut [E], prev: &[E], cn: &mut [E], hs: &mut [E]) {
    let hn = cn.len();
    let (gi, rest) = g.split_at_mut(hn);
    let (gf, rest) = rest.split_at_mut(hn);
    let (gg, go) = rest.split_at_mut(hn);
    let (gf, gg, go, hs) = (&mut gf[..hn], &mut gg[..hn], &mut go[..hn], &mut hs[..hn]);
    let prev = &prev[..hn];
    for j in 0..hn {
        let i = gi[j].vsigmoid();
        let f = gf[j].vsigmoid();
        let u = gg[j].vtanh();
        let o = go[j].vsigmoid();
        gi[j] = i;
        gf[j] = f;
        gg[j] = u;
        go[j] = o;
        let ct = f * prev[j] + i * u;
        cn[j] = ct;
        hs[j] = o * ct.vtanh();
    }
}

/// One sample's backward step (the module doc's BPTT formulas): reads the
/// activated gates `g`, `c_t`, `c_{t−1}` (`c0` at the first step), `dy_t`
/// and `δh`; writes `∂L/∂a_t` into `dg` and replaces `δc` with `∂L/∂c_t⊙f`.
#[inline(always)]
fn cell_bwd_row<E: Elem>(
    g: &[E],
    cn: &[E],
    prev: &[E],
    dy: &[E],
    dh: &[E],
    dc: &mut [E],
    dg: &mut [E],
) {
    let hn = cn.len();
    let one = E::one();
    let (gi, gf, gg, go) = (
        &g[..hn],
        &g[hn..2 * hn],
        &g[2 * hn..3 * hn],
        &g[3 * hn..4 * hn],
    );
    let (di, rest) = dg.split_at_mut(hn);
    let (df, rest) = rest.split_at_mut(hn);
    let (du, d_o) = rest.split_at_mut(hn);
    let (df, du, d_o) = (&mut df[..hn], &mut du[..hn], &mut d_o[..hn]);
    let (dy, dh, dc) = (&dy[..hn], &dh[..hn], &mut dc[..hn]);
    let prev = &prev[..hn];
    for j in 0..hn {
        let (i, f, u, o) = (gi[j], gf[j], gg[j], go[j]);
        let tc = cn[j].vtanh();
        let dhv = dy[j] + dh[j];
        let dct = dhv * o * (one - tc * tc) + dc[j];
        di[j] = dct * u * i * (one - i);
        df[j] = dct * prev[j] * f * (one - f);
        du[j] = dct * i * (one - u * u);
        d_o[j] = dhv * tc * o * (one - o);
        dc[j] = dct * f;
    }
}

// ---- the layer -------------------------------------------------------------------

/// Options of an LSTM layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LstmConfig {
    /// `bias_ih_l0` and `bias_hh_l0` (default `true`, as PyTorch's `bias`).
    pub bias: bool,
}

impl Default for LstmConfig {
    fn default() -> Self {
        LstmConfig { bias: true }
    }
}

/// An LSTM over sequences `[T, I]`, returning every hidden state `[T, H]`
/// (see the module doc); `G = 4H`.
pub struct Lstm<
    E: Elem,
    D: Backend<E>,
    const T: usize,
    const I: usize,
    const H: usize,
    const G: usize,
> {
    /// `W_ih`, `[4H, I]`, gate blocks `i, f, g, o`.
    pub weight_ih: Tensor<S2<G, I>, E, D>,
    /// `W_hh`, `[4H, H]`.
    pub weight_hh: Tensor<S2<G, H>, E, D>,
    /// `b_ih`, `[4H]` (absent with `bias = false`).
    pub bias_ih: Option<Tensor<S1<G>, E, D>>,
    /// `b_hh`, `[4H]` (absent with `bias = false`).
    pub bias_hh: Option<Tensor<S1<G>, E, D>>,
}

/// Gradients of an [`Lstm`].
pub struct LstmGrads<E: Elem, D: Backend<E>, const I: usize, const H: usize, const G: usize> {
    /// `∂L/∂W_ih`.
    pub weight_ih: Tensor<S2<G, I>, E, D>,
    /// `∂L/∂W_hh`.
    pub weight_hh: Tensor<S2<G, H>, E, D>,
    /// `∂L/∂b_ih`.
    pub bias_ih: Option<Tensor<S1<G>, E, D>>,
    /// `∂L/∂b_hh`.
    pub bias_hh: Option<Tensor<S1<G>, E, D>>,
}

/// The activated gates and cell states of the last forward pass, the
/// backward pass's gate gradients, and the state at the sequence's ends (the
/// initial `h0`, `c0` and the carries, [`CellState`]).
pub struct LstmCache<E: Elem, D: Backend<E>> {
    gates: D::Buf<E>,
    c: D::Buf<E>,
    dgates: D::Buf<E>,
    state: CellState<E, D>,
    /// `W_hh` packed for the step products (`W_hhᵀ` in the forward pass,
    /// `W_hh` in the backward pass; one buffer, repacked by each pass).
    whh: PackedB<E>,
    /// The backward pass's `h_{t−1}` of every row ([`whh_grad`]).
    hprev: D::Buf<E>,
}

impl<E: Elem, D: Backend<E>> CellCache<E, D> for LstmCache<E, D> {
    const HAS_CELL: bool = true;
    fn state(&self) -> &CellState<E, D> {
        &self.state
    }
    fn state_mut(&mut self) -> &mut CellState<E, D> {
        &mut self.state
    }
    fn cells(&self) -> Option<&D::Buf<E>> {
        Some(&self.c)
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize>
    Build<E, D> for Lstm<E, D, T, I, H, G>
{
    type Config = LstmConfig;
    fn build(dev: &D, rng: &mut Rng, cfg: LstmConfig) -> Result<Self> {
        if G != 4 * H || H == 0 || I == 0 || T == 0 {
            return Err(Error::invalid(
                "LSTM",
                format!("need T, I, H ≥ 1 and G = 4·H; got T = {T}, I = {I}, H = {H}, G = {G}"),
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
        let weight_ih = Tensor::from_vec(dev, 1, draw(G * I))?;
        let weight_hh = Tensor::from_vec(dev, 1, draw(G * H))?;
        let (bias_ih, bias_hh) = if cfg.bias {
            (
                Some(Tensor::from_vec(dev, 1, draw(G))?),
                Some(Tensor::from_vec(dev, 1, draw(G))?),
            )
        } else {
            (None, None)
        };
        Ok(Lstm {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        })
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize>
    Module<E, D> for Lstm<E, D, T, I, H, G>
{
    type Grads = LstmGrads<E, D, I, H, G>;
    fn grads(&self) -> Result<Self::Grads> {
        let dev = self.weight_ih.device();
        let opt =
            |p: &Option<Tensor<S1<G>, E, D>>| p.as_ref().map(|_| Tensor::zeros(dev, 1)).transpose();
        Ok(LstmGrads {
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
recurrent_cell_params!(impl[E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize] Lstm<E, D, T, I, H, G>, LstmGrads<E, D, I, H, G>);

impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize>
    Lstm<E, D, T, I, H, G>
{
    fn dims(batch: usize) -> LstmDims {
        LstmDims {
            batch,
            steps: T,
            hidden: H,
        }
    }
}

impl<
        E: Elem,
        D: LstmKernels<E>,
        const T: usize,
        const I: usize,
        const H: usize,
        const G: usize,
    > Layer<E, D> for Lstm<E, D, T, I, H, G>
{
    type In = S2<T, I>;
    type Out = S2<T, H>;
    type Cache = LstmCache<E, D>;
    const FLOPS: usize = T * G * (I + H);
    fn cache(&self) -> Result<Self::Cache> {
        let dev = self.weight_ih.device();
        Ok(LstmCache {
            gates: dev.zeros(0)?,
            c: dev.zeros(0)?,
            dgates: dev.zeros(0)?,
            state: CellState::new(dev)?,
            whh: PackedB::new(),
            hprev: dev.zeros(0)?,
        })
    }

    /// The gates' input part for all steps (one GEMM and the biases), then
    /// step by step the recurrent part (one GEMM) and the cell.
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
        dev.resize(&mut cache.gates, d.gates())?;
        dev.resize(&mut cache.c, d.states())?;
        if rows == 0 {
            return Ok(());
        }
        // a = x·W_ihᵀ (+ b_ih + b_hh) for every row (sample, step).
        dev.gemm(
            &Gemm::dense(rows, G, I, false, true),
            &x.buf,
            &self.weight_ih.buf,
            &mut cache.gates,
        )?;
        for b in [&self.bias_ih, &self.bias_hh].into_iter().flatten() {
            dev.add_bias(&mut cache.gates, &b.buf, rows, G)?;
        }
        cache.state.start_forward(dev, d.carry(), true)?;
        let dims = (batch, T, G, H);
        cache
            .state
            .add_h0_product(dev, &self.weight_hh.buf, &mut cache.gates, dims)?;
        if T > 1 {
            // W_hhᵀ packed once for the T − 1 step products below.
            let g = Gemm::dense(batch, G, H, false, true);
            dev.pack_gemm_b(&g, &self.weight_hh.buf, &mut cache.whh)?;
        }
        for t in 0..T {
            if t > 0 {
                // a_t += h_{t−1}·W_hhᵀ, rows strided by a sequence.
                let g = Gemm {
                    a_off: (t - 1) * H,
                    lda: T * H,
                    c_off: t * G,
                    ldc: T * G,
                    ..Gemm::dense(batch, G, H, false, true)
                }
                .acc(Acc::Add);
                dev.gemm_packed_b(
                    &g,
                    &y.buf,
                    &self.weight_hh.buf,
                    &cache.whh,
                    &mut cache.gates,
                )?;
            }
            let c0 = &cache.state.c0;
            dev.lstm_cell_fwd(&d, t, c0, &mut cache.gates, &mut cache.c, &mut y.buf)?;
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
            "LSTM backward",
            "input",
            batch,
            "output gradient",
            dy.batch(),
        )?;
        crate::error::check_batch("LSTM backward", "input", batch, "output", y.batch())?;
        let d = Self::dims(batch);
        let dev = x.device();
        if dev.len(&cache.gates) < d.gates() || dev.len(&cache.c) < d.states() {
            return Err(Error::invalid(
                "LSTM backward",
                format!(
                    "the cache holds the gates of {} values but the input needs {} (run forward on this input first)",
                    dev.len(&cache.gates),
                    d.gates()
                ),
            ));
        }
        let rows = batch * T;
        dev.resize(&mut cache.dgates, d.gates())?;
        let st = &mut cache.state;
        st.start_backward(dev, d.carry(), true)?;
        if rows > 0 {
            if T > 1 || st.given {
                // W_hh packed once for the step products below.
                let g = Gemm::dense(batch, H, G, false, false);
                dev.pack_gemm_b(&g, &self.weight_hh.buf, &mut cache.whh)?;
            }
            for t in (0..T).rev() {
                dev.lstm_cell_bwd(
                    &d,
                    t,
                    &st.c0,
                    &cache.gates,
                    &cache.c,
                    &dy.buf,
                    &st.dh,
                    &mut st.dc,
                    &mut cache.dgates,
                )?;
                if t > 0 || st.given {
                    // δh = ∂L/∂a_t·W_hh, into step t − 1 (∂L/∂h0 after step 0).
                    let g = Gemm {
                        a_off: t * G,
                        lda: T * G,
                        ..Gemm::dense(batch, H, G, false, false)
                    };
                    dev.gemm_packed_b(
                        &g,
                        &cache.dgates,
                        &self.weight_hh.buf,
                        &cache.whh,
                        &mut st.dh,
                    )?;
                }
            }
        }
        // ∂L/∂W_ih (gacc)= ∂L/∂aᵀ·x over every row.
        dev.gemm(
            &Gemm::dense(G, I, rows, true, false).acc(gacc),
            &cache.dgates,
            &x.buf,
            &mut grads.weight_ih.buf,
        )?;
        // ∂L/∂W_hh (gacc)= Σ_b Σ_{t≥1} ∂L/∂a_{b,t}ᵀ·h_{b,t−1}: one product over every row.
        whh_grad(
            dev,
            batch,
            T,
            H,
            G,
            &cache.dgates,
            &y.buf,
            &mut cache.hprev,
            &mut grads.weight_hh.buf,
            gacc,
        )?;
        let (dims, dw) = ((batch, T, G, H), &mut grads.weight_hh.buf);
        st.add_h0_weight_grad(dev, &cache.dgates, dw, dims)?;
        for gb in [&mut grads.bias_ih, &mut grads.bias_hh]
            .into_iter()
            .flatten()
        {
            dev.bias_grad(&cache.dgates, &mut gb.buf, rows, G, gacc)?;
        }
        if let Some((dx, acc)) = dx {
            prepare_dx(dx, acc, batch)?;
            dev.gemm(
                &Gemm::dense(rows, I, G, false, false).acc(acc),
                &cache.dgates,
                &self.weight_ih.buf,
                &mut dx.buf,
            )?;
        }
        Ok(())
    }
}

/// ONNX: its `LSTM` operator (one layer, forward direction, zero initial
/// state), the gate blocks reordered from PyTorch's `i, f, g, o` to
/// ONNX's `i, o, f, c` by nodes over the `state_dict` initializers
/// (`recurrent/onnx.rs`). With a given initial state (`state = s`) it has
/// no ONNX form yet (an error naming it).
impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize> Onnx
    for Lstm<E, D, T, I, H, G>
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
impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize>
    OnnxCell for Lstm<E, D, T, I, H, G>
{
    const HAS_C: bool = true;
    fn onnx_cell(&self, g: &mut Graph, at: &str, x: &str, role: CellRole<'_>) -> Result<CellOut> {
        let cell = CellOnnx {
            op: "LSTM",
            hidden: H,
            order: &[0, 3, 1, 2],
            weight_ih: &self.weight_ih,
            weight_hh: &self.weight_hh,
            bias_ih: self.bias_ih.as_ref(),
            bias_hh: self.bias_hh.as_ref(),
            attrs: Vec::new(),
        };
        cell.write(g, at, x, role)
    }
}

#[cfg(test)]
mod tests;

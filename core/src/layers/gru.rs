//! A gated recurrent unit layer over a sequence (PyTorch's `nn.GRU(I, H,
//! batch_first=True)`, one layer, one direction), with its
//! kernel family, [`GruKernels`]: the layer, the kernels' trait and their CPU
//! bodies are this one file (the CUDA source is `cuda/src/kernels/gru.cu`).
//! Stacked and bidirectional layers (PyTorch's `num_layers`, `bidirectional`,
//! `dropout`) are [`super::Recurrent`] over this cell (`recurrent.rs`).
//!
//! Input `[T, I]`, output `[T, H]`: every hidden state `h_t`. At step `t`,
//! from `x_t` and `h_{t−1}` (`h_{−1} = h0`: zero, or the state
//! [`super::Recurrent`] was given, see [`CellState`]), with the input part
//! `a = W_ih·x_t + b_ih` and the recurrent part `ĥ = W_hh·h_{t−1} + b_hh`,
//! each three blocks of `H` in PyTorch's order `r, z, n`:
//!
//! * `r = σ(a_r + ĥ_r)`, `z = σ(a_z + ĥ_z)`;
//! * `n = tanh(a_n + r⊙ĥ_n)` (the reset gate multiplies the recurrent part
//!   *with* its bias `b_hn`, so the two parts are kept apart);
//! * `h_t = (1 − z)⊙n + z⊙h_{t−1}`.
//!
//! Backpropagation through time, from `δh = ∂L/∂h_t` (the output's gradient
//! plus what step `t + 1` sends back), for `t = T−1 … 0`:
//!
//! * `∂L/∂n = δh⊙(1 − z)`, `∂L/∂z = δh⊙(h_{t−1} − n)`;
//! * `∂L/∂(a_n + r⊙ĥ_n) = ∂L/∂n⊙(1 − n²) =: g_n`, so `∂L/∂a_n = g_n`,
//!   `∂L/∂ĥ_n = g_n⊙r` and `∂L/∂r = g_n⊙ĥ_n`;
//! * through the sigmoids: `g_r = ∂L/∂r⊙r(1 − r)`, `g_z = ∂L/∂z⊙z(1 − z)`,
//!   which are both `∂L/∂a` and `∂L/∂ĥ` of their gate;
//! * so `∂L/∂a = (g_r, g_z, g_n)` and `∂L/∂ĥ = (g_r, g_z, g_n⊙r)`;
//! * `δh ← z⊙δh + W_hhᵀ·∂L/∂ĥ` (into step `t − 1`).
//!
//! Then, over all steps at once: `∂L/∂W_ih = Σ_t ∂L/∂a_t·x_tᵀ`,
//! `∂L/∂W_hh = Σ_t ∂L/∂ĥ_t·h_{t−1}ᵀ` (the `t = 0` term only from a given
//! `h0`), `∂L/∂b_ih = Σ_t ∂L/∂a_t`,
//! `∂L/∂b_hh = Σ_t ∂L/∂ĥ_t`, `∂L/∂x_t = W_ihᵀ·∂L/∂a_t`.
//!
//! The products: the input part of every gate at every step is one GEMM over
//! all `B·T` rows (`x·W_ihᵀ`), the recurrent part one GEMM per step over the
//! batch (`h_{t−1}·W_hhᵀ`, rows strided by `T·3H`), as are the backward's
//! `δh`, all reading `W_hh` packed once per pass (`Backend::pack_gemm_b`);
//! the weight gradients are one GEMM each (`W_hh`'s over `h_{t−1}` shifted
//! into a buffer of every row, `recurrent/hh.rs`). Cached: the activated gates `(r, z, n)` and the recurrent part
//! `ĥ` of every step.
//!
//! Parameters as PyTorch, each drawn from `U(−1/√H, 1/√H)`:
//! `weight_ih_l0 [3H, I]`, `weight_hh_l0 [3H, H]`, `bias_ih_l0 [3H]`,
//! `bias_hh_l0 [3H]`.
//!
//! # Shapes
//! `Gru<E, D, T, I, H, G>` maps `[T, I]` to `[T, H]`; `G = 3H` (checked by
//! [`Build`], and written by `network!`, whose `GRU(H)` fills in the rest).

use super::conv_common::prepare_dx;
use super::fit;
use super::recurrent::hh::whh_grad;
use super::recurrent::onnx::{leave_final, CellOnnx, CellOut, CellRole, OnnxCell};
use super::recurrent::{recurrent_cell_params, CellCache, CellState, L0_NAMES};
use crate::device::{need, Acc, Backend, Gemm, PackedB};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::kernels::unary::sigmoid;
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{Graph, Onnx};
use crate::shape::{S1, S2};
use crate::tensor::Tensor;
use crate::{Cpu, Rng};

// ---- the kernel family ---------------------------------------------------------

/// The layout a GRU cell kernel sees: `batch` sequences of `steps` steps,
/// `hidden` units. Gates (input and recurrent parts) are
/// `[batch, steps, 3·hidden]`, outputs `[batch, steps, hidden]`, the carry
/// `[batch, hidden]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GruDims {
    /// Sequences.
    pub batch: usize,
    /// Steps per sequence (`T`).
    pub steps: usize,
    /// Hidden units (`H`).
    pub hidden: usize,
}

impl GruDims {
    fn gates(&self) -> usize {
        self.batch * self.steps * 3 * self.hidden
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

/// The GRU cell kernels of a device, for element type `E`: one step of every
/// sequence of the batch, element-wise over `(sample, unit)`.
///
/// Used by [`Gru`], which states `D: GruKernels<E>`. Layers call the provided
/// methods, which check arguments and lengths once for every device and then
/// call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no GRU kernels for `{E}`",
    label = "needed by GRU"
)]
pub trait GruKernels<E: Elem>: Backend<E> {
    /// Step `t`: `gates` holds the input parts `a = (a_r, a_z, a_n)` of step
    /// `t` and is overwritten with `(r, z, n)`, reading the recurrent parts
    /// `ĥ` of step `t` from `hg`; `h_t = (1 − z)⊙n + z⊙h_{t−1}` (`h_{t−1}`
    /// read from `h`, and at `t = 0` from `h0`, `[batch, H]`).
    fn gru_cell_fwd(
        &self,
        d: &GruDims,
        t: usize,
        h0: &Self::Buf<E>,
        gates: &mut Self::Buf<E>,
        hg: &Self::Buf<E>,
        h: &mut Self::Buf<E>,
    ) -> Result<()> {
        d.check("gru_cell_fwd", t)?;
        need(self, "gru_cell_fwd h0", h0, d.carry())?;
        need(self, "gru_cell_fwd gates", gates, d.gates())?;
        need(self, "gru_cell_fwd hg", hg, d.gates())?;
        need(self, "gru_cell_fwd h", h, d.states())?;
        if d.carry() == 0 {
            return Ok(());
        }
        self.raw_gru_cell_fwd(d, t, h0, gates, hg, h)
    }

    /// Step `t` of the backward pass (the module doc's formulas): reads the
    /// activated gates, `ĥ`, the outputs `h` (and `h0` at `t = 0`), `dy_t`
    /// and the carry `dh` (`∂L/∂h_t` from later steps; at the last step zero
    /// or the final state's gradient); writes `∂L/∂a_t`
    /// into step `t` of `dgates` and `∂L/∂ĥ_t` into step `t` of `dhg`, and
    /// replaces `dh` with `z⊙δh` (the direct part of `∂L/∂h_{t−1}`; the
    /// layer adds `W_hhᵀ·∂L/∂ĥ_t`).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn gru_cell_bwd(
        &self,
        d: &GruDims,
        t: usize,
        h0: &Self::Buf<E>,
        gates: &Self::Buf<E>,
        hg: &Self::Buf<E>,
        h: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dh: &mut Self::Buf<E>,
        dgates: &mut Self::Buf<E>,
        dhg: &mut Self::Buf<E>,
    ) -> Result<()> {
        d.check("gru_cell_bwd", t)?;
        need(self, "gru_cell_bwd h0", h0, d.carry())?;
        need(self, "gru_cell_bwd gates", gates, d.gates())?;
        need(self, "gru_cell_bwd hg", hg, d.gates())?;
        need(self, "gru_cell_bwd h", h, d.states())?;
        need(self, "gru_cell_bwd dy", dy, d.states())?;
        need(self, "gru_cell_bwd dh", dh, d.carry())?;
        need(self, "gru_cell_bwd dgates", dgates, d.gates())?;
        need(self, "gru_cell_bwd dhg", dhg, d.gates())?;
        if d.carry() == 0 {
            return Ok(());
        }
        self.raw_gru_cell_bwd(d, t, h0, gates, hg, h, dy, dh, dgates, dhg)
    }

    /// [`GruKernels::gru_cell_fwd`] after its checks.
    fn raw_gru_cell_fwd(
        &self,
        d: &GruDims,
        t: usize,
        h0: &Self::Buf<E>,
        gates: &mut Self::Buf<E>,
        hg: &Self::Buf<E>,
        h: &mut Self::Buf<E>,
    ) -> Result<()>;

    /// [`GruKernels::gru_cell_bwd`] after its checks.
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_gru_cell_bwd(
        &self,
        d: &GruDims,
        t: usize,
        h0: &Self::Buf<E>,
        gates: &Self::Buf<E>,
        hg: &Self::Buf<E>,
        h: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dh: &mut Self::Buf<E>,
        dgates: &mut Self::Buf<E>,
        dhg: &mut Self::Buf<E>,
    ) -> Result<()>;
}

impl<E: Elem> GruKernels<E> for Cpu {
    fn raw_gru_cell_fwd(
        &self,
        d: &GruDims,
        t: usize,
        h0: &Vec<E>,
        gates: &mut Vec<E>,
        hg: &Vec<E>,
        h: &mut Vec<E>,
    ) -> Result<()> {
        let (hn, steps) = (d.hidden, d.steps);
        let one = E::one();
        for b in 0..d.batch {
            let row = b * steps + t;
            let g = &mut gates[row * 3 * hn..][..3 * hn];
            let r_ = &hg[row * 3 * hn..][..3 * hn];
            for j in 0..hn {
                let r = sigmoid(g[j] + r_[j]);
                let z = sigmoid(g[hn + j] + r_[hn + j]);
                let n = (g[2 * hn + j] + r * r_[2 * hn + j]).tanh();
                g[j] = r;
                g[hn + j] = z;
                g[2 * hn + j] = n;
                let prev = if t > 0 {
                    h[(row - 1) * hn + j]
                } else {
                    h0[b * hn + j]
                };
                h[row * hn + j] = (one - z) * n + z * prev;
            }
        }
        Ok(())
    }

    fn raw_gru_cell_bwd(
        &self,
        d: &GruDims,
        t: usize,
        h0: &Vec<E>,
        gates: &Vec<E>,
        hg: &Vec<E>,
        h: &Vec<E>,
        dy: &Vec<E>,
        dh: &mut Vec<E>,
        dgates: &mut Vec<E>,
        dhg: &mut Vec<E>,
    ) -> Result<()> {
        let (hn, steps) = (d.hidden, d.steps);
        let one = E::one();
        for b in 0..d.batch {
            let row = b * steps + t;
            let g = &gates[row * 3 * hn..][..3 * hn];
            let r_ = &hg[row * 3 * hn..][..3 * hn];
            let da = &mut dgates[row * 3 * hn..][..3 * hn];
            let dr_ = &mut dhg[row * 3 * hn..][..3 * hn];
            for j in 0..hn {
                let (r, z, n) = (g[j], g[hn + j], g[2 * hn + j]);
                let prev = if t > 0 {
                    h[(row - 1) * hn + j]
                } else {
                    h0[b * hn + j]
                };
                let dhv = dy[row * hn + j] + dh[b * hn + j];
                let gn = dhv * (one - z) * (one - n * n);
                let gz = dhv * (prev - n) * z * (one - z);
                let gr = gn * r_[2 * hn + j] * r * (one - r);
                da[j] = gr;
                da[hn + j] = gz;
                da[2 * hn + j] = gn;
                dr_[j] = gr;
                dr_[hn + j] = gz;
                dr_[2 * hn + j] = gn * r;
                dh[b * hn + j] = dhv * z;
            }
        }
        Ok(())
    }
}

// ---- the layer -------------------------------------------------------------------

/// Options of a GRU layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GruConfig {
    /// `bias_ih_l0` and `bias_hh_l0` (default `true`, as PyTorch's `bias`).
    pub bias: bool,
}

impl Default for GruConfig {
    fn default() -> Self {
        GruConfig { bias: true }
    }
}

/// A GRU over sequences `[T, I]`, returning every hidden state `[T, H]`
/// (see the module doc); `G = 3H`.
pub struct Gru<
    E: Elem,
    D: Backend<E>,
    const T: usize,
    const I: usize,
    const H: usize,
    const G: usize,
> {
    /// `W_ih`, `[3H, I]`, gate blocks `r, z, n`.
    pub weight_ih: Tensor<S2<G, I>, E, D>,
    /// `W_hh`, `[3H, H]`.
    pub weight_hh: Tensor<S2<G, H>, E, D>,
    /// `b_ih`, `[3H]` (absent with `bias = false`).
    pub bias_ih: Option<Tensor<S1<G>, E, D>>,
    /// `b_hh`, `[3H]` (absent with `bias = false`).
    pub bias_hh: Option<Tensor<S1<G>, E, D>>,
}

/// Gradients of a [`Gru`].
pub struct GruGrads<E: Elem, D: Backend<E>, const I: usize, const H: usize, const G: usize> {
    /// `∂L/∂W_ih`.
    pub weight_ih: Tensor<S2<G, I>, E, D>,
    /// `∂L/∂W_hh`.
    pub weight_hh: Tensor<S2<G, H>, E, D>,
    /// `∂L/∂b_ih`.
    pub bias_ih: Option<Tensor<S1<G>, E, D>>,
    /// `∂L/∂b_hh`.
    pub bias_hh: Option<Tensor<S1<G>, E, D>>,
}

/// The activated gates and recurrent parts of the last forward pass, the
/// backward pass's buffers (the two parts' gradients), and the state at the
/// sequence's ends (`h0` and the carry, [`CellState`]).
pub struct GruCache<E: Elem, D: Backend<E>> {
    gates: D::Buf<E>,
    hg: D::Buf<E>,
    dgates: D::Buf<E>,
    dhg: D::Buf<E>,
    state: CellState<E, D>,
    /// `W_hh` packed for the step products (`W_hhᵀ` in the forward pass,
    /// `W_hh` in the backward pass; one buffer, repacked by each pass).
    whh: PackedB<E>,
    /// The backward pass's `h_{t−1}` of every row ([`whh_grad`]).
    hprev: D::Buf<E>,
}

impl<E: Elem, D: Backend<E>> CellCache<E, D> for GruCache<E, D> {
    fn state(&self) -> &CellState<E, D> {
        &self.state
    }
    fn state_mut(&mut self) -> &mut CellState<E, D> {
        &mut self.state
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize>
    Build<E, D> for Gru<E, D, T, I, H, G>
{
    type Config = GruConfig;
    fn build(dev: &D, rng: &mut Rng, cfg: GruConfig) -> Result<Self> {
        if G != 3 * H || H == 0 || I == 0 || T == 0 {
            return Err(Error::invalid(
                "GRU",
                format!("need T, I, H ≥ 1 and G = 3·H; got T = {T}, I = {I}, H = {H}, G = {G}"),
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
        Ok(Gru {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        })
    }
}

impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize>
    Module<E, D> for Gru<E, D, T, I, H, G>
{
    type Grads = GruGrads<E, D, I, H, G>;
    fn grads(&self) -> Result<Self::Grads> {
        let dev = self.weight_ih.device();
        let opt =
            |p: &Option<Tensor<S1<G>, E, D>>| p.as_ref().map(|_| Tensor::zeros(dev, 1)).transpose();
        Ok(GruGrads {
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
recurrent_cell_params!(impl[E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize] Gru<E, D, T, I, H, G>, GruGrads<E, D, I, H, G>);

impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize>
    Gru<E, D, T, I, H, G>
{
    fn dims(batch: usize) -> GruDims {
        GruDims {
            batch,
            steps: T,
            hidden: H,
        }
    }
}

impl<E: Elem, D: GruKernels<E>, const T: usize, const I: usize, const H: usize, const G: usize>
    Layer<E, D> for Gru<E, D, T, I, H, G>
{
    type In = S2<T, I>;
    type Out = S2<T, H>;
    type Cache = GruCache<E, D>;
    const FLOPS: usize = T * G * (I + H);
    fn cache(&self) -> Result<Self::Cache> {
        let dev = self.weight_ih.device();
        Ok(GruCache {
            gates: dev.zeros(0)?,
            hg: dev.zeros(0)?,
            dgates: dev.zeros(0)?,
            dhg: dev.zeros(0)?,
            state: CellState::new(dev)?,
            whh: PackedB::new(),
            hprev: dev.zeros(0)?,
        })
    }

    /// The gates' input part for all steps (one GEMM and `b_ih`), then step
    /// by step the recurrent part (`b_hh` and one GEMM) and the cell.
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
        dev.resize(&mut cache.hg, d.gates())?;
        if rows == 0 {
            return Ok(());
        }
        // a = x·W_ihᵀ (+ b_ih) for every row (sample, step).
        dev.gemm(
            &Gemm::dense(rows, G, I, false, true),
            &x.buf,
            &self.weight_ih.buf,
            &mut cache.gates,
        )?;
        if let Some(b) = &self.bias_ih {
            dev.add_bias(&mut cache.gates, &b.buf, rows, G)?;
        }
        // ĥ = b_hh for every row (0 without biases); the products follow.
        dev.fill(&mut cache.hg, d.gates(), E::zero())?;
        if let Some(b) = &self.bias_hh {
            dev.add_bias(&mut cache.hg, &b.buf, rows, G)?;
        }
        cache.state.start_forward(dev, d.carry(), false)?;
        let dims = (batch, T, G, H);
        cache
            .state
            .add_h0_product(dev, &self.weight_hh.buf, &mut cache.hg, dims)?;
        if T > 1 {
            // W_hhᵀ packed once for the T − 1 step products below.
            let g = Gemm::dense(batch, G, H, false, true);
            dev.pack_gemm_b(&g, &self.weight_hh.buf, &mut cache.whh)?;
        }
        for t in 0..T {
            if t > 0 {
                // ĥ_t += h_{t−1}·W_hhᵀ, rows strided by a sequence.
                let g = Gemm {
                    a_off: (t - 1) * H,
                    lda: T * H,
                    c_off: t * G,
                    ldc: T * G,
                    ..Gemm::dense(batch, G, H, false, true)
                }
                .acc(Acc::Add);
                dev.gemm_packed_b(&g, &y.buf, &self.weight_hh.buf, &cache.whh, &mut cache.hg)?;
            }
            let h0 = &cache.state.h0;
            dev.gru_cell_fwd(&d, t, h0, &mut cache.gates, &cache.hg, &mut y.buf)?;
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
            "GRU backward",
            "input",
            batch,
            "output gradient",
            dy.batch(),
        )?;
        crate::error::check_batch("GRU backward", "input", batch, "output", y.batch())?;
        let d = Self::dims(batch);
        let dev = x.device();
        if dev.len(&cache.gates) < d.gates() || dev.len(&cache.hg) < d.gates() {
            return Err(Error::invalid(
                "GRU backward",
                format!(
                    "the cache holds the gates of {} values but the input needs {} (run forward on this input first)",
                    dev.len(&cache.gates),
                    d.gates()
                ),
            ));
        }
        let rows = batch * T;
        dev.resize(&mut cache.dgates, d.gates())?;
        dev.resize(&mut cache.dhg, d.gates())?;
        let st = &mut cache.state;
        st.start_backward(dev, d.carry(), false)?;
        if rows > 0 {
            if T > 1 || st.given {
                // W_hh packed once for the step products below.
                let g = Gemm::dense(batch, H, G, false, false);
                dev.pack_gemm_b(&g, &self.weight_hh.buf, &mut cache.whh)?;
            }
            for t in (0..T).rev() {
                dev.gru_cell_bwd(
                    &d,
                    t,
                    &st.h0,
                    &cache.gates,
                    &cache.hg,
                    &y.buf,
                    &dy.buf,
                    &mut st.dh,
                    &mut cache.dgates,
                    &mut cache.dhg,
                )?;
                if t > 0 || st.given {
                    // δh (= z⊙δh from the cell) += ∂L/∂ĥ_t·W_hh, into step
                    // t − 1 (∂L/∂h0 after step 0).
                    let g = Gemm {
                        a_off: t * G,
                        lda: T * G,
                        ..Gemm::dense(batch, H, G, false, false)
                    }
                    .acc(Acc::Add);
                    dev.gemm_packed_b(&g, &cache.dhg, &self.weight_hh.buf, &cache.whh, &mut st.dh)?;
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
        // ∂L/∂W_hh (gacc)= Σ_b Σ_{t≥1} ∂L/∂ĥ_{b,t}ᵀ·h_{b,t−1}: one product over every row.
        whh_grad(
            dev,
            batch,
            T,
            H,
            G,
            &cache.dhg,
            &y.buf,
            &mut cache.hprev,
            &mut grads.weight_hh.buf,
            gacc,
        )?;
        let (dims, dw) = ((batch, T, G, H), &mut grads.weight_hh.buf);
        st.add_h0_weight_grad(dev, &cache.dhg, dw, dims)?;
        if let Some(gb) = &mut grads.bias_ih {
            dev.bias_grad(&cache.dgates, &mut gb.buf, rows, G, gacc)?;
        }
        if let Some(gb) = &mut grads.bias_hh {
            dev.bias_grad(&cache.dhg, &mut gb.buf, rows, G, gacc)?;
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

/// ONNX: its `GRU` operator (one layer, forward direction, zero initial
/// state, `linear_before_reset = 1`: the reset gate multiplies `W_hn·h + b_hn`, as here), the gate blocks reordered from PyTorch's `r, z, n` to
/// ONNX's `z, r, h` by nodes over the `state_dict` initializers
/// (`recurrent/onnx.rs`). With a given initial state (`state = s`) it has
/// no ONNX form yet (an error naming it).
impl<E: Elem, D: Backend<E>, const T: usize, const I: usize, const H: usize, const G: usize> Onnx
    for Gru<E, D, T, I, H, G>
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
    OnnxCell for Gru<E, D, T, I, H, G>
{
    const HAS_C: bool = false;
    fn onnx_cell(&self, g: &mut Graph, at: &str, x: &str, role: CellRole<'_>) -> Result<CellOut> {
        let cell = CellOnnx {
            op: "GRU",
            hidden: H,
            order: &[1, 0, 2],
            weight_ih: &self.weight_ih,
            weight_hh: &self.weight_hh,
            bias_ih: self.bias_ih.as_ref(),
            bias_hh: self.bias_hh.as_ref(),
            attrs: vec![crate::onnx::graph::int("linear_before_reset", 1)],
        };
        cell.write(g, at, x, role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_layer, random_input};

    /// Two steps by hand: H = 1, I = 1, every weight 0.5, no biases,
    /// x = (1, −1). Step 0 (h = 0): r = z = σ(0.5), n = tanh(0.5),
    /// h₀ = (1 − z)·n. Step 1: r = z = σ(−0.5 + 0.5·h₀),
    /// n = tanh(−0.5 + r·0.5·h₀), h₁ = (1 − z)·n + z·h₀.
    #[test]
    fn two_steps_by_hand() {
        let mut l =
            Gru::<f64, Cpu, 2, 1, 1, 3>::build(&Cpu, &mut crate::rng(0), GruConfig { bias: false })
                .unwrap();
        l.weight_ih.copy_from_slice(&[0.5; 3]).unwrap();
        l.weight_hh.copy_from_slice(&[0.5; 3]).unwrap();
        let x = Tensor::<S2<2, 1>, f64>::from_slice(&Cpu, &[1.0, -1.0]).unwrap();
        let (mut y, mut c) = (Tensor::empty(&Cpu).unwrap(), l.cache().unwrap());
        l.forward(&x, &mut y, &mut c).unwrap();
        let y = y.to_vec().unwrap();
        let s = |v: f64| 1.0 / (1.0 + (-v).exp());
        let h0 = (1.0 - s(0.5)) * 0.5f64.tanh();
        let z = s(-0.5 + 0.5 * h0);
        let h1 = (1.0 - z) * (-0.5 + z * 0.5 * h0).tanh() + z * h0;
        assert!(
            (y[0] - h0).abs() < 1e-15 && (y[1] - h1).abs() < 1e-15,
            "{y:?}"
        );
        // The same numbers computed independently in Python's math.
        assert!((y[0] - 0.17446802061504182).abs() < 1e-15, "{}", y[0]);
        assert!((y[1] - -0.1918953095549146).abs() < 1e-15, "{}", y[1]);
    }

    #[test]
    fn names_shapes_and_init_range() {
        let l = Gru::<f32, Cpu, 3, 5, 4, 12>::build(&Cpu, &mut crate::rng(0), Default::default())
            .unwrap();
        let mut seen = Vec::new();
        l.visit(&Path::ROOT.child("rnn"), &mut |p, r| {
            seen.push(format!("{p} {:?}", r.dims))
        });
        assert_eq!(
            seen,
            [
                "rnn.weight_ih_l0 [12, 5]",
                "rnn.weight_hh_l0 [12, 4]",
                "rnn.bias_ih_l0 [12]",
                "rnn.bias_hh_l0 [12]"
            ]
        );
        let w = l.weight_hh.to_vec().unwrap();
        assert!(w.iter().all(|v| v.abs() <= 0.5)); // 1/√4
        assert!(w.iter().any(|v| v.abs() > 0.4));
        let e = Gru::<f32, Cpu, 3, 5, 4, 16>::build(&Cpu, &mut crate::rng(0), Default::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("G = 3·H"), "{e}");
    }

    /// A sequence's output at step t depends on earlier steps only.
    #[test]
    fn outputs_do_not_depend_on_later_steps() {
        let l = Gru::<f64, Cpu, 4, 3, 2, 6>::build(&Cpu, &mut crate::rng(1), Default::default())
            .unwrap();
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
        let mut a =
            Gru::<f64, Cpu, 4, 3, 2, 6>::build(&Cpu, &mut crate::rng(5), Default::default())
                .unwrap();
        assert!(check_layer(&mut a, 3, 1).unwrap() < 1e-6);
        let mut b =
            Gru::<f64, Cpu, 1, 2, 3, 9>::build(&Cpu, &mut crate::rng(6), GruConfig { bias: false })
                .unwrap();
        assert!(check_layer(&mut b, 2, 2).unwrap() < 1e-6);
        let mut c =
            Gru::<f64, Cpu, 6, 2, 3, 9>::build(&Cpu, &mut crate::rng(7), GruConfig { bias: false })
                .unwrap();
        assert!(check_layer(&mut c, 2, 3).unwrap() < 1e-6);
    }
}

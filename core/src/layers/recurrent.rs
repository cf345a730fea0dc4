//! Stacked and bidirectional recurrent layers (PyTorch's `num_layers`,
//! `bidirectional` and `dropout` of `nn.LSTM`/`nn.GRU`/`nn.RNN` with
//! `batch_first=True`), written once for the three cells: [`Recurrent`] holds
//! one single-direction cell ([`super::Lstm`], [`super::Gru`] or
//! [`super::Rnn`], each a [`RecurrentCell`]) per layer and direction and
//! composes their own forward and backward passes, so each cell keeps its
//! fast path (the input part of the gates for all `T` steps in one GEMM, one
//! GEMM per step for the recurrent part) and its kernels are unchanged.
//!
//! With `L` layers and `dirs ∈ {1, 2}` directions, layer `k` reads
//! `x⁽ᵏ⁾` (`x⁽⁰⁾` the input `[T, I]`, `x⁽ᵏ⁾ = drop(y⁽ᵏ⁻¹⁾)` after that,
//! `[T, dirs·H]`) and writes
//!
//! * forward direction: `→h_t = cell(x⁽ᵏ⁾_t, →h_{t−1})`, `t = 0 … T−1`;
//! * reverse direction (`bidirectional`): `←h_t = cell(x⁽ᵏ⁾_t, ←h_{t+1})`,
//!   `t = T−1 … 0`: the same cell run on the sequence read backwards, each
//!   output placed back at its original position;
//! * `y⁽ᵏ⁾_t = [→h_t | ←h_t]` (forward first, as PyTorch concatenates).
//!
//! `drop` is inverted dropout with probability `p` between layers (not after
//! the last), in training only, its mask drawn as [`super::Dropout`]'s from a
//! seed taken from the [`TrainCtx`]. The output is `y⁽ᴸ⁻¹⁾`, `[T, dirs·H]`,
//! or with `last` only the final states `[→h_{T−1} | ←h_0]`, `[dirs·H]`
//! (PyTorch's `h_n[-dirs:]` of the top layer: the reverse direction's final
//! state is the one after it has read step 0).
//!
//! Backward runs the same composition backwards: the output gradient is
//! split into each direction's columns (time-reversed for the reverse
//! direction; with `last`, zero but for the final step), each cell runs its
//! own backpropagation through time, the input gradients of the two
//! directions are added (the reverse one reversed back), dropout's mask is
//! applied, and the result is the output gradient of the layer below.
//!
//! Parameters as PyTorch: `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`,
//! `bias_hh_l{k}`, and `…_reverse` for the reverse direction, in the order
//! layer, direction, then those four; layer `k > 0` has input size `dirs·H`.
//! Cached: each cell's own cache, its input (reversed for the reverse
//! direction) and output, and the dropout seeds.
//!
//! # Shapes
//! `Recurrent<E, D, L0, LU, O, L, DIRS>`: `L0` is the cell of layer 0
//! (`[T, I] → [T, H]`), `LU` that of the layers above (`[T, DIRS·H] →
//! [T, H]`), `O` the output, `S2<T, DIRS·H>` or `S1<DIRS·H>`. Stable Rust has
//! no arithmetic on const generics, so `network!` writes every derived size
//! and [`Build`] checks them.

pub(crate) mod hh;

use super::fit;
use crate::device::{Acc, Backend, Block};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::DropoutKernels;
use crate::module::{Build, Layer, Module, ParamMut, ParamRef, Path, Role, TrainCtx};
use crate::onnx::{graph, Graph, Onnx};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::Rng;
use onnx::{CellRole, OnnxCell};
use rand::RngCore;
use std::marker::PhantomData;

mod cell_params;
pub(crate) mod onnx;
mod state;
pub(crate) use state::{
    cell_final_state, cell_final_state_backward, cell_forward_from, cell_layout, cell_state_grad,
};
pub use state::{CellCache, CellState, RecurrentState};

/// PyTorch's parameter names of layer 0's forward direction.
pub const L0_NAMES: [&str; 4] = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"];

/// PyTorch's parameter names of layer `k`, direction `reverse`:
/// `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`, with
/// `_reverse` appended for the reverse direction.
pub fn param_names(k: usize, reverse: bool) -> [String; 4] {
    let r = if reverse { "_reverse" } else { "" };
    ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].map(|n| format!("{n}_l{k}{r}"))
}

/// A single-layer, single-direction recurrent cell over a sequence (`[T, I]
/// → [T, H]`, every hidden state; the initial state zero unless set in its
/// cache, [`CellCache`]) whose four parameters can be visited under any
/// names: what [`Recurrent`] stacks.
pub trait RecurrentCell<E: Elem, D: Backend<E>>:
    Layer<E, D, Cache: CellCache<E, D>> + Build<E, D>
{
    /// The device holding the cell's parameters.
    fn device(&self) -> &D;
    /// [`Module::visit`] with `names` for `W_ih`, `W_hh`, `b_ih`, `b_hh`.
    fn visit_as(
        &self,
        names: [&str; 4],
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>),
    );
    /// [`Module::visit_grads`] with `names`.
    fn visit_grads_as(
        &mut self,
        g: &Self::Grads,
        names: [&str; 4],
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    );
    /// [`Module::visit_mut`] with `names`.
    #[allow(clippy::type_complexity)] // the visitor's signature, as in `Module`
    fn visit_mut_as(
        &mut self,
        names: [&str; 4],
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    );
}

pub(crate) use cell_params::recurrent_cell_params;

/// Options of a [`Recurrent`] stack.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentConfig<C> {
    /// Every cell's options (`bias`, and the RNN's nonlinearity).
    pub cell: C,
    /// Dropout probability on the outputs of every layer but the last, in
    /// training (PyTorch's `dropout`, default 0).
    pub dropout: f64,
}

/// `L` layers of `DIRS` directions of recurrent cells (see the module doc):
/// `L0` is layer 0's cell type, `LU` the type of the layers above, `O` the
/// output shape (`[T, DIRS·H]`, or `[DIRS·H]` for the final states only).
pub struct Recurrent<E: Elem, D: Backend<E>, L0, LU, O, const L: usize, const DIRS: usize> {
    /// Layer 0: the forward direction, then the reverse one.
    pub first: Vec<L0>,
    /// Layers `1 … L−1`, `DIRS` cells each, layer by layer.
    pub upper: Vec<LU>,
    names: Vec<[String; 4]>,
    dropout: f64,
    _m: PhantomData<(E, D, O)>,
}

/// The gradients of a [`Recurrent`], cell by cell as its parameters.
pub struct RecurrentGrads<G0, GU> {
    /// Layer 0's cells' gradients.
    pub first: Vec<G0>,
    /// The upper layers' cells' gradients.
    pub upper: Vec<GU>,
}

/// What a [`Recurrent`]'s backward needs: every cell's cache, input and
/// output, the dropout seeds, and scratch buffers for the backward pass.
pub struct RecurrentCache<E: Elem, D: Backend<E>, L0: Layer<E, D>, LU: Layer<E, D>> {
    c0: Vec<L0::Cache>,
    cu: Vec<LU::Cache>,
    /// Each cell's output in its own processing order.
    y0: Vec<Tensor<L0::Out, E, D>>,
    yu: Vec<Tensor<LU::Out, E, D>>,
    /// The reverse cells' inputs (the layer's input read backwards).
    xr0: Tensor<L0::In, E, D>,
    xru: Vec<Tensor<LU::In, E, D>>,
    /// Layer `k ≥ 1`'s input before (`hs`) and after (`hd`) dropout.
    hs: Vec<Tensor<LU::In, E, D>>,
    hd: Vec<Tensor<LU::In, E, D>>,
    seeds: Vec<u64>,
    dropped: bool,
    dy0: Vec<Tensor<L0::Out, E, D>>,
    dyu: Vec<Tensor<LU::Out, E, D>>,
    dxr0: Tensor<L0::In, E, D>,
    dxr: Tensor<LU::In, E, D>,
    dxin: Tensor<LU::In, E, D>,
    dcat: Tensor<LU::In, E, D>,
}

fn dim(d: &[usize], i: usize) -> usize {
    d.get(i).copied().unwrap_or(0)
}

/// `dst[b, T−1−s, :] (acc)= src[b, s, :]` for rows of `w`.
fn reverse_time<E: Elem, D: Backend<E>>(
    dev: &D,
    src: &D::Buf<E>,
    dst: &mut D::Buf<E>,
    (batch, t, w): (usize, usize, usize),
    acc: Acc,
) -> Result<()> {
    for s in 0..t {
        let b = Block {
            rows: batch,
            cols: w,
            src_ld: t * w,
            src_off: s * w,
            dst_ld: t * w,
            dst_off: (t - 1 - s) * w,
        };
        dev.copy_block(&b, src, dst, acc)?;
    }
    Ok(())
}

/// Moves between a direction's outputs in its processing order (`[B, T, H]`)
/// and its columns `dir·H…` of the concatenation (`[B, T, DIRS·H]`), time
/// reversed for `dir = 1`: `to_cat` places, otherwise takes.
fn cat_move<E: Elem, D: Backend<E>>(
    dev: &D,
    src: &D::Buf<E>,
    dst: &mut D::Buf<E>,
    (batch, t, h, dirs, dir): (usize, usize, usize, usize, usize),
    to_cat: bool,
) -> Result<()> {
    let (dir_ld, cat_ld) = if dir == 0 {
        (h, dirs * h)
    } else {
        (t * h, t * dirs * h)
    };
    let steps = if dir == 0 { 1 } else { t };
    let rows = if dir == 0 { batch * t } else { batch };
    for s in 0..steps {
        let (dir_off, cat_off) = if dir == 0 {
            (0, 0)
        } else {
            (s * h, (t - 1 - s) * dirs * h + h)
        };
        let b = if to_cat {
            Block {
                rows,
                cols: h,
                src_ld: dir_ld,
                src_off: dir_off,
                dst_ld: cat_ld,
                dst_off: cat_off,
            }
        } else {
            Block {
                rows,
                cols: h,
                src_ld: cat_ld,
                src_off: cat_off,
                dst_ld: dir_ld,
                dst_off: dir_off,
            }
        };
        dev.copy_block(&b, src, dst, Acc::Set)?;
    }
    Ok(())
}

/// The cells, borrowed for evaluation or (mutably, with the context) for training.
enum Mode<'a, L0, LU> {
    Eval(&'a [L0], &'a [LU]),
    Train(&'a mut [L0], &'a mut [LU], &'a mut TrainCtx),
}

impl<E, D, L0, LU, O, const L: usize, const DIRS: usize> Recurrent<E, D, L0, LU, O, L, DIRS>
where
    E: Elem,
    D: Backend<E>,
    L0: RecurrentCell<E, D>,
    LU: RecurrentCell<E, D>,
    O: Shape,
{
    /// `(T, I, H)`.
    fn tih() -> (usize, usize, usize) {
        let (i0, o0) = (<L0::In as Shape>::DIMS, <L0::Out as Shape>::DIMS);
        (dim(i0, 0), dim(i0, 1), dim(o0, 1))
    }

    /// The sizes `network!` wrote, checked against each other.
    fn check() -> Result<()> {
        let (t, i, h) = Self::tih();
        let dh = DIRS * h;
        let (i0, o0) = (<L0::In as Shape>::DIMS, <L0::Out as Shape>::DIMS);
        let (iu, ou, o) = (<LU::In as Shape>::DIMS, <LU::Out as Shape>::DIMS, O::DIMS);
        let ok = L >= 1
            && (DIRS == 1 || DIRS == 2)
            && i0 == [t, i]
            && o0 == [t, h]
            && t >= 1
            && h >= 1
            && (L == 1 || (iu == [t, dh] && ou == [t, h]))
            && (o == [t, dh] || o == [dh]);
        if ok {
            return Ok(());
        }
        Err(Error::invalid(
            "recurrent layer",
            format!(
                "need L ≥ 1 layers, DIRS ∈ {{1, 2}}, layer 0 [T, I] → [T, H], the layers above [T, DIRS·H] → [T, H] and an output [T, DIRS·H] or [DIRS·H]; got L = {L}, DIRS = {DIRS}, layer 0 {i0:?} → {o0:?}, above {iu:?} → {ou:?}, output {o:?}"
            ),
        ))
    }
}

impl<E, D, L0, LU, O, const L: usize, const DIRS: usize> Build<E, D>
    for Recurrent<E, D, L0, LU, O, L, DIRS>
where
    E: Elem,
    D: Backend<E>,
    L0: RecurrentCell<E, D>,
    LU: RecurrentCell<E, D, Config = L0::Config>,
    L0::Config: Clone,
    O: Shape,
{
    type Config = RecurrentConfig<L0::Config>;
    fn build(dev: &D, rng: &mut Rng, cfg: Self::Config) -> Result<Self> {
        Self::check()?;
        if !(0.0..=1.0).contains(&cfg.dropout) {
            return Err(Error::invalid(
                "recurrent layer",
                format!("dropout must be in [0, 1], got {}", cfg.dropout),
            ));
        }
        let first = (0..DIRS)
            .map(|_| L0::build(dev, rng, cfg.cell.clone()))
            .collect::<Result<Vec<_>>>()?;
        let upper = (DIRS..L * DIRS)
            .map(|_| LU::build(dev, rng, cfg.cell.clone()))
            .collect::<Result<Vec<_>>>()?;
        let names = (0..L * DIRS)
            .map(|j| param_names(j / DIRS, j % DIRS == 1))
            .collect();
        Ok(Recurrent {
            first,
            upper,
            names,
            dropout: cfg.dropout,
            _m: PhantomData,
        })
    }
}

/// The four names of cell `j` (layer `j / DIRS`, direction `j % DIRS`).
fn names(n: &[[String; 4]], j: usize) -> [&str; 4] {
    let s = &n[j];
    [&s[0], &s[1], &s[2], &s[3]]
}

impl<E, D, L0, LU, O, const L: usize, const DIRS: usize> Module<E, D>
    for Recurrent<E, D, L0, LU, O, L, DIRS>
where
    E: Elem,
    D: Backend<E>,
    L0: RecurrentCell<E, D>,
    LU: RecurrentCell<E, D>,
{
    type Grads = RecurrentGrads<L0::Grads, LU::Grads>;
    fn grads(&self) -> Result<Self::Grads> {
        Ok(RecurrentGrads {
            first: self
                .first
                .iter()
                .map(|c| c.grads())
                .collect::<Result<_>>()?,
            upper: self
                .upper
                .iter()
                .map(|c| c.grads())
                .collect::<Result<_>>()?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, E, D>)) {
        for (j, c) in self.first.iter().enumerate() {
            c.visit_as(names(&self.names, j), path, f);
        }
        for (j, c) in self.upper.iter().enumerate() {
            c.visit_as(names(&self.names, DIRS + j), path, f);
        }
    }
    fn visit_grads(
        &mut self,
        g: &Self::Grads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>),
    ) {
        for (j, (c, g)) in self.first.iter_mut().zip(&g.first).enumerate() {
            c.visit_grads_as(g, names(&self.names, j), path, f);
        }
        for (j, (c, g)) in self.upper.iter_mut().zip(&g.upper).enumerate() {
            c.visit_grads_as(g, names(&self.names, DIRS + j), path, f);
        }
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, E, D>, Role),
    ) {
        for (j, c) in self.first.iter_mut().enumerate() {
            c.visit_mut_as(names(&self.names, j), path, f);
        }
        for (j, c) in self.upper.iter_mut().enumerate() {
            c.visit_mut_as(names(&self.names, DIRS + j), path, f);
        }
    }
}

impl<E, D, L0, LU, O, const L: usize, const DIRS: usize> Recurrent<E, D, L0, LU, O, L, DIRS>
where
    E: Elem,
    D: DropoutKernels<E>,
    L0: RecurrentCell<E, D>,
    LU: RecurrentCell<E, D>,
    O: Shape,
{
    /// The forward pass of [`Layer::forward`] and [`Layer::forward_train`].
    fn run(
        mut mode: Mode<'_, L0, LU>,
        p: f64,
        x: &Tensor<L0::In, E, D>,
        state: Option<&D::Buf<E>>,
        y: &mut Tensor<O, E, D>,
        c: &mut RecurrentCache<E, D, L0, LU>,
    ) -> Result<()> {
        let (t, i, h) = Self::tih();
        let (batch, dev) = (x.batch(), x.device());
        fit(y, batch)?;
        Self::load_states(dev, state, c, batch)?;
        if DIRS == 2 {
            fit(&mut c.xr0, batch)?;
            reverse_time(dev, &x.buf, &mut c.xr0.buf, (batch, t, i), Acc::Set)?;
        }
        for d in 0..DIRS {
            let xin = if d == 0 { x } else { &c.xr0 };
            match &mut mode {
                Mode::Eval(f, _) => f[d].forward(xin, &mut c.y0[d], &mut c.c0[d])?,
                Mode::Train(f, _, ctx) => {
                    f[d].forward_train(xin, &mut c.y0[d], &mut c.c0[d], ctx)?
                }
            }
        }
        let dims = |dir| (batch, t, h, DIRS, dir);
        c.dropped = matches!(mode, Mode::Train(..)) && p > 0.0;
        for k in 1..L {
            let j = k - 1;
            fit(&mut c.hs[j], batch)?;
            for d in 0..DIRS {
                let src = if k == 1 {
                    &c.y0[d].buf
                } else {
                    &c.yu[(k - 2) * DIRS + d].buf
                };
                cat_move(dev, src, &mut c.hs[j].buf, dims(d), true)?;
            }
            if c.dropped {
                if let Mode::Train(_, _, ctx) = &mut mode {
                    c.seeds[j] = ctx.rng.next_u64();
                }
                fit(&mut c.hd[j], batch)?;
                let n = c.hs[j].numel();
                dev.dropout_fwd(&c.hs[j].buf, &mut c.hd[j].buf, n, p, c.seeds[j])?;
            }
            let xin = if c.dropped { &c.hd[j] } else { &c.hs[j] };
            if DIRS == 2 {
                fit(&mut c.xru[j], batch)?;
                reverse_time(
                    dev,
                    &xin.buf,
                    &mut c.xru[j].buf,
                    (batch, t, DIRS * h),
                    Acc::Set,
                )?;
            }
            for d in 0..DIRS {
                let xd = if d == 0 { xin } else { &c.xru[j] };
                let q = j * DIRS + d;
                match &mut mode {
                    Mode::Eval(_, u) => u[q].forward(xd, &mut c.yu[q], &mut c.cu[q])?,
                    Mode::Train(_, u, ctx) => {
                        u[q].forward_train(xd, &mut c.yu[q], &mut c.cu[q], ctx)?
                    }
                }
            }
        }
        // The output: every position, or each direction's final state.
        for d in 0..DIRS {
            let top = if L == 1 {
                &c.y0[d].buf
            } else {
                &c.yu[(L - 2) * DIRS + d].buf
            };
            if O::RANK == 2 {
                cat_move(dev, top, &mut y.buf, dims(d), true)?;
            } else {
                let b = Block {
                    rows: batch,
                    cols: h,
                    src_ld: t * h,
                    src_off: (t - 1) * h,
                    dst_ld: DIRS * h,
                    dst_off: d * h,
                };
                dev.copy_block(&b, top, &mut y.buf, Acc::Set)?;
            }
        }
        Ok(())
    }

    /// Splits the gradient `g` of a layer's output (the whole output's `dy`
    /// for the top layer) into each direction's gradient `dys[d]`.
    fn split<S: Shape>(
        dev: &D,
        g: &D::Buf<E>,
        dys: &mut [Tensor<S, E, D>],
        batch: usize,
        last: bool,
    ) -> Result<()> {
        let (t, _, h) = Self::tih();
        for (d, dy) in dys.iter_mut().enumerate() {
            fit(dy, batch)?;
            if last {
                dev.fill(&mut dy.buf, batch * t * h, E::zero())?;
                let b = Block {
                    rows: batch,
                    cols: h,
                    src_ld: DIRS * h,
                    src_off: d * h,
                    dst_ld: t * h,
                    dst_off: (t - 1) * h,
                };
                dev.copy_block(&b, g, &mut dy.buf, Acc::Set)?;
            } else {
                cat_move(dev, g, &mut dy.buf, (batch, t, h, DIRS, d), false)?;
            }
        }
        Ok(())
    }
}

impl<E, D, L0, LU, O, const L: usize, const DIRS: usize> Layer<E, D>
    for Recurrent<E, D, L0, LU, O, L, DIRS>
where
    E: Elem,
    D: DropoutKernels<E>,
    L0: RecurrentCell<E, D>,
    LU: RecurrentCell<E, D>,
    O: Shape,
{
    type In = L0::In;
    type Out = O;
    type Cache = RecurrentCache<E, D, L0, LU>;
    const FLOPS: usize = DIRS * (L0::FLOPS + L.saturating_sub(1) * LU::FLOPS);

    fn cache(&self) -> Result<Self::Cache> {
        let dev = self
            .first
            .first()
            .ok_or_else(|| Error::invalid("recurrent layer", "no cells".to_string()))?
            .device();
        let up = L.saturating_sub(1);
        let many = |n: usize| -> Result<Vec<_>> { (0..n).map(|_| Tensor::empty(dev)).collect() };
        Ok(RecurrentCache {
            c0: self
                .first
                .iter()
                .map(|c| c.cache())
                .collect::<Result<_>>()?,
            cu: self
                .upper
                .iter()
                .map(|c| c.cache())
                .collect::<Result<_>>()?,
            y0: many(DIRS)?,
            yu: (0..up * DIRS)
                .map(|_| Tensor::empty(dev))
                .collect::<Result<_>>()?,
            xr0: Tensor::empty(dev)?,
            xru: (0..up).map(|_| Tensor::empty(dev)).collect::<Result<_>>()?,
            hs: (0..up).map(|_| Tensor::empty(dev)).collect::<Result<_>>()?,
            hd: (0..up).map(|_| Tensor::empty(dev)).collect::<Result<_>>()?,
            seeds: vec![0; up],
            dropped: false,
            dy0: many(DIRS)?,
            dyu: (0..DIRS)
                .map(|_| Tensor::empty(dev))
                .collect::<Result<_>>()?,
            dxr0: Tensor::empty(dev)?,
            dxr: Tensor::empty(dev)?,
            dxin: Tensor::empty(dev)?,
            dcat: Tensor::empty(dev)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor<L0::In, E, D>,
        y: &mut Tensor<O, E, D>,
        cache: &mut Self::Cache,
    ) -> Result<()> {
        Self::run(Mode::Eval(&self.first, &self.upper), 0.0, x, None, y, cache)
    }

    fn forward_train(
        &mut self,
        x: &Tensor<L0::In, E, D>,
        y: &mut Tensor<O, E, D>,
        cache: &mut Self::Cache,
        ctx: &mut TrainCtx,
    ) -> Result<()> {
        let p = self.dropout;
        Self::run(
            Mode::Train(&mut self.first, &mut self.upper, ctx),
            p,
            x,
            None,
            y,
            cache,
        )
    }

    /// The module doc's composition, backwards.
    fn backward(
        &self,
        x: &Tensor<L0::In, E, D>,
        _y: &Tensor<O, E, D>,
        c: &mut Self::Cache,
        dy: &Tensor<O, E, D>,
        dx: Option<(&mut Tensor<L0::In, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()> {
        let (t, i, h) = Self::tih();
        let (batch, dev) = (x.batch(), x.device());
        crate::error::check_batch(
            "recurrent backward",
            "input",
            batch,
            "output gradient",
            dy.batch(),
        )?;
        if c.y0.first().map(|y| y.batch()) != Some(batch) {
            return Err(Error::invalid(
                "recurrent backward",
                "the cache does not hold this input's forward pass (run forward on it first)"
                    .to_string(),
            ));
        }
        let last = O::RANK == 1;
        let dh = DIRS * h;
        // The top layer's per-direction output gradients.
        if L == 1 {
            Self::split(dev, &dy.buf, &mut c.dy0, batch, last)?;
        } else {
            Self::split(dev, &dy.buf, &mut c.dyu, batch, last)?;
        }
        for k in (1..L).rev() {
            let j = k - 1;
            fit(&mut c.dxin, batch)?;
            for d in 0..DIRS {
                let q = j * DIRS + d;
                let (xin, dxd) = if d == 0 {
                    (if c.dropped { &c.hd[j] } else { &c.hs[j] }, &mut c.dxin)
                } else {
                    (&c.xru[j], &mut c.dxr)
                };
                self.upper[q].backward(
                    xin,
                    &c.yu[q],
                    &mut c.cu[q],
                    &c.dyu[d],
                    Some((dxd, Acc::Set)),
                    &mut grads.upper[q],
                    gacc,
                )?;
            }
            if DIRS == 2 {
                reverse_time(dev, &c.dxr.buf, &mut c.dxin.buf, (batch, t, dh), Acc::Add)?;
            }
            // Through dropout: the gradient of layer k − 1's output.
            if c.dropped {
                fit(&mut c.dcat, batch)?;
                let n = c.dxin.numel();
                dev.dropout_bwd(
                    &c.dxin.buf,
                    &mut c.dcat.buf,
                    n,
                    self.dropout,
                    c.seeds[j],
                    Acc::Set,
                )?;
            } else {
                std::mem::swap(&mut c.dcat, &mut c.dxin);
            }
            if k == 1 {
                Self::split(dev, &c.dcat.buf, &mut c.dy0, batch, false)?;
            } else {
                Self::split(dev, &c.dcat.buf, &mut c.dyu, batch, false)?;
            }
        }
        // Layer 0: the forward direction writes dx, the reverse one adds.
        let mut dx = dx;
        for d in 0..DIRS {
            let xin = if d == 0 { x } else { &c.xr0 };
            let dxd = match (&mut dx, d) {
                (Some((dx, acc)), 0) => Some((&mut **dx, *acc)),
                (Some(_), _) => Some((&mut c.dxr0, Acc::Set)),
                (None, _) => None,
            };
            self.first[d].backward(
                xin,
                &c.y0[d],
                &mut c.c0[d],
                &c.dy0[d],
                dxd,
                &mut grads.first[d],
                gacc,
            )?;
        }
        if let (Some((dx, _)), 2) = (dx, DIRS) {
            reverse_time(dev, &c.dxr0.buf, &mut dx.buf, (batch, t, i), Acc::Add)?;
        }
        Ok(())
    }
}

/// ONNX: one operator per layer and direction (`recurrent/onnx.rs`), the
/// reverse direction as ONNX's `direction = "reverse"` (the sequence read
/// backwards, outputs at their own positions, as here), the two directions'
/// outputs concatenated on the features, dropout between layers the
/// identity; with `last`, the top layer's final states (`Y_h`). Parameters
/// keep PyTorch's names (`{path}.weight_ih_l1_reverse`). A given initial
/// state (`[batch, layers·dirs, H]`, an LSTM's `[batch, 2, …]`) is sliced
/// into each operator's `initial_h` (`initial_c`); the final states are
/// left for a `FinalState` naming the layer.
impl<
        E: Elem,
        D: Backend<E>,
        L0: OnnxCell,
        LU: OnnxCell,
        O: Shape,
        const L: usize,
        const DIRS: usize,
    > Onnx for Recurrent<E, D, L0, LU, O, L, DIRS>
{
    fn onnx(&self, g: &mut Graph, at: &str, inputs: &[&str]) -> Result<Vec<String>> {
        let (x, s0) = match inputs {
            [x] => (*x, None),
            [x, s] => (*x, Some(*s)),
            _ => return Err(crate::onnx::unsupported::<Self>(at)),
        };
        let last = O::RANK == 1;
        let mut h = x.to_string();
        let mut finals = Vec::with_capacity(L * DIRS);
        for k in 0..L {
            let mut outs = Vec::with_capacity(DIRS);
            for dir in 0..DIRS {
                let i = k * DIRS + dir;
                let n = &self.names[i];
                let init = match s0 {
                    Some(s) => Some(onnx::initial(g, at, s, i, L0::HAS_C)?),
                    None => None,
                };
                let role = CellRole {
                    names: [&n[0], &n[1], &n[2], &n[3]],
                    reverse: dir == 1,
                    last: last && k + 1 == L,
                    init: init.as_ref().map(|(h, c)| (h.as_str(), c.as_deref())),
                };
                let out = match k {
                    0 => self.first[dir].onnx_cell(g, at, &h, role)?,
                    _ => self.upper[i - DIRS].onnx_cell(g, at, &h, role)?,
                };
                outs.push(out.y.clone());
                finals.push(out);
            }
            h = if DIRS == 1 {
                outs.remove(0)
            } else {
                let refs: Vec<&str> = outs.iter().map(|s| s.as_str()).collect();
                g.op("Concat", at, &refs, vec![graph::int("axis", -1)])
            };
        }
        onnx::leave_final(g, at, &finals);
        Ok(vec![h])
    }
}

#[cfg(test)]
mod tests;

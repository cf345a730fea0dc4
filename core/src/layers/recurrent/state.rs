//! A recurrent cell's state at the two ends of a sequence, kept in the
//! cell's cache: the initial state `h_{−1} = h0` (and `c_{−1} = c0` for an
//! LSTM) a forward pass starts from, zero unless [`super::Recurrent`] was
//! given one, and the backward pass's carries `δh`, `δc`, which start from
//! the final state's gradient (zero unless seeded) and end as the initial
//! state's gradient.
//!
//! With a given `h0`, step 0 gains the recurrent product the other steps
//! have: `a_0 += h0·W_hhᵀ` (the GRU's `ĥ_0`), so `∂L/∂W_hh` gains
//! `Σ_b ∂L/∂a_{b,0}ᵀ·h0_b` and `∂L/∂h0 = ∂L/∂a_0·W_hh` (the GRU adds it to
//! its direct part `z⊙δh`); the LSTM's `c0` enters the cell kernel at step 0
//! in place of `c_{t−1}`, and the kernel's carry after step 0 is `∂L/∂c0`.

use super::{Mode, Recurrent, RecurrentCache, RecurrentCell};
use crate::device::{Acc, Backend, Block, Gemm};
use crate::elem::Elem;
use crate::error::{check_batch, Error, Result};
use crate::kernels::DropoutKernels;
use crate::layers::conv_common::prepare_dx;
use crate::layers::fit;
use crate::module::{Layer, Module, TrainCtx};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The initial state and the end carries of one cell (see the module doc).
pub struct CellState<E: Elem, D: Backend<E>> {
    /// `h0`, `[batch, H]`.
    pub(crate) h0: D::Buf<E>,
    /// `c0`, `[batch, H]` (an LSTM's; empty for the others).
    pub(crate) c0: D::Buf<E>,
    /// Whether the next forward pass starts from `h0`/`c0` as set (otherwise
    /// from zero, and neither is read but as zeros).
    pub(crate) given: bool,
    /// `δh`, `[batch, H]`: the backward's carry, after it `∂L/∂h0`.
    pub(crate) dh: D::Buf<E>,
    /// `δc`, `[batch, H]` (an LSTM's): after backward `∂L/∂c0`.
    pub(crate) dc: D::Buf<E>,
    /// Whether `dh`/`dc` hold the final state's gradient for the next
    /// backward pass (otherwise it starts from zero).
    pub(crate) seeded: bool,
}

impl<E: Elem, D: Backend<E>> CellState<E, D> {
    /// No state: a zero start, nothing seeded.
    pub(crate) fn new(dev: &D) -> Result<Self> {
        Ok(CellState {
            h0: dev.zeros(0)?,
            c0: dev.zeros(0)?,
            given: false,
            dh: dev.zeros(0)?,
            dc: dev.zeros(0)?,
            seeded: false,
        })
    }

    /// Before a forward pass over `batch` sequences of `h` units: sizes
    /// `h0` (and `c0` when `cell`) and zeroes them unless given.
    pub(crate) fn start_forward(&mut self, dev: &D, n: usize, cell: bool) -> Result<()> {
        dev.resize(&mut self.h0, n)?;
        if cell {
            dev.resize(&mut self.c0, n)?;
        }
        if !self.given {
            dev.fill(&mut self.h0, n, E::zero())?;
            if cell {
                dev.fill(&mut self.c0, n, E::zero())?;
            }
        }
        Ok(())
    }

    /// Before a backward pass: sizes the carries and zeroes them unless
    /// seeded with the final state's gradient (which this consumes).
    pub(crate) fn start_backward(&mut self, dev: &D, n: usize, cell: bool) -> Result<()> {
        dev.resize(&mut self.dh, n)?;
        if cell {
            dev.resize(&mut self.dc, n)?;
        }
        if !self.seeded {
            dev.fill(&mut self.dh, n, E::zero())?;
            if cell {
                dev.fill(&mut self.dc, n, E::zero())?;
            }
        }
        self.seeded = false;
        Ok(())
    }

    /// Step 0's recurrent product from a given `h0`: `pre[b, 0, :] +=
    /// h0_b·W_hhᵀ` (`pre` `[batch, steps, g]`, `W_hh` `[g, h]`); nothing
    /// from a zero state.
    pub(crate) fn add_h0_product(
        &self,
        dev: &D,
        w_hh: &D::Buf<E>,
        pre: &mut D::Buf<E>,
        (batch, steps, g, h): (usize, usize, usize, usize),
    ) -> Result<()> {
        if !self.given || batch == 0 {
            return Ok(());
        }
        let p = Gemm {
            ldc: steps * g,
            ..Gemm::dense(batch, g, h, false, true)
        }
        .acc(Acc::Add);
        dev.gemm(&p, &self.h0, w_hh, pre)
    }

    /// `∂L/∂W_hh += Σ_b ∂L/∂pre_{b,0}ᵀ·h0_b` from a given `h0` (`dpre`
    /// `[batch, steps, g]`); nothing from a zero state.
    pub(crate) fn add_h0_weight_grad(
        &self,
        dev: &D,
        dpre: &D::Buf<E>,
        dw_hh: &mut D::Buf<E>,
        (batch, steps, g, h): (usize, usize, usize, usize),
    ) -> Result<()> {
        if !self.given || batch == 0 {
            return Ok(());
        }
        let p = Gemm {
            lda: steps * g,
            ..Gemm::dense(g, h, batch, true, false)
        }
        .acc(Acc::Add);
        dev.gemm(&p, dpre, &self.h0, dw_hh)
    }
}

/// A recurrent cell's cache: where its [`CellState`] lives, and (an LSTM's)
/// the cell states `c_t` of every step, `[batch, T, H]`, from which the
/// final `c` is read.
pub trait CellCache<E: Elem, D: Backend<E>> {
    /// Whether the cell carries a cell state `c` besides `h` (an LSTM).
    const HAS_CELL: bool = false;
    /// The state at the sequence's ends.
    fn state(&self) -> &CellState<E, D>;
    /// The same, to set or seed.
    fn state_mut(&mut self) -> &mut CellState<E, D>;
    /// The cell states of the last forward pass, if the cell has them.
    fn cells(&self) -> Option<&D::Buf<E>> {
        None
    }
}

// ---- the state as one tensor: a stack's or a single cell's ----------------------

/// A recurrent layer whose state can be given before a forward pass, read
/// after it, and whose gradients flow through both ends: [`Recurrent`] and
/// each cell (`network!`'s `state = s` and `FinalState(rnn)`,
/// [`crate::layers::FinalState`]).
///
/// The state is one tensor per sample (PyTorch's `h_0`/`h_n`, batch first):
/// `[layers·directions, H]`, and for an LSTM `[2, layers·directions, H]`,
/// `h` then `c`; row `j = layer·directions + direction` is that cell's.
pub trait RecurrentState<E: Elem, D: Backend<E>>: Layer<E, D> {
    /// The per-sample shape of the state.
    fn state_shape() -> Vec<usize>;

    /// [`Layer::forward`] from the initial state `state` (`None`: zero).
    fn forward_from<S: Shape>(
        &self,
        x: &Tensor<Self::In, E, D>,
        state: Option<&Tensor<S, E, D>>,
        y: &mut Tensor<Self::Out, E, D>,
        cache: &mut Self::Cache,
    ) -> Result<()>;

    /// [`Layer::forward_train`] from the initial state `state`.
    fn forward_train_from<S: Shape>(
        &mut self,
        x: &Tensor<Self::In, E, D>,
        state: Option<&Tensor<S, E, D>>,
        y: &mut Tensor<Self::Out, E, D>,
        cache: &mut Self::Cache,
        ctx: &mut TrainCtx,
    ) -> Result<()>;

    /// [`Layer::backward`] of a pass from a given state, writing the
    /// initial state's gradient `∂L/∂state` into `dstate` when asked (only
    /// a pass from a given state has one).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)] // Layer::backward's operands and the state's gradient
    fn backward_from<S: Shape>(
        &self,
        x: &Tensor<Self::In, E, D>,
        y: &Tensor<Self::Out, E, D>,
        cache: &mut Self::Cache,
        dy: &Tensor<Self::Out, E, D>,
        dx: Option<(&mut Tensor<Self::In, E, D>, Acc)>,
        dstate: Option<(&mut Tensor<S, E, D>, Acc)>,
        grads: &mut Self::Grads,
        gacc: Acc,
    ) -> Result<()>;

    /// The final state of the last forward pass (whose output was `y`, its
    /// state kept in `cache`) into `out`: each cell's state after its last
    /// step, which for a reverse direction is the one after reading step
    /// 0, as PyTorch's `h_n`/`c_n`.
    fn final_state<S: Shape>(
        &self,
        y: &Tensor<Self::Out, E, D>,
        cache: &Self::Cache,
        out: &mut Tensor<S, E, D>,
    ) -> Result<()>;

    /// The backward pass of [`RecurrentState::final_state`]: makes `d`, the
    /// gradient of the final state, where the next [`Layer::backward`] on
    /// `cache` starts its carries (`δh`, `δc` after the last step) instead
    /// of zero.
    fn final_state_backward<S: Shape>(
        &self,
        cache: &mut Self::Cache,
        d: &Tensor<S, E, D>,
    ) -> Result<()>;
}

/// The layout of a state tensor: `cells` cells of `h` units, with `c` rows
/// after the `h` rows when `cell`.
#[derive(Clone, Copy)]
pub(crate) struct StateLayout {
    pub cells: usize,
    pub h: usize,
    pub cell: bool,
}

impl StateLayout {
    pub(crate) fn shape(&self) -> Vec<usize> {
        if self.cell {
            vec![2, self.cells, self.h]
        } else {
            vec![self.cells, self.h]
        }
    }

    /// `S` is this state's shape (`network!` writes it; a caller by hand
    /// gets an error naming both shapes otherwise).
    fn check<S: Shape>(&self, what: &'static str) -> Result<()> {
        let want = self.shape();
        if S::DIMS != want.as_slice() {
            return Err(Error::invalid(
                what,
                format!(
                    "the state of this recurrent layer is {want:?} per sample ([layers·directions, hidden]{}), got {:?}",
                    if self.cell { ", h then c" } else { "" },
                    S::DIMS
                ),
            ));
        }
        Ok(())
    }

    /// Row `r` of every sample's state (`r < cells`: `h` of cell `r`, then
    /// `c` of cell `r − cells`) and a `[batch, h]` buffer whose rows are
    /// `ld` apart from `off` on: from the state when `to_buf`, otherwise to
    /// it.
    fn block(&self, batch: usize, r: usize, (ld, off): (usize, usize), to_buf: bool) -> Block {
        let per = (1 + self.cell as usize) * self.cells * self.h;
        let (a, b) = ((per, r * self.h), (ld, off));
        let ((src_ld, src_off), (dst_ld, dst_off)) = if to_buf { (a, b) } else { (b, a) };
        Block {
            rows: batch,
            cols: self.h,
            src_ld,
            src_off,
            dst_ld,
            dst_off,
        }
    }

    /// Cell `j`'s initial state from `src` (or zero from `None`).
    fn load<E: Elem, D: Backend<E>>(
        &self,
        dev: &D,
        src: Option<&D::Buf<E>>,
        s: &mut CellState<E, D>,
        batch: usize,
        j: usize,
    ) -> Result<()> {
        s.given = src.is_some();
        let Some(src) = src else {
            return Ok(());
        };
        let (n, dense) = (batch * self.h, (self.h, 0));
        dev.resize(&mut s.h0, n)?;
        dev.copy_block(&self.block(batch, j, dense, true), src, &mut s.h0, Acc::Set)?;
        if self.cell {
            dev.resize(&mut s.c0, n)?;
            let b = self.block(batch, self.cells + j, dense, true);
            dev.copy_block(&b, src, &mut s.c0, Acc::Set)?;
        }
        Ok(())
    }

    /// Cell `j`'s initial-state gradient (left in its carries by its
    /// backward pass) into `dst`.
    fn store_grad<E: Elem, D: Backend<E>>(
        &self,
        dev: &D,
        s: &CellState<E, D>,
        dst: &mut D::Buf<E>,
        acc: Acc,
        batch: usize,
        j: usize,
    ) -> Result<()> {
        if !s.given {
            return Err(Error::invalid(
                "recurrent backward",
                "the state's gradient was asked for, but the forward pass started from a zero state (give it one)".to_string(),
            ));
        }
        let dense = (self.h, 0);
        dev.copy_block(&self.block(batch, j, dense, false), &s.dh, dst, acc)?;
        if self.cell {
            let b = self.block(batch, self.cells + j, dense, false);
            dev.copy_block(&b, &s.dc, dst, acc)?;
        }
        Ok(())
    }

    /// Cell `j`'s final state into `out`: `h` from its output `y`
    /// (`[batch, t, h]`, in its processing order), `c` from its cell states.
    fn store_final<E: Elem, D: Backend<E>>(
        &self,
        dev: &D,
        (y, cells): (&D::Buf<E>, Option<&D::Buf<E>>),
        out: &mut D::Buf<E>,
        (batch, t): (usize, usize),
        j: usize,
    ) -> Result<()> {
        let last = (t * self.h, (t - 1) * self.h);
        dev.copy_block(&self.block(batch, j, last, false), y, out, Acc::Set)?;
        if let (true, Some(c)) = (self.cell, cells) {
            let b = self.block(batch, self.cells + j, last, false);
            dev.copy_block(&b, c, out, Acc::Set)?;
        }
        Ok(())
    }

    /// Seeds cell `j`'s backward carries with its rows of the final state's
    /// gradient `d`.
    fn seed<E: Elem, D: Backend<E>>(
        &self,
        dev: &D,
        d: &D::Buf<E>,
        s: &mut CellState<E, D>,
        batch: usize,
        j: usize,
    ) -> Result<()> {
        let (n, dense) = (batch * self.h, (self.h, 0));
        dev.resize(&mut s.dh, n)?;
        dev.copy_block(&self.block(batch, j, dense, true), d, &mut s.dh, Acc::Set)?;
        if self.cell {
            dev.resize(&mut s.dc, n)?;
            let b = self.block(batch, self.cells + j, dense, true);
            dev.copy_block(&b, d, &mut s.dc, Acc::Set)?;
        }
        s.seeded = true;
        Ok(())
    }
}

fn state_arg<'s, E: Elem, D: Backend<E>, S: Shape>(
    lay: &StateLayout,
    what: &'static str,
    batch: usize,
    state: Option<&'s Tensor<S, E, D>>,
) -> Result<Option<&'s D::Buf<E>>> {
    lay.check::<S>(what)?;
    if let Some(s) = state {
        check_batch(what, "input", batch, "initial state", s.batch())?;
    }
    Ok(state.map(|s| &s.buf))
}

impl<E: Elem, D: Backend<E>, L0: Layer<E, D>, LU: Layer<E, D>> RecurrentCache<E, D, L0, LU>
where
    L0::Cache: CellCache<E, D>,
    LU::Cache: CellCache<E, D>,
{
    /// Cell `j`'s state (layer `j / DIRS`, direction `j % DIRS`).
    pub(super) fn cell_state_mut(&mut self, j: usize) -> &mut CellState<E, D> {
        let dirs = self.c0.len();
        if j < dirs {
            self.c0[j].state_mut()
        } else {
            self.cu[j - dirs].state_mut()
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
    /// The state's layout: every cell's rows.
    pub(super) fn layout() -> StateLayout {
        StateLayout {
            cells: L * DIRS,
            h: Self::tih().2,
            cell: <L0::Cache as CellCache<E, D>>::HAS_CELL,
        }
    }

    /// Every cell's initial state from `state` (zero from `None`).
    pub(super) fn load_states(
        dev: &D,
        state: Option<&D::Buf<E>>,
        c: &mut RecurrentCache<E, D, L0, LU>,
        batch: usize,
    ) -> Result<()> {
        let lay = Self::layout();
        for j in 0..L * DIRS {
            lay.load(dev, state, c.cell_state_mut(j), batch, j)?;
        }
        Ok(())
    }

    /// The device of the cells.
    fn dev(&self) -> Result<&D> {
        let c = self.first.first();
        c.map(|c| c.device())
            .ok_or_else(|| Error::invalid("recurrent layer", "no cells".to_string()))
    }
}

impl<E, D, L0, LU, O, const L: usize, const DIRS: usize> RecurrentState<E, D>
    for Recurrent<E, D, L0, LU, O, L, DIRS>
where
    E: Elem,
    D: DropoutKernels<E>,
    L0: RecurrentCell<E, D>,
    LU: RecurrentCell<E, D>,
    O: Shape,
{
    fn state_shape() -> Vec<usize> {
        Self::layout().shape()
    }

    fn forward_from<S: Shape>(
        &self,
        x: &Tensor<L0::In, E, D>,
        state: Option<&Tensor<S, E, D>>,
        y: &mut Tensor<O, E, D>,
        cache: &mut RecurrentCache<E, D, L0, LU>,
    ) -> Result<()> {
        let st = state_arg(&Self::layout(), "recurrent forward", x.batch(), state)?;
        Self::run(Mode::Eval(&self.first, &self.upper), 0.0, x, st, y, cache)
    }

    fn forward_train_from<S: Shape>(
        &mut self,
        x: &Tensor<L0::In, E, D>,
        state: Option<&Tensor<S, E, D>>,
        y: &mut Tensor<O, E, D>,
        cache: &mut RecurrentCache<E, D, L0, LU>,
        ctx: &mut TrainCtx,
    ) -> Result<()> {
        let st = state_arg(&Self::layout(), "recurrent forward", x.batch(), state)?;
        let p = self.dropout;
        let mode = Mode::Train(&mut self.first, &mut self.upper, ctx);
        Self::run(mode, p, x, st, y, cache)
    }

    fn backward_from<S: Shape>(
        &self,
        x: &Tensor<L0::In, E, D>,
        y: &Tensor<O, E, D>,
        cache: &mut RecurrentCache<E, D, L0, LU>,
        dy: &Tensor<O, E, D>,
        dx: Option<(&mut Tensor<L0::In, E, D>, Acc)>,
        dstate: Option<(&mut Tensor<S, E, D>, Acc)>,
        grads: &mut <Self as Module<E, D>>::Grads,
        gacc: Acc,
    ) -> Result<()> {
        let lay = Self::layout();
        lay.check::<S>("recurrent backward")?;
        Layer::backward(self, x, y, cache, dy, dx, grads, gacc)?;
        let Some((ds, acc)) = dstate else {
            return Ok(());
        };
        let (batch, dev) = (x.batch(), x.device());
        prepare_dx(ds, acc, batch)?;
        for j in 0..L * DIRS {
            lay.store_grad(dev, cache.cell_state_mut(j), &mut ds.buf, acc, batch, j)?;
        }
        Ok(())
    }

    fn final_state<S: Shape>(
        &self,
        _y: &Tensor<O, E, D>,
        cache: &RecurrentCache<E, D, L0, LU>,
        out: &mut Tensor<S, E, D>,
    ) -> Result<()> {
        let lay = Self::layout();
        lay.check::<S>("recurrent final state")?;
        let (t, _, _) = Self::tih();
        let batch = cache.y0.first().map_or(0, |y| y.batch());
        fit(out, batch)?;
        let dev = self.dev()?;
        for j in 0..L * DIRS {
            let src = if j < DIRS {
                (&cache.y0[j].buf, cache.c0[j].cells())
            } else {
                (&cache.yu[j - DIRS].buf, cache.cu[j - DIRS].cells())
            };
            lay.store_final(dev, src, &mut out.buf, (batch, t), j)?;
        }
        Ok(())
    }

    fn final_state_backward<S: Shape>(
        &self,
        cache: &mut RecurrentCache<E, D, L0, LU>,
        d: &Tensor<S, E, D>,
    ) -> Result<()> {
        let lay = Self::layout();
        lay.check::<S>("recurrent final state backward")?;
        let batch = cache.y0.first().map_or(0, |y| y.batch());
        let what = "recurrent final state backward";
        check_batch(what, "forward pass", batch, "state gradient", d.batch())?;
        for j in 0..L * DIRS {
            lay.seed(d.device(), &d.buf, cache.cell_state_mut(j), batch, j)?;
        }
        Ok(())
    }
}

/// [`RecurrentState`] for a single cell `C` (what `recurrent_cell_params!`
/// implements it with): the layout of one cell.
pub(crate) fn cell_layout<E: Elem, D: Backend<E>, C: Layer<E, D, Cache: CellCache<E, D>>>(
) -> StateLayout {
    let o = <C::Out as Shape>::DIMS;
    StateLayout {
        cells: 1,
        h: o.get(1).copied().unwrap_or(0),
        cell: <C::Cache as CellCache<E, D>>::HAS_CELL,
    }
}

/// A cell's [`RecurrentState::forward_from`]/`forward_train_from` (`run` is
/// its `Layer` pass).
pub(crate) fn cell_forward_from<E, D, C, S>(
    x: &Tensor<C::In, E, D>,
    state: Option<&Tensor<S, E, D>>,
    cache: &mut C::Cache,
    run: impl FnOnce(&mut C::Cache) -> Result<()>,
) -> Result<()>
where
    E: Elem,
    D: Backend<E>,
    C: Layer<E, D, Cache: CellCache<E, D>>,
    S: Shape,
{
    let lay = cell_layout::<E, D, C>();
    let st = state_arg(&lay, "recurrent forward", x.batch(), state)?;
    lay.load(x.device(), st, cache.state_mut(), x.batch(), 0)?;
    run(cache)
}

/// A cell's [`RecurrentState::backward_from`] after its `Layer` backward.
pub(crate) fn cell_state_grad<E, D, C, S>(
    cache: &C::Cache,
    dstate: Option<(&mut Tensor<S, E, D>, Acc)>,
    batch: usize,
) -> Result<()>
where
    E: Elem,
    D: Backend<E>,
    C: Layer<E, D, Cache: CellCache<E, D>>,
    S: Shape,
{
    let lay = cell_layout::<E, D, C>();
    lay.check::<S>("recurrent backward")?;
    let Some((ds, acc)) = dstate else {
        return Ok(());
    };
    prepare_dx(ds, acc, batch)?;
    let dev = ds.device().clone();
    lay.store_grad(&dev, cache.state(), &mut ds.buf, acc, batch, 0)
}

/// A cell's [`RecurrentState::final_state`].
pub(crate) fn cell_final_state<E, D, C, S>(
    y: &Tensor<C::Out, E, D>,
    cache: &C::Cache,
    out: &mut Tensor<S, E, D>,
) -> Result<()>
where
    E: Elem,
    D: Backend<E>,
    C: Layer<E, D, Cache: CellCache<E, D>>,
    S: Shape,
{
    let lay = cell_layout::<E, D, C>();
    lay.check::<S>("recurrent final state")?;
    let (batch, t) = (y.batch(), <C::Out as Shape>::DIMS[0]);
    fit(out, batch)?;
    let src = (&y.buf, cache.cells());
    lay.store_final(y.device(), src, &mut out.buf, (batch, t), 0)
}

/// A cell's [`RecurrentState::final_state_backward`].
pub(crate) fn cell_final_state_backward<E, D, C, S>(
    cache: &mut C::Cache,
    d: &Tensor<S, E, D>,
) -> Result<()>
where
    E: Elem,
    D: Backend<E>,
    C: Layer<E, D, Cache: CellCache<E, D>>,
    S: Shape,
{
    let lay = cell_layout::<E, D, C>();
    lay.check::<S>("recurrent final state backward")?;
    lay.seed(d.device(), &d.buf, cache.state_mut(), d.batch(), 0)
}

#[cfg(test)]
mod tests;

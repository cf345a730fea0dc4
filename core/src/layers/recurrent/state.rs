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

// ---- a stack's state: every cell's, as one tensor ------------------------------

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
    /// The device of the cells.
    fn dev(&self) -> Result<&D> {
        let c = self.first.first();
        c.map(|c| c.device())
            .ok_or_else(|| Error::invalid("recurrent layer", "no cells".to_string()))
    }

    /// Whether the state has cell states `c` besides `h` (an LSTM's).
    pub(super) const HAS_CELL: bool = <L0::Cache as CellCache<E, D>>::HAS_CELL;

    /// The per-sample shape of the state (PyTorch's `h_0`/`h_n`, batch
    /// first): `[L·DIRS, H]`, and for an LSTM `[2, L·DIRS, H]`, `h` then `c`.
    /// Row `j = layer·DIRS + direction` is that cell's.
    pub fn state_shape() -> Vec<usize> {
        let (_, _, h) = Self::tih();
        if Self::HAS_CELL {
            vec![2, L * DIRS, h]
        } else {
            vec![L * DIRS, h]
        }
    }

    /// Row `r` of every sample's state (`r < L·DIRS`: `h` of cell `r`; then
    /// `c` of cell `r − L·DIRS`) and a cell's `[batch, H]` buffer: from the
    /// state when `to_cell`, otherwise to it.
    pub(super) fn state_block(batch: usize, r: usize, to_cell: bool) -> Block {
        let (_, _, h) = Self::tih();
        let per = (1 + Self::HAS_CELL as usize) * L * DIRS * h;
        let (state_ld, state_off) = (per, r * h);
        if to_cell {
            Block {
                rows: batch,
                cols: h,
                src_ld: state_ld,
                src_off: state_off,
                dst_ld: h,
                dst_off: 0,
            }
        } else {
            Block {
                rows: batch,
                cols: h,
                src_ld: h,
                src_off: 0,
                dst_ld: state_ld,
                dst_off: state_off,
            }
        }
    }

    /// `S` is the state's shape (`network!` writes it; a caller of these
    /// methods by hand gets an error naming both shapes otherwise).
    fn check_state<S: Shape>(what: &'static str) -> Result<()> {
        let want = Self::state_shape();
        if S::DIMS != want.as_slice() {
            return Err(Error::invalid(
                what,
                format!(
                    "the state of this recurrent layer is {want:?} per sample ([layers·directions, hidden]{}), got {:?}",
                    if Self::HAS_CELL { ", h then c" } else { "" },
                    S::DIMS
                ),
            ));
        }
        Ok(())
    }

    /// [`Layer::forward`] from the initial state `state` (`h_0`, and `c_0`
    /// for an LSTM, per sample [`Self::state_shape`]; `None`: zero).
    pub fn forward_from<S: Shape>(
        &self,
        x: &Tensor<L0::In, E, D>,
        state: Option<&Tensor<S, E, D>>,
        y: &mut Tensor<O, E, D>,
        cache: &mut RecurrentCache<E, D, L0, LU>,
    ) -> Result<()> {
        let st = Self::state_arg("recurrent forward", x, state)?;
        Self::run(Mode::Eval(&self.first, &self.upper), 0.0, x, st, y, cache)
    }

    /// [`Layer::forward_train`] from the initial state `state` (see
    /// [`Self::forward_from`]).
    pub fn forward_train_from<S: Shape>(
        &mut self,
        x: &Tensor<L0::In, E, D>,
        state: Option<&Tensor<S, E, D>>,
        y: &mut Tensor<O, E, D>,
        cache: &mut RecurrentCache<E, D, L0, LU>,
        ctx: &mut TrainCtx,
    ) -> Result<()> {
        let st = Self::state_arg("recurrent forward", x, state)?;
        let p = self.dropout;
        Self::run(
            Mode::Train(&mut self.first, &mut self.upper, ctx),
            p,
            x,
            st,
            y,
            cache,
        )
    }

    fn state_arg<'s, S: Shape>(
        what: &'static str,
        x: &Tensor<L0::In, E, D>,
        state: Option<&'s Tensor<S, E, D>>,
    ) -> Result<Option<&'s D::Buf<E>>> {
        Self::check_state::<S>(what)?;
        if let Some(s) = state {
            check_batch(what, "input", x.batch(), "initial state", s.batch())?;
        }
        Ok(state.map(|s| &s.buf))
    }

    /// [`Layer::backward`] of [`Self::forward_from`] or
    /// [`Self::forward_train_from`], writing the initial state's gradient
    /// `∂L/∂state` into `dstate` when asked (only a pass from a given state
    /// has one).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)] // Layer::backward's operands and the state's gradient
    pub fn backward_from<S: Shape>(
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
        Self::check_state::<S>("recurrent backward")?;
        Layer::backward(self, x, y, cache, dy, dx, grads, gacc)?;
        let Some((ds, acc)) = dstate else {
            return Ok(());
        };
        let (batch, dev) = (x.batch(), x.device());
        if !cache.cell_state_mut(0).given {
            return Err(Error::invalid(
                "recurrent backward",
                "the state's gradient was asked for, but the forward pass started from a zero state (give it one)".to_string(),
            ));
        }
        prepare_dx(ds, acc, batch)?;
        for j in 0..L * DIRS {
            let s = cache.cell_state_mut(j);
            dev.copy_block(&Self::state_block(batch, j, false), &s.dh, &mut ds.buf, acc)?;
            if Self::HAS_CELL {
                let b = Self::state_block(batch, L * DIRS + j, false);
                dev.copy_block(&b, &s.dc, &mut ds.buf, acc)?;
            }
        }
        Ok(())
    }

    /// The final state of the last forward pass on `cache` into `out` (per
    /// sample [`Self::state_shape`]: each cell's state after its last step,
    /// which for the reverse direction is the one after reading step 0, as
    /// PyTorch's `h_n`/`c_n`).
    pub fn final_state<S: Shape>(
        &self,
        cache: &RecurrentCache<E, D, L0, LU>,
        out: &mut Tensor<S, E, D>,
    ) -> Result<()> {
        Self::check_state::<S>("recurrent final state")?;
        let (t, _, h) = Self::tih();
        let batch = cache.y0.first().map_or(0, |y| y.batch());
        fit(out, batch)?;
        let dev = self.dev()?;
        let last = |r: usize| {
            let mut b = Self::state_block(batch, r, false);
            (b.src_ld, b.src_off) = (t * h, (t - 1) * h);
            b
        };
        for j in 0..L * DIRS {
            let (y, cells) = if j < DIRS {
                (&cache.y0[j].buf, cache.c0[j].cells())
            } else {
                (&cache.yu[j - DIRS].buf, cache.cu[j - DIRS].cells())
            };
            dev.copy_block(&last(j), y, &mut out.buf, Acc::Set)?;
            if let (true, Some(c)) = (Self::HAS_CELL, cells) {
                dev.copy_block(&last(L * DIRS + j), c, &mut out.buf, Acc::Set)?;
            }
        }
        Ok(())
    }

    /// The backward pass of [`Self::final_state`]: makes `d`, the gradient
    /// of the final state, where the next [`Layer::backward`] on `cache`
    /// starts its carries (`δh`, `δc` after the last step) instead of zero.
    pub fn final_state_backward<S: Shape>(
        &self,
        cache: &mut RecurrentCache<E, D, L0, LU>,
        d: &Tensor<S, E, D>,
    ) -> Result<()> {
        Self::check_state::<S>("recurrent final state backward")?;
        let (_, _, h) = Self::tih();
        let batch = cache.y0.first().map_or(0, |y| y.batch());
        check_batch(
            "recurrent final state backward",
            "forward pass",
            batch,
            "state gradient",
            d.batch(),
        )?;
        let dev = d.device();
        for j in 0..L * DIRS {
            let s = cache.cell_state_mut(j);
            dev.resize(&mut s.dh, batch * h)?;
            dev.copy_block(
                &Self::state_block(batch, j, true),
                &d.buf,
                &mut s.dh,
                Acc::Set,
            )?;
            if Self::HAS_CELL {
                dev.resize(&mut s.dc, batch * h)?;
                let b = Self::state_block(batch, L * DIRS + j, true);
                dev.copy_block(&b, &d.buf, &mut s.dc, Acc::Set)?;
            }
            s.seeded = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

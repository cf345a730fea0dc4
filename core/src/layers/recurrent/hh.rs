//! The recurrent products the three cells ([`super::super::Lstm`],
//! [`super::super::Gru`], [`super::super::Rnn`]) share, written once: the
//! weight gradient `∂L/∂W_hh` over all steps as one product. (The per-step
//! products `h_{t−1}·W_hhᵀ` and `δ·W_hh` read `W_hh` packed once per pass,
//! [`crate::Backend::pack_gemm_b`]: two lines in each cell.)

use crate::device::{Acc, Backend, Block, Gemm};
use crate::elem::Elem;
use crate::error::Result;

/// `∂L/∂W_hh (acc)= Σ_b Σ_{t≥1} δ_{b,t}ᵀ·h_{b,t−1}` for `batch` sequences of
/// `steps` steps: `delta` is `[batch, steps, g]` (the gradient of the
/// recurrent pre-activations, `g` wide), `y` the hidden states `[batch,
/// steps, hidden]`, `dw` is `[g, hidden]`.
///
/// One product over all `batch·steps` rows, `δᵀ·h_prev`, instead of one per
/// sample (or per step): `h_prev` (kept in `hprev`, `[batch, steps, hidden]`)
/// is `y` shifted one step later within each sequence, `h_prev_{b,t} =
/// h_{b,t−1}`, with zero rows at `t = 0`, so the terms of step 0 vanish (a
/// given initial state's term is added apart, `CellState::add_h0_weight_grad`). Those rows are at `b·steps` whatever the batch,
/// and nothing writes them: they are zero from `resize` (which zeroes new
/// elements and keeps the others), so a pass copies `y` once and, at a
/// steady size, allocates nothing.
#[allow(clippy::too_many_arguments)] // the operands of the formula above, and the sizes
pub(crate) fn whh_grad<E: Elem, D: Backend<E>>(
    dev: &D,
    batch: usize,
    steps: usize,
    hidden: usize,
    g: usize,
    delta: &D::Buf<E>,
    y: &D::Buf<E>,
    hprev: &mut D::Buf<E>,
    dw: &mut D::Buf<E>,
    acc: Acc,
) -> Result<()> {
    let rows = batch * steps;
    dev.resize(hprev, rows * hidden)?;
    if steps > 1 {
        dev.copy_block(
            &Block {
                rows: batch,
                cols: (steps - 1) * hidden,
                src_ld: steps * hidden,
                src_off: 0,
                dst_ld: steps * hidden,
                dst_off: hidden,
            },
            y,
            hprev,
            Acc::Set,
        )?;
    }
    dev.gemm(
        &Gemm::dense(g, hidden, rows, true, false).acc(acc),
        delta,
        hprev,
        dw,
    )
}

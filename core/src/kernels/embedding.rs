//! Embedding kernels: a row gather and its scatter-add backward.
//!
//! The table `w` is row-major `[vocab, dim]`; `ids` holds `n` ids below
//! `vocab` (guaranteed by [`crate::Tokens`], which checks every id on the
//! host when it is put in); `y` and `dy` are `[n, dim]`.
//!
//! * forward (gather): `y[i, :] = w[ids[i], :]`;
//! * backward (scatter-add): `dw[v, :] (acc)= Σ_{i : ids[i] = v} dy[i, :]`
//!   for every row `v ≠ padding`; the padding row receives no gradient
//!   (0 with `Acc::Set`, unchanged with `Acc::Add`), and a row no id
//!   refers to receives 0. Sums run over `i` in increasing order on every
//!   device, so the result does not depend on thread scheduling (no float
//!   atomics).

use crate::device::{need, Acc, Backend};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::Cpu;

/// The embedding kernels of a device, for element type `E` (used by
/// [`crate::layers::Embedding`]).
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no embedding kernels for `{E}`",
    label = "needed by the Embedding layer"
)]
pub trait EmbeddingKernels<E: Elem>: Backend<E> {
    /// `y[i, :] = w[ids[i], :]` for `i < n` (`w` is `[vocab, dim]`).
    fn embedding_fwd(
        &self,
        w: &Self::Buf<E>,
        ids: &Self::Buf<u32>,
        y: &mut Self::Buf<E>,
        n: usize,
        vocab: usize,
        dim: usize,
    ) -> Result<()> {
        need(self, "embedding_fwd w", w, vocab * dim)?;
        need(self, "embedding_fwd ids", ids, n)?;
        need(self, "embedding_fwd y", y, n * dim)?;
        if n == 0 || dim == 0 {
            return Ok(());
        }
        self.raw_embedding_fwd(w, ids, y, n, vocab, dim)
    }
    /// `dw[v, :] (acc)= Σ_{i<n, ids[i] = v} dy[i, :]` for every row
    /// `v ≠ padding` of the `[vocab, dim]` gradient, summed in increasing `i`;
    /// the `padding` row gets no gradient (set to 0 with `Acc::Set`, left
    /// unchanged with `Acc::Add`).
    #[allow(clippy::too_many_arguments)] // the operands and sizes of the formula above
    fn embedding_bwd(
        &self,
        ids: &Self::Buf<u32>,
        dy: &Self::Buf<E>,
        dw: &mut Self::Buf<E>,
        n: usize,
        vocab: usize,
        dim: usize,
        padding: Option<usize>,
        acc: Acc,
    ) -> Result<()> {
        need(self, "embedding_bwd ids", ids, n)?;
        need(self, "embedding_bwd dy", dy, n * dim)?;
        need(self, "embedding_bwd dw", dw, vocab * dim)?;
        if let Some(p) = padding {
            if p >= vocab {
                return Err(Error::invalid(
                    "embedding_bwd",
                    format!("padding_idx {p} is not below the vocabulary size {vocab}"),
                ));
            }
        }
        if vocab == 0 || dim == 0 {
            return Ok(());
        }
        self.raw_embedding_bwd(ids, dy, dw, n, vocab, dim, padding, acc)
    }
    /// Body of [`EmbeddingKernels::embedding_fwd`] (`n, dim > 0`, lengths checked).
    fn raw_embedding_fwd(
        &self,
        w: &Self::Buf<E>,
        ids: &Self::Buf<u32>,
        y: &mut Self::Buf<E>,
        n: usize,
        vocab: usize,
        dim: usize,
    ) -> Result<()>;
    /// Body of [`EmbeddingKernels::embedding_bwd`] (`vocab, dim > 0`, lengths
    /// and `padding` checked).
    #[allow(clippy::too_many_arguments)] // the operands and sizes of the formula above
    fn raw_embedding_bwd(
        &self,
        ids: &Self::Buf<u32>,
        dy: &Self::Buf<E>,
        dw: &mut Self::Buf<E>,
        n: usize,
        vocab: usize,
        dim: usize,
        padding: Option<usize>,
        acc: Acc,
    ) -> Result<()>;
}

fn bad_id(op: &'static str, i: usize, id: u32, vocab: usize) -> Error {
    Error::invalid(
        op,
        format!("id {id} at position {i} is not below the vocabulary size {vocab}"),
    )
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> EmbeddingKernels<E> for Cpu {
    fn raw_embedding_fwd(
        &self,
        w: &Vec<E>,
        ids: &Vec<u32>,
        y: &mut Vec<E>,
        n: usize,
        vocab: usize,
        dim: usize,
    ) -> Result<()> {
        for (i, (row, &id)) in y[..n * dim]
            .chunks_exact_mut(dim)
            .zip(&ids[..n])
            .enumerate()
        {
            let v = id as usize;
            if v >= vocab {
                return Err(bad_id("embedding_fwd", i, id, vocab));
            }
            row.copy_from_slice(&w[v * dim..][..dim]);
        }
        Ok(())
    }

    fn raw_embedding_bwd(
        &self,
        ids: &Vec<u32>,
        dy: &Vec<E>,
        dw: &mut Vec<E>,
        n: usize,
        vocab: usize,
        dim: usize,
        padding: Option<usize>,
        acc: Acc,
    ) -> Result<()> {
        let ids = &ids[..n];
        if let Some((i, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
            return Err(bad_id("embedding_bwd", i, id, vocab));
        }
        let dw = &mut dw[..vocab * dim];
        if acc == Acc::Set {
            dw.fill(E::zero());
        }
        // In position order, so every row's sum is in increasing `i`.
        for (&id, g) in ids.iter().zip(dy[..n * dim].chunks_exact(dim)) {
            let v = id as usize;
            if Some(v) == padding {
                continue;
            }
            for (d, &gv) in dw[v * dim..][..dim].iter_mut().zip(g) {
                *d = *d + gv;
            }
        }
        Ok(())
    }
}

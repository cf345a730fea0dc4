//! Sparse row gradients of an embedding table and the SGD step on them
//! (PyTorch's `nn.Embedding(sparse=True)` with `torch.optim.SGD`).
//!
//! The table `w` is row-major `[vocab, dim]`; `ids` holds `n` ids and `dy`
//! is `[n, dim]`, as for [`super::EmbeddingKernels`].
//!
//! * backward, coalesced (`embedding_bwd_rows`): `rows[..k]` are the
//!   distinct ids other than `padding`, in the order of their first
//!   appearance in `ids`, and `values[s, :] = Σ_{i : ids[i] = rows[s]} dy[i, :]`,
//!   summed in increasing `i`: the same additions, in the same order, as the
//!   dense scatter-add of [`super::EmbeddingKernels::embedding_bwd`] makes
//!   for row `rows[s]`, so each value is bit-identical to the dense row.
//!   Rows no id refers to are not represented (their gradient is 0). The
//!   work is `O(n · dim)`: a `slot` table of `vocab` entries maps an id to
//!   its position in `rows`; it holds `u32::MAX` everywhere on entry and is
//!   restored on exit by visiting only the `k` touched entries, so nothing
//!   of size `vocab` is visited per call.
//! * SGD on the rows (`sgd_rows`): `w[rows[s], :] ← w[rows[s], :] − lr · values[s, :]`
//!   for `s < k`; every other row is not read or written, so it stays
//!   bit-identical. For plain SGD (no momentum, no weight decay) this is the
//!   dense update `w ← w − lr · (g + 0 · w)` of
//!   [`super::OptimKernels::sgd_step`] restricted to the rows where `g` is
//!   not known to be zero, and the same floating-point operations on them.
//!
//! Momentum, weight decay and Adam's moments would change every row on every
//! step (a decaying buffer, `λ·w`), so they have no sparse form here, as in
//! PyTorch, whose `SGD` refuses sparse gradients with weight decay and
//! whose `SparseAdam` is a different algorithm (lazy moments).
//!
//! Only the CPU implements this family so far; a device without it cannot
//! call [`crate::layers::Embedding::backward_sparse`] (a compile error).

use crate::device::need;
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::kernels::EmbeddingKernels;
use crate::Cpu;

/// The marker of a free entry of the `slot` table.
pub const FREE: u32 = u32::MAX;

/// Sparse row kernels of a device, for element type `E` (used by
/// [`crate::layers::Embedding::backward_sparse`] and
/// [`crate::optim::Sgd::step_sparse`]).
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no sparse embedding-row kernels for `{E}`",
    label = "needed by `Embedding::backward_sparse` and `Sgd::step_sparse`"
)]
pub trait SparseRowKernels<E: Elem>: EmbeddingKernels<E> {
    /// The coalesced gradient of the module doc: writes `rows[..k]` and
    /// `values[..k·dim]` and returns `k`. `rows` must hold `n` entries and
    /// `values` `n·dim` (the most rows a batch can touch), `slot` `vocab`
    /// entries, all [`FREE`] (left so on return).
    #[allow(clippy::too_many_arguments)] // the operands and sizes of the formula above
    fn embedding_bwd_rows(
        &self,
        ids: &Self::Buf<u32>,
        dy: &Self::Buf<E>,
        n: usize,
        vocab: usize,
        dim: usize,
        padding: Option<usize>,
        slot: &mut Self::Buf<u32>,
        rows: &mut Self::Buf<u32>,
        values: &mut Self::Buf<E>,
    ) -> Result<usize> {
        need(self, "embedding_bwd_rows ids", ids, n)?;
        need(self, "embedding_bwd_rows dy", dy, n * dim)?;
        need(self, "embedding_bwd_rows slot", slot, vocab)?;
        need(self, "embedding_bwd_rows rows", rows, n)?;
        need(self, "embedding_bwd_rows values", values, n * dim)?;
        if vocab >= FREE as usize {
            return Err(Error::invalid(
                "embedding_bwd_rows",
                format!("a vocabulary of {vocab} does not fit the u32 slot table"),
            ));
        }
        if n == 0 || dim == 0 {
            return Ok(0);
        }
        self.raw_embedding_bwd_rows(ids, dy, n, vocab, dim, padding, slot, rows, values)
    }
    /// `w[rows[s], :] ← w[rows[s], :] − lr · values[s, :]` for `s < k`
    /// (`w` is `[vocab, dim]`, the rows distinct and below `vocab`).
    #[allow(clippy::too_many_arguments)] // the operands and sizes of the formula above
    fn sgd_rows(
        &self,
        lr: f64,
        w: &mut Self::Buf<E>,
        rows: &Self::Buf<u32>,
        values: &Self::Buf<E>,
        k: usize,
        vocab: usize,
        dim: usize,
    ) -> Result<()> {
        need(self, "sgd_rows w", w, vocab * dim)?;
        need(self, "sgd_rows rows", rows, k)?;
        need(self, "sgd_rows values", values, k * dim)?;
        if k == 0 || dim == 0 {
            return Ok(());
        }
        self.raw_sgd_rows(lr, w, rows, values, k, vocab, dim)
    }
    /// Body of [`SparseRowKernels::embedding_bwd_rows`] (lengths checked, `n, dim > 0`).
    #[allow(clippy::too_many_arguments)] // as the provided method above
    fn raw_embedding_bwd_rows(
        &self,
        ids: &Self::Buf<u32>,
        dy: &Self::Buf<E>,
        n: usize,
        vocab: usize,
        dim: usize,
        padding: Option<usize>,
        slot: &mut Self::Buf<u32>,
        rows: &mut Self::Buf<u32>,
        values: &mut Self::Buf<E>,
    ) -> Result<usize>;
    /// Body of [`SparseRowKernels::sgd_rows`] (lengths checked, `k, dim > 0`).
    #[allow(clippy::too_many_arguments)] // as the provided method above
    fn raw_sgd_rows(
        &self,
        lr: f64,
        w: &mut Self::Buf<E>,
        rows: &Self::Buf<u32>,
        values: &Self::Buf<E>,
        k: usize,
        vocab: usize,
        dim: usize,
    ) -> Result<()>;
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> SparseRowKernels<E> for Cpu {
    fn raw_embedding_bwd_rows(
        &self,
        ids: &Vec<u32>,
        dy: &Vec<E>,
        n: usize,
        vocab: usize,
        dim: usize,
        padding: Option<usize>,
        slot: &mut Vec<u32>,
        rows: &mut Vec<u32>,
        values: &mut Vec<E>,
    ) -> Result<usize> {
        let ids = &ids[..n];
        if let Some((i, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
            return Err(Error::invalid(
                "embedding_bwd_rows",
                format!("id {id} at position {i} is not below the vocabulary size {vocab}"),
            ));
        }
        let mut k = 0;
        // In position order: a row's first contribution is copied (the dense
        // kernel's `0 + dy`, which is `dy` exactly), later ones are added.
        for (&id, g) in ids.iter().zip(dy[..n * dim].chunks_exact(dim)) {
            let v = id as usize;
            if Some(v) == padding {
                continue;
            }
            let s = slot[v];
            if s == FREE {
                slot[v] = k as u32;
                rows[k] = id;
                values[k * dim..][..dim].copy_from_slice(g);
                k += 1;
            } else {
                for (d, &gv) in values[s as usize * dim..][..dim].iter_mut().zip(g) {
                    *d = *d + gv;
                }
            }
        }
        for &r in &rows[..k] {
            slot[r as usize] = FREE;
        }
        Ok(k)
    }

    fn raw_sgd_rows(
        &self,
        lr: f64,
        w: &mut Vec<E>,
        rows: &Vec<u32>,
        values: &Vec<E>,
        k: usize,
        vocab: usize,
        dim: usize,
    ) -> Result<()> {
        let lr = E::of(lr);
        for (&r, g) in rows[..k].iter().zip(values[..k * dim].chunks_exact(dim)) {
            let v = r as usize;
            if v >= vocab {
                return Err(Error::invalid(
                    "sgd_rows",
                    format!("row {v} is not below the vocabulary size {vocab}"),
                ));
            }
            for (p, &gv) in w[v * dim..][..dim].iter_mut().zip(g) {
                *p = *p - lr * gv;
            }
        }
        Ok(())
    }
}

//! Embedding plans: the gather and the deterministic scatter-add.

#[allow(unused_imports)]
use super::*;

/// `y[i, :] = w[ids[i], :]` for `i < n` rows of `dim`. Operands: `[w, ids, y]`.
pub fn embedding_fwd(n: usize, vocab: usize, dim: usize) -> Plan {
    elementwise(
        &kernels::EMBEDDING_FWD,
        n * dim,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(n as u64),
            Arg::U64(vocab as u64),
            Arg::U64(dim as u64),
        ],
    )
}

/// `dw[v, :] (acc)= Σ_{ids[i] = v} dy[i, :]` for `v ≠ padding`, one thread per
/// element of `dw` (deterministic). Operands: `[ids, dy, dw]`.
pub fn embedding_bwd(n: usize, vocab: usize, dim: usize, padding: Option<usize>, acc: Acc) -> Plan {
    elementwise(
        &kernels::EMBEDDING_BWD,
        vocab * dim,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(n as u64),
            Arg::U64(vocab as u64),
            Arg::U64(dim as u64),
            // `vocab` matches no row: no padding.
            Arg::U64(padding.unwrap_or(vocab) as u64),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

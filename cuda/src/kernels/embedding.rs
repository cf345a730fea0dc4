//! Embedding lookups (`embedding.cu`): gather forward, deterministic
//! scatter-add backward, their plans and [`Cuda`]'s `EmbeddingKernels`.

use super::family::*;

kernels! {
    embedding = include_str!("embedding.cu");
    EMBEDDING_FWD = embedding_fwd(In, Labels, Out, U64, U64, U64);
    EMBEDDING_BWD = embedding_bwd(Labels, In, Out, U64, U64, U64, U64, I32);
}

/// `y[i, :] = w[ids[i], :]` for `i < n` rows of `dim`. Operands: `[w, ids, y]`.
pub fn embedding_fwd(n: usize, vocab: usize, dim: usize) -> Plan {
    elementwise(
        &EMBEDDING_FWD,
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
        &EMBEDDING_BWD,
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

impl<E: Elem> EmbeddingKernels<E> for Cuda {
    fn raw_embedding_fwd(
        &self,
        w: &Buf<E>,
        ids: &Buf<u32>,
        y: &mut Buf<E>,
        n: usize,
        vocab: usize,
        dim: usize,
    ) -> Result<()> {
        let ops = [self.opnd(w)?, self.opnd(ids)?, self.opnd_mut(y)?];
        self.go::<E>(&embedding_fwd(n, vocab, dim), &ops)
    }
    fn raw_embedding_bwd(
        &self,
        ids: &Buf<u32>,
        dy: &Buf<E>,
        dw: &mut Buf<E>,
        n: usize,
        vocab: usize,
        dim: usize,
        padding: Option<usize>,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(ids)?, self.opnd(dy)?, self.opnd_mut(dw)?];
        self.go::<E>(&embedding_bwd(n, vocab, dim, padding, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        check_plans(
            &MODULE,
            &[
                embedding_fwd(12, 7, 5),
                embedding_bwd(12, 7, 5, Some(0), Acc::Set),
            ],
        );
    }
}

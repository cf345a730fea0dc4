//! Attention's masked softmax (`attention.cu`): its two kernels, their plans
//! and [`Cuda`]'s `AttentionKernels` (the trait, its formulas, the CPU bodies
//! and the layer are kiln-core's `layers/attention.rs`; the per-head products
//! go through the core trait's batched GEMM).

use super::family::*;
use kiln_core::layers::{AttentionKernels, AttnDims};

kernels! {
    attention = include_str!("attention.cu");
    ATTN_SOFTMAX_FWD = attn_softmax_fwd(Out, Labels, U64, U64, U64, U64, I32, I32, U64);
    ATTN_SOFTMAX_BWD = attn_softmax_bwd(In, Out, U64, U64);
}

/// The masked softmax, in place, one warp per row; `pad` is the padding id
/// when `ids` is given. Operands: `[a, ids]` (`ids` empty without padding).
pub fn attn_softmax_fwd(d: &AttnDims, pad: Option<u32>) -> Plan {
    let rows = (d.batch * d.heads * d.queries) as u64;
    Plan::one(Launch::new(
        &ATTN_SOFTMAX_FWD,
        rows_grid(rows),
        ROW_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(rows),
            Arg::U64(d.heads as u64),
            Arg::U64(d.queries as u64),
            Arg::U64(d.keys as u64),
            Arg::I32(d.causal as i32),
            Arg::I32(pad.is_some() as i32),
            Arg::U64(pad.unwrap_or(0) as u64),
        ],
    ))
}

/// The softmax's backward, in place on `dp`. Operands: `[p, dp]`.
pub fn attn_softmax_bwd(d: &AttnDims) -> Plan {
    let rows = (d.batch * d.heads * d.queries) as u64;
    Plan::one(Launch::new(
        &ATTN_SOFTMAX_BWD,
        rows_grid(rows),
        ROW_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(rows),
            Arg::U64(d.keys as u64),
        ],
    ))
}

impl<E: Elem> AttentionKernels<E> for Cuda {
    fn raw_attn_softmax_fwd(
        &self,
        d: &AttnDims,
        pad: Option<(&Buf<u32>, u32)>,
        a: &mut Buf<E>,
    ) -> Result<()> {
        let none: Buf<u32> = self.alloc(0)?; // empty: a null pointer, never read
        let ids = pad.map_or(&none, |(ids, _)| ids);
        let ops = [self.opnd_mut(a)?, self.opnd(ids)?];
        self.go::<E>(&attn_softmax_fwd(d, pad.map(|(_, p)| p)), &ops)
    }

    fn raw_attn_softmax_bwd(&self, d: &AttnDims, p: &Buf<E>, dp: &mut Buf<E>) -> Result<()> {
        let ops = [self.opnd(p)?, self.opnd_mut(dp)?];
        self.go::<E>(&attn_softmax_bwd(d), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let d = AttnDims {
            batch: 2,
            heads: 3,
            queries: 4,
            keys: 5,
            causal: true,
        };
        check_plans(
            &MODULE,
            &[attn_softmax_fwd(&d, Some(0)), attn_softmax_bwd(&d)],
        );
    }
}

//! L2 normalisation over the last dimension (`l2_normalize.cu`): the
//! kernels, their plans and [`Cuda`]'s `L2NormalizeKernels` (the trait, its
//! formulas and the CPU bodies are in kiln-core's `layers/l2_normalize.rs`).

use super::family::*;
use kiln_core::layers::{L2NormalizeDims, L2NormalizeKernels};

kernels! {
    l2_normalize = include_str!("l2_normalize.cu");
    L2_NORMALIZE_FWD = l2_normalize_fwd(In, Out, U64, U64, Real);
    L2_NORMALIZE_BWD = l2_normalize_bwd(In, In, Out, U64, U64, Real, I32);
}

/// L2 normalisation, one warp per row. Operands: `[x, y]`.
pub fn l2_normalize_fwd(d: &L2NormalizeDims) -> Plan {
    Plan::one(Launch::new(
        &L2_NORMALIZE_FWD,
        rows_grid(d.rows as u64),
        ROW_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(d.rows as u64),
            Arg::U64(d.cols as u64),
            Arg::Real(d.eps),
        ],
    ))
}

/// L2-normalisation backward (the norm recomputed), one warp per row.
/// Operands: `[x, dy, dx]`.
pub fn l2_normalize_bwd(d: &L2NormalizeDims, acc: Acc) -> Plan {
    Plan::one(Launch::new(
        &L2_NORMALIZE_BWD,
        rows_grid(d.rows as u64),
        ROW_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(d.rows as u64),
            Arg::U64(d.cols as u64),
            Arg::Real(d.eps),
            Arg::I32(acc_flag(acc)),
        ],
    ))
}

impl<E: Elem> L2NormalizeKernels<E> for Cuda {
    fn raw_l2_normalize_fwd(
        &self,
        d: &L2NormalizeDims,
        x: &Buf<E>,
        y: &mut Buf<E>,
    ) -> Result<()> {
        if d.rows * d.cols == 0 {
            return Ok(());
        }
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&l2_normalize_fwd(d), &ops)
    }

    fn raw_l2_normalize_bwd(
        &self,
        d: &L2NormalizeDims,
        x: &Buf<E>,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        acc: Acc,
    ) -> Result<()> {
        if d.rows * d.cols == 0 {
            return Ok(());
        }
        let ops = [self.opnd(x)?, self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&l2_normalize_bwd(d, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let d = L2NormalizeDims {
            rows: 5,
            cols: 40,
            eps: 1e-12,
        };
        check_plans(&MODULE, &[l2_normalize_fwd(&d), l2_normalize_bwd(&d, Acc::Add)]);
    }
}

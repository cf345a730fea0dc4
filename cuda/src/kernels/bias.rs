//! The bias row of `Linear` (`bias.cu`): `y[r, j] += b[j]` and its column
//! sums, kernels of the core trait (`Backend::add_bias`, `bias_grad`; the
//! bodies are in `backend.rs`).

use super::family::*;

kernels! {
    bias = include_str!("bias.cu");
    BIAS_FWD = bias_fwd(Out, In, U64, U64);
    BIAS_BWD = bias_bwd(In, Out, U64, U64, I32);
}

/// `y[r, c] += b[c]`. Operands: `[y, b]`.
pub fn bias_fwd(rows: usize, cols: usize) -> Plan {
    elementwise(
        &BIAS_FWD,
        rows * cols,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(rows as u64),
            Arg::U64(cols as u64),
        ],
    )
}

/// `db (acc)= Σ_r dy[r, ·]`. Operands: `[dy, db]`.
pub fn bias_bwd(rows: usize, cols: usize, acc: Acc) -> Plan {
    let grid = (cols as u64).div_ceil(32).max(1) as u32;
    Plan::one(Launch::new(
        &BIAS_BWD,
        grid,
        REDUCE_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(rows as u64),
            Arg::U64(cols as u64),
            Arg::I32(acc_flag(acc)),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        check_plans(&MODULE, &[bias_fwd(3, 4), bias_bwd(3, 4, Acc::Set)]);
    }
}

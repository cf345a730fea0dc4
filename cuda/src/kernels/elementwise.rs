//! Memory and element-wise kernels of the core trait (`elementwise.cu`):
//! fill, add, axpy and strided block copies, with their launch plans. The
//! `Backend` bodies that run them are in `backend.rs`.

use super::family::*;

kernels! {
    elementwise = include_str!("elementwise.cu");
    FILL_FWD = fill_fwd(Out, U64, Real);
    ADD_FWD = add_fwd(In, In, Out, U64);
    AXPY_FWD = axpy_fwd(Real, In, Out, U64, I32);
    COPY_BLOCK_FWD = copy_block_fwd(In, U64, Out, U64, U64, U64, I32);
}

/// `y[..n] = v`. Operands: `[y]`.
pub fn fill(n: usize, v: f64) -> Plan {
    elementwise(
        &FILL_FWD,
        n,
        &[Arg::Buf(0, 0), Arg::U64(n as u64), Arg::Real(v)],
    )
}

/// `y = a + b`. Operands: `[a, b, y]`.
pub fn add(n: usize) -> Plan {
    elementwise(
        &ADD_FWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(n as u64),
        ],
    )
}

/// `dst (acc)= α · src`. Operands: `[src, dst]`.
pub fn axpy(alpha: f64, n: usize, acc: Acc) -> Plan {
    elementwise(
        &AXPY_FWD,
        n,
        &[
            Arg::Real(alpha),
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(n as u64),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

/// Strided block copy (see `Backend::copy_block`). Operands: `[src, dst]`.
#[allow(clippy::too_many_arguments)]
pub fn copy_block(b: &Block, acc: Acc) -> Plan {
    elementwise(
        &COPY_BLOCK_FWD,
        b.rows * b.cols,
        &[
            Arg::Buf(0, b.src_off as u64),
            Arg::U64(b.src_ld as u64),
            Arg::Buf(1, b.dst_off as u64),
            Arg::U64(b.dst_ld as u64),
            Arg::U64(b.rows as u64),
            Arg::U64(b.cols as u64),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let b = Block {
            src_ld: 4,
            src_off: 1,
            dst_ld: 5,
            dst_off: 2,
            rows: 3,
            cols: 2,
        };
        check_plans(
            &MODULE,
            &[fill(10, 1.0), add(10), axpy(2.0, 10, Acc::Add), copy_block(&b, Acc::Set)],
        );
    }
}

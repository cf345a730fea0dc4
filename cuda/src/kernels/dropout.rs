//! Inverted dropout (`dropout.cu`): the kernels, their plans and
//! [`Cuda`]'s `DropoutKernels`. The mask is recomputed from `(seed, i)` in the
//! backward, exactly as kiln-core's CPU body.

use super::family::*;

kernels! {
    dropout = include_str!("dropout.cu");
    DROPOUT_FWD = dropout_fwd(In, Out, U64, U64, U64, Real);
    DROPOUT_BWD = dropout_bwd(In, Out, U64, U64, U64, Real, I32);
}

fn keep_scale(p: f64) -> f64 {
    if p >= 1.0 {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}

/// Inverted dropout. Operands: `[x, y]`.
pub fn dropout_fwd(n: usize, p: f64, seed: u64) -> Plan {
    let thr = kiln_core::device::dropout_threshold(p);
    elementwise(
        &DROPOUT_FWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(n as u64),
            Arg::U64(seed),
            Arg::U64(thr),
            Arg::Real(keep_scale(p)),
        ],
    )
}

/// Dropout backward. Operands: `[dy, dx]`.
pub fn dropout_bwd(n: usize, p: f64, seed: u64, acc: Acc) -> Plan {
    let thr = kiln_core::device::dropout_threshold(p);
    elementwise(
        &DROPOUT_BWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(n as u64),
            Arg::U64(seed),
            Arg::U64(thr),
            Arg::Real(keep_scale(p)),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

impl<E: Elem> DropoutKernels<E> for Cuda {
    fn raw_dropout_fwd(
        &self,
        x: &Buf<E>,
        y: &mut Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
    ) -> Result<()> {
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&dropout_fwd(n, p, seed), &ops)
    }

    fn raw_dropout_bwd(
        &self,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&dropout_bwd(n, p, seed, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        check_plans(&MODULE, &[dropout_fwd(10, 0.5, 1), dropout_bwd(10, 0.5, 1, Acc::Add)]);
    }
}

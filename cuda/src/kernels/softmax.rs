//! Row-wise softmax (`softmax.cu`): the kernels, their plans and
//! [`Cuda`]'s `SoftmaxKernels`.

use super::family::*;

kernels! {
    softmax = include_str!("softmax.cu");
    SOFTMAX_FWD = softmax_fwd(In, Out, U64, U64);
    SOFTMAX_BWD = softmax_bwd(In, In, Out, U64, U64, I32);
}

/// Row-wise softmax. Operands: `[x, y]`.
pub fn softmax_fwd(rows: usize, cols: usize) -> Plan {
    Plan::one(Launch::new(
        &SOFTMAX_FWD,
        rows_grid(rows as u64),
        ROW_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(rows as u64),
            Arg::U64(cols as u64),
        ],
    ))
}

/// Softmax backward. Operands: `[y, dy, dx]`.
pub fn softmax_bwd(rows: usize, cols: usize, acc: Acc) -> Plan {
    Plan::one(Launch::new(
        &SOFTMAX_BWD,
        rows_grid(rows as u64),
        ROW_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(rows as u64),
            Arg::U64(cols as u64),
            Arg::I32(acc_flag(acc)),
        ],
    ))
}

impl<E: Elem> SoftmaxKernels<E> for Cuda {
    fn raw_softmax_fwd(&self, x: &Buf<E>, y: &mut Buf<E>, rows: usize, cols: usize) -> Result<()> {
        if rows * cols == 0 {
            return Ok(());
        }
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&softmax_fwd(rows, cols), &ops)
    }

    fn raw_softmax_bwd(
        &self,
        y: &Buf<E>,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let n = rows * cols;
        if n == 0 {
            return Ok(());
        }
        let ops = [self.opnd(y)?, self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&softmax_bwd(rows, cols, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        check_plans(&MODULE, &[softmax_fwd(3, 4), softmax_bwd(3, 4, Acc::Add)]);
    }
}

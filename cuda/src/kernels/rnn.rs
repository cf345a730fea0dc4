//! The Elman RNN cell (`rnn.cu`): its two kernels, their plans and
//! [`Cuda`]'s `RnnKernels` (the trait, its formulas, the CPU bodies and the
//! layer are kiln-core's `layers/rnn.rs`; the layer's products go through the
//! core trait's GEMM).

use super::family::*;
use kiln_core::layers::{RnnDims, RnnKernels, RnnNonlinearity};

kernels! {
    rnn = include_str!("rnn.cu");
    RNN_CELL_FWD = rnn_cell_fwd(In, Out, U64, U64, U64, U64, I32);
    RNN_CELL_BWD = rnn_cell_bwd(In, In, In, Out, U64, U64, U64, U64, I32);
}

/// The sizes, the step and the nonlinearity's flag (0 tanh, 1 relu).
fn tail(d: &RnnDims, f: RnnNonlinearity, t: usize) -> [Arg; 5] {
    let [b, s, h, tt] = [d.batch, d.steps, d.hidden, t].map(|v| Arg::U64(v as u64));
    [b, s, h, tt, Arg::I32((f == RnnNonlinearity::Relu) as i32)]
}

/// Step `t` of the forward pass. Operands: `[a, h]`.
pub fn rnn_cell_fwd(d: &RnnDims, f: RnnNonlinearity, t: usize) -> Plan {
    let [b, s, h, tt, relu] = tail(d, f, t);
    elementwise(
        &RNN_CELL_FWD,
        d.batch * d.hidden,
        &[Arg::Buf(0, 0), Arg::Buf(1, 0), b, s, h, tt, relu],
    )
}

/// Step `t` of the backward pass. Operands: `[h, dy, dh, da]`.
pub fn rnn_cell_bwd(d: &RnnDims, f: RnnNonlinearity, t: usize) -> Plan {
    let [b, s, h, tt, relu] = tail(d, f, t);
    elementwise(
        &RNN_CELL_BWD,
        d.batch * d.hidden,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::Buf(3, 0),
            b,
            s,
            h,
            tt,
            relu,
        ],
    )
}

impl<E: Elem> RnnKernels<E> for Cuda {
    fn raw_rnn_cell_fwd(
        &self,
        d: &RnnDims,
        f: RnnNonlinearity,
        t: usize,
        a: &Buf<E>,
        h: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [self.opnd(a)?, self.opnd_mut(h)?];
        self.go::<E>(&rnn_cell_fwd(d, f, t), &ops)
    }

    fn raw_rnn_cell_bwd(
        &self,
        d: &RnnDims,
        f: RnnNonlinearity,
        t: usize,
        h: &Buf<E>,
        dy: &Buf<E>,
        dh: &Buf<E>,
        da: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [
            self.opnd(h)?,
            self.opnd(dy)?,
            self.opnd(dh)?,
            self.opnd_mut(da)?,
        ];
        self.go::<E>(&rnn_cell_bwd(d, f, t), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let d = RnnDims {
            batch: 3,
            steps: 5,
            hidden: 7,
        };
        let (tanh, relu) = (RnnNonlinearity::Tanh, RnnNonlinearity::Relu);
        check_plans(
            &MODULE,
            &[
                rnn_cell_fwd(&d, tanh, 0),
                rnn_cell_bwd(&d, relu, 4),
            ],
        );
    }
}

//! The LSTM cell (`lstm.cu`): its two kernels, their plans and [`Cuda`]'s
//! `LstmKernels` (the trait, its formulas, the CPU bodies and the layer are
//! kiln-core's `layers/lstm.rs`; the layer's products go through the core
//! trait's GEMM).

use super::family::*;
use kiln_core::layers::{LstmDims, LstmKernels};

kernels! {
    lstm = include_str!("lstm.cu");
    LSTM_CELL_FWD = lstm_cell_fwd(In, Out, Out, Out, U64, U64, U64, U64);
    LSTM_CELL_BWD = lstm_cell_bwd(In, In, In, In, In, Out, Out, U64, U64, U64, U64);
}

fn sizes(d: &LstmDims, t: usize) -> [Arg; 4] {
    [d.batch, d.steps, d.hidden, t].map(|v| Arg::U64(v as u64))
}

/// Step `t` of the forward pass. Operands: `[c0, gates, c, h]`.
pub fn lstm_cell_fwd(d: &LstmDims, t: usize) -> Plan {
    let [b, s, h, tt] = sizes(d, t);
    elementwise(
        &LSTM_CELL_FWD,
        d.batch * d.hidden,
        &[Arg::Buf(0, 0), Arg::Buf(1, 0), Arg::Buf(2, 0), Arg::Buf(3, 0), b, s, h, tt],
    )
}

/// Step `t` of the backward pass. Operands: `[c0, gates, c, dy, dh, dc, dgates]`.
pub fn lstm_cell_bwd(d: &LstmDims, t: usize) -> Plan {
    let [b, s, h, tt] = sizes(d, t);
    elementwise(
        &LSTM_CELL_BWD,
        d.batch * d.hidden,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::Buf(3, 0),
            Arg::Buf(4, 0),
            Arg::Buf(5, 0),
            Arg::Buf(6, 0),
            b,
            s,
            h,
            tt,
        ],
    )
}

impl<E: Elem> LstmKernels<E> for Cuda {
    fn raw_lstm_cell_fwd(
        &self,
        d: &LstmDims,
        t: usize,
        c0: &Buf<E>,
        gates: &mut Buf<E>,
        c: &mut Buf<E>,
        h: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [self.opnd(c0)?, self.opnd_mut(gates)?, self.opnd_mut(c)?, self.opnd_mut(h)?];
        self.go::<E>(&lstm_cell_fwd(d, t), &ops)
    }

    fn raw_lstm_cell_bwd(
        &self,
        d: &LstmDims,
        t: usize,
        c0: &Buf<E>,
        gates: &Buf<E>,
        c: &Buf<E>,
        dy: &Buf<E>,
        dh: &Buf<E>,
        dc: &mut Buf<E>,
        dgates: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [
            self.opnd(c0)?,
            self.opnd(gates)?,
            self.opnd(c)?,
            self.opnd(dy)?,
            self.opnd(dh)?,
            self.opnd_mut(dc)?,
            self.opnd_mut(dgates)?,
        ];
        self.go::<E>(&lstm_cell_bwd(d, t), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let d = LstmDims {
            batch: 3,
            steps: 5,
            hidden: 7,
        };
        check_plans(&MODULE, &[lstm_cell_fwd(&d, 0), lstm_cell_bwd(&d, 4)]);
    }
}

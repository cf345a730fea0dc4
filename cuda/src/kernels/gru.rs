//! The GRU cell (`gru.cu`): its two kernels, their plans and [`Cuda`]'s
//! `GruKernels` (the trait, its formulas, the CPU bodies and the layer are
//! kiln-core's `layers/gru.rs`; the layer's products go through the core
//! trait's GEMM).

use super::family::*;
use kiln_core::layers::{GruDims, GruKernels};

kernels! {
    gru = include_str!("gru.cu");
    GRU_CELL_FWD = gru_cell_fwd(In, Out, In, Out, U64, U64, U64, U64);
    GRU_CELL_BWD = gru_cell_bwd(In, In, In, In, In, Out, Out, Out, U64, U64, U64, U64);
}

fn sizes(d: &GruDims, t: usize) -> [Arg; 4] {
    [d.batch, d.steps, d.hidden, t].map(|v| Arg::U64(v as u64))
}

/// Step `t` of the forward pass. Operands: `[h0, gates, hg, h]`.
pub fn gru_cell_fwd(d: &GruDims, t: usize) -> Plan {
    let [b, s, h, tt] = sizes(d, t);
    elementwise(
        &GRU_CELL_FWD,
        d.batch * d.hidden,
        &[Arg::Buf(0, 0), Arg::Buf(1, 0), Arg::Buf(2, 0), Arg::Buf(3, 0), b, s, h, tt],
    )
}

/// Step `t` of the backward pass. Operands: `[h0, gates, hg, h, dy, dh, dgates,
/// dhg]`.
pub fn gru_cell_bwd(d: &GruDims, t: usize) -> Plan {
    let [b, s, h, tt] = sizes(d, t);
    elementwise(
        &GRU_CELL_BWD,
        d.batch * d.hidden,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::Buf(3, 0),
            Arg::Buf(4, 0),
            Arg::Buf(5, 0),
            Arg::Buf(6, 0),
            Arg::Buf(7, 0),
            b,
            s,
            h,
            tt,
        ],
    )
}

impl<E: Elem> GruKernels<E> for Cuda {
    fn raw_gru_cell_fwd(
        &self,
        d: &GruDims,
        t: usize,
        h0: &Buf<E>,
        gates: &mut Buf<E>,
        hg: &Buf<E>,
        h: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [self.opnd(h0)?, self.opnd_mut(gates)?, self.opnd(hg)?, self.opnd_mut(h)?];
        self.go::<E>(&gru_cell_fwd(d, t), &ops)
    }

    fn raw_gru_cell_bwd(
        &self,
        d: &GruDims,
        t: usize,
        h0: &Buf<E>,
        gates: &Buf<E>,
        hg: &Buf<E>,
        h: &Buf<E>,
        dy: &Buf<E>,
        dh: &mut Buf<E>,
        dgates: &mut Buf<E>,
        dhg: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [
            self.opnd(h0)?,
            self.opnd(gates)?,
            self.opnd(hg)?,
            self.opnd(h)?,
            self.opnd(dy)?,
            self.opnd_mut(dh)?,
            self.opnd_mut(dgates)?,
            self.opnd_mut(dhg)?,
        ];
        self.go::<E>(&gru_cell_bwd(d, t), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let d = GruDims {
            batch: 3,
            steps: 5,
            hidden: 7,
        };
        check_plans(&MODULE, &[gru_cell_fwd(&d, 0), gru_cell_bwd(&d, 4)]);
    }
}

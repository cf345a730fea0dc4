//! Convolution's kernels (`conv.cu`): im2col/col2im, the NCHW↔CNHW
//! transpose and the per-channel bias, their plans and [`Cuda`]'s
//! `ConvKernels`.

use super::family::*;

kernels! {
    conv = include_str!("conv.cu");
    IM2COL_FWD = im2col_fwd(In, Out, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
    IM2COL_BWD = im2col_bwd(In, Out, U64, U64, I32, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
    TRANSPOSE01_FWD = transpose01_fwd(In, Out, U64, U64, U64, I32);
    CHANNEL_BIAS_FWD = channel_bias_fwd(Out, In, U64, U64, U64);
    CHANNEL_BIAS_BWD = channel_bias_bwd(In, Out, U64, U64, U64, I32);
}

/// `im2col` of samples `first .. first + count`. Operands: `[x, cols]`.
pub fn im2col(g: &Window2d, first: usize, count: usize) -> Plan {
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(first as u64),
        Arg::U64(count as u64),
    ];
    windowed(
        &IM2COL_FWD,
        g.rows() * count * g.out_plane(),
        head,
        g,
    )
}

/// `col2im` (acc) into samples `first .. first + count`. Operands: `[cols, x]`.
pub fn col2im(g: &Window2d, first: usize, count: usize, acc: Acc) -> Plan {
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(first as u64),
        Arg::U64(count as u64),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(
        &IM2COL_BWD,
        count * g.channels * g.in_plane(),
        head,
        g,
    )
}

/// Swap of the first two axes of `[a, b, n]`. Operands: `[src, dst]`.
pub fn transpose01(src_off: usize, dst_off: usize, a: usize, b: usize, n: usize, acc: Acc) -> Plan {
    elementwise(
        &TRANSPOSE01_FWD,
        a * b * n,
        &[
            Arg::Buf(0, src_off as u64),
            Arg::Buf(1, dst_off as u64),
            Arg::U64(a as u64),
            Arg::U64(b as u64),
            Arg::U64(n as u64),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

/// `y[s, c, p] += bias[c]`. Operands: `[y, bias]`.
pub fn channel_bias_fwd(batch: usize, channels: usize, spatial: usize) -> Plan {
    elementwise(
        &CHANNEL_BIAS_FWD,
        batch * channels * spatial,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(batch as u64),
            Arg::U64(channels as u64),
            Arg::U64(spatial as u64),
        ],
    )
}

/// `db[c] (acc)= Σ dy[·, c, ·]`, one block per channel. Operands: `[dy, db]`.
pub fn channel_bias_bwd(batch: usize, channels: usize, spatial: usize, acc: Acc) -> Plan {
    Plan::one(Launch::new(
        &CHANNEL_BIAS_BWD,
        channels.min(u32::MAX as usize) as u32,
        REDUCE_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(batch as u64),
            Arg::U64(channels as u64),
            Arg::U64(spatial as u64),
            Arg::I32(acc_flag(acc)),
        ],
    ))
}

impl<E: Elem> ConvKernels<E> for Cuda {
    fn raw_im2col(
        &self,
        g: &Window2d,
        x: &Buf<E>,
        first: usize,
        count: usize,
        cols: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [self.opnd(x)?, self.opnd_mut(cols)?];
        self.go::<E>(&im2col(g, first, count), &ops)
    }

    fn raw_col2im(
        &self,
        g: &Window2d,
        cols: &Buf<E>,
        x: &mut Buf<E>,
        first: usize,
        count: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(cols)?, self.opnd_mut(x)?];
        self.go::<E>(&col2im(g, first, count, acc), &ops)
    }

    fn raw_transpose01(
        &self,
        src: &Buf<E>,
        src_off: usize,
        dst: &mut Buf<E>,
        dst_off: usize,
        a: usize,
        b: usize,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&transpose01(src_off, dst_off, a, b, n, acc), &ops)
    }

    fn raw_add_channel_bias(
        &self,
        y: &mut Buf<E>,
        bias: &Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
    ) -> Result<()> {
        let (pb, py) = (self.opnd(bias)?, self.opnd_mut(y)?);
        self.go::<E>(&channel_bias_fwd(batch, channels, spatial), &[py, pb])
    }

    fn raw_channel_bias_grad(
        &self,
        dy: &Buf<E>,
        db: &mut Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
        acc: Acc,
    ) -> Result<()> {
        if channels == 0 {
            return Ok(());
        }
        let ops = [self.opnd(dy)?, self.opnd_mut(db)?];
        self.go::<E>(&channel_bias_bwd(batch, channels, spatial, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let g = Window2d::new("test", 2, (6, 5), (3, 2), (2, 1), (1, 0), (1, 2)).unwrap();
        check_plans(
            &MODULE,
            &[
                im2col(&g, 0, 2),
                col2im(&g, 1, 1, Acc::Set),
                transpose01(0, 0, 2, 3, 4, Acc::Set),
                channel_bias_fwd(2, 3, 4),
                channel_bias_bwd(2, 3, 4, Acc::Add),
            ],
        );
    }
}

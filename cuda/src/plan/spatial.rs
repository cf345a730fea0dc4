//! Image plans: im2col/col2im, the NCHW↔CNHW transpose, pooling,
//! unpooling and upsampling.

#[allow(unused_imports)]
use super::*;

fn resize_args(g: &Resize2d, batch: usize) -> [Arg; 6] {
    [
        Arg::U64((batch * g.channels) as u64),
        Arg::U64(g.h as u64),
        Arg::U64(g.w as u64),
        Arg::U64(g.oh as u64),
        Arg::U64(g.ow as u64),
        Arg::I32((g.mode == UpsampleMode::Bilinear) as i32),
    ]
}

/// Upsampling. Operands: `[x, y]`.
pub fn upsample2d_fwd(g: &Resize2d, batch: usize) -> Plan {
    let [p, h, w, oh, ow, m] = resize_args(g, batch);
    elementwise(
        &kernels::UPSAMPLE2D_FWD,
        batch * g.channels * g.oh * g.ow,
        &[Arg::Buf(0, 0), Arg::Buf(1, 0), p, h, w, oh, ow, m],
    )
}

/// Upsampling's backward. Operands: `[dy, dx]`.
pub fn upsample2d_bwd(g: &Resize2d, batch: usize, acc: Acc) -> Plan {
    let [p, h, w, oh, ow, m] = resize_args(g, batch);
    elementwise(
        &kernels::UPSAMPLE2D_BWD,
        batch * g.channels * g.h * g.w,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            p,
            h,
            w,
            oh,
            ow,
            m,
            Arg::I32(acc_flag(acc)),
        ],
    )
}

/// The 13 window sizes, in the kernels' `KILN_WINDOW_PARAMS` order.
fn window(g: &Window2d) -> [Arg; 13] {
    [
        g.channels, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow,
    ]
    .map(|v| Arg::U64(v as u64))
}

fn with_window<const N: usize>(head: [Arg; N], g: &Window2d) -> ([Arg; MAX_ARGS], usize) {
    let mut a = [Arg::U64(0); MAX_ARGS];
    a[..N].copy_from_slice(&head);
    a[N..N + 13].copy_from_slice(&window(g));
    (a, N + 13)
}

fn windowed<const N: usize>(
    k: &'static Kernel,
    threads: usize,
    head: [Arg; N],
    g: &Window2d,
) -> Plan {
    let (a, n) = with_window(head, g);
    elementwise(k, threads, &a[..n])
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
        &kernels::IM2COL_FWD,
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
        &kernels::IM2COL_BWD,
        count * g.channels * g.in_plane(),
        head,
        g,
    )
}

/// Swap of the first two axes of `[a, b, n]`. Operands: `[src, dst]`.
pub fn transpose01(src_off: usize, dst_off: usize, a: usize, b: usize, n: usize, acc: Acc) -> Plan {
    elementwise(
        &kernels::TRANSPOSE01_FWD,
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

/// Max pooling of `batch` images. Operands: `[x, y, indices]`.
pub fn max_pool2d_fwd(g: &Window2d, batch: usize) -> Plan {
    let planes = batch * g.channels;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::U64(planes as u64),
    ];
    windowed(&kernels::MAX_POOL2D_FWD, planes * g.out_plane(), head, g)
}

/// Max unpooling (max pooling's backward). Operands: `[indices, src, dst]`.
pub fn max_unpool2d(g: &Window2d, batch: usize, acc: Acc) -> Plan {
    let planes = batch * g.channels;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::U64(planes as u64),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(&kernels::MAX_UNPOOL2D_FWD, planes * g.in_plane(), head, g)
}

/// Max unpooling's backward. Operands: `[indices, src, dst]`.
pub fn max_unpool2d_bwd(g: &Window2d, batch: usize, acc: Acc) -> Plan {
    let planes = batch * g.channels;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::U64(planes as u64),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(&kernels::MAX_UNPOOL2D_BWD, planes * g.out_plane(), head, g)
}

/// Average pooling (padding counted). Operands: `[x, y]`.
pub fn avg_pool2d_fwd(g: &Window2d, batch: usize) -> Plan {
    let planes = batch * g.channels;
    let inv = 1.0 / (g.kh * g.kw) as f64;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(planes as u64),
        Arg::Real(inv),
    ];
    windowed(&kernels::AVG_POOL2D_FWD, planes * g.out_plane(), head, g)
}

/// Average pooling's backward. Operands: `[dy, dx]`.
pub fn avg_pool2d_bwd(g: &Window2d, batch: usize, acc: Acc) -> Plan {
    let planes = batch * g.channels;
    let inv = 1.0 / (g.kh * g.kw) as f64;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(planes as u64),
        Arg::Real(inv),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(&kernels::AVG_POOL2D_BWD, planes * g.in_plane(), head, g)
}

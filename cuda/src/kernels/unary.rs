//! The element-wise functions (`relu`, `sigmoid`, `gelu`, …): their CUDA
//! source is generated from the table in kiln-core (`kernels/unary.rs`), where
//! each function's `f` and `df` are declared once; this file names the
//! kernels, maps each `Act` to its pair and builds the launch plans. The
//! `Backend::act_fwd`/`act_bwd` bodies that run them are in `backend.rs`.

use super::family::*;

kernels! {
    unary = kiln_core::kernels::unary::CUDA_SOURCE;
    RELU_FWD = relu_fwd(In, Out, U64, Real);
    RELU_BWD = relu_bwd(In, In, In, Out, U64, Real, I32);
    RELU_GUIDED_FWD = relu_guided_fwd(In, Out, U64, Real);
    RELU_GUIDED_BWD = relu_guided_bwd(In, In, In, Out, U64, Real, I32);
    RELU_DECONV_FWD = relu_deconv_fwd(In, Out, U64, Real);
    RELU_DECONV_BWD = relu_deconv_bwd(In, In, In, Out, U64, Real, I32);
    LEAKY_RELU_FWD = leaky_relu_fwd(In, Out, U64, Real);
    LEAKY_RELU_BWD = leaky_relu_bwd(In, In, In, Out, U64, Real, I32);
    SIGMOID_FWD = sigmoid_fwd(In, Out, U64, Real);
    SIGMOID_BWD = sigmoid_bwd(In, In, In, Out, U64, Real, I32);
    TANH_FWD = tanh_fwd(In, Out, U64, Real);
    TANH_BWD = tanh_bwd(In, In, In, Out, U64, Real, I32);
    GELU_FWD = gelu_fwd(In, Out, U64, Real);
    GELU_BWD = gelu_bwd(In, In, In, Out, U64, Real, I32);
    GELU_TANH_FWD = gelu_tanh_fwd(In, Out, U64, Real);
    GELU_TANH_BWD = gelu_tanh_bwd(In, In, In, Out, U64, Real, I32);
    RELU_BIAS_FWD = relu_bias_fwd(Out, In, Out, U64, U64, Real);
    RELU_BIAS_BWD = relu_bias_bwd(In, In, In, Out, Out, U64, U64, Real, I32);
    RELU_GUIDED_BIAS_FWD = relu_guided_bias_fwd(Out, In, Out, U64, U64, Real);
    RELU_GUIDED_BIAS_BWD = relu_guided_bias_bwd(In, In, In, Out, Out, U64, U64, Real, I32);
    RELU_DECONV_BIAS_FWD = relu_deconv_bias_fwd(Out, In, Out, U64, U64, Real);
    RELU_DECONV_BIAS_BWD = relu_deconv_bias_bwd(In, In, In, Out, Out, U64, U64, Real, I32);
    LEAKY_RELU_BIAS_FWD = leaky_relu_bias_fwd(Out, In, Out, U64, U64, Real);
    LEAKY_RELU_BIAS_BWD = leaky_relu_bias_bwd(In, In, In, Out, Out, U64, U64, Real, I32);
    SIGMOID_BIAS_FWD = sigmoid_bias_fwd(Out, In, Out, U64, U64, Real);
    SIGMOID_BIAS_BWD = sigmoid_bias_bwd(In, In, In, Out, Out, U64, U64, Real, I32);
    TANH_BIAS_FWD = tanh_bias_fwd(Out, In, Out, U64, U64, Real);
    TANH_BIAS_BWD = tanh_bias_bwd(In, In, In, Out, Out, U64, U64, Real, I32);
    GELU_BIAS_FWD = gelu_bias_fwd(Out, In, Out, U64, U64, Real);
    GELU_BIAS_BWD = gelu_bias_bwd(In, In, In, Out, Out, U64, U64, Real, I32);
    GELU_TANH_BIAS_FWD = gelu_tanh_bias_fwd(Out, In, Out, U64, U64, Real);
    GELU_TANH_BIAS_BWD = gelu_tanh_bias_bwd(In, In, In, Out, Out, U64, U64, Real, I32);
}

/// The forward and backward kernels of an element-wise function. The match
/// is exhaustive, so a function added to kiln-core's table without kernels
/// here does not compile; `tests` check that the names agree with the table.
pub fn unary_kernels(f: Act) -> (&'static Kernel, &'static Kernel) {
    match f {
        Act::Relu => (&RELU_FWD, &RELU_BWD),
        Act::ReluGuided => (&RELU_GUIDED_FWD, &RELU_GUIDED_BWD),
        Act::ReluDeconv => (&RELU_DECONV_FWD, &RELU_DECONV_BWD),
        Act::LeakyRelu(_) => (&LEAKY_RELU_FWD, &LEAKY_RELU_BWD),
        Act::Sigmoid => (&SIGMOID_FWD, &SIGMOID_BWD),
        Act::Tanh => (&TANH_FWD, &TANH_BWD),
        Act::Gelu => (&GELU_FWD, &GELU_BWD),
        Act::GeluTanh => (&GELU_TANH_FWD, &GELU_TANH_BWD),
    }
}

/// The fused bias kernels of an element-wise function (forward, backward):
/// a dense layer's bias and the function in one pass each way.
pub fn bias_kernels(f: Act) -> (&'static Kernel, &'static Kernel) {
    match f {
        Act::Relu => (&RELU_BIAS_FWD, &RELU_BIAS_BWD),
        Act::ReluGuided => (&RELU_GUIDED_BIAS_FWD, &RELU_GUIDED_BIAS_BWD),
        Act::ReluDeconv => (&RELU_DECONV_BIAS_FWD, &RELU_DECONV_BIAS_BWD),
        Act::LeakyRelu(_) => (&LEAKY_RELU_BIAS_FWD, &LEAKY_RELU_BIAS_BWD),
        Act::Sigmoid => (&SIGMOID_BIAS_FWD, &SIGMOID_BIAS_BWD),
        Act::Tanh => (&TANH_BIAS_FWD, &TANH_BIAS_BWD),
        Act::Gelu => (&GELU_BIAS_FWD, &GELU_BIAS_BWD),
        Act::GeluTanh => (&GELU_TANH_BIAS_FWD, &GELU_TANH_BIAS_BWD),
    }
}

/// `x[r, c] += b[c]`, then `y = f(x)`, over a `rows × cols` matrix in one
/// kernel. Operands: `[x, b, y]`.
pub fn bias_act_fwd(f: Act, rows: usize, cols: usize) -> Plan {
    let (fwd, _) = bias_kernels(f);
    let args = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::U64(rows as u64),
        Arg::U64(cols as u64),
        Arg::Real(f.param()),
    ];
    elementwise(fwd, rows * cols, &args)
}

/// `dx = dy · f'(x or y)` and `db[c] (acc)= Σ_r dx[r, c]` in one kernel (one
/// block per 32 columns, as `bias_bwd`). Operands: `[x, y, dy, dx, db]`.
pub fn bias_act_bwd(f: Act, rows: usize, cols: usize, acc: Acc) -> Plan {
    let (_, bwd) = bias_kernels(f);
    let grid = (cols as u64).div_ceil(32).max(1) as u32;
    Plan::one(Launch::new(
        bwd,
        grid,
        REDUCE_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::Buf(3, 0),
            Arg::Buf(4, 0),
            Arg::U64(rows as u64),
            Arg::U64(cols as u64),
            Arg::Real(f.param()),
            Arg::I32(acc_flag(acc)),
        ],
    ))
}

/// `y = f(x)` (kernels generated from kiln-core's table). Operands: `[x, y]`.
pub fn act_fwd(f: Act, n: usize) -> Plan {
    let (fwd, _) = unary_kernels(f);
    let args = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(n as u64),
        Arg::Real(f.param()),
    ];
    elementwise(fwd, n, &args)
}
/// `dx (acc)= dy · f'(x or y)`; both `x` and `y` are passed and the kernel
/// reads the one its table entry names. Operands: `[x, y, dy, dx]`.
pub fn act_bwd(f: Act, n: usize, acc: Acc) -> Plan {
    let (_, bwd) = unary_kernels(f);
    let args = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::Buf(3, 0),
        Arg::U64(n as u64),
        Arg::Real(f.param()),
        Arg::I32(acc_flag(acc)),
    ];
    elementwise(bwd, n, &args)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let mut plans = Vec::new();
        for &f in Act::ALL {
            plans.push(act_fwd(f, 10));
            plans.push(act_bwd(f, 10, Acc::Set));
            plans.push(bias_act_fwd(f, 2, 5));
            plans.push(bias_act_bwd(f, 2, 5, Acc::Add));
        }
        check_plans(&MODULE, &plans);
    }

    /// Every function of kiln-core's element-wise table has its two kernels
    /// here under the table's name, and the `unary` module has no others.
    #[test]
    fn unary_kernels_follow_the_table() {
        for &f in Act::ALL {
            let (fwd, bwd) = unary_kernels(f);
            assert_eq!(fwd.name, format!("{}_fwd", f.name()));
            assert_eq!(bwd.name, format!("{}_bwd", f.name()));
            assert_eq!((fwd.module, bwd.module), ("unary", "unary"));
            let (bf, bb) = bias_kernels(f);
            assert_eq!(bf.name, format!("{}_bias_fwd", f.name()));
            assert_eq!(bb.name, format!("{}_bias_bwd", f.name()));
        }
        let m = &MODULE;
        assert_eq!(m.kernels.len(), 4 * Act::ALL.len());
        for k in m.kernels {
            let base = ["_bias_fwd", "_bias_bwd", "_fwd", "_bwd"]
                .iter()
                .find_map(|s| k.name.strip_suffix(s))
                .unwrap_or_else(|| panic!("{}: no kernel suffix", k.name));
            assert!(
                m.source.contains(&format!("KILN_UNARY({base}, ")),
                "{}",
                k.name
            );
        }
    }
}

//! The registry of kiln's CUDA kernels: one CUDA C source per op family
//! (`*.cu` next to this file, loaded with `include_str!`), each kernel's symbol
//! names and parameter list declared once here.
//!
//! Every kernel exists for `f32` and `f64` under the names
//! `<op>_fwd_<dtype>` / `<op>_bwd_<dtype>`; a `.cu` file writes its kernels once
//! as templates and instantiates them with a macro for both types.
//!
//! The parameter lists are checked against the sources without a GPU, twice:
//! the host shim assigns every kernel to a function pointer of the declared
//! type (a C++ compile error on any mismatch), and the NVRTC test compares
//! them with the `.param` lists of the PTX entries.

/// Source prepended to every module: typedefs, math wrappers, warp and block
/// reductions, the loop macros.
pub const COMMON: &str = include_str!("common.cuh");

/// One parameter of a kernel, in declaration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// `const T*`: read-only elements.
    In,
    /// `T*`: elements written (or read and written).
    Out,
    /// `const u32*`: class labels or pooling indices.
    Labels,
    /// `u32*`: indices written (max pooling's argmax).
    OutU32,
    /// `double*`: `f64` partial sums whatever the element type.
    OutF64,
    /// `u64`: a size or a leading dimension.
    U64,
    /// `int`: a flag (`acc`: 0 = set, 1 = add).
    I32,
    /// `T`: a scalar of the element type.
    Real,
}

/// A kernel: its module, its base name and its per-dtype symbols.
#[derive(Debug, PartialEq, Eq)]
pub struct Kernel {
    /// The module (source file stem) that defines it.
    pub module: &'static str,
    /// `<op>_fwd` or `<op>_bwd`.
    pub name: &'static str,
    /// The `f32` symbol, `<name>_f32`.
    pub f32: &'static str,
    /// The `f64` symbol, `<name>_f64`.
    pub f64: &'static str,
    /// The parameters, in order.
    pub params: &'static [Param],
}

impl Kernel {
    /// The symbol for element type `dtype`.
    pub fn symbol(&self, dtype: Dtype) -> &'static str {
        match dtype {
            Dtype::F32 => self.f32,
            Dtype::F64 => self.f64,
        }
    }
}

/// A compilation unit: [`COMMON`] followed by `source`, compiled once per
/// process and device and cached by `name`.
#[derive(Debug)]
pub struct Module {
    /// The source file stem, e.g. `softmax` for `softmax.cu`.
    pub name: &'static str,
    /// The CUDA C source of the file (without [`COMMON`]).
    pub source: &'static str,
    /// The kernels the file defines (each for both dtypes).
    pub kernels: &'static [&'static Kernel],
}

impl Module {
    /// The full source handed to the compiler.
    pub fn full_source(&self) -> String {
        format!("{COMMON}\n// ---- {}.cu\n{}", self.name, self.source)
    }
}

/// The element types kernels exist for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// `float`.
    F32,
    /// `double`.
    F64,
}

impl Dtype {
    /// All dtypes, in symbol order.
    pub const ALL: [Dtype; 2] = [Dtype::F32, Dtype::F64];
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
    /// The C type.
    pub fn c_type(self) -> &'static str {
        match self {
            Dtype::F32 => "float",
            Dtype::F64 => "double",
        }
    }
}

macro_rules! registry {
    ($( $module:ident ($source:expr) { $( $konst:ident = $name:ident ( $($p:ident),* ); )* } )*) => {
        $( $(
            #[doc = concat!("`", stringify!($name), "_{f32,f64}` in `", stringify!($module), ".cu`.")]
            pub const $konst: Kernel = Kernel {
                module: stringify!($module),
                name: stringify!($name),
                f32: concat!(stringify!($name), "_f32"),
                f64: concat!(stringify!($name), "_f64"),
                params: &[$(Param::$p),*],
            };
        )* )*
        /// Every module kiln ships, in a fixed order.
        pub const MODULES: &[Module] = &[$(
            Module {
                name: stringify!($module),
                source: $source,
                kernels: &[$(&$konst),*],
            },
        )*];
    };
}

registry! {
    elementwise (include_str!("elementwise.cu")) {
        FILL_FWD = fill_fwd(Out, U64, Real);
        ADD_FWD = add_fwd(In, In, Out, U64);
        AXPY_FWD = axpy_fwd(Real, In, Out, U64, I32);
        COPY_BLOCK_FWD = copy_block_fwd(In, U64, Out, U64, U64, U64, I32);
        DROPOUT_FWD = dropout_fwd(In, Out, U64, U64, U64, Real);
        DROPOUT_BWD = dropout_bwd(In, Out, U64, U64, U64, Real, I32);
        PENALTY_BWD = penalty_bwd(In, Out, U64, Real, Real, I32);
    }
    bias (include_str!("bias.cu")) {
        BIAS_FWD = bias_fwd(Out, In, U64, U64);
        BIAS_BWD = bias_bwd(In, Out, U64, U64, I32);
    }
    // Generated from the table of element-wise functions in kiln-core
    // (`kernels/unary.rs`); `unary_kernels` maps each `Act` to its pair.
    unary (kiln_core::kernels::unary::CUDA_SOURCE) {
        RELU_FWD = relu_fwd(In, Out, U64, Real);
        RELU_BWD = relu_bwd(In, In, In, Out, U64, Real, I32);
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
    }
    embedding (include_str!("embedding.cu")) {
        EMBEDDING_FWD = embedding_fwd(In, Labels, Out, U64, U64, U64);
        EMBEDDING_BWD = embedding_bwd(Labels, In, Out, U64, U64, U64, U64, I32);
    }
    softmax (include_str!("softmax.cu")) {
        SOFTMAX_FWD = softmax_fwd(In, Out, U64, U64);
        SOFTMAX_BWD = softmax_bwd(In, In, Out, U64, U64, I32);
    }
    loss (include_str!("loss.cu")) {
        CROSS_ENTROPY_FWD = cross_entropy_fwd(In, Labels, Out, U64, U64, U64);
        CROSS_ENTROPY_BWD = cross_entropy_bwd(In, Labels, Out, U64, U64, U64, Real);
        HINGE_FWD = hinge_fwd(In, Labels, Out, U64, U64, Real);
        HINGE_BWD = hinge_bwd(In, Labels, Out, U64, U64, Real, Real);
        MSE_FWD = mse_fwd(In, In, Out, U64);
        MSE_BWD = mse_bwd(In, In, Out, U64, Real);
        L1_FWD = l1_fwd(In, In, Out, U64);
        L1_BWD = l1_bwd(In, In, Out, U64, Real);
        BCE_WITH_LOGITS_FWD = bce_with_logits_fwd(In, In, Out, U64);
        BCE_WITH_LOGITS_BWD = bce_with_logits_bwd(In, In, Out, U64, Real);
        SUM_FWD = sum_fwd(In, Out, U64, Real);
        SOFT_CROSS_ENTROPY_FWD = soft_cross_entropy_fwd(In, Labels, In, Out, U64, U64, Real, Real);
        SOFT_CROSS_ENTROPY_BWD = soft_cross_entropy_bwd(In, Labels, In, Out, U64, U64, Real, Real, Real);
        FOCAL_FWD = focal_fwd(In, Labels, In, Out, U64, U64, Real);
        FOCAL_BWD = focal_bwd(In, Labels, In, Out, U64, U64, Real, Real);
        KL_DIV_FWD = kl_div_fwd(In, In, Out, U64, I32);
        KL_DIV_BWD = kl_div_bwd(In, In, Out, U64, I32, Real);
        SUM_SQ_FWD = sum_sq_fwd(In, OutF64, U64);
        SUM_ABS_FWD = sum_abs_fwd(In, OutF64, U64);
    }
    optim (include_str!("optim.cu")) {
        SGD_FWD = sgd_fwd(Out, In, Out, U64, Real, Real, Real, Real, I32, I32, I32);
        ADAM_FWD = adam_fwd(Out, In, Out, Out, U64, Real, Real, Real, Real, Real, Real, Real, I32);
        ADAGRAD_FWD = adagrad_fwd(Out, In, Out, U64, Real, Real, Real);
        RMSPROP_FWD = rmsprop_fwd(Out, In, Out, Out, Out, U64, Real, Real, Real, Real, Real, I32, I32);
    }
    conv (include_str!("conv.cu")) {
        IM2COL_FWD = im2col_fwd(In, Out, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
        IM2COL_BWD = im2col_bwd(In, Out, U64, U64, I32, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
        TRANSPOSE01_FWD = transpose01_fwd(In, Out, U64, U64, U64, I32);
        CHANNEL_BIAS_FWD = channel_bias_fwd(Out, In, U64, U64, U64);
        CHANNEL_BIAS_BWD = channel_bias_bwd(In, Out, U64, U64, U64, I32);
    }
    pool (include_str!("pool.cu")) {
        MAX_POOL2D_FWD = max_pool2d_fwd(In, Out, OutU32, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
        MAX_UNPOOL2D_FWD = max_unpool2d_fwd(Labels, In, Out, U64, I32, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
        MAX_UNPOOL2D_BWD = max_unpool2d_bwd(Labels, In, Out, U64, I32, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
        AVG_POOL2D_FWD = avg_pool2d_fwd(In, Out, U64, Real, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
        AVG_POOL2D_BWD = avg_pool2d_bwd(In, Out, U64, Real, I32, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
    }
    norm (include_str!("norm.cu")) {
        BATCH_NORM_STATS_FWD = batch_norm_stats_fwd(In, Out, Out, U64, U64, U64);
        BATCH_NORM_RUNNING_FWD = batch_norm_running_fwd(In, In, Out, Out, Out, U64, Real, Real, Real);
        BATCH_NORM_FWD = batch_norm_fwd(In, In, In, In, In, Out, U64, U64, U64, Real);
        BATCH_NORM_BWD = batch_norm_bwd(In, In, In, In, Out, Out, Out, U64, U64, U64, Real, I32);
        BATCH_NORM_INPUT_BWD = batch_norm_input_bwd(In, In, In, In, In, In, Out, U64, U64, U64, Real, I32);
    }
    prelu (include_str!("prelu.cu")) {
        PRELU_FWD = prelu_fwd(In, In, Out, U64, U64, U64);
        PRELU_BWD = prelu_bwd(In, In, In, Out, U64, U64, U64, I32);
        PRELU_WEIGHT_BWD = prelu_weight_bwd(In, In, Out, U64, U64, U64, I32);
    }
    layernorm (include_str!("layernorm.cu")) {
        LAYER_NORM_FWD = layer_norm_fwd(In, In, In, Out, Out, U64, U64, Real, I32);
        LAYER_NORM_BWD = layer_norm_bwd(In, In, In, In, Out, U64, U64, I32, I32);
        LAYER_NORM_PARAM_BWD = layer_norm_param_bwd(In, In, In, Out, Out, U64, U64, I32, I32);
    }
    upsample (include_str!("upsample.cu")) {
        UPSAMPLE2D_FWD = upsample2d_fwd(In, Out, U64, U64, U64, U64, U64, I32);
        UPSAMPLE2D_BWD = upsample2d_bwd(In, Out, U64, U64, U64, U64, U64, I32, I32);
    }
}

/// Number of kernels per dtype (the NVRTC and shim tests assert it),
/// counted from the registry.
pub const KERNEL_COUNT: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < MODULES.len() {
        n += MODULES[i].kernels.len();
        i += 1;
    }
    n
};

/// The forward and backward kernels of an element-wise function. The match
/// is exhaustive, so a function added to kiln-core's table without kernels
/// here does not compile; `tests` check that the names agree with the table.
pub fn unary_kernels(f: kiln_core::Act) -> (&'static Kernel, &'static Kernel) {
    use kiln_core::Act;
    match f {
        Act::Relu => (&RELU_FWD, &RELU_BWD),
        Act::LeakyRelu(_) => (&LEAKY_RELU_FWD, &LEAKY_RELU_BWD),
        Act::Sigmoid => (&SIGMOID_FWD, &SIGMOID_BWD),
        Act::Tanh => (&TANH_FWD, &TANH_BWD),
        Act::Gelu => (&GELU_FWD, &GELU_BWD),
        Act::GeluTanh => (&GELU_TANH_FWD, &GELU_TANH_BWD),
    }
}

/// Every kernel, module by module.
pub fn all() -> impl Iterator<Item = &'static Kernel> {
    MODULES.iter().flat_map(|m| m.kernels.iter().copied())
}

/// The module called `name`.
pub fn module(name: &str) -> Option<&'static Module> {
    MODULES.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function of kiln-core's element-wise table has its two kernels
    /// here under the table's name, and the `unary` module has no others.
    #[test]
    fn unary_kernels_follow_the_table() {
        for &f in kiln_core::Act::ALL {
            let (fwd, bwd) = unary_kernels(f);
            assert_eq!(fwd.name, format!("{}_fwd", f.name()));
            assert_eq!(bwd.name, format!("{}_bwd", f.name()));
            assert_eq!((fwd.module, bwd.module), ("unary", "unary"));
        }
        let m = module("unary").unwrap();
        assert_eq!(m.kernels.len(), 2 * kiln_core::Act::ALL.len());
        for k in m.kernels {
            assert!(
                m.source.contains(&format!(
                    "KILN_UNARY({}, ",
                    k.name.rsplit_once('_').unwrap().0
                )),
                "{}",
                k.name
            );
        }
    }
}

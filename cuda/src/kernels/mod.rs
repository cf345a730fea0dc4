//! kiln's CUDA kernels, one op family per pair of files in this folder:
//! `<family>.cu`, the CUDA C source, and `<family>.rs`, which declares the
//! family's kernels (symbol names and parameter lists, once, with
//! [`kernels!`]), builds their launch plans (`crate::plan`'s types) and
//! implements the family's kiln-core trait for [`crate::Cuda`].
//!
//! **Adding a family** is those two files and nothing else here: the build
//! script (`cuda/build.rs`) finds every `<family>.rs` in this folder, declares
//! it as a module and lists its `MODULE` in [`MODULES`], so there is no
//! hand-kept list or count to forget.
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

/// Declares one family's kernels and its [`Module`], `MODULE`:
///
/// ```text
/// kernels! {
///     layernorm = include_str!("layernorm.cu");
///     LAYER_NORM_FWD = layer_norm_fwd(In, In, In, Out, Out, U64, U64, Real, I32);
/// }
/// ```
///
/// gives `pub const LAYER_NORM_FWD: Kernel` (symbols `layer_norm_fwd_f32`,
/// `layer_norm_fwd_f64`) and `pub const MODULE: Module` named `layernorm`.
macro_rules! kernels {
    ($module:ident = $source:expr; $( $konst:ident = $name:ident ( $($p:ident),* ); )*) => {
        $(
            #[doc = concat!("`", stringify!($name), "_{f32,f64}` in `", stringify!($module), ".cu`.")]
            pub const $konst: $crate::kernels::Kernel = $crate::kernels::Kernel {
                module: stringify!($module),
                name: stringify!($name),
                f32: concat!(stringify!($name), "_f32"),
                f64: concat!(stringify!($name), "_f64"),
                params: &[$($crate::kernels::Param::$p),*],
            };
        )*
        /// This family's compilation unit and its kernels.
        pub const MODULE: $crate::kernels::Module = $crate::kernels::Module {
            name: stringify!($module),
            source: $source,
            kernels: &[$(&$konst),*],
        };
    };
}

/// What every family file uses: the registry and plan types, the executor's
/// operands, kiln-core's argument types and traits.
mod family {
    pub(crate) use super::{Dtype, Kernel};
    pub(crate) use crate::backend::dtype;
    pub(crate) use crate::device::Opnd;
    pub(crate) use crate::plan::*;
    pub(crate) use crate::Cuda;
    pub(crate) use kiln_core::device::*;
    pub(crate) use kiln_core::kernels::*;
    pub(crate) use kiln_core::{Acc, Act, Elem, Error, Result};
    pub(crate) type Buf<T> = crate::CudaBuf<T>;
}

// `pub mod <family>;` for every `<family>.rs` here, and `MODULES`.
include!(concat!(env!("OUT_DIR"), "/families.rs"));

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

/// Every kernel, module by module.
pub fn all() -> impl Iterator<Item = &'static Kernel> {
    MODULES.iter().flat_map(|m| m.kernels.iter().copied())
}

/// The module called `name`.
pub fn module(name: &str) -> Option<&'static Module> {
    MODULES.iter().find(|m| m.name == name)
}

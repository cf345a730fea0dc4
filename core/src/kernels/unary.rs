//! Element-wise functions `y = f(x)` and their derivatives, declared once.
//!
//! Each function is one entry of the [`unary_functions!`] table below: its
//! forward `f(x)`, its derivative `df` written in terms of the input `x` or of
//! the output `y` (whichever is cheaper and more accurate; the entry says
//! which), and an optional parameter `a` (LeakyReLU's slope). From that one
//! entry the macro generates
//!
//! * the [`Act`] variant and its doc,
//! * [`Act::f`] and [`Act::df`], which the CPU device's loops call (matched
//!   once per chunk, outside the loop, so each loop vectorises),
//! * [`Act::reads_output`], and
//! * the CUDA source of the forward and backward kernels ([`CUDA_SOURCE`]),
//!   from the very same expression tokens (`stringify!`), so the two devices
//!   cannot drift apart.
//!
//! The expressions use a tiny vocabulary that both Rust and CUDA C++
//! understand: `zero()`, `one()`, `c(0.5)` (a constant of the element type),
//! `sel(cond, a, b)` (`cond ? a : b`), `exp`, `tanh`, `erf`, `sqrt`,
//! `sigmoid` (the stable two-branch form, which does not vectorise; no entry
//! uses it), arithmetic and comparisons. On the CPU `exp`, `tanh` and `erf`
//! are the branch-free forms of [`Elem`], so every loop vectorises, and each
//! loop runs at the CPU's widest vector width through `crate::simd::wide`. The parameter, when there is one, is
//! always named `a`. An entry marked `[gate]` (ReLU) has a backward that
//! selects instead of multiplying: `∂L/∂x = 0 if f' = 0 else ∂L/∂y · f'`, so
//! a NaN or infinite `∂L/∂y` is stopped where the gate is shut, as PyTorch's
//! `threshold_backward` (a product would give `NaN·0 = NaN` there).
//!
//! NaN propagates as in PyTorch: every function maps NaN to NaN (comparisons
//! are written so a NaN takes the branch that keeps it: `x ≤ 0 → 0` rather
//! than `x > 0 → x`, since `NaN > 0` is false).
//!
//! | function | forward | backward `∂L/∂x` | reads |
//! |---|---|---|---|
//! | `Relu` | `max(x, 0)`, NaN kept | `∂L/∂y · (0 if x ≤ 0 else 1)` (0 at `x = 0`, `∂L/∂y` at NaN, as PyTorch) | input |
//! | `ReluGuided` | ReLU's | `∂L/∂y · [x > 0] · [∂L/∂y > 0]` (guided backpropagation) | input |
//! | `ReluDeconv` | ReLU's | `∂L/∂y · [∂L/∂y > 0]` (deconvnet) | input |
//! | `LeakyRelu(α)` | `x` if `x > 0` else `αx` (NaN kept) | `∂L/∂y · (1 if x > 0 else α)` (`α` at NaN) | input |
//! | `Sigmoid` | `σ(x) = 1/(1 + e^{−x})` | `∂L/∂y · y(1 − y)` | output |
//! | `Tanh` | `tanh x` | `∂L/∂y · (1 − y²)` | output |
//! | `Gelu` | `x·Φ(x) = ½x(1 + erf(x/√2))` | `∂L/∂y · (Φ(x) + x·φ(x))`, `φ(x) = e^{−x²/2}/√(2π)` | input |
//! | `GeluTanh` | `½x(1 + tanh u)`, `u = √(2/π)(x + 0.044715x³)` | `∂L/∂y · (½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²))` | input |
//!
//! `Gelu` is PyTorch's `nn.GELU()` (`approximate='none'`), `GeluTanh` its
//! `nn.GELU(approximate='tanh')` (the form GPT-2 used).

// The table writes its constants as literals (1/√2, √(2/π), 1/√(2π)) because
// the same tokens become CUDA source, where Rust's `consts` do not exist.
#![allow(clippy::approx_constant)]

use crate::elem::Elem;

// ---- the vocabulary of the expressions (Rust side; CUDA side in `CUDA_PRELUDE`) ----

#[inline(always)]
fn sel<E: Elem>(cond: bool, a: E, b: E) -> E {
    if cond {
        a
    } else {
        b
    }
}
// `exp`, `tanh` and `erf` are the vectorisable forms of `Elem` (`vexp`,
// `vtanh`, `erf`: for f32 branch-free polynomials within
// a few ulp, for f64 libm's functions), so that every function's loop
// vectorises on the CPU (the loops that called libm per element were 4–26×
// slower than these at the CPU's widest vectors: `gemm_ab --wide`, GELU's
// derivative 2,652 → 595 µs, tanh's forward 9,533 → 371 µs, log #15 of
// docs/performance.md).
#[inline(always)]
fn exp<E: Elem>(x: E) -> E {
    x.vexp()
}
#[inline(always)]
fn tanh<E: Elem>(x: E) -> E {
    x.vtanh()
}
#[allow(dead_code)] // part of the vocabulary; no entry uses it yet
#[inline(always)]
fn sqrt<E: Elem>(x: E) -> E {
    x.sqrt()
}
/// The error function ([`Elem::erf`]: a rational form for f32, libm's for f64).
#[inline(always)]
fn erf<E: Elem>(x: E) -> E {
    E::erf(x)
}
/// Numerically stable logistic function: `e^x/(1+e^x)` for negative `x`, so
/// it never overflows (the GRU's gates and the BCE gradient use it; the
/// table's `Sigmoid` is written `1/(1 + exp(−x))` with the vectorisable `exp`).
#[inline(always)]
pub(crate) fn sigmoid<E: Elem>(x: E) -> E {
    if x >= E::zero() {
        E::one() / (E::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (E::one() + e)
    }
}

/// Picks the argument `df` is written in: `input` → `x`, `output` → `y`.
macro_rules! df_arg {
    (input, $x:expr, $y:expr) => {
        $x
    };
    (output, $x:expr, $y:expr) => {
        $y
    };
}
macro_rules! df_reads_output {
    (input) => {
        false
    };
    (output) => {
        true
    };
}
macro_rules! df_arg_c {
    (input) => {
        "x"
    };
    (output) => {
        "y"
    };
}

/// The table macro: see the module documentation.
macro_rules! unary_functions {
    (vocabulary($zero:ident, $one:ident, $c:ident);
    $(
        $(#[$doc:meta])*
        $variant:ident $(($p:ident))? = $cname:literal $([$gate:ident])? {
            f($fx:ident) = $f:expr;
            df($reads:ident $dx:ident) = $df:expr;
        }
    )*) => {
        /// An element-wise function, declared once in
        /// [`crate::kernels::unary`] for every device.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum Act {
            $( $(#[$doc])* $variant $((
                #[doc = concat!("`", stringify!($p), "`")] f64
            ))?, )*
        }

        impl Act {
            /// The name of the function (and of its CUDA kernels, `<name>_fwd_f32`…).
            pub fn name(self) -> &'static str {
                match self {
                    $( Act::$variant { .. } => $cname, )*
                }
            }
            /// The parameter `a` (0 for functions without one).
            pub fn param(self) -> f64 {
                #[allow(unused_variables)]
                match self {
                    $( Act::$variant $(($p))? => { 0.0 $(+ $p)? } )*
                }
            }
            /// Whether [`Act::df`] needs the output `y` (otherwise the input `x`).
            pub fn reads_output(self) -> bool {
                match self {
                    $( Act::$variant { .. } => df_reads_output!($reads), )*
                }
            }
            /// `f(x)`.
            #[inline(always)]
            pub fn f<E: Elem>(self, x: E) -> E {
                match self {
                    $( Act::$variant $(($p))? => {
                        $(let $p: E = E::of($p);)?
                        vocab!($zero, $one, $c, E);
                        let $fx = x;
                        $f
                    } )*
                }
            }
            /// `∂L/∂x` from the gradient `g` arriving at the element whose
            /// input is `x` and output `y`: `g·f'`, or for a `[gate]` entry
            /// `0 if f' = 0 else g·f'` (so a NaN or infinite `g` is not
            /// turned into NaN where the gate is shut, as PyTorch's
            /// `threshold_backward`).
            #[inline(always)]
            pub fn grad<E: Elem>(self, g: E, x: E, y: E) -> E {
                #[allow(unused_variables)]
                match self {
                    $( Act::$variant $(($p))? => grad_of!($($gate)?; g, self.df(x, y), E), )*
                }
            }
            /// `f'` at the element whose input is `x` and output `y`.
            #[inline(always)]
            pub fn df<E: Elem>(self, x: E, y: E) -> E {
                #[allow(unused_variables)]
                match self {
                    $( Act::$variant $(($p))? => {
                        $(let $p: E = E::of($p);)?
                        vocab!($zero, $one, $c, E);
                        let $dx = df_arg!($reads, x, y);
                        $df
                    } )*
                }
            }
            /// Applies `f` over `y[i] = f(x[i])`, with the function matched
            /// once outside the loop so the loop vectorises.
            /// Runs at the CPU's widest vector width (`crate::simd::wide`),
            /// with the values of the baseline build, bit for bit.
            #[inline]
            pub fn map<E: Elem>(self, x: &[E], y: &mut [E]) {
                // One `wide` call per function, each around one loop: a
                // closure holding every function's loop is too large for the
                // compiler to inline into the wide function.
                match self {
                    $( Act::$variant $(($p))? => crate::simd::wide(|| {
                        $(let $p: E = E::of($p);)?
                        vocab!($zero, $one, $c, E);
                        y.iter_mut().zip(x).for_each(|(v, &$fx)| *v = $f);
                    }), )*
                }
            }
            /// The epilogue of a dense layer followed by this function, over
            /// the rows of a tile, each a pair `(pre, y)` of equal length:
            /// `pre[j] += b[j]` (without `b`, `pre` is kept), then
            /// `y[j] = f(pre[j])`; the function matched once for the whole
            /// tile, outside both loops (a GEMM tile's rows are short: a
            /// match per row cost more than the separate passes).
            /// The same operations, in the same order, as `add_bias` then
            /// [`Act::map`], so the values are bitwise those of the two passes.
            /// Runs at the CPU's widest vector width, as [`Act::map`].
            #[inline]
            pub fn bias_map_rows<'a, E: Elem + 'a>(
                self,
                b: Option<&[E]>,
                rows: impl Iterator<Item = (&'a mut [E], &'a mut [E])>,
            ) {
                match self {
                    $( Act::$variant $(($p))? => crate::simd::wide(move || {
                        $(let $p: E = E::of($p);)?
                        vocab!($zero, $one, $c, E);
                        match b {
                            Some(b) => rows.for_each(|(pre, y)| {
                                y.iter_mut().zip(pre.iter_mut().zip(b)).for_each(|(v, (p, &bb))| {
                                    let $fx = *p + bb;
                                    *p = $fx;
                                    *v = $f;
                                })
                            }),
                            None => rows.for_each(|(pre, y)| {
                                y.iter_mut().zip(pre.iter()).for_each(|(v, &$fx)| *v = $f)
                            }),
                        }
                    }), )*
                }
            }
            /// `dx[i] (acc)= dy[i] · f'(…)` over a chunk, the function matched
            /// once outside the loop.
            /// Runs at the CPU's widest vector width, as [`Act::map`].
            #[inline]
            pub fn map_grad<E: Elem>(self, x: &[E], y: &[E], dy: &[E], dx: &mut [E], acc: crate::device::Acc) {
                use crate::device::Acc;
                #[allow(unused_variables)]
                // One loop type per function and mode, run through
                // `wide_loop` (its `run` is always inlined into the wide
                // function: GELU's derivative, with erf and exp, is too large
                // for a closure to be).
                match self {
                    $( Act::$variant $(($p))? => {
                        struct Grad<'a, E> { src: &'a [E], dy: &'a [E], dx: &'a mut [E], add: bool, #[allow(dead_code)] a: f64 }
                        impl<E: Elem> crate::simd::Loop for Grad<'_, E> {
                            type Out = ();
                            #[inline(always)]
                            fn run(self) {
                                #[allow(unused_variables)]
                                let Grad { src, dy, dx, add, a } = self;
                                $(let $p: E = E::of(a);)?
                                vocab!($zero, $one, $c, E);
                                // Index loops, not iterator adapters: `Zip::fold`
                                // is a function of its own, compiled at the
                                // baseline width unless inlined.
                                let n = dx.len().min(src.len()).min(dy.len());
                                let (src, dy, dx) = (&src[..n], &dy[..n], &mut dx[..n]);
                                if add {
                                    for i in 0..n {
                                        let ($dx, g) = (src[i], dy[i]);
                                        dx[i] = dx[i] + grad_of!($($gate)?; g, $df, E);
                                    }
                                } else {
                                    for i in 0..n {
                                        let ($dx, g) = (src[i], dy[i]);
                                        dx[i] = grad_of!($($gate)?; g, $df, E);
                                    }
                                }
                            }
                        }
                        #[allow(unused_mut, unused_assignments)]
                        let mut a = 0.0;
                        $(a = $p;)?
                        crate::simd::wide_loop(Grad {
                            src: df_arg!($reads, x, y),
                            dy,
                            dx,
                            add: acc == Acc::Add,
                            a,
                        })
                    } )*
                }
            }
            /// Every function, each with a sample parameter (for tests that
            /// walk the table).
            pub const ALL: &'static [Act] = &[ $( Act::$variant $((unary_sample_param!($p)))?, )* ];
        }

        /// The CUDA source of every element-wise function: for each, device
        /// functions `<name>_f(x, a)` and `<name>_df(x or y, a)` written from
        /// the table's expressions, and the kernels `<name>_fwd_<dtype>(x, y,
        /// n, a)` and `<name>_bwd_<dtype>(x, y, dy, dx, n, a, acc)` (both
        /// `x` and `y` are passed, `df` reads the one its entry names), and
        /// the fused bias kernels `<name>_bias_fwd_<dtype>(x, b, y, rows,
        /// cols, a)` and `<name>_bias_bwd_<dtype>(x, y, dy, dx, db, rows,
        /// cols, a, acc)` (a dense layer's bias followed by the function).
        pub const CUDA_SOURCE: &str = concat!(
            cuda_prelude!(),
            $(
                "template <typename T> __device__ __forceinline__ T ", $cname, "_f(T ",
                stringify!($fx), ", T a) { (void)a; return ", stringify!($f), "; }\n",
                "template <typename T> __device__ __forceinline__ T ", $cname, "_df(T ",
                stringify!($dx), ", T a) { (void)a; return ", stringify!($df), "; }\n",
                "template <typename T> __device__ __forceinline__ T ", $cname,
                "_grad(T g, T d) { return ", grad_of_c!($($gate)?), "; }\n",
                "KILN_UNARY(", $cname, ", ", df_arg_c!($reads), ", f32, float)\n",
                "KILN_UNARY(", $cname, ", ", df_arg_c!($reads), ", f64, double)\n",
            )*
            cuda_epilogue!(),
        );

        /// The names of the functions, in table order (the CUDA kernels are
        /// `<name>_fwd_<dtype>` and `<name>_bwd_<dtype>`).
        pub const NAMES: &[&str] = &[ $( $cname, )* ];
    };
}

/// `∂L/∂x` from the arriving gradient `g` and `f' = d`: the product, or for
/// a `[gate]` entry 0 where `d = 0` (a select, not `g·0`, so a NaN `g` stays
/// out of the shut gate).
macro_rules! grad_of {
    (gate; $g:expr, $d:expr, $e:ty) => {{
        let d: $e = $d;
        if d == <$e as num_traits::Zero>::zero() {
            d
        } else {
            $g * d
        }
    }};
    (guided; $g:expr, $d:expr, $e:ty) => {{
        let d: $e = $d;
        let z = <$e as num_traits::Zero>::zero();
        // `g > 0` is false for NaN: a NaN gradient is stopped too.
        if d != z && $g > z {
            $g * d
        } else {
            z
        }
    }};
    (deconv; $g:expr, $d:expr, $e:ty) => {{
        let _ = $d;
        let z = <$e as num_traits::Zero>::zero();
        if $g > z {
            $g
        } else {
            z
        }
    }};
    (; $g:expr, $d:expr, $e:ty) => {
        $g * ($d)
    };
}
macro_rules! grad_of_c {
    (gate) => {
        "d == T(0) ? T(0) : g * d"
    };
    (guided) => {
        "(d != T(0) && g > T(0)) ? g * d : T(0)"
    };
    (deconv) => {
        "g > T(0) ? g : T(0)"
    };
    () => {
        "g * d"
    };
}

/// Binds the table's constants for element type `E` (the names come from the
/// table, so its expressions can see them).
macro_rules! vocab {
    ($zero:ident, $one:ident, $c:ident, $e:ty) => {
        #[allow(unused_variables)]
        let $zero = || <$e as num_traits::Zero>::zero();
        #[allow(unused_variables)]
        let $one = || <$e as num_traits::One>::one();
        #[allow(unused_variables)]
        let $c = |v: f64| -> $e { <$e as Elem>::of(v) };
    };
}

macro_rules! unary_sample_param {
    ($p:ident) => {
        0.1
    };
}

/// Definitions that make the table's vocabulary valid CUDA C++ (after
/// `common.cuh`); undone by `cuda_epilogue!`. (Macros, not consts, because
/// `concat!` takes only literals.)
macro_rules! cuda_prelude {
    () => {
        r#"// ---- generated from kiln-core's kernels/unary.rs (the table of element-wise functions)
#define zero() T(0)
#define one() T(1)
#define c(v) T(v)
#define exp k_exp
#define tanh k_tanh
#define erf k_erf
#define sqrt k_sqrt
#define sigmoid k_sigmoid
template <typename T> __device__ __forceinline__ T sel(bool p, T a, T b) { return p ? a : b; }
// One function's kernels for one element type: y = f(x); dx (acc)= dy · f'(x or y)
// (NAME##_grad: the product, or for a gate 0 where f' = 0); and the fused
// epilogue of a dense layer followed by the function, bias_fwd: x[r, c] += b[c]
// then y = f(x), in one pass; bias_bwd: dx = dy · f'(x or y) and db[c] (acc)=
// Σ_r dx[r, c] in one pass (one block per 32 columns, each warp summing rows
// w apart in order, then the warps' sums in order: bias.cu's bias_bwd).
// (NAME is only ever pasted with ##, so `tanh` is not replaced by the
// vocabulary's #define.)
#define KILN_UNARY(NAME, ARG, S, T)                                                          \
    extern "C" __global__ void NAME##_fwd_##S(const T* x, T* y, u64 n, T a) {                 \
        KILN_FOR_EACH(i, n) y[i] = NAME##_f<T>(x[i], a);                                        \
    }                                                                                           \
    extern "C" __global__ void NAME##_bwd_##S(const T* x, const T* y, const T* dy, T* dx,      \
                                              u64 n, T a, int acc) {                            \
        KILN_FOR_EACH(i, n) k_put(&dx[i], NAME##_grad<T>(dy[i], NAME##_df<T>(ARG[i], a)), acc); \
    }                                                                                           \
    extern "C" __global__ void NAME##_bias_fwd_##S(T* x, const T* b, T* y, u64 rows, u64 cols, \
                                                   T a) {                                       \
        KILN_FOR_EACH(i, rows * cols) {                                                         \
            const T v = x[i] + b[i % cols];                                                     \
            x[i] = v;                                                                           \
            y[i] = NAME##_f<T>(v, a);                                                           \
        }                                                                                       \
    }                                                                                           \
    extern "C" __global__ void NAME##_bias_bwd_##S(const T* x, const T* y, const T* dy, T* dx, \
                                                   T* db, u64 rows, u64 cols, T a, int acc) {   \
        __shared__ T partial[32][33];                                                           \
        const unsigned tx = threadIdx.x % 32, ty = threadIdx.x / 32, w = blockDim.x / 32;      \
        const u64 col = (u64)blockIdx.x * 32 + tx;                                              \
        T s = T(0);                                                                             \
        if (col < cols) {                                                                       \
            for (u64 r = ty; r < rows; r += w) {                                                \
                const u64 i = r * cols + col;                                                   \
                const T d = NAME##_grad<T>(dy[i], NAME##_df<T>(ARG[i], a));                     \
                dx[i] = d;                                                                      \
                s += d;                                                                         \
            }                                                                                   \
        }                                                                                       \
        partial[ty][tx] = s;                                                                    \
        __syncthreads();                                                                        \
        if (ty == 0 && col < cols) {                                                            \
            T t = partial[0][tx];                                                               \
            for (unsigned k = 1; k < w; ++k) t += partial[k][tx];                               \
            k_put(&db[col], t, acc);                                                            \
        }                                                                                       \
    }
"#
    };
}

macro_rules! cuda_epilogue {
    () => {
        r#"#undef zero
#undef one
#undef c
#undef exp
#undef tanh
#undef erf
#undef sqrt
#undef sigmoid
#undef KILN_UNARY
"#
    };
}

unary_functions! {
    vocabulary(zero, one, c);
    /// `max(x, 0)`, NaN kept (`relu(NaN) = NaN`, `relu(±∞) = ±∞ or 0`);
    /// backward `0 if x ≤ 0 else dy` (a `[gate]`: a select, PyTorch's
    /// `threshold_backward`), so a NaN input passes `dy` through, 0 at
    /// `x = 0`, and a NaN `dy` is stopped where `x ≤ 0`. Written as the
    /// complement of `x ≤ 0` because `NaN > 0` is false.
    Relu = "relu" [gate] {
        f(x) = sel(x <= zero(), zero(), x);
        df(input x) = sel(x <= zero(), zero(), one());
    }
    /// ReLU with guided backpropagation's backward (Springenberg et al.
    /// 2015; [`crate::input_grad::GradMode::Guided`]): the forward is
    /// ReLU's, the backward `dy·[x > 0]·[dy > 0]` (a `[guided]` select:
    /// only positive gradients pass, and only where ReLU's gate is open).
    ReluGuided = "relu_guided" [guided] {
        f(x) = sel(x <= zero(), zero(), x);
        df(input x) = sel(x <= zero(), zero(), one());
    }
    /// ReLU with the deconvnet's backward (Zeiler & Fergus 2014;
    /// [`crate::input_grad::GradMode::Deconvnet`]): the forward is ReLU's,
    /// the backward `dy·[dy > 0]` whatever the input (a `[deconv]` select).
    ReluDeconv = "relu_deconv" [deconv] {
        f(x) = sel(x <= zero(), zero(), x);
        df(input x) = sel(x <= zero(), zero(), one());
    }
    /// `x` if `x > 0` else `a·x` (a NaN takes the second branch: `a·NaN =
    /// NaN`); backward `dy · (1 if x > 0 else a)`, so `dy·a` at a NaN, as
    /// PyTorch's `leaky_relu_backward`.
    LeakyRelu(a) = "leaky_relu" {
        f(x) = sel(x > zero(), x, x * a);
        df(input x) = sel(x > zero(), one(), a);
    }
    /// `σ(x) = 1/(1+e^{−x})`; backward `dy · y(1 − y)` (uses the output).
    /// (Written with `exp` rather than the two-branch `sigmoid`, so the loop
    /// vectorises: for f32 it is `Elem::vsigmoid`, within 1.2e-7; `exp` of a
    /// large `−x` is clamped (f32) or infinite (f64), giving 0 or a value
    /// below 1e-38, never NaN.)
    Sigmoid = "sigmoid" {
        f(x) = one() / (one() + exp(-x));
        df(output y) = y * (one() - y);
    }
    /// `tanh x`; backward `dy · (1 − y²)` (uses the output).
    Tanh = "tanh" {
        f(x) = tanh(x);
        df(output y) = one() - y * y;
    }
    /// `x·Φ(x) = ½x(1 + erf(x/√2))` (PyTorch's exact GELU); backward
    /// `dy · (Φ(x) + x·φ(x))` with `φ(x) = e^{−x²/2}/√(2π)`.
    Gelu = "gelu" {
        f(x) = c(0.5) * x * (one() + erf(x * c(0.7071067811865476)));
        df(input x) = c(0.5) * (one() + erf(x * c(0.7071067811865476)))
            + x * c(0.3989422804014327) * exp(c(-0.5) * x * x);
    }
    /// `½x(1 + tanh(√(2/π)(x + 0.044715x³)))` (`approximate='tanh'`); backward
    /// `dy · (½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 0.134145x²))`, `t` the tanh.
    GeluTanh = "gelu_tanh" {
        f(x) = c(0.5) * x * (one() + tanh(c(0.7978845608028654) * (x + c(0.044715) * x * x * x)));
        df(input x) = c(0.5) * (one() + tanh(c(0.7978845608028654) * (x + c(0.044715) * x * x * x)))
            + c(0.5) * x
                * (one() - tanh(c(0.7978845608028654) * (x + c(0.044715) * x * x * x))
                    * tanh(c(0.7978845608028654) * (x + c(0.044715) * x * x * x)))
                * c(0.7978845608028654) * (one() + c(0.134145) * x * x);
    }
}

#[cfg(test)]
mod tests;

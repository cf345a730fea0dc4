// Prepended to every kernel source of kiln-cuda, both when NVRTC compiles it
// for the GPU and when the host shim (cuda/tests/shim/cuda_shim.h) compiles it
// with the system C++ compiler. It includes no header, so it works in both.
//
// Conventions shared by every kernel (and by the launch plans in kernels/<family>.rs):
// - sizes and leading dimensions are `u64`, flags are `int`, scalars are `T`;
// - `acc` is 0 for `Acc::Set` (overwrite) and 1 for `Acc::Add` (accumulate);
// - element-wise kernels use grid-stride loops, so any grid size is correct;
// - every reduction runs in a fixed order that depends only on the sizes and
//   the launch configuration, so results are deterministic;
// - block sizes are multiples of 32 and a warp always shuffles as a whole.

typedef unsigned long long u64;
typedef unsigned int u32;

__device__ __forceinline__ float k_exp(float x) { return expf(x); }
__device__ __forceinline__ double k_exp(double x) { return exp(x); }
__device__ __forceinline__ float k_log(float x) { return logf(x); }
__device__ __forceinline__ double k_log(double x) { return log(x); }
__device__ __forceinline__ float k_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double k_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float k_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double k_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float k_erf(float x) { return erff(x); }
__device__ __forceinline__ double k_erf(double x) { return erf(x); }
__device__ __forceinline__ float k_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double k_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float k_expm1(float x) { return expm1f(x); }
__device__ __forceinline__ double k_expm1(double x) { return expm1(x); }
__device__ __forceinline__ float k_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double k_pow(double x, double y) { return pow(x, y); }
__device__ __forceinline__ float k_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double k_abs(double x) { return fabs(x); }

// `max` that ignores a NaN in `a` like Rust's `Float::max` (returns `b`).
template <typename T> __device__ __forceinline__ T k_max(T a, T b) { return a > b ? a : b; }

// A quiet NaN, for inputs outside their domain (a label ≥ the class count).
template <typename T> __device__ __forceinline__ T k_nan() { return k_sqrt(T(-1)); }

// dst (acc)= v.
template <typename T> __device__ __forceinline__ void k_put(T* dst, T v, int acc) {
    *dst = acc ? *dst + v : v;
}

// Numerically stable logistic function (the same branches as cpu.rs).
template <typename T> __device__ __forceinline__ T k_sigmoid(T x) {
    if (x >= T(0)) {
        return T(1) / (T(1) + k_exp(-x));
    }
    T e = k_exp(x);
    return e / (T(1) + e);
}

// Butterfly reductions over the 32 lanes of a warp: every lane gets the
// result, and the order of the additions is fixed.
template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <typename T> __device__ __forceinline__ T warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) v = k_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a whole block (blockDim.x a multiple of 32, at most 1024); the
// result is valid in thread 0. Every thread of the block must call it.
template <typename T> __device__ __forceinline__ T block_sum(T v) {
    __shared__ T partial[32];
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    T s = T(0);
    if (warp == 0) {
        s = lane < blockDim.x / 32 ? partial[lane] : T(0);
        s = warp_sum(s);
    }
    __syncthreads();  // `partial` may be reused by a later call
    return s;
}

// The grid-stride loop of element-wise kernels.
#define KILN_FOR_EACH(i, n) \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

// The row handled by the current warp in warp-per-row kernels, and the lane.
#define KILN_WARP_ROW(row, lane)                                              \
    const u64 row = (u64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;   \
    const unsigned lane = threadIdx.x % 32

// The 13 sizes of a 2-D sliding window (kiln-core's `Window2d`), passed as
// separate u64 parameters in this order.
#define KILN_WINDOW_PARAMS                                                                 \
    u64 C, u64 H, u64 W, u64 KH, u64 KW, u64 SH, u64 SW, u64 PH, u64 PW, u64 DH, u64 DW, u64 OH, \
        u64 OW
#define KILN_WINDOW_ARGS C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW

// −∞ (log 0), for a window that covers no input pixel.
template <typename T> __device__ __forceinline__ T k_neg_inf() { return k_log(T(0)); }

// kiln-core's `dropout_keep`: the i-th SplitMix64 output from `seed`, kept
// when not below `threshold`. Unsigned arithmetic wraps, as in Rust.
__device__ __forceinline__ bool k_dropout_keep(u64 seed, u64 i, u64 threshold) {
    u64 z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z >= threshold;
}

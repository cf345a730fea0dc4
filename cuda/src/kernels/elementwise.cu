// Memory and element-wise kernels: fill, add, axpy, strided block copy,
// dropout, the elastic-net penalty gradient. Formulas: Backend::{fill, add,
// axpy, copy_block, dropout_fwd, dropout_bwd, penalty_grad} in kiln-core's device.rs.

// y[i] = v
template <typename T> __device__ void fill_fwd(T* y, u64 n, T v) {
    KILN_FOR_EACH(i, n) y[i] = v;
}

// y[i] = a[i] + b[i]
template <typename T> __device__ void add_fwd(const T* a, const T* b, T* y, u64 n) {
    KILN_FOR_EACH(i, n) y[i] = a[i] + b[i];
}

// dst[i] (acc)= alpha · src[i]
template <typename T> __device__ void axpy_fwd(T alpha, const T* src, T* dst, u64 n, int acc) {
    KILN_FOR_EACH(i, n) k_put(&dst[i], alpha * src[i], acc);
}

// dst[r·dst_ld + j] (acc)= src[r·src_ld + j] for r < rows, j < cols
// (the pointers already include the offsets).
template <typename T>
__device__ void copy_block_fwd(const T* src, u64 src_ld, T* dst, u64 dst_ld, u64 rows, u64 cols, int acc) {
    KILN_FOR_EACH(i, rows * cols) {
        const u64 r = i / cols, j = i % cols;
        k_put(&dst[r * dst_ld + j], src[r * src_ld + j], acc);
    }
}

// Inverted dropout: y[i] = x[i] · keep_i · scale, scale = 1/(1 − p) (0 for p = 1),
// keep_i = dropout_keep(seed, i, threshold): the backward recomputes the mask.
template <typename T> __device__ void dropout_fwd(const T* x, T* y, u64 n, u64 seed, u64 threshold, T scale) {
    KILN_FOR_EACH(i, n) y[i] = k_dropout_keep(seed, i, threshold) ? x[i] * scale : T(0);
}
template <typename T>
__device__ void dropout_bwd(const T* dy, T* dx, u64 n, u64 seed, u64 threshold, T scale, int acc) {
    KILN_FOR_EACH(i, n) k_put(&dx[i], k_dropout_keep(seed, i, threshold) ? dy[i] * scale : T(0), acc);
}

// Gradient of the elastic-net penalty l1·Σ|θ| + l2·Σθ²: dst (acc)= l1·sign(θ) + 2·l2·θ
template <typename T> __device__ void penalty_bwd(const T* theta, T* dst, u64 n, T l1, T two_l2, int acc) {
    KILN_FOR_EACH(i, n) {
        const T t = theta[i];
        const T s = t > T(0) ? T(1) : t < T(0) ? T(-1) : T(0);
        k_put(&dst[i], l1 * s + two_l2 * t, acc);
    }
}

#define KILN_ELEMENTWISE(S, T)                                                                     \
    extern "C" __global__ void fill_fwd_##S(T* y, u64 n, T v) { fill_fwd<T>(y, n, v); }           \
    extern "C" __global__ void add_fwd_##S(const T* a, const T* b, T* y, u64 n) {                 \
        add_fwd<T>(a, b, y, n);                                                                    \
    }                                                                                              \
    extern "C" __global__ void axpy_fwd_##S(T alpha, const T* src, T* dst, u64 n, int acc) {      \
        axpy_fwd<T>(alpha, src, dst, n, acc);                                                      \
    }                                                                                              \
    extern "C" __global__ void copy_block_fwd_##S(const T* src, u64 src_ld, T* dst, u64 dst_ld,   \
                                                  u64 rows, u64 cols, int acc) {                   \
        copy_block_fwd<T>(src, src_ld, dst, dst_ld, rows, cols, acc);                              \
    }                                                                                              \
    extern "C" __global__ void dropout_fwd_##S(const T* x, T* y, u64 n, u64 seed, u64 threshold,  \
                                               T scale) {                                          \
        dropout_fwd<T>(x, y, n, seed, threshold, scale);                                           \
    }                                                                                              \
    extern "C" __global__ void dropout_bwd_##S(const T* dy, T* dx, u64 n, u64 seed, u64 threshold,\
                                               T scale, int acc) {                                 \
        dropout_bwd<T>(dy, dx, n, seed, threshold, scale, acc);                                    \
    }                                                                                              \
    extern "C" __global__ void penalty_bwd_##S(const T* theta, T* dst, u64 n, T l1, T two_l2,     \
                                               int acc) {                                          \
        penalty_bwd<T>(theta, dst, n, l1, two_l2, acc);                                            \
    }

KILN_ELEMENTWISE(f32, float)
KILN_ELEMENTWISE(f64, double)

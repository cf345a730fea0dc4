// Memory and element-wise kernels: fill, add, axpy, strided block copy.
// Formulas: Backend::{fill, add, axpy, copy_block} in kiln-core's device.rs.

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
    }

KILN_ELEMENTWISE(f32, float)
KILN_ELEMENTWISE(f64, double)

// Inverted dropout (kiln-core's DropoutKernels): y[i] = x[i] · keep_i · scale, scale = 1/(1 − p) (0 for p = 1),
// keep_i = dropout_keep(seed, i, threshold): the backward recomputes the mask.
// A product with the mask, not a select, so a dropped NaN stays NaN (PyTorch's input * mask).
template <typename T> __device__ void dropout_fwd(const T* x, T* y, u64 n, u64 seed, u64 threshold, T scale) {
    KILN_FOR_EACH(i, n) y[i] = x[i] * (k_dropout_keep(seed, i, threshold) ? scale : T(0));
}
template <typename T>
__device__ void dropout_bwd(const T* dy, T* dx, u64 n, u64 seed, u64 threshold, T scale, int acc) {
    KILN_FOR_EACH(i, n) k_put(&dx[i], dy[i] * (k_dropout_keep(seed, i, threshold) ? scale : T(0)), acc);
}

#define KILN_DROPOUT(S, T)                                                                         \
    extern "C" __global__ void dropout_fwd_##S(const T* x, T* y, u64 n, u64 seed, u64 threshold,  \
                                               T scale) {                                          \
        dropout_fwd<T>(x, y, n, seed, threshold, scale);                                           \
    }                                                                                              \
    extern "C" __global__ void dropout_bwd_##S(const T* dy, T* dx, u64 n, u64 seed, u64 threshold,\
                                               T scale, int acc) {                                 \
        dropout_bwd<T>(dy, dx, n, seed, threshold, scale, acc);                                    \
    }

KILN_DROPOUT(f32, float)
KILN_DROPOUT(f64, double)

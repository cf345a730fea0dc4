// Bias of a row-major `rows × cols` matrix.
//   forward   y[r, c] += b[c]
//   backward  db[c] (acc)= Σ_r dy[r, c]

template <typename T> __device__ void bias_fwd(T* y, const T* b, u64 rows, u64 cols) {
    KILN_FOR_EACH(i, rows * cols) y[i] += b[i % cols];
}

// One block per 32 columns. Lane `tx` of warp `ty` sums rows ty, ty + W, …
// (W = warps per block) of column c in order, then warp 0 adds the W partial
// sums of each column in order: deterministic, and reads are coalesced.
template <typename T> __device__ void bias_bwd(const T* dy, T* db, u64 rows, u64 cols, int acc) {
    __shared__ T partial[32][33];
    const unsigned tx = threadIdx.x % 32, ty = threadIdx.x / 32, w = blockDim.x / 32;
    const u64 c = (u64)blockIdx.x * 32 + tx;
    T s = T(0);
    if (c < cols) {
        for (u64 r = ty; r < rows; r += w) s += dy[r * cols + c];
    }
    partial[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && c < cols) {
        T t = partial[0][tx];
        for (unsigned k = 1; k < w; ++k) t += partial[k][tx];
        k_put(&db[c], t, acc);
    }
}

#define KILN_BIAS(S, T)                                                                            \
    extern "C" __global__ void bias_fwd_##S(T* y, const T* b, u64 rows, u64 cols) {               \
        bias_fwd<T>(y, b, rows, cols);                                                             \
    }                                                                                              \
    extern "C" __global__ void bias_bwd_##S(const T* dy, T* db, u64 rows, u64 cols, int acc) {    \
        bias_bwd<T>(dy, db, rows, cols, acc);                                                      \
    }

KILN_BIAS(f32, float)
KILN_BIAS(f64, double)

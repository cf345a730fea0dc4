// Row-wise softmax of a row-major `rows × cols` matrix, one warp per row.
//   forward   y_j = e^{x_j − m} / Σ_k e^{x_k − m},  m = max_k x_k
//   backward  dx_j (acc)= y_j (dy_j − Σ_k dy_k y_k)

template <typename T> __device__ void softmax_fwd(const T* x, T* y, u64 rows, u64 cols) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;  // the whole warp leaves together
    const T* xr = x + row * cols;
    T* yr = y + row * cols;
    T m = xr[0];
    for (u64 j = lane; j < cols; j += 32) m = k_max(m, xr[j]);
    m = warp_max(m);
    T s = T(0);
    for (u64 j = lane; j < cols; j += 32) {
        const T e = k_exp(xr[j] - m);
        yr[j] = e;
        s += e;
    }
    const T inv = T(1) / warp_sum(s);
    for (u64 j = lane; j < cols; j += 32) yr[j] *= inv;
}

template <typename T>
__device__ void softmax_bwd(const T* y, const T* dy, T* dx, u64 rows, u64 cols, int acc) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const T* yr = y + row * cols;
    const T* dyr = dy + row * cols;
    T dot = T(0);
    for (u64 j = lane; j < cols; j += 32) dot += yr[j] * dyr[j];
    dot = warp_sum(dot);
    for (u64 j = lane; j < cols; j += 32) k_put(&dx[row * cols + j], yr[j] * (dyr[j] - dot), acc);
}

#define KILN_SOFTMAX(S, T)                                                                         \
    extern "C" __global__ void softmax_fwd_##S(const T* x, T* y, u64 rows, u64 cols) {            \
        softmax_fwd<T>(x, y, rows, cols);                                                          \
    }                                                                                              \
    extern "C" __global__ void softmax_bwd_##S(const T* y, const T* dy, T* dx, u64 rows, u64 cols,\
                                               int acc) {                                          \
        softmax_bwd<T>(y, dy, dx, rows, cols, acc);                                                \
    }

KILN_SOFTMAX(f32, float)
KILN_SOFTMAX(f64, double)

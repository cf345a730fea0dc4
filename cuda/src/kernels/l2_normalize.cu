// L2 normalisation of a row-major `rows × cols` matrix, each row on its own
// (kiln-core's L2NormalizeKernels, core/src/layers/l2_normalize.rs), one
// warp per row, sums in double. With n = √(Σ x²) and ε as T:
//   fwd  y = x / max(n, ε)                    (n NaN: the row is NaN)
//   bwd  n recomputed, s = Σ x·dy;
//        dx (acc)= (dy − x·s/n²)/n  when n > ε  (= (g − y (y·g))/n)
//        dx (acc)= dy/ε             when n ≤ ε  (the clamp is active)

template <typename T> __device__ void l2_normalize_fwd(const T* x, T* y, u64 rows, u64 cols, T eps) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;  // the whole warp leaves together
    const T* xr = x + row * cols;
    double s = 0.0;
    for (u64 j = lane; j < cols; j += 32) {
        const double v = (double)xr[j];
        s += v * v;
    }
    const double n = k_sqrt(warp_sum(s)), e = (double)eps;
    const double den = n <= e ? e : n;
    for (u64 j = lane; j < cols; j += 32) y[row * cols + j] = (T)((double)xr[j] / den);
}

template <typename T>
__device__ void l2_normalize_bwd(const T* x, const T* dy, T* dx, u64 rows, u64 cols, T eps, int acc) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const T* xr = x + row * cols;
    const T* gr = dy + row * cols;
    double s = 0.0, xg = 0.0;
    for (u64 j = lane; j < cols; j += 32) {
        const double v = (double)xr[j];
        s += v * v;
        xg += v * (double)gr[j];
    }
    const double n = k_sqrt(warp_sum(s)), e = (double)eps;
    xg = warp_sum(xg);
    const bool clamped = n <= e;
    const double den = clamped ? e : n, c = clamped ? 0.0 : xg / (n * n);
    for (u64 j = lane; j < cols; j += 32)
        k_put(&dx[row * cols + j], (T)(((double)gr[j] - (double)xr[j] * c) / den), acc);
}

#define KILN_L2_NORMALIZE(S, T)                                                                     \
    extern "C" __global__ void l2_normalize_fwd_##S(const T* x, T* y, u64 rows, u64 cols, T eps) { \
        l2_normalize_fwd<T>(x, y, rows, cols, eps);                                                 \
    }                                                                                               \
    extern "C" __global__ void l2_normalize_bwd_##S(const T* x, const T* dy, T* dx, u64 rows,      \
                                                    u64 cols, T eps, int acc) {                     \
        l2_normalize_bwd<T>(x, dy, dx, rows, cols, eps, acc);                                       \
    }

KILN_L2_NORMALIZE(f32, float)
KILN_L2_NORMALIZE(f64, double)

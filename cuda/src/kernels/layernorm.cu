// Layer normalisation of a row-major `rows × cols` matrix, each row on its
// own (kiln-core's LayerNormKernels, core/src/layers/layernorm.rs). `stats`
// holds [μ, 1/σ] per row; `flags` bit 0: γ given, bit 1: β given (otherwise
// γ = 1, β = 0 and the pointer is not read or written).
//   fwd        one warp per row: μ = Σx/D, σ = √(Σ(x − μ)²/D + ε) (two passes,
//              in double), y = (x − μ)/σ·γ + β
//   bwd        one warp per row: g = dy·γ,
//              dx (acc)= (1/σ)·(g − mean(g) − x̂·mean(g·x̂))
//   param_bwd  32 columns per block, rows summed in a fixed order in double:
//              dγ (gacc)= Σ_rows dy·x̂, dβ (gacc)= Σ_rows dy

template <typename T>
__device__ void layer_norm_fwd(const T* x, const T* gamma, const T* beta, T* y, T* stats, u64 rows, u64 cols, T eps,
                               int flags) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;  // the whole warp leaves together
    const T* xr = x + row * cols;
    double s = 0.0;
    for (u64 j = lane; j < cols; j += 32) s += (double)xr[j];
    const double mu = warp_sum(s) / (double)cols;
    double q = 0.0;
    for (u64 j = lane; j < cols; j += 32) {
        const double t = (double)xr[j] - mu;
        q += t * t;
    }
    const double is = 1.0 / k_sqrt(warp_sum(q) / (double)cols + (double)eps);
    const T m = (T)mu, r = (T)is;
    if (lane == 0) {
        stats[2 * row] = m;
        stats[2 * row + 1] = r;
    }
    for (u64 j = lane; j < cols; j += 32) {
        const T g = (flags & 1) ? gamma[j] : T(1);
        const T b = (flags & 2) ? beta[j] : T(0);
        y[row * cols + j] = (xr[j] - m) * r * g + b;
    }
}

template <typename T>
__device__ void layer_norm_bwd(const T* x, const T* stats, const T* gamma, const T* dy, T* dx, u64 rows, u64 cols,
                               int flags, int acc) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const T m = stats[2 * row], r = stats[2 * row + 1];
    const T* xr = x + row * cols;
    const T* dyr = dy + row * cols;
    double sg = 0.0, sgx = 0.0;
    for (u64 j = lane; j < cols; j += 32) {
        const T g = dyr[j] * ((flags & 1) ? gamma[j] : T(1));
        sg += (double)g;
        sgx += (double)g * (double)((xr[j] - m) * r);
    }
    const T mg = (T)(warp_sum(sg) / (double)cols), mgx = (T)(warp_sum(sgx) / (double)cols);
    for (u64 j = lane; j < cols; j += 32) {
        const T g = dyr[j] * ((flags & 1) ? gamma[j] : T(1));
        const T xh = (xr[j] - m) * r;
        k_put(&dx[row * cols + j], r * (g - mg - xh * mgx), acc);
    }
}

// Lane `tx` of warp `ty` sums rows ty, ty + W, … of column c in order, then
// warp 0 adds the W partial sums in order (as bias_bwd): deterministic.
template <typename T>
__device__ void layer_norm_param_bwd(const T* x, const T* stats, const T* dy, T* dgamma, T* dbeta, u64 rows, u64 cols,
                                     int flags, int gacc) {
    __shared__ double pg[32][33];
    __shared__ double pb[32][33];
    const unsigned tx = threadIdx.x % 32, ty = threadIdx.x / 32, w = blockDim.x / 32;
    const u64 c = (u64)blockIdx.x * 32 + tx;
    double sg = 0.0, sb = 0.0;
    if (c < cols) {
        for (u64 r = ty; r < rows; r += w) {
            const T g = dy[r * cols + c];
            sg += (double)g * (double)((x[r * cols + c] - stats[2 * r]) * stats[2 * r + 1]);
            sb += (double)g;
        }
    }
    pg[ty][tx] = sg;
    pb[ty][tx] = sb;
    __syncthreads();
    if (ty == 0 && c < cols) {
        double a = pg[0][tx], b = pb[0][tx];
        for (unsigned k = 1; k < w; ++k) {
            a += pg[k][tx];
            b += pb[k][tx];
        }
        if (flags & 1) k_put(&dgamma[c], (T)a, gacc);
        if (flags & 2) k_put(&dbeta[c], (T)b, gacc);
    }
}

#define KILN_LAYER_NORM(S, T)                                                                      \
    extern "C" __global__ void layer_norm_fwd_##S(const T* x, const T* gamma, const T* beta, T* y, \
                                                  T* stats, u64 rows, u64 cols, T eps, int flags) { \
        layer_norm_fwd<T>(x, gamma, beta, y, stats, rows, cols, eps, flags);                       \
    }                                                                                              \
    extern "C" __global__ void layer_norm_bwd_##S(const T* x, const T* stats, const T* gamma,     \
                                                  const T* dy, T* dx, u64 rows, u64 cols,          \
                                                  int flags, int acc) {                            \
        layer_norm_bwd<T>(x, stats, gamma, dy, dx, rows, cols, flags, acc);                        \
    }                                                                                              \
    extern "C" __global__ void layer_norm_param_bwd_##S(const T* x, const T* stats, const T* dy,  \
                                                        T* dgamma, T* dbeta, u64 rows, u64 cols,   \
                                                        int flags, int gacc) {                     \
        layer_norm_param_bwd<T>(x, stats, dy, dgamma, dbeta, rows, cols, flags, gacc);             \
    }

KILN_LAYER_NORM(f32, float)
KILN_LAYER_NORM(f64, double)

// Losses (formulas in kiln-core's loss.rs). Each loss has a forward kernel that
// writes one loss value per sample (class losses, one warp per row) or per
// element (dense losses), and a backward kernel that writes ∂mean/∂x (`scale`
// is 1/N, N the number of samples or elements). `sum_fwd` then reduces the
// per-sample values to the mean in a fixed order; only that scalar reaches
// the host.

// ---- softmax cross-entropy: log Σ_k e^{x_k} − x_y;  dx = (softmax(x) − onehot(y)) · scale

// log Σ_k e^{x_k} of one row, computed by a whole warp (every lane gets it).
template <typename T> __device__ __forceinline__ T row_logsumexp(const T* xr, u64 cols, unsigned lane) {
    T m = xr[0];
    for (u64 j = lane; j < cols; j += 32) m = k_max(m, xr[j]);
    m = warp_max(m);
    T s = T(0);
    for (u64 j = lane; j < cols; j += 32) s += k_exp(xr[j] - m);
    return m + k_log(warp_sum(s));
}

// A row whose label equals `ignore` contributes 0 to the loss and gets a zero
// gradient (per-position cross-entropy's ignore_index); `ignore` = 2⁶⁴ − 1
// matches no u32 label.
template <typename T>
__device__ void cross_entropy_fwd(const T* x, const u32* labels, T* loss, u64 rows, u64 cols, u64 ignore) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const u64 y = labels[row];
    if (y == ignore) {
        if (lane == 0) loss[row] = T(0);
        return;
    }
    const T* xr = x + row * cols;
    const T lse = row_logsumexp(xr, cols, lane);
    if (lane == 0) loss[row] = y < cols ? lse - xr[y] : k_nan<T>();
}

template <typename T>
__device__ void cross_entropy_bwd(const T* x, const u32* labels, T* dx, u64 rows, u64 cols, u64 ignore, T scale) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const u64 y = labels[row];
    if (y == ignore) {
        for (u64 j = lane; j < cols; j += 32) dx[row * cols + j] = T(0);
        return;
    }
    const T* xr = x + row * cols;
    const T lse = row_logsumexp(xr, cols, lane);
    for (u64 j = lane; j < cols; j += 32) {
        const T p = k_exp(xr[j] - lse);
        dx[row * cols + j] = (p - (j == y ? T(1) : T(0))) * scale;
    }
}

// ---- multiclass SVM: Σ_{j≠y} max(0, x_j − x_y + Δ) (a NaN term kept: NaN loss, where PyTorch
//      skips it);  dx_j = [margin_j > 0] · scale,
//      dx_y = −#{j : margin_j > 0} · scale

template <typename T>
__device__ void hinge_fwd(const T* x, const u32* labels, T* loss, u64 rows, u64 cols, T margin) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const T* xr = x + row * cols;
    const u64 y = labels[row];
    const T xy = y < cols ? xr[y] : k_nan<T>();
    T s = T(0);
    for (u64 j = lane; j < cols; j += 32) {
        const T z = xr[j] - xy + margin;
        if (j != y) s += z <= T(0) ? T(0) : z;  // max(z, 0) keeping a NaN
    }
    s = warp_sum(s);
    if (lane == 0) loss[row] = s;
}

template <typename T>
__device__ void hinge_bwd(const T* x, const u32* labels, T* dx, u64 rows, u64 cols, T margin, T scale) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const T* xr = x + row * cols;
    const u64 y = labels[row];
    const T xy = y < cols ? xr[y] : k_nan<T>();
    T count = T(0);
    for (u64 j = lane; j < cols; j += 32) {
        if (j == y) continue;  // written by lane 0 below
        const bool active = k_max(xr[j] - xy + margin, T(0)) > T(0);
        dx[row * cols + j] = active ? scale : T(0);
        if (active) count += T(1);
    }
    count = warp_sum(count);
    if (lane == 0 && y < cols) dx[row * cols + y] = -count * scale;
}

// ---- element-wise losses against dense targets

// (x − t)²;  dx = 2(x − t) · scale
template <typename T> __device__ void mse_fwd(const T* x, const T* t, T* loss, u64 n) {
    KILN_FOR_EACH(i, n) loss[i] = (x[i] - t[i]) * (x[i] - t[i]);
}
template <typename T> __device__ void mse_bwd(const T* x, const T* t, T* dx, u64 n, T scale) {
    KILN_FOR_EACH(i, n) dx[i] = (T(2) * (x[i] - t[i])) * scale;
}

// |x − t|;  dx = sign(x − t) · scale (0 at 0)
template <typename T> __device__ void l1_fwd(const T* x, const T* t, T* loss, u64 n) {
    KILN_FOR_EACH(i, n) loss[i] = k_abs(x[i] - t[i]);
}
template <typename T> __device__ void l1_bwd(const T* x, const T* t, T* dx, u64 n, T scale) {
    KILN_FOR_EACH(i, n) {
        const T d = x[i] - t[i];
        dx[i] = (d > T(0) ? T(1) : d < T(0) ? T(-1) : T(0)) * scale;
    }
}

// max(x, 0) − x t + log(1 + e^{−|x|});  dx = (σ(x) − t) · scale
template <typename T> __device__ void bce_with_logits_fwd(const T* x, const T* t, T* loss, u64 n) {
    KILN_FOR_EACH(i, n) loss[i] = k_max(x[i], T(0)) - x[i] * t[i] + k_log1p(k_exp(-k_abs(x[i])));
}
template <typename T> __device__ void bce_with_logits_bwd(const T* x, const T* t, T* dx, u64 n, T scale) {
    KILN_FOR_EACH(i, n) dx[i] = (k_sigmoid(x[i]) - t[i]) * scale;
}

// ---- reduction: out[b] = scale · Σ of the elements visited by block b.
// Thread i of block b adds elements b·B + i, (G + b)·B + i, … in order (B the
// block size, G the grid size), then the block adds its threads' sums in a
// fixed tree. Launched with G blocks, then with 1 block over the G partial sums.
template <typename T> __device__ void sum_fwd(const T* x, T* out, u64 n, T scale) {
    T s = T(0);
    KILN_FOR_EACH(i, n) s += x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[blockIdx.x] = s * scale;
}

// ---- Σx² and Σ|x| accumulated in double (Backend::{sum_sq, sum_abs}): per-block
// partial sums like sum_fwd, reduced by sum_fwd_f64.
template <typename T> __device__ void sum_sq_fwd(const T* x, double* out, u64 n) {
    double s = 0.0;
    KILN_FOR_EACH(i, n) s += (double)x[i] * (double)x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[blockIdx.x] = s;
}
template <typename T> __device__ void sum_abs_fwd(const T* x, double* out, u64 n) {
    double s = 0.0;
    KILN_FOR_EACH(i, n) s += k_abs((double)x[i]);
    s = block_sum(s);
    if (threadIdx.x == 0) out[blockIdx.x] = s;
}

// ---- distribution losses (Backend::{soft_cross_entropy, focal_loss, kl_div}),
// formulas in kiln-core's loss/distribution.rs.

// Soft-target cross-entropy with label smoothing, one warp per row:
// q_k = keep·t_k + spread (t the one-hot row of `labels` when given, else the
// dense row of `t`); loss −Σ q_k log softmax(x)_k; dx = (softmax(x)·Σq − q)·scale.
template <typename T>
__device__ __forceinline__ T soft_q(const u32* labels, const T* t, u64 row, u64 cols, u64 k, T keep, T spread) {
    const T tk = labels ? (k == (u64)labels[row] ? T(1) : T(0)) : t[row * cols + k];
    return keep * tk + spread;
}
template <typename T>
__device__ void soft_cross_entropy_fwd(const T* x, const u32* labels, const T* t, T* loss, u64 rows, u64 cols,
                                       T keep, T spread) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const T* xr = x + row * cols;
    const T lse = row_logsumexp(xr, cols, lane);
    T s = T(0);
    for (u64 k = lane; k < cols; k += 32) s += soft_q(labels, t, row, cols, k, keep, spread) * (lse - xr[k]);
    s = warp_sum(s);
    if (lane == 0) loss[row] = labels && (u64)labels[row] >= cols ? k_nan<T>() : s;
}
template <typename T>
__device__ void soft_cross_entropy_bwd(const T* x, const u32* labels, const T* t, T* dx, u64 rows, u64 cols,
                                       T keep, T spread, T scale) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const T* xr = x + row * cols;
    const T lse = row_logsumexp(xr, cols, lane);
    T sum_q = T(0);
    for (u64 k = lane; k < cols; k += 32) sum_q += soft_q(labels, t, row, cols, k, keep, spread);
    sum_q = warp_sum(sum_q);
    for (u64 k = lane; k < cols; k += 32) {
        dx[row * cols + k] = (k_exp(xr[k] - lse) * sum_q - soft_q(labels, t, row, cols, k, keep, spread)) * scale;
    }
}

// Focal loss −α_y (1 − p_y)^γ log p_y, one warp per row (`alpha` may be null).
template <typename T>
__device__ void focal_fwd(const T* x, const u32* labels, const T* alpha, T* loss, u64 rows, u64 cols, T gamma) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const T* xr = x + row * cols;
    const T lse = row_logsumexp(xr, cols, lane);
    const u64 y = labels[row];
    if (lane != 0) return;
    if (y >= cols) {
        loss[row] = k_nan<T>();
        return;
    }
    const T a = alpha ? alpha[y] : T(1);
    const T lt = xr[y] - lse;
    const T u = -k_expm1(lt);
    loss[row] = -(a * k_pow(u, gamma) * lt);
}
template <typename T>
__device__ void focal_bwd(const T* x, const u32* labels, const T* alpha, T* dx, u64 rows, u64 cols, T gamma,
                          T scale) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const T* xr = x + row * cols;
    const T lse = row_logsumexp(xr, cols, lane);
    const u64 y = labels[row];
    if (y >= cols) return;
    const T a = alpha ? alpha[y] : T(1);
    const T lt = xr[y] - lse;
    const T pt = k_exp(lt);
    const T u = -k_expm1(lt);
    const T ug = k_pow(u, gamma);
    const T focus = (gamma == T(0) || u == T(0)) ? T(0) : gamma * (ug / u) * pt * lt;
    const T kk = a * (focus - ug) * scale;
    for (u64 j = lane; j < cols; j += 32) {
        const T pj = k_exp(xr[j] - xr[y]) * pt;
        dx[row * cols + j] = kk * ((j == y ? T(1) : T(0)) - pj);
    }
}

// KL divergence, element-wise: t·(log t − x) (0 where t = 0), or with a log
// target e^t·(t − x); dx = −t·scale (−e^t·scale).
template <typename T> __device__ void kl_div_fwd(const T* x, const T* t, T* loss, u64 n, int log_target) {
    KILN_FOR_EACH(i, n) {
        if (log_target) {
            loss[i] = k_exp(t[i]) * (t[i] - x[i]);
        } else {
            const T tlogt = t[i] == T(0) ? T(0) : t[i] * k_log(t[i]);
            loss[i] = tlogt - t[i] * x[i];
        }
    }
}
template <typename T> __device__ void kl_div_bwd(const T* x, const T* t, T* dx, u64 n, int log_target, T scale) {
    (void)x;
    KILN_FOR_EACH(i, n) dx[i] = -(log_target ? k_exp(t[i]) : t[i]) * scale;
}

#define KILN_LOSS(S, T)                                                                            \
    extern "C" __global__ void cross_entropy_fwd_##S(const T* x, const u32* labels, T* loss,      \
                                                     u64 rows, u64 cols, u64 ignore) {             \
        cross_entropy_fwd<T>(x, labels, loss, rows, cols, ignore);                                 \
    }                                                                                              \
    extern "C" __global__ void cross_entropy_bwd_##S(const T* x, const u32* labels, T* dx,        \
                                                     u64 rows, u64 cols, u64 ignore, T scale) {    \
        cross_entropy_bwd<T>(x, labels, dx, rows, cols, ignore, scale);                            \
    }                                                                                              \
    extern "C" __global__ void hinge_fwd_##S(const T* x, const u32* labels, T* loss, u64 rows,    \
                                             u64 cols, T margin) {                                 \
        hinge_fwd<T>(x, labels, loss, rows, cols, margin);                                         \
    }                                                                                              \
    extern "C" __global__ void hinge_bwd_##S(const T* x, const u32* labels, T* dx, u64 rows,      \
                                             u64 cols, T margin, T scale) {                        \
        hinge_bwd<T>(x, labels, dx, rows, cols, margin, scale);                                    \
    }                                                                                              \
    extern "C" __global__ void mse_fwd_##S(const T* x, const T* t, T* loss, u64 n) {              \
        mse_fwd<T>(x, t, loss, n);                                                                 \
    }                                                                                              \
    extern "C" __global__ void mse_bwd_##S(const T* x, const T* t, T* dx, u64 n, T scale) {       \
        mse_bwd<T>(x, t, dx, n, scale);                                                            \
    }                                                                                              \
    extern "C" __global__ void l1_fwd_##S(const T* x, const T* t, T* loss, u64 n) {               \
        l1_fwd<T>(x, t, loss, n);                                                                  \
    }                                                                                              \
    extern "C" __global__ void l1_bwd_##S(const T* x, const T* t, T* dx, u64 n, T scale) {        \
        l1_bwd<T>(x, t, dx, n, scale);                                                             \
    }                                                                                              \
    extern "C" __global__ void bce_with_logits_fwd_##S(const T* x, const T* t, T* loss, u64 n) {  \
        bce_with_logits_fwd<T>(x, t, loss, n);                                                     \
    }                                                                                              \
    extern "C" __global__ void bce_with_logits_bwd_##S(const T* x, const T* t, T* dx, u64 n,      \
                                                       T scale) {                                  \
        bce_with_logits_bwd<T>(x, t, dx, n, scale);                                                \
    }                                                                                              \
    extern "C" __global__ void sum_fwd_##S(const T* x, T* out, u64 n, T scale) {                  \
        sum_fwd<T>(x, out, n, scale);                                                              \
    }                                                                                              \
    extern "C" __global__ void soft_cross_entropy_fwd_##S(const T* x, const u32* labels,          \
                                                          const T* t, T* loss, u64 rows, u64 cols, \
                                                          T keep, T spread) {                      \
        soft_cross_entropy_fwd<T>(x, labels, t, loss, rows, cols, keep, spread);                   \
    }                                                                                              \
    extern "C" __global__ void soft_cross_entropy_bwd_##S(const T* x, const u32* labels,          \
                                                          const T* t, T* dx, u64 rows, u64 cols,   \
                                                          T keep, T spread, T scale) {             \
        soft_cross_entropy_bwd<T>(x, labels, t, dx, rows, cols, keep, spread, scale);              \
    }                                                                                              \
    extern "C" __global__ void focal_fwd_##S(const T* x, const u32* labels, const T* alpha,       \
                                             T* loss, u64 rows, u64 cols, T gamma) {               \
        focal_fwd<T>(x, labels, alpha, loss, rows, cols, gamma);                                   \
    }                                                                                              \
    extern "C" __global__ void focal_bwd_##S(const T* x, const u32* labels, const T* alpha, T* dx,\
                                             u64 rows, u64 cols, T gamma, T scale) {               \
        focal_bwd<T>(x, labels, alpha, dx, rows, cols, gamma, scale);                              \
    }                                                                                              \
    extern "C" __global__ void kl_div_fwd_##S(const T* x, const T* t, T* loss, u64 n,             \
                                              int log_target) {                                    \
        kl_div_fwd<T>(x, t, loss, n, log_target);                                                  \
    }                                                                                              \
    extern "C" __global__ void kl_div_bwd_##S(const T* x, const T* t, T* dx, u64 n,               \
                                              int log_target, T scale) {                           \
        kl_div_bwd<T>(x, t, dx, n, log_target, scale);                                             \
    }                                                                                              \
    extern "C" __global__ void sum_sq_fwd_##S(const T* x, double* out, u64 n) {                   \
        sum_sq_fwd<T>(x, out, n);                                                                  \
    }                                                                                              \
    extern "C" __global__ void sum_abs_fwd_##S(const T* x, double* out, u64 n) {                  \
        sum_abs_fwd<T>(x, out, n);                                                                 \
    }

KILN_LOSS(f32, float)
KILN_LOSS(f64, double)

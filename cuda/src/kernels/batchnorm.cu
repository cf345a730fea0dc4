// Batch normalisation over x = [batch, channels, spatial] (kiln-core's
// Backend::batch_norm_*; statistics per channel over M = batch · spatial
// values, accumulated in double in a fixed order, one block per channel).
//   stats    mean = Σx/M, var = Σ(x − mean)²/M (biased; two passes)
//   running  rm = keep·rm + m·mean, rv = keep·rv + m·var·unbias, tracked += 1
//   fwd      y = (x − mean)·γ/√(var + ε) + β
//   bwd      Σdy and Σdy·x̂ into scratch[c], scratch[C + c]; dβ (gacc)= Σdy,
//            dγ (gacc)= Σdy·x̂
//   input_bwd dx (acc)= (γ/σ)·(dy − Σdy/M − x̂·Σ(dy·x̂)/M)

// Σ over channel c's values of f(x_i, y_i), in double, by the whole block.
template <typename T, typename F>
__device__ __forceinline__ double channel_sum(const T* a, const T* b, u64 c, u64 batch, u64 channels, u64 spatial, F f) {
    double s = 0.0;
    for (u64 t = threadIdx.x; t < batch * spatial; t += blockDim.x) {
        const u64 i = ((t / spatial) * channels + c) * spatial + t % spatial;
        s += f(a[i], b[i]);
    }
    return block_sum(s);
}

// The value of thread 0's `v` in every thread of the block.
__device__ __forceinline__ double block_broadcast(double v) {
    __shared__ double slot;
    if (threadIdx.x == 0) slot = v;
    __syncthreads();
    const double r = slot;
    __syncthreads();
    return r;
}

template <typename T> struct SumOf {
    __device__ double operator()(T a, T) const { return (double)a; }
};
template <typename T> struct SqDev {
    double mean;
    __device__ double operator()(T a, T) const { const double t = (double)a - mean; return t * t; }
};
template <typename T> struct DyXhat {
    double mean;
    __device__ double operator()(T g, T v) const { return (double)g * ((double)v - mean); }
};

template <typename T>
__device__ void batch_norm_stats_fwd(const T* x, T* mean, T* var, u64 batch, u64 channels, u64 spatial) {
    const u64 c = blockIdx.x;
    const double m = (double)(batch * spatial);
    const double mu = block_broadcast(channel_sum(x, x, c, batch, channels, spatial, SumOf<T>{})) / m;
    const double v = channel_sum(x, x, c, batch, channels, spatial, SqDev<T>{mu}) / m;
    if (threadIdx.x == 0) {
        mean[c] = (T)mu;
        var[c] = (T)v;
    }
}

template <typename T>
__device__ void batch_norm_running_fwd(const T* mean, const T* var, T* rm, T* rv, T* tracked, u64 channels, T keep,
                                       T m, T unbias) {
    KILN_FOR_EACH(i, channels) {
        rm[i] = keep * rm[i] + m * mean[i];
        rv[i] = keep * rv[i] + m * var[i] * unbias;
        if (i == 0) tracked[0] = tracked[0] + T(1);
    }
}

template <typename T>
__device__ void batch_norm_fwd(const T* x, const T* mean, const T* var, const T* gamma, const T* beta, T* y,
                               u64 batch, u64 channels, u64 spatial, T eps) {
    KILN_FOR_EACH(i, batch * channels * spatial) {
        const u64 c = (i / spatial) % channels;
        const T scale = gamma[c] / k_sqrt(var[c] + eps);
        y[i] = (x[i] - mean[c]) * scale + beta[c];
    }
}

template <typename T>
__device__ void batch_norm_bwd(const T* x, const T* mean, const T* var, const T* dy, T* dgamma, T* dbeta, T* scratch,
                               u64 batch, u64 channels, u64 spatial, T eps, int gacc) {
    const u64 c = blockIdx.x;
    const double is = 1.0 / k_sqrt((double)var[c] + (double)eps);
    const double sdy = channel_sum(dy, dy, c, batch, channels, spatial, SumOf<T>{});
    const double sdyx = channel_sum(dy, x, c, batch, channels, spatial, DyXhat<T>{(double)mean[c]}) * is;
    if (threadIdx.x == 0) {
        scratch[c] = (T)sdy;
        scratch[channels + c] = (T)sdyx;
        k_put(&dbeta[c], (T)sdy, gacc);
        k_put(&dgamma[c], (T)sdyx, gacc);
    }
}

template <typename T>
__device__ void batch_norm_input_bwd(const T* x, const T* mean, const T* var, const T* gamma, const T* dy,
                                     const T* scratch, T* dx, u64 batch, u64 channels, u64 spatial, T eps, int acc) {
    const T m = T((double)(batch * spatial));
    KILN_FOR_EACH(i, batch * channels * spatial) {
        const u64 c = (i / spatial) % channels;
        const T is = (T)(1.0 / k_sqrt((double)var[c] + (double)eps));
        const T scale = gamma[c] * is;
        const T a = scratch[c] / m, b = scratch[channels + c] / m;
        const T xh = (x[i] - mean[c]) * is;
        k_put(&dx[i], scale * (dy[i] - a - xh * b), acc);
    }
}

#define KILN_NORM(S, T)                                                                            \
    extern "C" __global__ void batch_norm_stats_fwd_##S(const T* x, T* mean, T* var, u64 batch,   \
                                                        u64 channels, u64 spatial) {               \
        batch_norm_stats_fwd<T>(x, mean, var, batch, channels, spatial);                           \
    }                                                                                              \
    extern "C" __global__ void batch_norm_running_fwd_##S(const T* mean, const T* var, T* rm,     \
                                                          T* rv, T* tracked, u64 channels, T keep, \
                                                          T m, T unbias) {                         \
        batch_norm_running_fwd<T>(mean, var, rm, rv, tracked, channels, keep, m, unbias);          \
    }                                                                                              \
    extern "C" __global__ void batch_norm_fwd_##S(const T* x, const T* mean, const T* var,        \
                                                  const T* gamma, const T* beta, T* y, u64 batch,  \
                                                  u64 channels, u64 spatial, T eps) {              \
        batch_norm_fwd<T>(x, mean, var, gamma, beta, y, batch, channels, spatial, eps);            \
    }                                                                                              \
    extern "C" __global__ void batch_norm_bwd_##S(const T* x, const T* mean, const T* var,        \
                                                  const T* dy, T* dgamma, T* dbeta, T* scratch,    \
                                                  u64 batch, u64 channels, u64 spatial, T eps,     \
                                                  int gacc) {                                      \
        batch_norm_bwd<T>(x, mean, var, dy, dgamma, dbeta, scratch, batch, channels, spatial, eps, \
                          gacc);                                                                   \
    }                                                                                              \
    extern "C" __global__ void batch_norm_input_bwd_##S(const T* x, const T* mean, const T* var,  \
                                                        const T* gamma, const T* dy,               \
                                                        const T* scratch, T* dx, u64 batch,        \
                                                        u64 channels, u64 spatial, T eps, int acc) { \
        batch_norm_input_bwd<T>(x, mean, var, gamma, dy, scratch, dx, batch, channels, spatial,    \
                                eps, acc);                                                         \
    }

KILN_NORM(f32, float)
KILN_NORM(f64, double)

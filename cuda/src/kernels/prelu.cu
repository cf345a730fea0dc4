// Parametric ReLU over x = [batch, channels, inner] (kiln-core's
// PReluKernels): element i belongs to channel c = (i / inner) % channels.
//   fwd         y = x if x > 0 else a[c]·x
//   bwd         dx (acc)= dy · (1 if x > 0 else a[c])
//   weight_bwd  da[c] (gacc)= Σ dy·x·[x ≤ 0] over the batch and the channel's
//               positions, in double, one block per channel (fixed order)
// A NaN x takes the `x ≤ 0` branch everywhere (`!(x > 0)`), as PyTorch: y and
// da NaN, dx = dy·a[c].

template <typename T> __device__ void prelu_fwd(const T* x, const T* a, T* y, u64 n, u64 channels, u64 inner) {
    KILN_FOR_EACH(i, n) {
        const T v = x[i];
        y[i] = v > T(0) ? v : a[(i / inner) % channels] * v;
    }
}

template <typename T>
__device__ void prelu_bwd(const T* x, const T* a, const T* dy, T* dx, u64 n, u64 channels, u64 inner, int acc) {
    KILN_FOR_EACH(i, n) {
        const T g = dy[i];
        k_put(&dx[i], x[i] > T(0) ? g : a[(i / inner) % channels] * g, acc);
    }
}

template <typename T>
__device__ void prelu_weight_bwd(const T* x, const T* dy, T* da, u64 batch, u64 channels, u64 inner, int gacc) {
    const u64 c = blockIdx.x;
    double s = 0.0;
    for (u64 t = threadIdx.x; t < batch * inner; t += blockDim.x) {
        const u64 i = ((t / inner) * channels + c) * inner + t % inner;
        const T v = x[i];
        if (!(v > T(0))) s += (double)dy[i] * (double)v;
    }
    s = block_sum(s);
    if (threadIdx.x == 0) k_put(&da[c], (T)s, gacc);
}

#define KILN_PRELU(S, T)                                                                           \
    extern "C" __global__ void prelu_fwd_##S(const T* x, const T* a, T* y, u64 n, u64 channels,   \
                                             u64 inner) {                                          \
        prelu_fwd<T>(x, a, y, n, channels, inner);                                                 \
    }                                                                                              \
    extern "C" __global__ void prelu_bwd_##S(const T* x, const T* a, const T* dy, T* dx, u64 n,   \
                                             u64 channels, u64 inner, int acc) {                   \
        prelu_bwd<T>(x, a, dy, dx, n, channels, inner, acc);                                       \
    }                                                                                              \
    extern "C" __global__ void prelu_weight_bwd_##S(const T* x, const T* dy, T* da, u64 batch,    \
                                                    u64 channels, u64 inner, int gacc) {           \
        prelu_weight_bwd<T>(x, dy, da, batch, channels, inner, gacc);                              \
    }

KILN_PRELU(f32, float)
KILN_PRELU(f64, double)

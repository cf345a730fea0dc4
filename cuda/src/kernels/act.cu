// Activations (kiln-core's `Act`; the same formulas as cpu.rs `act_f`/`act_df`).
//   relu        y = max(x, 0)            dx (acc)= dy · [x > 0]
//   leaky_relu  y = x > 0 ? x : α x      dx (acc)= dy · (x > 0 ? 1 : α)
//   sigmoid     y = 1 / (1 + e^{−x})     dx (acc)= dy · y (1 − y)     (uses the output)
//   tanh        y = tanh x               dx (acc)= dy · (1 − y²)      (uses the output)

template <typename T> __device__ void relu_fwd(const T* x, T* y, u64 n) {
    KILN_FOR_EACH(i, n) y[i] = x[i] > T(0) ? x[i] : T(0);
}
template <typename T> __device__ void relu_bwd(const T* x, const T* dy, T* dx, u64 n, int acc) {
    KILN_FOR_EACH(i, n) k_put(&dx[i], dy[i] * (x[i] > T(0) ? T(1) : T(0)), acc);
}

template <typename T> __device__ void leaky_relu_fwd(const T* x, T* y, u64 n, T alpha) {
    KILN_FOR_EACH(i, n) y[i] = x[i] > T(0) ? x[i] : x[i] * alpha;
}
template <typename T>
__device__ void leaky_relu_bwd(const T* x, const T* dy, T* dx, u64 n, T alpha, int acc) {
    KILN_FOR_EACH(i, n) k_put(&dx[i], dy[i] * (x[i] > T(0) ? T(1) : alpha), acc);
}

template <typename T> __device__ void sigmoid_fwd(const T* x, T* y, u64 n) {
    KILN_FOR_EACH(i, n) y[i] = k_sigmoid(x[i]);
}
template <typename T> __device__ void sigmoid_bwd(const T* y, const T* dy, T* dx, u64 n, int acc) {
    KILN_FOR_EACH(i, n) k_put(&dx[i], dy[i] * (y[i] * (T(1) - y[i])), acc);
}

template <typename T> __device__ void tanh_fwd(const T* x, T* y, u64 n) {
    KILN_FOR_EACH(i, n) y[i] = k_tanh(x[i]);
}
template <typename T> __device__ void tanh_bwd(const T* y, const T* dy, T* dx, u64 n, int acc) {
    KILN_FOR_EACH(i, n) k_put(&dx[i], dy[i] * (T(1) - y[i] * y[i]), acc);
}

#define KILN_ACT(S, T)                                                                             \
    extern "C" __global__ void relu_fwd_##S(const T* x, T* y, u64 n) { relu_fwd<T>(x, y, n); }    \
    extern "C" __global__ void relu_bwd_##S(const T* x, const T* dy, T* dx, u64 n, int acc) {     \
        relu_bwd<T>(x, dy, dx, n, acc);                                                            \
    }                                                                                              \
    extern "C" __global__ void leaky_relu_fwd_##S(const T* x, T* y, u64 n, T alpha) {             \
        leaky_relu_fwd<T>(x, y, n, alpha);                                                         \
    }                                                                                              \
    extern "C" __global__ void leaky_relu_bwd_##S(const T* x, const T* dy, T* dx, u64 n, T alpha, \
                                                  int acc) {                                       \
        leaky_relu_bwd<T>(x, dy, dx, n, alpha, acc);                                               \
    }                                                                                              \
    extern "C" __global__ void sigmoid_fwd_##S(const T* x, T* y, u64 n) { sigmoid_fwd<T>(x, y, n); } \
    extern "C" __global__ void sigmoid_bwd_##S(const T* y, const T* dy, T* dx, u64 n, int acc) {  \
        sigmoid_bwd<T>(y, dy, dx, n, acc);                                                         \
    }                                                                                              \
    extern "C" __global__ void tanh_fwd_##S(const T* x, T* y, u64 n) { tanh_fwd<T>(x, y, n); }    \
    extern "C" __global__ void tanh_bwd_##S(const T* y, const T* dy, T* dx, u64 n, int acc) {     \
        tanh_bwd<T>(y, dy, dx, n, acc);                                                            \
    }

KILN_ACT(f32, float)
KILN_ACT(f64, double)

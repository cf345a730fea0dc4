// One step t of an Elman RNN over every sequence of the batch (kiln-core's
// RnnKernels, layers/rnn.rs), one thread per (sample b, unit j); the
// pre-activations a, the outputs h and their gradients are [batch, steps, H],
// the carry dh [batch, H]; relu = 0 for tanh, 1 for relu.
//   fwd  h_t = f(a_t)
//   bwd  da_t = (dy_t + dh)·f', f' from h_t: 1 − h² (tanh); for relu the
//        select `h_t ≤ 0 ? 0 : dy_t + dh` (PyTorch's threshold_backward: a NaN
//        h passes the gradient, a NaN gradient is stopped where h ≤ 0)
//   relu is written as the complement of `≤ 0` so relu(NaN) = NaN.

template <typename T>
__device__ void rnn_cell_fwd(const T* a, T* h, u64 batch, u64 steps, u64 hidden, u64 t, int relu) {
    KILN_FOR_EACH(k, batch * hidden) {
        const u64 b = k / hidden, j = k % hidden, i = (b * steps + t) * hidden + j;
        const T v = a[i];
        h[i] = relu ? (v <= T(0) ? T(0) : v) : k_tanh(v);
    }
}

template <typename T>
__device__ void rnn_cell_bwd(const T* h, const T* dy, const T* dh, T* da, u64 batch, u64 steps,
                             u64 hidden, u64 t, int relu) {
    KILN_FOR_EACH(k, batch * hidden) {
        const u64 b = k / hidden, j = k % hidden, i = (b * steps + t) * hidden + j;
        const T y = h[i];
        const T g = dy[i] + dh[k];
        da[i] = relu ? (y <= T(0) ? T(0) : g) : g * (T(1) - y * y);
    }
}

#define KILN_RNN(S, T)                                                                             \
    extern "C" __global__ void rnn_cell_fwd_##S(const T* a, T* h, u64 batch, u64 steps,           \
                                                u64 hidden, u64 t, int relu) {                     \
        rnn_cell_fwd<T>(a, h, batch, steps, hidden, t, relu);                                      \
    }                                                                                              \
    extern "C" __global__ void rnn_cell_bwd_##S(const T* h, const T* dy, const T* dh, T* da,      \
                                                u64 batch, u64 steps, u64 hidden, u64 t,           \
                                                int relu) {                                        \
        rnn_cell_bwd<T>(h, dy, dh, da, batch, steps, hidden, t, relu);                             \
    }

KILN_RNN(f32, float)
KILN_RNN(f64, double)

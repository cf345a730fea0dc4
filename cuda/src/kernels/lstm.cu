// One step t of an LSTM over every sequence of the batch (kiln-core's
// LstmKernels, layers/lstm.rs), one thread per (sample b, unit j); gates are
// [batch, steps, 4H] in PyTorch's order i, f, g, o, c and h [batch, steps, H],
// the carries dh and dc and the initial cell state c0 [batch, H] (c_{−1}, read at t = 0).
//   fwd  gates ← (σ(a_i), σ(a_f), tanh(a_g), σ(a_o)); c_t = f·c_{t−1} + i·g;
//        h_t = o·tanh(c_t)
//   bwd  δh = dy_t + dh; ∂c = δh·o·(1 − tanh²c_t) + dc;
//        dgates_t = (∂c·g·i(1−i), ∂c·c_{t−1}·f(1−f), ∂c·i·(1−g²), δh·tanh(c_t)·o(1−o));
//        dc ← ∂c·f

template <typename T>
__device__ void lstm_cell_fwd(const T* c0, T* gates, T* c, T* h, u64 batch, u64 steps, u64 hidden,
                              u64 t) {
    KILN_FOR_EACH(k, batch * hidden) {
        const u64 b = k / hidden, j = k % hidden, row = b * steps + t;
        T* g = gates + row * 4 * hidden;
        const T i = k_sigmoid(g[j]);
        const T f = k_sigmoid(g[hidden + j]);
        const T u = k_tanh(g[2 * hidden + j]);
        const T o = k_sigmoid(g[3 * hidden + j]);
        g[j] = i;
        g[hidden + j] = f;
        g[2 * hidden + j] = u;
        g[3 * hidden + j] = o;
        const T prev = t > 0 ? c[(row - 1) * hidden + j] : c0[k];
        const T ct = f * prev + i * u;
        c[row * hidden + j] = ct;
        h[row * hidden + j] = o * k_tanh(ct);
    }
}

template <typename T>
__device__ void lstm_cell_bwd(const T* c0, const T* gates, const T* c, const T* dy, const T* dh, T* dc, T* dgates,
                              u64 batch, u64 steps, u64 hidden, u64 t) {
    KILN_FOR_EACH(k, batch * hidden) {
        const u64 b = k / hidden, j = k % hidden, row = b * steps + t;
        const T* g = gates + row * 4 * hidden;
        T* dg = dgates + row * 4 * hidden;
        const T i = g[j], f = g[hidden + j], u = g[2 * hidden + j], o = g[3 * hidden + j];
        const T tc = k_tanh(c[row * hidden + j]);
        const T dhv = dy[row * hidden + j] + dh[k];
        const T dct = dhv * o * (T(1) - tc * tc) + dc[k];
        const T prev = t > 0 ? c[(row - 1) * hidden + j] : c0[k];
        dg[j] = dct * u * i * (T(1) - i);
        dg[hidden + j] = dct * prev * f * (T(1) - f);
        dg[2 * hidden + j] = dct * i * (T(1) - u * u);
        dg[3 * hidden + j] = dhv * tc * o * (T(1) - o);
        dc[k] = dct * f;
    }
}

#define KILN_LSTM(S, T)                                                                            \
    extern "C" __global__ void lstm_cell_fwd_##S(const T* c0, T* gates, T* c, T* h, u64 batch,    \
                                                 u64 steps, u64 hidden, u64 t) {                   \
        lstm_cell_fwd<T>(c0, gates, c, h, batch, steps, hidden, t);                                \
    }                                                                                              \
    extern "C" __global__ void lstm_cell_bwd_##S(const T* c0, const T* gates, const T* c,         \
                                                 const T* dy, const T* dh, T* dc, T* dgates,       \
                                                 u64 batch, u64 steps, u64 hidden, u64 t) {        \
        lstm_cell_bwd<T>(c0, gates, c, dy, dh, dc, dgates, batch, steps, hidden, t);               \
    }

KILN_LSTM(f32, float)
KILN_LSTM(f64, double)

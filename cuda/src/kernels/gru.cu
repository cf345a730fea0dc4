// One step t of a GRU over every sequence of the batch (kiln-core's
// GruKernels, layers/gru.rs), one thread per (sample b, unit j); gates (the
// input parts a) and hg (the recurrent parts ĥ) are [batch, steps, 3H] in
// PyTorch's order r, z, n, h [batch, steps, H], the carry dh and the initial
// state h0 [batch, H] (h_{−1}, read at t = 0).
//   fwd  r = σ(a_r + ĥ_r), z = σ(a_z + ĥ_z), n = tanh(a_n + r·ĥ_n);
//        gates ← (r, z, n); h_t = (1 − z)·n + z·h_{t−1}
//   bwd  δh = dy_t + dh; g_n = δh·(1 − z)·(1 − n²); g_z = δh·(h_{t−1} − n)·z(1−z);
//        g_r = g_n·ĥ_n·r(1−r); dgates_t = (g_r, g_z, g_n); dhg_t = (g_r, g_z, g_n·r);
//        dh ← δh·z

template <typename T>
__device__ void gru_cell_fwd(const T* h0, T* gates, const T* hg, T* h, u64 batch, u64 steps, u64 hidden, u64 t) {
    KILN_FOR_EACH(k, batch * hidden) {
        const u64 b = k / hidden, j = k % hidden, row = b * steps + t;
        T* g = gates + row * 3 * hidden;
        const T* rh = hg + row * 3 * hidden;
        const T r = k_sigmoid(g[j] + rh[j]);
        const T z = k_sigmoid(g[hidden + j] + rh[hidden + j]);
        const T n = k_tanh(g[2 * hidden + j] + r * rh[2 * hidden + j]);
        g[j] = r;
        g[hidden + j] = z;
        g[2 * hidden + j] = n;
        const T prev = t > 0 ? h[(row - 1) * hidden + j] : h0[k];
        h[row * hidden + j] = (T(1) - z) * n + z * prev;
    }
}

template <typename T>
__device__ void gru_cell_bwd(const T* h0, const T* gates, const T* hg, const T* h, const T* dy, T* dh, T* dgates,
                             T* dhg, u64 batch, u64 steps, u64 hidden, u64 t) {
    KILN_FOR_EACH(k, batch * hidden) {
        const u64 b = k / hidden, j = k % hidden, row = b * steps + t;
        const T* g = gates + row * 3 * hidden;
        const T* rh = hg + row * 3 * hidden;
        T* da = dgates + row * 3 * hidden;
        T* dr = dhg + row * 3 * hidden;
        const T r = g[j], z = g[hidden + j], n = g[2 * hidden + j];
        const T prev = t > 0 ? h[(row - 1) * hidden + j] : h0[k];
        const T dhv = dy[row * hidden + j] + dh[k];
        const T gn = dhv * (T(1) - z) * (T(1) - n * n);
        const T gz = dhv * (prev - n) * z * (T(1) - z);
        const T gr = gn * rh[2 * hidden + j] * r * (T(1) - r);
        da[j] = gr;
        da[hidden + j] = gz;
        da[2 * hidden + j] = gn;
        dr[j] = gr;
        dr[hidden + j] = gz;
        dr[2 * hidden + j] = gn * r;
        dh[k] = dhv * z;
    }
}

#define KILN_GRU(S, T)                                                                             \
    extern "C" __global__ void gru_cell_fwd_##S(const T* h0, T* gates, const T* hg, T* h,         \
                                                u64 batch, u64 steps, u64 hidden, u64 t) {         \
        gru_cell_fwd<T>(h0, gates, hg, h, batch, steps, hidden, t);                                \
    }                                                                                              \
    extern "C" __global__ void gru_cell_bwd_##S(const T* h0, const T* gates, const T* hg,         \
                                                const T* h, const T* dy, T* dh, T* dgates,         \
                                                T* dhg, u64 batch, u64 steps, u64 hidden, u64 t) { \
        gru_cell_bwd<T>(h0, gates, hg, h, dy, dh, dgates, dhg, batch, steps, hidden, t);           \
    }

KILN_GRU(f32, float)
KILN_GRU(f64, double)

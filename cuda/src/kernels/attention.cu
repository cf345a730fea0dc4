// Attention's masked softmax (kiln-core's AttentionKernels,
// layers/attention.rs), one warp per row of the weights [batch, heads,
// queries, keys]; row r is query i = r % queries of sample b = r / (heads·queries).
// Key j is masked for query i when causal && j > i, or when has_pad &&
// ids[b·keys + j] == pad (ids is null without padding).
//   fwd  p_j = e^{a_j − m} / Σ_k e^{a_k − m} over the allowed keys (m their
//        maximum), 0 at masked keys; a row with no allowed key is all 0
//   bwd  da_j = p_j (dp_j − Σ_k dp_k p_k), in place on dp

__device__ __forceinline__ bool attn_allowed(const u32* ids, u64 b, u64 i, u64 j, u64 keys,
                                             int causal, int has_pad, u64 pad) {
    return !(causal && j > i) && !(has_pad && (u64)ids[b * keys + j] == pad);
}

template <typename T>
__device__ void attn_softmax_fwd(T* a, const u32* ids, u64 rows, u64 heads, u64 queries, u64 keys,
                                 int causal, int has_pad, u64 pad) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;  // the whole warp leaves together
    const u64 b = row / (heads * queries), i = row % queries;
    T* r = a + row * keys;
    T m = k_neg_inf<T>();
    for (u64 j = lane; j < keys; j += 32)
        if (attn_allowed(ids, b, i, j, keys, causal, has_pad, pad)) m = k_max(m, r[j]);
    m = warp_max(m);
    T s = T(0);
    for (u64 j = lane; j < keys; j += 32) {
        const T e = attn_allowed(ids, b, i, j, keys, causal, has_pad, pad) ? k_exp(r[j] - m) : T(0);
        r[j] = e;
        s += e;
    }
    s = warp_sum(s);
    if (s > T(0) || s != s) {  // a NaN sum: the whole row NaN, as PyTorch; 0: all masked
        const T inv = T(1) / s;
        for (u64 j = lane; j < keys; j += 32) r[j] *= inv;
    }
}

template <typename T> __device__ void attn_softmax_bwd(const T* p, T* dp, u64 rows, u64 keys) {
    KILN_WARP_ROW(row, lane);
    if (row >= rows) return;
    const T* pr = p + row * keys;
    T* dr = dp + row * keys;
    T dot = T(0);
    for (u64 j = lane; j < keys; j += 32) dot += pr[j] * dr[j];
    dot = warp_sum(dot);
    for (u64 j = lane; j < keys; j += 32) dr[j] = pr[j] * (dr[j] - dot);
}

#define KILN_ATTENTION(S, T)                                                                       \
    extern "C" __global__ void attn_softmax_fwd_##S(T* a, const u32* ids, u64 rows, u64 heads,    \
                                                    u64 queries, u64 keys, int causal,             \
                                                    int has_pad, u64 pad) {                        \
        attn_softmax_fwd<T>(a, ids, rows, heads, queries, keys, causal, has_pad, pad);             \
    }                                                                                              \
    extern "C" __global__ void attn_softmax_bwd_##S(const T* p, T* dp, u64 rows, u64 keys) {      \
        attn_softmax_bwd<T>(p, dp, rows, keys);                                                    \
    }

KILN_ATTENTION(f32, float)
KILN_ATTENTION(f64, double)

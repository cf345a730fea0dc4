// Embedding: a row gather and its scatter-add (kiln-core's kernels/embedding.rs).
//   forward   y[i, d] = w[ids[i], d]                                 (i < n, d < dim)
//   backward  dw[v, d] (acc)= Σ_{i : ids[i] = v} dy[i, d]  for v ≠ pad, in increasing i;
//             the pad row gets 0 (acc = 0) or is left alone (acc = 1). `pad` ≥ vocab: none.

template <typename T>
__device__ void embedding_fwd(const T* w, const u32* ids, T* y, u64 n, u64 vocab, u64 dim) {
    KILN_FOR_EACH(j, n * dim) {
        const u64 i = j / dim, d = j % dim;
        const u64 v = ids[i];
        // ids are checked on the host when put into `Tokens`; never read outside `w`.
        y[j] = v < vocab ? w[v * dim + d] : T(0);
    }
}

// One thread per element of dW scans the ids in order, so each sum runs in
// increasing i, as on the CPU, and no float atomics make the result depend on
// scheduling. Neighbouring threads share a row v (and read the same id), and
// their dy reads are consecutive. The work is O(vocab · dim · n): right for
// character-level vocabularies; a large vocabulary wants a sort by id first.
template <typename T>
__device__ void embedding_bwd(const u32* ids, const T* dy, T* dw, u64 n, u64 vocab, u64 dim, u64 pad, int acc) {
    KILN_FOR_EACH(j, vocab * dim) {
        const u64 v = j / dim, d = j % dim;
        if (v == pad) {
            if (!acc) dw[j] = T(0);
            continue;
        }
        T s = T(0);
        for (u64 i = 0; i < n; ++i) {
            if ((u64)ids[i] == v) s += dy[i * dim + d];
        }
        k_put(&dw[j], s, acc);
    }
}

#define KILN_EMBEDDING(S, T)                                                                       \
    extern "C" __global__ void embedding_fwd_##S(const T* w, const u32* ids, T* y, u64 n, u64 vocab, \
                                                 u64 dim) {                                        \
        embedding_fwd<T>(w, ids, y, n, vocab, dim);                                                \
    }                                                                                              \
    extern "C" __global__ void embedding_bwd_##S(const u32* ids, const T* dy, T* dw, u64 n,         \
                                                 u64 vocab, u64 dim, u64 pad, int acc) {           \
        embedding_bwd<T>(ids, dy, dw, n, vocab, dim, pad, acc);                                    \
    }

KILN_EMBEDDING(f32, float)
KILN_EMBEDDING(f64, double)

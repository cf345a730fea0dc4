// Pooling on NCHW images (kiln-core's Backend::{max_pool2d_fwd, max_unpool2d,
// max_unpool2d_bwd, avg_pool2d_fwd, avg_pool2d_bwd}; geometry `Window2d`).
// `planes` = batch · channels; every output or input pixel is one thread, and
// the backward passes gather (no atomics, deterministic).

// The window (oy, ox) covers tap (i, j) at image row oy·SH − PH + i·DH, column
// ox·SW − PW + j·DW; the window containing pixel (iy, ix) through tap (i, j),
// if any, is returned in (oy, ox).
__device__ __forceinline__ bool k_window_of(u64 iy, u64 ix, u64 i, u64 j, u64 SH, u64 SW, u64 PH,
                                            u64 PW, u64 DH, u64 DW, u64 OH, u64 OW, u64* oy, u64* ox) {
    const long long ty = (long long)(iy + PH) - (long long)(i * DH);
    const long long tx = (long long)(ix + PW) - (long long)(j * DW);
    if (ty < 0 || tx < 0 || ty % (long long)SH != 0 || tx % (long long)SW != 0) return false;
    *oy = (u64)(ty / (long long)SH);
    *ox = (u64)(tx / (long long)SW);
    return *oy < OH && *ox < OW;
}

// y = the window's largest value (first maximum in row-major window order;
// a NaN wins); idx = its flat position iy·W + ix in the plane (u32 max when
// the window covers no pixel).
template <typename T>
__device__ void max_pool2d_fwd(const T* x, T* y, u32* idx, u64 planes, KILN_WINDOW_PARAMS) {
    const u64 op = OH * OW, plane = H * W;
    KILN_FOR_EACH(e, planes * op) {
        const u64 k = e / op, oy = (e % op) / OW, ox = e % OW;
        const T* src = x + k * plane;
        T best = k_neg_inf<T>();
        u32 at = 0xffffffffu;
        bool first = true;
        for (u64 i = 0; i < KH; ++i) {
            const long long iy = (long long)(oy * SH + i * DH) - (long long)PH;
            if (iy < 0 || iy >= (long long)H) continue;
            for (u64 j = 0; j < KW; ++j) {
                const long long ix = (long long)(ox * SW + j * DW) - (long long)PW;
                if (ix < 0 || ix >= (long long)W) continue;
                const u64 p = (u64)iy * W + (u64)ix;
                const T v = src[p];
                if (first || v > best || v != v) {
                    best = v;
                    at = (u32)p;
                    first = false;
                }
            }
        }
        y[e] = best;
        idx[e] = at;
    }
}

// dst[s, c, p] (acc)= Σ_{windows o of p with idx[s, c, o] = p} src[s, c, o]
template <typename T>
__device__ void max_unpool2d_fwd(const u32* idx, const T* src, T* dst, u64 planes, int acc,
                                 KILN_WINDOW_PARAMS) {
    const u64 op = OH * OW, plane = H * W;
    KILN_FOR_EACH(e, planes * plane) {
        const u64 k = e / plane, p = e % plane, iy = p / W, ix = p % W;
        T s = T(0);
        for (u64 i = KH; i-- > 0;) {      // windows in increasing (oy, ox) order
            for (u64 j = KW; j-- > 0;) {
                u64 oy, ox;
                if (!k_window_of(iy, ix, i, j, SH, SW, PH, PW, DH, DW, OH, OW, &oy, &ox)) continue;
                const u64 o = k * op + oy * OW + ox;
                if (idx[o] == (u32)p) s += src[o];
            }
        }
        k_put(&dst[e], s, acc);
    }
}

// dst[s, c, o] (acc)= src[s, c, idx[s, c, o]]   (0 for an index outside the plane)
template <typename T>
__device__ void max_unpool2d_bwd(const u32* idx, const T* src, T* dst, u64 planes, int acc,
                                 KILN_WINDOW_PARAMS) {
    const u64 op = OH * OW, plane = H * W;
    KILN_FOR_EACH(e, planes * op) {
        const u64 t = idx[e];
        k_put(&dst[e], t < plane ? src[(e / op) * plane + t] : T(0), acc);
    }
}

// y = Σ_window x · inv   (inv = 1/(KH·KW): zero padding counts in the divisor)
template <typename T>
__device__ void avg_pool2d_fwd(const T* x, T* y, u64 planes, T inv, KILN_WINDOW_PARAMS) {
    const u64 op = OH * OW, plane = H * W;
    KILN_FOR_EACH(e, planes * op) {
        const u64 k = e / op, oy = (e % op) / OW, ox = e % OW;
        T s = T(0);
        for (u64 i = 0; i < KH; ++i) {
            const long long iy = (long long)(oy * SH + i * DH) - (long long)PH;
            if (iy < 0 || iy >= (long long)H) continue;
            for (u64 j = 0; j < KW; ++j) {
                const long long ix = (long long)(ox * SW + j * DW) - (long long)PW;
                if (ix < 0 || ix >= (long long)W) continue;
                s += x[k * plane + (u64)iy * W + (u64)ix];
            }
        }
        y[e] = s * inv;
    }
}

// dx[p] (acc)= Σ_{windows ∋ p} dy · inv
template <typename T>
__device__ void avg_pool2d_bwd(const T* dy, T* dx, u64 planes, T inv, int acc, KILN_WINDOW_PARAMS) {
    const u64 op = OH * OW, plane = H * W;
    KILN_FOR_EACH(e, planes * plane) {
        const u64 k = e / plane, p = e % plane, iy = p / W, ix = p % W;
        T s = T(0);
        for (u64 i = KH; i-- > 0;) {
            for (u64 j = KW; j-- > 0;) {
                u64 oy, ox;
                if (!k_window_of(iy, ix, i, j, SH, SW, PH, PW, DH, DW, OH, OW, &oy, &ox)) continue;
                s += dy[k * op + oy * OW + ox] * inv;
            }
        }
        k_put(&dx[e], s, acc);
    }
}

#define KILN_POOL(S, T)                                                                            \
    extern "C" __global__ void max_pool2d_fwd_##S(const T* x, T* y, u32* idx, u64 planes,         \
                                                  KILN_WINDOW_PARAMS) {                            \
        max_pool2d_fwd<T>(x, y, idx, planes, KILN_WINDOW_ARGS);                                    \
    }                                                                                              \
    extern "C" __global__ void max_unpool2d_fwd_##S(const u32* idx, const T* src, T* dst,         \
                                                    u64 planes, int acc, KILN_WINDOW_PARAMS) {     \
        max_unpool2d_fwd<T>(idx, src, dst, planes, acc, KILN_WINDOW_ARGS);                         \
    }                                                                                              \
    extern "C" __global__ void max_unpool2d_bwd_##S(const u32* idx, const T* src, T* dst,         \
                                                    u64 planes, int acc, KILN_WINDOW_PARAMS) {     \
        max_unpool2d_bwd<T>(idx, src, dst, planes, acc, KILN_WINDOW_ARGS);                         \
    }                                                                                              \
    extern "C" __global__ void avg_pool2d_fwd_##S(const T* x, T* y, u64 planes, T inv,            \
                                                  KILN_WINDOW_PARAMS) {                            \
        avg_pool2d_fwd<T>(x, y, planes, inv, KILN_WINDOW_ARGS);                                    \
    }                                                                                              \
    extern "C" __global__ void avg_pool2d_bwd_##S(const T* dy, T* dx, u64 planes, T inv, int acc, \
                                                  KILN_WINDOW_PARAMS) {                            \
        avg_pool2d_bwd<T>(dy, dx, planes, inv, acc, KILN_WINDOW_ARGS);                             \
    }

KILN_POOL(f32, float)
KILN_POOL(f64, double)

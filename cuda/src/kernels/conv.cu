// Convolution helpers on NCHW images (kiln-core's Backend::{im2col, col2im,
// transpose01, add_channel_bias, channel_bias_grad}; geometry `Window2d`).
//   im2col_fwd   cols[(c·KH + i)·KW + j, b·OH·OW + oy·OW + ox] =
//                x[first + b, c, oy·SH − PH + i·DH, ox·SW − PW + j·DW]   (0 outside)
//   im2col_bwd   col2im, its adjoint: every image pixel (acc)= the sum of the
//                cols entries read from it, gathered per pixel (no atomics).

template <typename T>
__device__ void im2col_fwd(const T* x, T* cols, u64 first, u64 count, KILN_WINDOW_PARAMS) {
    const u64 op = OH * OW, n = count * op, rows = C * KH * KW;
    KILN_FOR_EACH(e, rows * n) {
        const u64 r = e / n, q = e % n, b = q / op, o = q % op;
        const u64 oy = o / OW, ox = o % OW;
        const u64 c = r / (KH * KW), i = (r / KW) % KH, j = r % KW;
        const long long iy = (long long)(oy * SH + i * DH) - (long long)PH;
        const long long ix = (long long)(ox * SW + j * DW) - (long long)PW;
        T v = T(0);
        if (iy >= 0 && iy < (long long)H && ix >= 0 && ix < (long long)W) {
            v = x[((first + b) * C + c) * H * W + (u64)iy * W + (u64)ix];
        }
        cols[e] = v;
    }
}

template <typename T>
__device__ void im2col_bwd(const T* cols, T* x, u64 first, u64 count, int acc, KILN_WINDOW_PARAMS) {
    const u64 op = OH * OW, n = count * op, plane = H * W;
    KILN_FOR_EACH(e, count * C * plane) {
        const u64 b = e / (C * plane), c = (e / plane) % C, p = e % plane;
        const long long iy = (long long)(p / W), ix = (long long)(p % W);
        T s = T(0);
        for (u64 i = 0; i < KH; ++i) {
            const long long ty = iy + (long long)PH - (long long)(i * DH);
            if (ty < 0 || ty % (long long)SH != 0 || ty / (long long)SH >= (long long)OH) continue;
            const u64 oy = (u64)(ty / (long long)SH);
            for (u64 j = 0; j < KW; ++j) {
                const long long tx = ix + (long long)PW - (long long)(j * DW);
                if (tx < 0 || tx % (long long)SW != 0 || tx / (long long)SW >= (long long)OW) continue;
                const u64 ox = (u64)(tx / (long long)SW);
                s += cols[((c * KH + i) * KW + j) * n + b * op + oy * OW + ox];
            }
        }
        k_put(&x[first * C * plane + e], s, acc);
    }
}

// dst[(j·a + i)·n + k] (acc)= src[(i·b + j)·n + k]   (pointers include the offsets)
template <typename T> __device__ void transpose01_fwd(const T* src, T* dst, u64 a, u64 b, u64 n, int acc) {
    KILN_FOR_EACH(d, a * b * n) {
        const u64 k = d % n, q = d / n, j = q / a, i = q % a;
        k_put(&dst[d], src[(i * b + j) * n + k], acc);
    }
}

// y[s, c, p] += bias[c]
template <typename T>
__device__ void channel_bias_fwd(T* y, const T* bias, u64 batch, u64 channels, u64 spatial) {
    KILN_FOR_EACH(e, batch * channels * spatial) y[e] += bias[(e / spatial) % channels];
}

// db[c] (acc)= Σ_{s,p} dy[s, c, p]: one block per channel, a fixed-order block sum.
template <typename T>
__device__ void channel_bias_bwd(const T* dy, T* db, u64 batch, u64 channels, u64 spatial, int acc) {
    const u64 c = blockIdx.x;
    T s = T(0);
    for (u64 t = threadIdx.x; t < batch * spatial; t += blockDim.x) {
        s += dy[((t / spatial) * channels + c) * spatial + t % spatial];
    }
    s = block_sum(s);
    if (threadIdx.x == 0 && c < channels) k_put(&db[c], s, acc);
}

#define KILN_CONV(S, T)                                                                            \
    extern "C" __global__ void im2col_fwd_##S(const T* x, T* cols, u64 first, u64 count,          \
                                              KILN_WINDOW_PARAMS) {                                \
        im2col_fwd<T>(x, cols, first, count, KILN_WINDOW_ARGS);                                    \
    }                                                                                              \
    extern "C" __global__ void im2col_bwd_##S(const T* cols, T* x, u64 first, u64 count, int acc, \
                                              KILN_WINDOW_PARAMS) {                                \
        im2col_bwd<T>(cols, x, first, count, acc, KILN_WINDOW_ARGS);                               \
    }                                                                                              \
    extern "C" __global__ void transpose01_fwd_##S(const T* src, T* dst, u64 a, u64 b, u64 n,     \
                                                   int acc) {                                      \
        transpose01_fwd<T>(src, dst, a, b, n, acc);                                                \
    }                                                                                              \
    extern "C" __global__ void channel_bias_fwd_##S(T* y, const T* bias, u64 batch, u64 channels, \
                                                    u64 spatial) {                                 \
        channel_bias_fwd<T>(y, bias, batch, channels, spatial);                                    \
    }                                                                                              \
    extern "C" __global__ void channel_bias_bwd_##S(const T* dy, T* db, u64 batch, u64 channels,  \
                                                    u64 spatial, int acc) {                        \
        channel_bias_bwd<T>(dy, db, batch, channels, spatial, acc);                                \
    }

KILN_CONV(f32, float)
KILN_CONV(f64, double)

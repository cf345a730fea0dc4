// Upsampling of `planes` images from h × w to oh × ow (kiln-core's
// Backend::upsample2d_{fwd,bwd}; PyTorch's `nearest` and `bilinear` with
// align_corners=False). The backward gathers per input pixel, in the CPU's
// order of contributions (no atomics).

// PyTorch's bilinear source of output index o: neighbours i0, i1 and weights.
__device__ __forceinline__ void k_bilinear_src(u64 o, u64 n, u64 on, u64* i0, u64* i1, double* w0, double* w1) {
    double src = ((double)o + 0.5) * ((double)n / (double)on) - 0.5;
    if (src < 0.0) src = 0.0;
    u64 a = (u64)src;
    if (a > n - 1) a = n - 1;
    *i0 = a;
    *i1 = a + 1 < n ? a + 1 : a;
    *w1 = src - (double)a;
    *w0 = 1.0 - *w1;
}

template <typename T>
__device__ void upsample2d_fwd(const T* x, T* y, u64 planes, u64 h, u64 w, u64 oh, u64 ow, int bilinear) {
    KILN_FOR_EACH(e, planes * oh * ow) {
        const u64 k = e / (oh * ow), oy = (e / ow) % oh, ox = e % ow;
        const T* src = x + k * h * w;
        if (!bilinear) {
            y[e] = src[(oy * h / oh) * w + ox * w / ow];
            continue;
        }
        u64 y0, y1, x0, x1;
        double a0, a1, b0, b1;
        k_bilinear_src(oy, h, oh, &y0, &y1, &a0, &a1);
        k_bilinear_src(ox, w, ow, &x0, &x1, &b0, &b1);
        const T A0 = (T)a0, A1 = (T)a1, B0 = (T)b0, B1 = (T)b1;
        const T* r0 = src + y0 * w;
        const T* r1 = src + y1 * w;
        y[e] = A0 * (B0 * r0[x0] + B1 * r0[x1]) + A1 * (B0 * r1[x0] + B1 * r1[x1]);
    }
}

template <typename T>
__device__ void upsample2d_bwd(const T* dy, T* dx, u64 planes, u64 h, u64 w, u64 oh, u64 ow, int bilinear, int acc) {
    KILN_FOR_EACH(e, planes * h * w) {
        const u64 k = e / (h * w), iy = (e / w) % h, ix = e % w;
        const T* g = dy + k * oh * ow;
        // Outputs that read pixel (iy, ix) lie within these ranges.
        const u64 ylo = iy == 0 ? 0 : ((iy - 1) * oh) / h, yhi = ((iy + 2) * oh) / h + 2;
        const u64 xlo = ix == 0 ? 0 : ((ix - 1) * ow) / w, xhi = ((ix + 2) * ow) / w + 2;
        T s = T(0);
        for (u64 oy = ylo; oy < yhi && oy < oh; ++oy) {
            for (u64 ox = xlo; ox < xhi && ox < ow; ++ox) {
                const T v = g[oy * ow + ox];
                if (!bilinear) {
                    if (oy * h / oh == iy && ox * w / ow == ix) s += v;
                    continue;
                }
                u64 y0, y1, x0, x1;
                double a0, a1, b0, b1;
                k_bilinear_src(oy, h, oh, &y0, &y1, &a0, &a1);
                k_bilinear_src(ox, w, ow, &x0, &x1, &b0, &b1);
                const T A0 = (T)a0, A1 = (T)a1, B0 = (T)b0, B1 = (T)b1;
                if (y0 == iy) {
                    if (x0 == ix) s += v * A0 * B0;
                    if (x1 == ix) s += v * A0 * B1;
                }
                if (y1 == iy) {
                    if (x0 == ix) s += v * A1 * B0;
                    if (x1 == ix) s += v * A1 * B1;
                }
            }
        }
        k_put(&dx[e], s, acc);
    }
}

#define KILN_UPSAMPLE(S, T)                                                                        \
    extern "C" __global__ void upsample2d_fwd_##S(const T* x, T* y, u64 planes, u64 h, u64 w,     \
                                                  u64 oh, u64 ow, int bilinear) {                  \
        upsample2d_fwd<T>(x, y, planes, h, w, oh, ow, bilinear);                                   \
    }                                                                                              \
    extern "C" __global__ void upsample2d_bwd_##S(const T* dy, T* dx, u64 planes, u64 h, u64 w,   \
                                                  u64 oh, u64 ow, int bilinear, int acc) {         \
        upsample2d_bwd<T>(dy, dx, planes, h, w, oh, ow, bilinear, acc);                            \
    }

KILN_UPSAMPLE(f32, float)
KILN_UPSAMPLE(f64, double)

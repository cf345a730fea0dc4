// Optimizer updates, one thread per parameter (torch.optim semantics, exactly
// as kiln-core's cpu.rs). An update has no backward; it is named `_fwd` to
// keep every symbol in the `<op>_fwd|bwd_<dtype>` scheme. The elastic-net
// penalty's gradient (OptimKernels::penalty_grad) is here too.

// torch.optim.SGD:  d = g + wd·p;  b = first ? d : μ b + (1 − dampening) d;
//                   p −= lr · (nesterov ? d + μ b : b)      (b unused when μ = 0)
template <typename T>
__device__ void sgd_fwd(T* p, const T* g, T* buf, u64 n, T lr, T momentum, T dampening, T wd,
                        int use_momentum, int nesterov, int first) {
    KILN_FOR_EACH(i, n) {
        const T d = g[i] + wd * p[i];
        if (!use_momentum) {
            p[i] = p[i] - lr * d;
            continue;
        }
        const T b = first ? d : momentum * buf[i] + (T(1) - dampening) * d;
        buf[i] = b;
        const T step = nesterov ? d + momentum * b : b;
        p[i] = p[i] - lr * step;
    }
}

// torch.optim.Adam / AdamW, with the bias corrections folded into
// step_size = lr / (1 − β₁ᵗ) and bc2_sqrt = √(1 − β₂ᵗ) (computed on the host
// in f64, as cpu.rs does):
//   decoupled: p ·= 1 − lr·wd   else g += wd·p
//   m += (1 − β₁)(g − m);  v = β₂ v + (1 − β₂) g²;  p −= step_size · m / (√v / bc2_sqrt + ε)
template <typename T>
__device__ void adam_fwd(T* p, const T* g, T* m, T* v, u64 n, T beta1, T beta2, T step_size,
                         T bc2_sqrt, T eps, T wd, T decay, int decoupled) {
    KILN_FOR_EACH(i, n) {
        T gi = g[i];
        if (decoupled) {
            p[i] = p[i] * decay;
        } else {
            gi = gi + wd * p[i];
        }
        m[i] = m[i] + (T(1) - beta1) * (gi - m[i]);
        v[i] = beta2 * v[i] + (T(1) - beta2) * gi * gi;
        const T denom = k_sqrt(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] - step_size * m[i] / denom;
    }
}

// torch.optim.Adagrad (clr = lr / (1 + (t − 1)·lr_decay), computed on the host):
//   g += wd·p;  sum += g²;  p −= clr · g / (√sum + ε)
template <typename T> __device__ void adagrad_fwd(T* p, const T* g, T* sum, u64 n, T clr, T wd, T eps) {
    KILN_FOR_EACH(i, n) {
        const T gi = g[i] + wd * p[i];
        sum[i] = sum[i] + gi * gi;
        p[i] = p[i] - clr * gi / (k_sqrt(sum[i]) + eps);
    }
}

// torch.optim.RMSprop (as kiln-core's optim/rmsprop.rs):
//   g += wd·p;  v = α v + (1 − α) g²;  centred: ḡ = lerp(ḡ, g, 1 − α), d = √(v − ḡ²) + ε,
//   else d = √v + ε;  momentum: b = μ b + g/d, p −= lr·b;  else p −= lr·g/d
template <typename T>
__device__ void rmsprop_fwd(T* p, const T* g, T* sq, T* grad_avg, T* buf, u64 n, T alpha, T eps, T wd,
                            T lr, T mu, int centered, int use_momentum) {
    const T one_m = T(1) - alpha;
    KILN_FOR_EACH(i, n) {
        const T gi = g[i] + wd * p[i];
        sq[i] = sq[i] * alpha + one_m * gi * gi;
        T d;
        if (centered) {
            // torch's lerp switches form at weight 0.5
            grad_avg[i] = one_m < T(0.5) ? grad_avg[i] + one_m * (gi - grad_avg[i])
                                         : gi - (gi - grad_avg[i]) * alpha;
            d = k_sqrt(sq[i] - grad_avg[i] * grad_avg[i]) + eps;
        } else {
            d = k_sqrt(sq[i]) + eps;
        }
        if (use_momentum) {
            buf[i] = buf[i] * mu + gi / d;
            p[i] = p[i] - lr * buf[i];
        } else {
            p[i] = p[i] - lr * gi / d;
        }
    }
}

// Gradient of the elastic-net penalty l1·Σ|θ| + l2·Σθ²: dst (acc)= l1·sign(θ) + 2·l2·θ
template <typename T> __device__ void penalty_bwd(const T* theta, T* dst, u64 n, T l1, T two_l2, int acc) {
    KILN_FOR_EACH(i, n) {
        const T t = theta[i];
        const T s = t > T(0) ? T(1) : t < T(0) ? T(-1) : T(0);
        k_put(&dst[i], l1 * s + two_l2 * t, acc);
    }
}

#define KILN_OPTIM(S, T)                                                                           \
    extern "C" __global__ void sgd_fwd_##S(T* p, const T* g, T* buf, u64 n, T lr, T momentum,     \
                                           T dampening, T wd, int use_momentum, int nesterov,      \
                                           int first) {                                            \
        sgd_fwd<T>(p, g, buf, n, lr, momentum, dampening, wd, use_momentum, nesterov, first);      \
    }                                                                                              \
    extern "C" __global__ void adam_fwd_##S(T* p, const T* g, T* m, T* v, u64 n, T beta1,         \
                                            T beta2, T step_size, T bc2_sqrt, T eps, T wd,         \
                                            T decay, int decoupled) {                              \
        adam_fwd<T>(p, g, m, v, n, beta1, beta2, step_size, bc2_sqrt, eps, wd, decay, decoupled);  \
    }                                                                                              \
    extern "C" __global__ void adagrad_fwd_##S(T* p, const T* g, T* sum, u64 n, T clr, T wd,      \
                                               T eps) {                                            \
        adagrad_fwd<T>(p, g, sum, n, clr, wd, eps);                                                \
    }                                                                                              \
    extern "C" __global__ void rmsprop_fwd_##S(T* p, const T* g, T* sq, T* grad_avg, T* buf,      \
                                               u64 n, T alpha, T eps, T wd, T lr, T mu,            \
                                               int centered, int use_momentum) {                   \
        rmsprop_fwd<T>(p, g, sq, grad_avg, buf, n, alpha, eps, wd, lr, mu, centered, use_momentum);\
    }                                                                                              \
    extern "C" __global__ void penalty_bwd_##S(const T* theta, T* dst, u64 n, T l1, T two_l2,     \
                                               int acc) {                                          \
        penalty_bwd<T>(theta, dst, n, l1, two_l2, acc);                                            \
    }

KILN_OPTIM(f32, float)
KILN_OPTIM(f64, double)

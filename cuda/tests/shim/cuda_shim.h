// cuda_shim.h — run kiln's CUDA C kernels on the host, for tests without a GPU.
//
// A launch runs the grid's blocks one after another; each block runs with one
// host thread per CUDA thread (std::thread), so the kernel code executes as
// written, barriers included:
//   __syncthreads()        a std::barrier over the block's threads
//   __shfl_xor_sync,       each lane publishes its value in its warp's exchange
//   __shfl_down_sync,      slots, the warp meets at a barrier, each lane reads
//   __shfl_sync            its source lane's slot, and the warp meets again
//   __shared__             `static` storage: one instance per kernel, shared by
//                          the block's threads (blocks run one at a time, and
//                          the library runs one launch at a time)
//   threadIdx, blockIdx,   thread-local variables set before the kernel runs
//   blockDim, gridDim
// plus the math functions of <cmath>. Warps are 32 consecutive threads; a
// partial last warp (block size not a multiple of 32) has fewer members.
// C++20 (std::barrier), compile with -pthread.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__ inline
#define __host__
#define __forceinline__
#define __shared__ static
#define __restrict__

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace kiln_shim {

struct Warp {
    std::unique_ptr<std::barrier<>> bar;
    uint64_t slot[32];
};

// A block's barriers. A thread whose kernel returns drops out of them (as on
// Volta and later GPUs, exited threads no longer hold up barriers); when the
// whole block has finished, the completion step of `end` rebuilds them for
// the next block, so a block costs one barrier phase besides its own.
struct Block {
    explicit Block(unsigned threads) : threads(threads), end(threads, Reset{this}) {
        for (unsigned w = 0; w * 32 < threads; ++w) warps.push_back(std::make_unique<Warp>());
        reset();
    }
    void reset() {
        sync = std::make_unique<std::barrier<>>(threads);
        for (unsigned w = 0; w < warps.size(); ++w) {
            unsigned n = threads - w * 32 < 32 ? threads - w * 32 : 32;
            warps[w]->bar = std::make_unique<std::barrier<>>(n);
        }
    }
    struct Reset {
        Block* b;
        void operator()() noexcept { b->reset(); }
    };
    unsigned threads;
    std::unique_ptr<std::barrier<>> sync;
    std::vector<std::unique_ptr<Warp>> warps;
    std::barrier<Reset> end;
};

inline thread_local Block* tl_block = nullptr;
inline thread_local Warp* tl_warp = nullptr;
inline thread_local unsigned tl_lane = 0, tl_warp_size = 32;

// Runs `kernel()` for every thread of a `grid × block` launch (1-D): the
// blocks one after another, each with `block` host threads.
template <class F> void launch(unsigned grid, unsigned block, F kernel) {
    Block b(block);
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; ++t) {
        threads.emplace_back([&, t] {
            tl_block = &b;
            tl_warp = b.warps[t / 32].get();
            tl_lane = t % 32;
            tl_warp_size = block - (t / 32) * 32 < 32 ? block - (t / 32) * 32 : 32;
            threadIdx = dim3{t, 0, 0};
            blockDim = dim3{block, 1, 1};
            gridDim = dim3{grid, 1, 1};
            for (unsigned g = 0; g < grid; ++g) {
                blockIdx = dim3{g, 0, 0};
                kernel();  // may return early
                b.sync->arrive_and_drop();
                tl_warp->bar->arrive_and_drop();
                b.end.arrive_and_wait();  // then Reset rebuilds sync and the warps' barriers
            }
        });
    }
    for (auto& th : threads) th.join();
}

// The value of lane `src` (or the caller's own value when `src` is outside the warp).
template <class T> T exchange(T v, int src) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a type wider than 64 bits");
    Warp& w = *tl_warp;
    std::memcpy(&w.slot[tl_lane], &v, sizeof(T));
    w.bar->arrive_and_wait();
    T r = v;
    if (src >= 0 && (unsigned)src < tl_warp_size) std::memcpy(&r, &w.slot[src], sizeof(T));
    w.bar->arrive_and_wait();  // nobody overwrites a slot before every lane has read
    return r;
}

}  // namespace kiln_shim

inline void __syncthreads() { kiln_shim::tl_block->sync->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { kiln_shim::tl_warp->bar->arrive_and_wait(); }

template <class T> T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
    (void)width;
    return kiln_shim::exchange(v, (int)kiln_shim::tl_lane ^ lane_mask);
}
template <class T> T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    (void)width;
    return kiln_shim::exchange(v, (int)(kiln_shim::tl_lane + delta));
}
template <class T> T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    (void)width;
    return kiln_shim::exchange(v, (int)kiln_shim::tl_lane - (int)delta);
}
template <class T> T __shfl_sync(unsigned, T v, int src, int width = 32) {
    (void)width;
    return kiln_shim::exchange(v, src);
}

// CUDA's float overloads of the C math functions live in the global namespace.
using std::exp;
using std::fabs;
using std::log;
using std::log1p;
using std::sqrt;
using std::tanh;

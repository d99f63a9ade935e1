// server/detail/block_pool.hpp: fixed-size blocks recycled on one thread.
#include "doctest.hpp"

#include <swirl/server/detail/block_pool.hpp>

#include <cstdint>
#include <vector>

using swirl::detail::BlockPool;

TEST_CASE("a block pool hands back the block last given back, and keeps at most max_free") {
    BlockPool pool;
    void* a = pool.allocate(40);
    void* b = pool.allocate(BlockPool::block_size);
    CHECK(a != b);
    CHECK(reinterpret_cast<std::uintptr_t>(a) % alignof(std::max_align_t) == 0);
    pool.deallocate(a, 40);
    CHECK(pool.free_blocks() == 1);
    CHECK(pool.allocate(100) == a);  // any size up to a block takes a pooled block
    CHECK(pool.free_blocks() == 0);
    pool.deallocate(a, 100);
    pool.deallocate(b, BlockPool::block_size);

    std::vector<void*> many;
    for (std::size_t i = 0; i < BlockPool::max_free + 10; ++i) many.push_back(pool.allocate(8));
    for (void* p : many) pool.deallocate(p, 8);
    CHECK(pool.free_blocks() == BlockPool::max_free);  // the rest went back to the heap
}

TEST_CASE("a block pool leaves sizes above a block to the heap") {
    BlockPool pool;
    void* big = pool.allocate(BlockPool::block_size + 1);
    pool.deallocate(big, BlockPool::block_size + 1);
    CHECK(pool.free_blocks() == 0);
}

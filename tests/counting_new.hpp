#pragma once
// Replaces the global operator new and delete with ones that call `test::counted_allocate(size, alignment)`, which
// the including test defines (counting what it wants, then allocating with `test::plain_allocate`). Include it in
// exactly one translation unit of an executable: the replacement applies to the whole program.

#include <cstddef>
#include <cstdlib>
#include <new>

namespace test {

void* counted_allocate(std::size_t size, std::size_t alignment);

/// malloc, or aligned_alloc for over-aligned requests; throws std::bad_alloc when out of memory.
inline void* plain_allocate(std::size_t size, std::size_t alignment) {
    if (size == 0) size = 1;
    void* p = alignment > alignof(std::max_align_t) ? std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment)
                                                    : std::malloc(size);
    if (!p) throw std::bad_alloc();
    return p;
}

} // namespace test

void* operator new(std::size_t size) { return test::counted_allocate(size, 0); }
void* operator new[](std::size_t size) { return test::counted_allocate(size, 0); }
void* operator new(std::size_t size, std::align_val_t a) { return test::counted_allocate(size, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t size, std::align_val_t a) { return test::counted_allocate(size, static_cast<std::size_t>(a)); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    try {
        return test::counted_allocate(size, 0);
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

#pragma once
/// Raw bytes with a capacity and nothing else: an output queue's flat buffer, which an event loop's connections lend
/// each other (`BasicBufferPool`). Moving one is two words, inlined; `std::string`'s move and swap are calls into
/// the library (its members are an extern template) that mind the short-string buffer, ~25 instructions each, and a
/// buffer passed through a pool is moved four times per message.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <utility>

namespace swirl::detail {

class ByteBuffer {
public:
    ByteBuffer() noexcept = default;
    /// `capacity` bytes, not initialised.
    explicit ByteBuffer(std::size_t capacity)
        : data_(capacity ? std::make_unique_for_overwrite<char[]>(capacity) : nullptr), capacity_(capacity) {}

    ByteBuffer(ByteBuffer&& other) noexcept
        : data_(std::move(other.data_)), capacity_(std::exchange(other.capacity_, 0)) {}
    ByteBuffer& operator=(ByteBuffer&& other) noexcept {
        data_ = std::move(other.data_);
        capacity_ = std::exchange(other.capacity_, 0);
        return *this;
    }

    char* data() noexcept { return data_.get(); }
    const char* data() const noexcept { return data_.get(); }
    std::size_t capacity() const noexcept { return capacity_; }

    /// Makes room for at least `n` bytes, keeping the first `keep` (≤ `capacity()`): at least doubles, so that
    /// appending is amortised O(1).
    void grow(std::size_t n, std::size_t keep) {
        if (n <= capacity_) return;
        ByteBuffer bigger(std::max({n, 2 * capacity_, min_growth}));
        if (keep != 0) std::memcpy(bigger.data(), data(), keep);
        *this = std::move(bigger);
    }

    void swap(ByteBuffer& other) noexcept {
        data_.swap(other.data_);
        std::swap(capacity_, other.capacity_);
    }

    /// The least a buffer grows to: one cache line.
    static constexpr std::size_t min_growth = 64;

private:
    std::unique_ptr<char[]> data_;
    std::size_t capacity_ = 0;
};

} // namespace swirl::detail

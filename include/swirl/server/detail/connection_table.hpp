#pragma once
/// An event loop's shard of the connection registry: the `shared_ptr` of each of its connections, found by id. One
/// flat array of `shared_ptr`s (16 bytes a slot), open addressing with linear probing, at most 3/4 full: 21 to 43
/// bytes per connection (26 at 10,000), where an `std::unordered_map` node was a 48-byte malloc chunk plus its
/// bucket. The id is not stored: a probe compares `slot->id()`, which the connection keeps anyway, so a lookup
/// reads the connection it is about to use. Ids are hashed multiplicatively (Fibonacci hashing), so runs of
/// consecutive ids do not pile up into runs of slots. An erase shifts the probe run back (no tombstones), so
/// lookups never slow down with churn. Not thread-safe: the event loop guards it with its registry mutex.
///
/// `C` needs `id()` returning a `std::uint64_t`.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <utility>

namespace swirl::detail {

template <class C>
class ConnectionTable {
public:
    using Id = std::uint64_t;

    /// Slots of the first array, allocated at the first insert (an unused loop holds none).
    static constexpr std::size_t min_capacity = 16;

    ConnectionTable() = default;
    ConnectionTable(const ConnectionTable&) = delete;
    ConnectionTable& operator=(const ConnectionTable&) = delete;
    ~ConnectionTable() = default;

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    /// Slots allocated (a power of two, or 0).
    std::size_t capacity() const noexcept { return mask_ ? mask_ + 1 : 0; }

    /// Adds `c`, whose id must not be in the table yet. May allocate (std::bad_alloc leaves the table as it was).
    void insert(std::shared_ptr<C> c) {
        if ((size_ + 1) * 4 > capacity() * 3) rehash(capacity() ? capacity() * 2 : min_capacity);
        place(std::move(c));
        ++size_;
    }

    /// The connection with `id`, or null.
    const std::shared_ptr<C>* find(Id id) const noexcept {
        const std::size_t i = slot_of(id);
        return i == npos ? nullptr : &slots_[i];
    }

    bool contains(Id id) const noexcept { return find(id) != nullptr; }

    /// Removes the connection with `id`; false when there was none. Gives memory back once the table is at most
    /// 1/16 full (a burst of connections that has ended), which may allocate; if that fails the table stays large.
    bool erase(Id id) noexcept {
        std::size_t hole = slot_of(id);
        if (hole == npos) return false;
        slots_[hole].reset();
        --size_;
        // Backward shift: each later entry of the run that may live at the hole (its home is not within
        // (hole, j]) moves there, so every entry stays reachable from its home without passing an empty slot.
        for (std::size_t j = (hole + 1) & mask_; slots_[j]; j = (j + 1) & mask_) {
            const std::size_t h = home(slots_[j]->id());
            if (((j - h) & mask_) >= ((j - hole) & mask_)) {
                slots_[hole] = std::move(slots_[j]);
                hole = j;
            }
        }
        if (capacity() > min_capacity && size_ * 16 <= capacity()) {
            try {
                rehash(std::max(min_capacity, std::bit_ceil(size_ * 4)));
            } catch (...) {  // keeping the larger array is fine
            }
        }
        return true;
    }

    /// Visits the `shared_ptr` of each connection, in no particular order: `for (const auto& c : table)`.
    class const_iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = std::shared_ptr<C>;
        using difference_type = std::ptrdiff_t;
        using pointer = const std::shared_ptr<C>*;
        using reference = const std::shared_ptr<C>&;

        const_iterator() = default;
        reference operator*() const noexcept { return *at_; }
        pointer operator->() const noexcept { return at_; }
        const_iterator& operator++() noexcept {
            ++at_;
            skip();
            return *this;
        }
        const_iterator operator++(int) noexcept {
            const_iterator old = *this;
            ++*this;
            return old;
        }
        bool operator==(const const_iterator&) const noexcept = default;

    private:
        friend class ConnectionTable;
        const_iterator(pointer at, pointer end) noexcept : at_(at), end_(end) { skip(); }
        void skip() noexcept {
            while (at_ != end_ && !*at_) ++at_;
        }
        pointer at_ = nullptr;
        pointer end_ = nullptr;
    };

    const_iterator begin() const noexcept { return {slots_.get(), slots_.get() + capacity()}; }
    const_iterator end() const noexcept { return {slots_.get() + capacity(), slots_.get() + capacity()}; }

private:
    /// The slot where a probe for `id` starts: the top bits of `id` times 2^64 / φ.
    std::size_t home(Id id) const noexcept {
        return static_cast<std::size_t>((id * 0x9E3779B97F4A7C15ull) >> shift_) & mask_;
    }

    /// Moves every entry into a new array of `n` slots (a power of two, more than `size_`).
    void rehash(std::size_t n) {
        auto slots = std::make_unique<std::shared_ptr<C>[]>(n);  // may throw: then nothing has changed
        const std::size_t old_capacity = capacity();
        std::swap(slots_, slots);
        mask_ = n - 1;
        shift_ = 64 - std::countr_zero(n);
        for (std::size_t k = 0; k < old_capacity; ++k)
            if (slots[k]) place(std::move(slots[k]));
    }

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    /// The slot holding the connection with `id`, or `npos`.
    std::size_t slot_of(Id id) const noexcept {
        if (size_ == 0) return npos;
        for (std::size_t i = home(id);; i = (i + 1) & mask_) {
            if (!slots_[i]) return npos;
            if (slots_[i]->id() == id) return i;
        }
    }

    /// Puts `c` into the first free slot of its probe run (the array has one).
    void place(std::shared_ptr<C> c) noexcept {
        std::size_t i = home(c->id());
        while (slots_[i]) i = (i + 1) & mask_;
        slots_[i] = std::move(c);
    }

    std::unique_ptr<std::shared_ptr<C>[]> slots_;
    std::size_t mask_ = 0;  // capacity - 1, or 0 with no array
    int shift_ = 64;
    std::size_t size_ = 0;
};

} // namespace swirl::detail

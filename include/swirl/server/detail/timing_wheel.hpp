#pragma once
/// A hashed timing wheel: the deadlines of one event loop's connections (handshake, heartbeat, idle and close
/// timeouts) in one structure driven by one timer, instead of a timer per connection.
///
/// Time is cut into ticks; a deadline fires at the end of the tick it falls in (never early, at most one tick
/// late). Scheduling, rescheduling and cancelling are O(1): each entry is an intrusive hook in a doubly-linked list
/// per slot. Advancing visits only the slots whose ticks passed. An entry more than one revolution ahead stays in
/// its slot and is passed over until its tick comes. Not thread-safe: one event loop's thread uses it.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace swirl::detail {

template <class Owner>
class TimingWheel {
public:
    using clock = std::chrono::steady_clock;

    /// What an owner embeds to be scheduled: unlinked until `schedule`, and again once fired or cancelled.
    class Hook {
    public:
        explicit Hook(Owner* owner = nullptr) noexcept : owner_(owner) {}
        Hook(const Hook&) = delete;
        Hook& operator=(const Hook&) = delete;
        bool scheduled() const noexcept { return next_ != nullptr; }

    private:
        friend TimingWheel;
        Owner* owner_;
        Hook* prev_ = nullptr;
        Hook* next_ = nullptr;
        std::uint64_t tick_ = 0;  // the tick it fires at
    };

    /// `tick`: the resolution; `slots`: ticks per revolution (deadlines further ahead are passed over once per
    /// revolution until due).
    explicit TimingWheel(clock::duration tick, std::size_t slots = 512, clock::time_point origin = clock::now())
        : tick_(std::max(tick, clock::duration(1))), origin_(origin), heads_(std::max<std::size_t>(slots, 1)) {
        for (Hook& head : heads_) head.prev_ = head.next_ = &head;
    }
    TimingWheel(const TimingWheel&) = delete;
    TimingWheel& operator=(const TimingWheel&) = delete;

    clock::duration tick() const noexcept { return tick_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    /// Schedules `h` to fire at the end of the tick holding `due` (moving it if it was scheduled). A deadline that
    /// has passed fires at the next `advance`. Returns when `h` becomes due: the end of its tick (`time_point::max()`
    /// for `due == time_point::max()`), which an `advance` from then on fires. O(1), unlike `next_time()`.
    clock::time_point schedule(Hook& h, clock::time_point due) {
        if (h.scheduled()) {
            unlink(h);
            --size_;
        }
        h.tick_ = std::max(tick_of(due, true), processed_ + 1);
        link(h, heads_[h.tick_ % heads_.size()]);
        ++size_;
        return end_of_tick(h.tick_);
    }

    void cancel(Hook& h) noexcept {
        if (!h.scheduled()) return;
        unlink(h);
        --size_;
    }

    /// Fires, in tick order, every hook whose tick ended by `now`: each is unlinked, then `fire(owner)` is called.
    /// `fire` may schedule or cancel any hook; one scheduled now fires at a later `advance`.
    template <class Fire>
    void advance(clock::time_point now, Fire&& fire) {
        const std::uint64_t last = tick_of(now, false);
        if (last <= processed_) return;
        const std::uint64_t first = processed_ + 1;
        processed_ = last;  // from here on, whatever is scheduled lands after `last`
        const std::uint64_t visits = std::min<std::uint64_t>(last - first + 1, heads_.size());
        for (std::uint64_t i = 0; i < visits; ++i) {
            Hook& head = heads_[(first + i) % heads_.size()];
            if (head.next_ == &head) continue;
            Hook pending;  // the slot's entries, moved aside so that hooks scheduled by `fire` are not seen here
            pending.prev_ = pending.next_ = &pending;
            splice(head, pending);
            while (pending.next_ != &pending) {
                Hook& h = *pending.next_;
                unlink(h);
                if (h.tick_ > last) {  // a later revolution
                    link(h, head);
                    continue;
                }
                --size_;
                fire(*h.owner_);
            }
        }
    }

    /// When `advance` next has something to do: the end of the first tick ahead whose slot holds a hook (it may be
    /// due only in a later revolution). Empty: nothing scheduled.
    std::optional<clock::time_point> next_time() const {
        if (size_ == 0) return std::nullopt;
        for (std::uint64_t t = processed_ + 1; t <= processed_ + heads_.size(); ++t) {
            const Hook& head = heads_[t % heads_.size()];
            if (head.next_ != &head) return end_of_tick(t);
        }
        return std::nullopt;  // unreachable: size_ > 0 means some slot holds a hook
    }

private:
    /// The tick `t` falls in, counted from 1 (rounding up for a deadline, down for the time now).
    std::uint64_t tick_of(clock::time_point t, bool round_up) const noexcept {
        if (t <= origin_) return 0;
        if (t == clock::time_point::max()) return UINT64_MAX / 2;
        const auto since = (t - origin_).count();
        const auto ticks = static_cast<std::uint64_t>(since / tick_.count());
        return round_up && since % tick_.count() != 0 ? ticks + 1 : ticks;
    }

    /// When tick `t` ends; `time_point::max()` past what the clock can represent.
    clock::time_point end_of_tick(std::uint64_t t) const noexcept {
        const auto representable = static_cast<std::uint64_t>((clock::time_point::max() - origin_).count() / tick_.count());
        return t >= representable ? clock::time_point::max() : origin_ + tick_ * static_cast<clock::rep>(t);
    }

    static void link(Hook& h, Hook& head) noexcept {
        h.prev_ = head.prev_;
        h.next_ = &head;
        head.prev_->next_ = &h;
        head.prev_ = &h;
    }
    static void unlink(Hook& h) noexcept {
        h.prev_->next_ = h.next_;
        h.next_->prev_ = h.prev_;
        h.prev_ = h.next_ = nullptr;
    }
    /// Moves every hook of `from`'s list to the empty list `to`.
    static void splice(Hook& from, Hook& to) noexcept {
        to.next_ = from.next_;
        to.prev_ = from.prev_;
        to.next_->prev_ = &to;
        to.prev_->next_ = &to;
        from.prev_ = from.next_ = &from;
    }

    clock::duration tick_;
    clock::time_point origin_;
    std::vector<Hook> heads_;  // per slot, the sentinel of a circular list
    std::uint64_t processed_ = 0;  // every tick up to this one has fired
    std::size_t size_ = 0;
};

} // namespace swirl::detail

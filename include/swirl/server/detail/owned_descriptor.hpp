#pragma once
/// A file descriptor that nothing has taken over yet (one `accept` returned, on its way to the event loop that will
/// own it): closed when dropped, so that a hand-over that never runs (its loop stopped first) leaks nothing.

#include <unistd.h>

#include <utility>

namespace swirl::detail {

class OwnedDescriptor {
public:
    explicit OwnedDescriptor(int fd) noexcept : fd_(fd) {}
    OwnedDescriptor(OwnedDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    OwnedDescriptor& operator=(OwnedDescriptor&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    OwnedDescriptor(const OwnedDescriptor&) = delete;
    OwnedDescriptor& operator=(const OwnedDescriptor&) = delete;
    ~OwnedDescriptor() { reset(); }

    int get() const noexcept { return fd_; }
    /// Gives the descriptor up (to a socket that now owns it).
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    int fd_ = -1;
};

} // namespace swirl::detail

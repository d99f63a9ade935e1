#pragma once
/// The process's open-file limit (RLIMIT_NOFILE), which caps connections before `Settings::max_connections` does:
/// Debian's default soft limit is 1,024. The server raises the soft limit as far as it needs, up to the hard limit.

#include <sys/resource.h>

#include <dirent.h>

#include <cstddef>
#include <limits>

namespace swirl::detail {

struct DescriptorLimit {
    std::size_t soft = std::numeric_limits<std::size_t>::max();
    std::size_t hard = std::numeric_limits<std::size_t>::max();
};

/// Descriptors open in this process now (Linux: entries of /proc/self/fd; 0 where that cannot be read).
inline std::size_t open_descriptors() noexcept {
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir) return 0;
    std::size_t n = 0;
    while (const dirent* entry = ::readdir(dir))
        if (entry->d_name[0] != '.') ++n;
    ::closedir(dir);
    return n > 0 ? n - 1 : 0;  // less the directory's own descriptor
}

/// Raises the soft limit to `wanted` descriptors where it is lower, as far as the hard limit allows; returns the
/// limits in force afterwards.
inline DescriptorLimit raise_descriptor_limit(std::size_t wanted) noexcept {
    constexpr auto to_size = [](rlim_t v) {
        return v == RLIM_INFINITY ? std::numeric_limits<std::size_t>::max() : static_cast<std::size_t>(v);
    };
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return {};
    if (to_size(lim.rlim_cur) < wanted) {
        rlimit raised = lim;
        raised.rlim_cur = to_size(lim.rlim_max) < wanted ? lim.rlim_max : static_cast<rlim_t>(wanted);
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
    }
    return {to_size(lim.rlim_cur), to_size(lim.rlim_max)};
}

} // namespace swirl::detail

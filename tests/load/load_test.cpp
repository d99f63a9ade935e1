// Bounded load and abuse tests of the echo server (the "Hardening" issue).
//
//   load_test ECHO_SERVER [--full] [--sanitized] [--only connections|slowloris|abuse|slow-reader]
//             [--connections N] [--seconds S] [--openssl PATH]
//
// With --openssl (and a server built with TLS), slowloris also runs against the server's wss listener: stalled and
// trickled TLS handshakes instead of upgrades, a certificate made at run time with that program.
//
// Pass criteria: every echo back byte for byte and in order, no connection lost, slowloris sockets dropped by the
// server within the handshake timeout (+ 0.5 s + 10 %), well-behaved p99 < 50 ms under slowloris and the abuse mix
// (200 ms in a sanitizer build), each abuse kind gets its RFC close code or is released, a slow reader's server
// RSS growth <= 3 x (high-water mark + message) + 4 MiB, and the server exits 0 on SIGTERM (so a sanitizer report
// fails the run). LOAD_TEST_SERVER_LOG=debug shows the server's log.
//
// Each scenario starts its own echo_server on 127.0.0.1 (port 0), drives it with the epoll client engine below,
// reads the server's RSS and open descriptors from /proc, prints a figures block and PASS/FAIL, and stops the
// server with SIGTERM. Short mode (default) takes about 15 s; --full is the 10,000-connection version (~2 min).
// An alarm bounds the whole run; the server is killed on any early exit (and by PR_SET_PDEATHSIG if we die).

#include <swirl/protocol/detail/base64.hpp>
#include <swirl/protocol/handshake.hpp>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LOAD_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define LOAD_TEST_SANITIZED 1
#endif
#endif
#ifndef LOAD_TEST_SANITIZED
#define LOAD_TEST_SANITIZED 0
#endif

namespace {

using i64 = std::int64_t;
using u64 = std::uint64_t;

/// Monotonic microseconds.
i64 now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

constexpr i64 ms = 1000;
constexpr i64 sec = 1000 * ms;
constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

/// splitmix64: payload bytes and mask keys, reproducible from a seed.
u64 mix(u64& state) {
    u64 z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// ---------------------------------------------------------------------------------------------------------------
// The server process

/// The running server, for the signal handler: killed on the alarm, SIGINT or SIGTERM.
volatile sig_atomic_t g_server_pid = 0;

extern "C" void on_fatal_signal(int sig) {
    if (g_server_pid > 0) kill(static_cast<pid_t>(g_server_pid), SIGKILL);
    static const char alarm_msg[] = "\nload_test: time limit reached; server killed, FAIL\n";
    static const char signal_msg[] = "\nload_test: interrupted; server killed, FAIL\n";
    if (sig == SIGALRM) (void)!write(2, alarm_msg, sizeof alarm_msg - 1);
    else (void)!write(2, signal_msg, sizeof signal_msg - 1);
    _exit(sig == SIGALRM ? 3 : 4);
}

/// One echo_server child: spawned with a stdout pipe to learn its port, stopped with SIGTERM, never left behind.
class ServerProcess {
public:
    ServerProcess(const std::string& path, std::vector<std::string> args, bool sanitized) {
        args.insert(args.begin(), {path, "--host", "127.0.0.1", "--port", "0"});
        if (const char* level = std::getenv("LOAD_TEST_SERVER_LOG"))  // e.g. debug, to see why it closed
            for (std::size_t i = 0; i + 1 < args.size(); ++i)
                if (args[i] == "--log-level") args[i + 1] = level;
        int out[2];
        if (pipe2(out, O_CLOEXEC) != 0) {
            error_ = std::string("pipe: ") + std::strerror(errno);
            return;
        }
        const pid_t parent = getpid();
        pid_ = fork();
        if (pid_ < 0) {
            error_ = std::string("fork: ") + std::strerror(errno);
            close(out[0]);
            close(out[1]);
            return;
        }
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with us, whatever happens to us
            if (getppid() != parent) _exit(127);
            dup2(out[1], 1);
            if (sanitized) {
                // ASan keeps freed memory in a 256 MiB quarantine by default, which would read as unbounded RSS.
                const char* old = std::getenv("ASAN_OPTIONS");
                std::string opts = old ? std::string(old) + ":" : std::string();
                opts += "quarantine_size_mb=2:thread_local_quarantine_size_kb=64";
                setenv("ASAN_OPTIONS", opts.c_str(), 1);
            }
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            execv(path.c_str(), argv.data());
            _exit(127);
        }
        g_server_pid = pid_;
        close(out[1]);
        stdout_ = out[0];
        // Wait (bounded) for "listening on ws://127.0.0.1:PORT" (and "listening on wss://..." with a TLS listener).
        const bool tls = std::find(args.begin(), args.end(), "--tls-cert") != args.end();
        std::string line;
        const i64 deadline = now_us() + 20 * sec;
        while (std::count(line.begin(), line.end(), '\n') < (tls ? 2 : 1) && now_us() < deadline) {
            pollfd p{stdout_, POLLIN, 0};
            if (poll(&p, 1, 200) <= 0) continue;
            char buf[256];
            const ssize_t n = read(stdout_, buf, sizeof buf);
            if (n <= 0) break;
            line.append(buf, static_cast<std::size_t>(n));
        }
        const auto colon = line.find(':', line.find("//"));
        if (line.rfind("listening on ws://", 0) != 0 || colon == std::string::npos) {
            error_ = "server did not print its port: '" + line + "'";
            return;
        }
        port_ = std::atoi(line.c_str() + colon + 1);
        if (port_ <= 0) error_ = "bad port in '" + line + "'";
        if (const auto wss = line.find("listening on wss://"); tls) {
            const auto tls_colon = wss == std::string::npos ? wss : line.find(':', wss + 19);
            tls_port_ = tls_colon == std::string::npos ? 0 : std::atoi(line.c_str() + tls_colon + 1);
            if (tls_port_ <= 0) error_ = "server did not print its wss port: '" + line + "'";
        }
    }

    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    ~ServerProcess() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
            g_server_pid = 0;
        }
        if (stdout_ >= 0) close(stdout_);
    }

    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }
    int port() const { return port_; }
    int tls_port() const { return tls_port_; }
    pid_t pid() const { return pid_; }

    /// A "Vm...:" line of /proc/PID/status in KiB (VmRSS now, VmHWM the peak), -1 if unreadable.
    long status_kb(std::string_view field) const {
        std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
        std::string line;
        while (std::getline(f, line))
            if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + field.size());
        return -1;
    }
    long rss_kb() const { return status_kb("VmRSS:"); }
    long hwm_kb() const { return status_kb("VmHWM:"); }

    /// Sockets among the open descriptors (/proc/PID/fd): the listener plus one per connection. (Other
    /// descriptors, such as each event loop's epoll/eventfd/timerfd, appear lazily and are not counted.)
    int socket_count() const {
        const std::string dir = "/proc/" + std::to_string(pid_) + "/fd";
        DIR* d = opendir(dir.c_str());
        if (!d) return -1;
        int n = 0;
        while (const dirent* e = readdir(d)) {
            if (e->d_name[0] == '.') continue;
            char target[64] = {};
            if (readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1) > 0 &&
                std::string_view(target).starts_with("socket:"))
                ++n;
        }
        closedir(d);
        return n;
    }

    bool alive() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

    /// SIGTERM, then waits up to `limit` for a graceful exit (SIGKILL after). True when it exited with status 0.
    bool stop(std::string& how, i64 limit = 10 * sec) {
        if (pid_ <= 0) {
            how = "not running";
            return false;
        }
        kill(pid_, SIGTERM);
        const i64 start = now_us();
        int status = 0;
        pid_t r = 0;
        while ((r = waitpid(pid_, &status, WNOHANG)) == 0 && now_us() - start < limit) usleep(10000);
        if (r == 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, &status, 0);
            how = "did not exit within the limit after SIGTERM (killed)";
        } else if (WIFEXITED(status)) {
            how = fmt::format("exited {} {:.2f} s after SIGTERM", WEXITSTATUS(status),
                              static_cast<double>(now_us() - start) / sec);
        } else {
            how = fmt::format("killed by signal {}", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        }
        pid_ = 0;
        g_server_pid = 0;
        return r != 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }

private:
    pid_t pid_ = -1;
    int stdout_ = -1;
    int port_ = 0;
    int tls_port_ = 0;
    std::string error_;
};

/// Server memory over a scenario: RSS at a baseline, sampled peak, and at the end.
struct Memory {
    const ServerProcess* server = nullptr;
    long before = 0, peak = 0, after = 0;
    void start() { before = peak = server->rss_kb(); }
    void sample() { peak = std::max(peak, server->rss_kb()); }
};

// ---------------------------------------------------------------------------------------------------------------
// The client engine: one epoll loop, non-blocking sockets, level-triggered.

enum class Kind {
    echo,               ///< sends a message every period, checks each echo byte for byte and in order
    slowloris_stall,    ///< sends half an upgrade request, then nothing
    slowloris_trickle,  ///< sends an upgrade request one byte every 200 ms
    oversized_frame,    ///< one frame whose header declares more than --max-message
    oversized_message,  ///< three fragments that together exceed --max-message
    invalid_utf8,       ///< a text frame with an invalid UTF-8 sequence
    unmasked,           ///< a client frame without a mask
    byte_writes,        ///< a valid large message written one byte per write()
    vanish_fin,         ///< half a frame, then close()
    vanish_rst,         ///< half a frame, then an RST (SO_LINGER 0)
    slow_reader,        ///< floods messages and does not read the echoes
};

constexpr std::string_view to_string(Kind k) {
    switch (k) {
    case Kind::echo: return "well-behaved";
    case Kind::slowloris_stall: return "slowloris (stall)";
    case Kind::slowloris_trickle: return "slowloris (trickle)";
    case Kind::oversized_frame: return "oversized frame";
    case Kind::oversized_message: return "oversized fragmented message";
    case Kind::invalid_utf8: return "invalid UTF-8";
    case Kind::unmasked: return "unmasked frame";
    case Kind::byte_writes: return "1-byte writes of a large message";
    case Kind::vanish_fin: return "vanish mid-frame (FIN)";
    case Kind::vanish_rst: return "vanish mid-frame (RST)";
    case Kind::slow_reader: return "slow reader";
    }
    return "?";
}

enum class State { connecting, handshaking, open, closing, closed };

/// A sent message waiting for its echo.
struct Expect {
    u64 seq;
    std::uint32_t size;
    bool binary;
    i64 sent_us;
};

struct Conn {
    int fd = -1;
    std::uint32_t index = 0;
    Kind kind = Kind::echo;
    State state = State::connecting;
    std::uint32_t registered = 0;  ///< epoll events currently registered
    bool reading = true;           ///< false while a slow reader ignores its input

    std::string out;  ///< bytes not yet accepted by the kernel
    std::size_t out_off = 0;
    std::string in;  ///< bytes received, not yet parsed
    std::string key;
    std::string drip;  ///< bytes sent one per write (trickle, byte writes)
    std::size_t drip_off = 0;

    std::deque<Expect> expect;
    u64 next_seq = 0;
    u64 sent = 0, echoed = 0, gaps = 0, mismatched = 0;
    u64 last_echoed_seq = 0;
    bool any_echoed = false;

    int close_code = -1;  ///< from the server's close frame; 1005 when it had no code; -1 none
    bool we_closed = false;
    bool by_us = false;   ///< we dropped the TCP connection ourselves
    bool eof = false;
    int error = 0;        ///< errno of a failed connect/read/write
    std::size_t bytes_before_eof = 0;  ///< bytes the server sent to a connection that never upgraded
    std::string failure;  ///< the first thing that went wrong

    i64 t_connect = 0, t_open = 0, t_end = 0;
};

class Engine {
public:
    explicit Engine(int port) : port_(port) {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        rng_ = static_cast<u64>(now_us()) * 2654435761u;
    }
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    ~Engine() {
        for (auto& c : conns_)
            if (c.fd >= 0) close(c.fd);
        close(epoll_);
    }

    std::deque<Conn>& conns() { return conns_; }

    /// Slowloris connections go to this port instead (a TLS listener) and stall a TLS handshake, not an upgrade.
    int tls_attack_port = 0;
    std::vector<i64>& latencies() { return latencies_; }

    i64 echo_period = sec;        ///< between two messages of one well-behaved client
    bool echo_sending = true;     ///< the scheduler sends for well-behaved clients
    std::size_t min_size = 16, max_size = 200;  ///< well-behaved payload sizes
    std::size_t max_message = 64 * KiB;         ///< the server's --max-message (abuse clients aim over it)
    std::size_t byte_writes_size = 16 * KiB;
    std::size_t flood_size = 64 * KiB;  ///< slow reader message size
    u64 flood_count = 0;                ///< slow reader messages

    /// Starts a non-blocking connect; returns the connection's index.
    std::uint32_t connect_one(Kind kind) {
        conns_.emplace_back();
        Conn& c = conns_.back();
        c.index = static_cast<std::uint32_t>(conns_.size() - 1);
        c.kind = kind;
        c.t_connect = now_us();
        c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (c.fd < 0) {
            fail_and_drop(c, std::string("socket: ") + std::strerror(errno));
            return c.index;
        }
        const int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        const bool slow = c.kind == Kind::slowloris_stall || c.kind == Kind::slowloris_trickle;
        addr.sin_port = htons(static_cast<std::uint16_t>(slow && tls_attack_port != 0 ? tls_attack_port : port_));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
            c.error = errno;
            fail_and_drop(c, std::string("connect: ") + std::strerror(errno));
            return c.index;
        }
        epoll_event ev{};
        ev.events = EPOLLOUT;
        ev.data.u32 = c.index;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
        c.registered = EPOLLOUT;
        return c.index;
    }

    /// Connects `n` clients of `kind`, at most `window` TCP/WebSocket handshakes in flight. True when every one
    /// reached the state its kind aims for (open, or for slowloris: TCP connected) before `deadline`.
    bool connect_many(Kind kind, std::size_t n, std::size_t window, i64 deadline) {
        const std::size_t first = conns_.size();
        std::size_t started = 0;
        const bool slow = kind == Kind::slowloris_stall || kind == Kind::slowloris_trickle;
        auto settled = [&] {
            std::size_t busy = 0;
            for (std::size_t i = first; i < conns_.size(); ++i) {
                const State s = conns_[i].state;
                if (s == State::connecting || (!slow && s == State::handshaking)) ++busy;
            }
            return busy;
        };
        while (now_us() < deadline) {
            std::size_t busy = settled();
            while (started < n && busy < window) {
                connect_one(kind);
                ++started;
                ++busy;
            }
            if (started == n && busy == 0) break;
            poll(2);
        }
        for (std::size_t i = first; i < conns_.size(); ++i) {
            const Conn& c = conns_[i];
            if (slow ? c.state == State::connecting || c.state == State::closed : c.state != State::open) return false;
        }
        return started == n;
    }

    /// One round: waits up to `timeout_ms` for socket events, handles them, then runs due timers.
    void poll(int timeout_ms) {
        std::array<epoll_event, 1024> events;
        const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), timeout_ms);
        for (int i = 0; i < n; ++i) {
            Conn& c = conns_[events[static_cast<std::size_t>(i)].data.u32];
            if (c.fd < 0) continue;
            const std::uint32_t ev = events[static_cast<std::size_t>(i)].events;
            if (c.state == State::connecting) {
                on_connected(c);
                continue;
            }
            if ((ev & (EPOLLHUP | EPOLLERR)) && !c.reading) {
                c.reading = true;  // the server hung up on a connection that was not reading: read what is left
                update_events(c);
            }
            if (ev & EPOLLOUT) flush(c);
            if (c.fd >= 0 && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
        }
        run_timers();
    }

    /// Polls until `done()` or `deadline`; `periodic` runs every 50 ms. True when `done()` held.
    bool run_until(i64 deadline, const std::function<bool()>& done, const std::function<void()>& periodic = {}) {
        i64 next_periodic = 0;
        while (true) {
            if (done()) return true;
            const i64 t = now_us();
            if (t >= deadline) return false;
            if (periodic && t >= next_periodic) {
                periodic();
                next_periodic = t + 50 * ms;
            }
            poll(2);
        }
    }

    void run_for(i64 duration, const std::function<void()>& periodic = {}) {
        run_until(now_us() + duration, [] { return false; }, periodic);
    }

    /// Queues a data message: payload made from (connection, seq), masked, remembered for checking the echo.
    void send_message(Conn& c, std::size_t size, bool binary) {
        const u64 seq = c.next_seq++;
        const std::string payload = make_payload(c.index, seq, size, binary);
        append_frame(c.out, binary ? 2 : 1, payload);
        c.expect.push_back({seq, static_cast<std::uint32_t>(size), binary, now_us()});
        ++c.sent;
        flush(c);
    }

    /// Starts the close handshake from our side with `code`.
    void send_close(Conn& c, std::uint16_t code) {
        if (c.fd < 0 || c.we_closed) return;
        if (c.drip_off < c.drip.size()) {  // a close frame now would land inside the frame being dripped
            fail(c, "still writing its message when told to close");
            drop(c, false);
            return;
        }
        const char body[2] = {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
        append_frame(c.out, 8, std::string_view(body, 2));
        c.we_closed = true;
        if (c.state == State::open) c.state = State::closing;
        flush(c);
    }

    void set_reading(Conn& c, bool reading) {
        c.reading = reading;
        update_events(c);
    }

    /// Drops the TCP connection ourselves (FIN, or RST when `reset`).
    void drop(Conn& c, bool reset) {
        if (c.fd < 0) return;
        if (reset) {
            const linger l{1, 0};
            setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        c.by_us = true;
        finish(c);
    }

    /// Schedules `c`'s next timer event (a well-behaved message, a trickled byte, ...) at `at`.
    void schedule(const Conn& c, i64 at) { timers_.push({at, c.index}); }

    /// Bytes of a client frame: FIN/opcode, mask bit, 7/16/64-bit length (or `declared`), masked payload.
    void append_frame(std::string& out, int opcode, std::string_view payload, bool fin = true, bool mask = true,
                      u64 declared = UINT64_MAX) {
        const u64 len = declared == UINT64_MAX ? payload.size() : declared;
        out += static_cast<char>((fin ? 0x80 : 0) | opcode);
        const int mask_bit = mask ? 0x80 : 0;
        if (len < 126) {
            out += static_cast<char>(mask_bit | static_cast<int>(len));
        } else if (len <= 0xFFFF) {
            out += static_cast<char>(mask_bit | 126);
            out += static_cast<char>(len >> 8);
            out += static_cast<char>(len & 0xFF);
        } else {
            out += static_cast<char>(mask_bit | 127);
            for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((len >> shift) & 0xFF);
        }
        if (!mask) {
            out += payload;
            return;
        }
        const u64 m = mix(rng_);
        const char key[4] = {static_cast<char>(m), static_cast<char>(m >> 8), static_cast<char>(m >> 16),
                             static_cast<char>(m >> 24)};
        out.append(key, 4);
        const std::size_t at = out.size();
        out += payload;
        for (std::size_t i = 0; i < payload.size(); ++i) out[at + i] = static_cast<char>(out[at + i] ^ key[i & 3]);
    }

    /// The payload of message `seq` of connection `conn`: 16 hex digits of seq, then reproducible filler; text
    /// filler mixes ASCII and two-byte UTF-8 characters.
    static std::string make_payload(std::uint32_t conn, u64 seq, std::size_t size, bool binary) {
        std::string p = fmt::format("{:016x}", seq);
        p.resize(std::min(p.size(), size));
        p.reserve(size);
        u64 state = (static_cast<u64>(conn) << 40) ^ seq ^ 0x5EEDull;
        while (p.size() < size) {
            const u64 r = mix(state);
            for (int b = 0; b < 8 && p.size() < size; ++b) {
                const auto byte = static_cast<unsigned char>(r >> (8 * b));
                if (binary) {
                    p += static_cast<char>(byte);
                } else if ((byte & 7) == 0 && p.size() + 2 <= size) {
                    p += "\xC3\xA9";  // é
                } else {
                    p += static_cast<char>('a' + byte % 26);
                }
            }
        }
        return p;
    }

    std::size_t count(Kind kind, State state) const {
        std::size_t n = 0;
        for (const auto& c : conns_) n += c.kind == kind && c.state == state;
        return n;
    }

private:
    void update_events(Conn& c) {
        if (c.fd < 0) return;
        const std::uint32_t want = (c.reading ? EPOLLIN : 0u) | (c.out_off < c.out.size() ? EPOLLOUT : 0u);
        if (want == c.registered) return;
        epoll_event ev{};
        ev.events = want;
        ev.data.u32 = c.index;
        epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
        c.registered = want;
    }

    void fail(Conn& c, std::string why) {
        if (c.failure.empty()) c.failure = std::move(why);
    }

    void fail_and_drop(Conn& c, std::string why) {
        fail(c, std::move(why));
        finish(c);
    }

    /// Closes our socket; the connection is over.
    void finish(Conn& c) {
        if (c.fd >= 0) {
            epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
            close(c.fd);
        }
        c.fd = -1;
        c.state = State::closed;
        c.t_end = now_us();
    }

    void on_connected(Conn& c) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            c.error = err;
            fail_and_drop(c, std::string("connect: ") + std::strerror(err));
            return;
        }
        c.state = State::handshaking;
        c.t_connect = now_us();
        std::array<std::uint8_t, 16> nonce;
        for (std::size_t i = 0; i < nonce.size(); i += 8) {
            const u64 r = mix(rng_);
            for (std::size_t b = 0; b < 8; ++b) nonce[i + b] = static_cast<std::uint8_t>(r >> (8 * b));
        }
        c.key = swirl::detail::base64_encode(std::span<const std::uint8_t>(nonce));
        const std::string request = fmt::format(
            "GET /load HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            port_, c.key);
        // The start of a TLS ClientHello: record header (handshake, TLS 1.0, 512 bytes), then 6 of them.
        static constexpr char client_hello_start[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
        const std::string_view hello(client_hello_start, sizeof client_hello_start - 1);
        if (tls_attack_port != 0 && c.kind == Kind::slowloris_stall) {
            c.out = hello.substr(0, 5);  // a record header, then silence
        } else if (tls_attack_port != 0 && c.kind == Kind::slowloris_trickle) {
            c.drip = hello;  // one byte every 200 ms
            schedule(c, now_us());
        } else if (c.kind == Kind::slowloris_stall) {
            c.out = request.substr(0, request.find("Connection:"));  // request line, Host, Upgrade; no end
        } else if (c.kind == Kind::slowloris_trickle) {
            c.drip = request;
            schedule(c, now_us());
        } else {
            c.out = request;
        }
        update_events(c);
        flush(c);
    }

    void flush(Conn& c) {
        while (c.fd >= 0 && c.out_off < c.out.size()) {
            const ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
            if (n > 0) {
                c.out_off += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n < 0 && errno == EINTR) continue;
            c.error = errno;
            if (c.state != State::closing) fail(c, std::string("write: ") + std::strerror(errno));
            finish(c);
            return;
        }
        if (c.fd < 0) return;
        if (c.out_off == c.out.size()) {
            c.out.clear();
            c.out_off = 0;
        } else if (c.out_off > 1 * MiB) {
            c.out.erase(0, c.out_off);
            c.out_off = 0;
        }
        update_events(c);
    }

    void on_readable(Conn& c) {
        char buf[64 * 1024];
        while (c.fd >= 0 && c.reading) {
            const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
            if (n > 0) {
                c.in.append(buf, static_cast<std::size_t>(n));
                if (static_cast<std::size_t>(n) < sizeof buf) break;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n < 0 && errno == EINTR) continue;
            if (n == 0) c.eof = true;
            else c.error = errno;
            parse(c);
            if (c.state == State::handshaking) c.bytes_before_eof = c.in.size();
            finish(c);
            return;
        }
        parse(c);
    }

    void parse(Conn& c) {
        if (c.state == State::handshaking) {
            const auto end = c.in.find("\r\n\r\n");
            if (end == std::string::npos) return;
            std::string head = c.in.substr(0, end + 2);
            for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            const std::string accept = "sec-websocket-accept: " + swirl::accept_key(c.key);
            std::string expected_accept = accept;
            for (auto& ch : expected_accept) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (head.rfind("http/1.1 101 ", 0) != 0 || head.find(expected_accept + "\r\n") == std::string::npos) {
                fail(c, "handshake refused: " + c.in.substr(0, c.in.find("\r\n")));
                c.bytes_before_eof = c.in.size();
                finish(c);
                return;
            }
            c.in.erase(0, end + 4);
            c.state = State::open;
            c.t_open = now_us();
            on_open(c);
        }
        std::size_t at = 0;
        while (c.fd >= 0 && (c.state == State::open || c.state == State::closing)) {
            const std::size_t avail = c.in.size() - at;
            if (avail < 2) break;
            const auto b0 = static_cast<unsigned char>(c.in[at]);
            const auto b1 = static_cast<unsigned char>(c.in[at + 1]);
            u64 len = b1 & 0x7F;
            std::size_t header = 2;
            if (len == 126) header = 4;
            else if (len == 127) header = 10;
            if (avail < header) break;
            if (header == 4) len = (static_cast<u64>(static_cast<unsigned char>(c.in[at + 2])) << 8) |
                                   static_cast<unsigned char>(c.in[at + 3]);
            if (header == 10) {
                len = 0;
                for (std::size_t i = 2; i < 10; ++i) len = (len << 8) | static_cast<unsigned char>(c.in[at + i]);
            }
            if (b1 & 0x80) {
                fail(c, "server sent a masked frame");
                finish(c);
                return;
            }
            if (avail - header < len) break;
            const std::string_view payload(c.in.data() + at + header, static_cast<std::size_t>(len));
            at += header + static_cast<std::size_t>(len);
            const int opcode = b0 & 0x0F;
            if (!(b0 & 0x80) || (b0 & 0x70)) {
                fail(c, fmt::format("unexpected frame bits {:#04x}", b0));
            } else if (opcode == 1 || opcode == 2) {
                on_message(c, opcode == 2, payload);
            } else if (opcode == 8) {
                c.close_code = payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) |
                                                         static_cast<unsigned char>(payload[1])
                                                   : 1005;
                if (!c.we_closed) {
                    // Answer with the same code (an empty close for 1005), then wait for the server's FIN.
                    if (payload.size() >= 2) append_frame(c.out, 8, payload.substr(0, 2));
                    else append_frame(c.out, 8, {});
                    c.we_closed = true;
                    flush(c);
                }
                c.state = State::closing;
            } else if (opcode == 9) {
                append_frame(c.out, 10, payload);
                flush(c);
            } else if (opcode != 10) {
                fail(c, fmt::format("unexpected opcode {}", opcode));
            }
        }
        if (at > 0) c.in.erase(0, at);
    }

    /// Checks one echo: in order (gaps allowed for a slow reader, whose server may refuse pushes), byte for byte.
    void on_message(Conn& c, bool binary, std::string_view payload) {
        const i64 t = now_us();
        if (c.expect.empty()) {
            ++c.mismatched;
            fail(c, "unexpected message");
            return;
        }
        if (c.kind == Kind::slow_reader && payload.size() >= 16) {
            const u64 seq = std::strtoull(std::string(payload.substr(0, 16)).c_str(), nullptr, 16);
            while (!c.expect.empty() && c.expect.front().seq < seq) {
                c.expect.pop_front();
                ++c.gaps;
            }
            if (c.expect.empty()) {
                ++c.mismatched;
                fail(c, "echo of a message never sent");
                return;
            }
        }
        const Expect e = c.expect.front();
        c.expect.pop_front();
        if (binary != e.binary || payload != make_payload(c.index, e.seq, e.size, e.binary)) {
            ++c.mismatched;
            fail(c, fmt::format("echo of message {} differs", e.seq));
            return;
        }
        ++c.echoed;
        c.last_echoed_seq = e.seq;
        c.any_echoed = true;
        if (c.kind == Kind::echo) latencies_.push_back(t - e.sent_us);  // the well-behaved clients' figures
    }

    /// What each kind does once upgraded.
    void on_open(Conn& c) {
        switch (c.kind) {
        case Kind::echo:
            schedule(c, now_us() + static_cast<i64>(mix(rng_) % static_cast<u64>(echo_period)));  // spread out
            break;
        case Kind::oversized_frame: {
            append_frame(c.out, 2, std::string(4 * KiB, 'x'), true, true, max_message + 1);
            flush(c);
            break;
        }
        case Kind::oversized_message: {
            const std::string part(max_message / 2 + 1, 'y');
            append_frame(c.out, 1, part, false);
            append_frame(c.out, 0, part, false);
            append_frame(c.out, 0, part, true);
            flush(c);
            break;
        }
        case Kind::invalid_utf8:
            append_frame(c.out, 1, "valid start, then \xC3\x28 invalid");
            flush(c);
            break;
        case Kind::unmasked:
            append_frame(c.out, 1, "not masked", true, false);
            flush(c);
            break;
        case Kind::byte_writes: {
            const u64 seq = c.next_seq++;
            const bool binary = false;
            append_frame(c.drip, 1, make_payload(c.index, seq, byte_writes_size, binary));
            c.expect.push_back({seq, static_cast<std::uint32_t>(byte_writes_size), binary, now_us()});
            ++c.sent;
            schedule(c, now_us());
            break;
        }
        case Kind::vanish_fin:
        case Kind::vanish_rst:
            append_frame(c.out, 2, std::string(100, 'z'), true, true, 1000);  // 100 of the 1000 declared bytes
            flush(c);
            schedule(c, now_us() + 50 * ms);
            break;
        case Kind::slow_reader:
            set_reading(c, false);
            schedule(c, now_us());
            break;
        case Kind::slowloris_stall:
        case Kind::slowloris_trickle:
            break;
        }
    }

    void run_timers() {
        const i64 t = now_us();
        while (!timers_.empty() && timers_.top().first <= t) {
            const std::uint32_t index = timers_.top().second;
            timers_.pop();
            Conn& c = conns_[index];
            if (c.fd < 0) continue;
            switch (c.kind) {
            case Kind::echo:
                if (c.state != State::open) break;
                if (echo_sending) {
                    const std::size_t size = min_size + mix(rng_) % (max_size - min_size + 1);
                    send_message(c, size, c.next_seq % 2 == 1);
                }
                schedule(c, t + echo_period);
                break;
            case Kind::slowloris_trickle:
                if (c.state != State::handshaking || c.drip_off >= c.drip.size()) break;
                c.out += c.drip[c.drip_off++];
                flush(c);
                schedule(c, t + 200 * ms);
                break;
            case Kind::byte_writes: {
                // One byte per write(): the frame header and the first bytes one per millisecond, so the server
                // reads them apart; then 32 per millisecond (bounded, so our loop keeps serving everyone else).
                const int burst = c.drip_off < 64 ? 1 : 32;
                for (int i = 0; i < burst && c.drip_off < c.drip.size(); ++i) {
                    if (send(c.fd, c.drip.data() + c.drip_off, 1, MSG_NOSIGNAL) != 1) break;
                    ++c.drip_off;
                }
                if (c.drip_off < c.drip.size()) schedule(c, t + 1 * ms);
                break;
            }
            case Kind::vanish_fin:
            case Kind::vanish_rst:
                drop(c, c.kind == Kind::vanish_rst);
                break;
            case Kind::slow_reader:
                // Keep up to 1 MiB queued towards the server until the flood is sent.
                while (c.sent < flood_count && c.out.size() - c.out_off < 1 * MiB && c.fd >= 0)
                    send_message(c, flood_size, true);
                if (c.sent < flood_count) schedule(c, t + 1 * ms);
                break;
            default:
                break;
            }
        }
    }

    int port_;
    int epoll_ = -1;
    u64 rng_;
    std::deque<Conn> conns_;
    std::vector<i64> latencies_;
    std::priority_queue<std::pair<i64, std::uint32_t>, std::vector<std::pair<i64, std::uint32_t>>,
                        std::greater<>> timers_;
};

// ---------------------------------------------------------------------------------------------------------------
// Reporting

struct Percentiles {
    std::size_t n = 0;
    double p50 = 0, p99 = 0, max = 0;  ///< milliseconds
};

Percentiles percentiles(std::vector<i64> v) {
    Percentiles p;
    p.n = v.size();
    if (v.empty()) return p;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) {
        return static_cast<double>(v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))]) / ms;
    };
    p.p50 = at(0.50);
    p.p99 = at(0.99);
    p.max = static_cast<double>(v.back()) / ms;
    return p;
}

std::string mib(long kb) { return fmt::format("{:.1f} MiB", static_cast<double>(kb) / 1024.0); }

/// The figures block of one scenario and its verdict.
class Report {
public:
    explicit Report(std::string name) : name_(std::move(name)) {
        fmt::print("\n== {} ==\n  machine load average at start: {}\n", name_, load_average());
        std::fflush(stdout);
    }
    /// The 1-minute load average: the machine is shared, so latency figures need it for context.
    static std::string load_average() {
        std::ifstream f("/proc/loadavg");
        std::string one;
        f >> one;
        return one.empty() ? "?" : one;
    }
    template <class... Args>
    void line(fmt::format_string<Args...> f, Args&&... args) {
        fmt::print("  {}\n", fmt::format(f, std::forward<Args>(args)...));
        std::fflush(stdout);
    }
    /// A pass criterion: printed, and remembered when it fails.
    void check(bool ok, std::string what) {
        fmt::print("  [{}] {}\n", ok ? "ok" : "FAILED", what);
        std::fflush(stdout);
        if (!ok) failed_ = true;
    }
    bool finish() {
        fmt::print("  => {}: {}\n", name_, failed_ ? "FAIL" : "PASS");
        std::fflush(stdout);
        return !failed_;
    }

private:
    std::string name_;
    bool failed_ = false;
};

struct Options {
    std::string server;
    std::string openssl;  ///< --openssl PATH: also run the TLS slowloris (the server must be built with TLS)
    bool full = false;
    bool sanitized = LOAD_TEST_SANITIZED != 0;
    std::string only;
    std::size_t connections = 0;  ///< --connections: overrides the connections scenario's client count
    i64 seconds = 0;              ///< --seconds: overrides how long it holds them
    double latency_limit_ms() const { return sanitized ? 200.0 : 50.0; }  ///< p99 bound, widened under sanitizers
};

/// A self-signed certificate and key for 127.0.0.1, made by the openssl program in a temporary directory.
struct TlsFiles {
    std::string dir, cert, key;
    void remove() const {
        if (!dir.empty()) std::filesystem::remove_all(dir);
    }
};

TlsFiles make_tls_files(const std::string& openssl) {
    char dir[] = "/tmp/swirl-load-tls-XXXXXX";
    if (!mkdtemp(dir)) return {};
    TlsFiles f{dir, std::string(dir) + "/cert.pem", std::string(dir) + "/key.pem"};
    const std::string command = fmt::format(
        "'{}' req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost "
        "-addext subjectAltName=IP:127.0.0.1 -keyout '{}' -out '{}' >/dev/null 2>&1",
        openssl, f.key, f.cert);
    if (std::system(command.c_str()) != 0) {
        fmt::print("cannot make a certificate with {}\n", openssl);
        f.remove();
        return {};
    }
    return f;
}

/// Polls `done()` every 20 ms for at most `limit`.
bool wait_for(const std::function<bool()>& done, i64 limit) {
    const i64 end = now_us() + limit;
    while (!done()) {
        if (now_us() > end) return false;
        usleep(20000);
    }
    return true;
}

/// The first few distinct failures of a set of connections, for the report.
std::string first_failures(const std::deque<Conn>& conns) {
    std::map<std::string, int> seen;
    for (const auto& c : conns)
        if (!c.failure.empty()) ++seen[fmt::format("{}: {}", to_string(c.kind), c.failure)];
    std::string s;
    int shown = 0;
    for (const auto& [what, n] : seen) {
        if (shown++ == 4) break;
        s += fmt::format("{}{} x{}", s.empty() ? "" : "; ", what, n);
    }
    return s.empty() ? "none" : s;
}

/// Closes every open well-behaved client with 1000 and waits for the server's answer and FIN.
/// Returns how many got a clean close (1000 back, TCP closed by the server).
std::size_t close_echo_clients(Engine& engine, i64 limit) {
    for (auto& c : engine.conns())
        if (c.kind == Kind::echo && c.state == State::open) engine.send_close(c, 1000);
    engine.run_until(now_us() + limit, [&] { return engine.count(Kind::echo, State::closing) == 0; });
    std::size_t clean = 0;
    for (const auto& c : engine.conns())
        clean += c.kind == Kind::echo && c.close_code == 1000 && c.state == State::closed && !c.by_us;
    return clean;
}

/// Well-behaved clients' totals.
struct EchoTotals {
    std::size_t clients = 0, lost = 0;
    u64 sent = 0, echoed = 0, mismatched = 0, outstanding = 0;
};

EchoTotals echo_totals(const std::deque<Conn>& conns) {
    EchoTotals t;
    for (const auto& c : conns) {
        if (c.kind != Kind::echo) continue;
        ++t.clients;
        t.sent += c.sent;
        t.echoed += c.echoed;
        t.mismatched += c.mismatched;
        t.outstanding += c.expect.size();
        if (c.state == State::closed || c.state == State::connecting || c.state == State::handshaking) ++t.lost;
    }
    return t;
}

/// Stops the server and checks that it exited cleanly (a sanitizer report or a crash makes it non-zero).
void stop_server(ServerProcess& server, Report& report) {
    std::string how;
    const bool ok = server.stop(how);
    report.check(ok, "server stopped gracefully on SIGTERM: " + how);
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

/// N concurrent connections, each sending a message every second for the duration; every echo checked.
bool scenario_connections(const Options& o) {
    const std::size_t n = o.connections ? o.connections : o.full ? 10000 : 500;
    const i64 duration = o.seconds ? o.seconds * sec : o.full ? 60 * sec : 3 * sec;
    Report report(fmt::format("connections: {} clients x 1 msg/s for {} s", n, duration / sec));
    ServerProcess server(o.server, {"--threads", "2", "--max-connections", std::to_string(n + 1000), "--log-level", "error"},
                         o.sanitized);
    if (!server.ok()) {
        report.check(false, "server started: " + server.error());
        return report.finish();
    }
    Memory mem{&server};
    const int fds_before = server.socket_count();
    mem.start();
    Engine engine(server.port());
    engine.echo_period = 1 * sec;

    const i64 t0 = now_us();
    const bool all_open = engine.connect_many(Kind::echo, n, 256, now_us() + (o.full ? 60 : 20) * sec);
    const i64 ramp = now_us() - t0;
    const int fds_open = server.socket_count();
    report.line("connect + upgrade of {} clients: {:.2f} s ({} open)", n, static_cast<double>(ramp) / sec,
                engine.count(Kind::echo, State::open));
    report.check(all_open, fmt::format("all {} connections upgraded", n));

    engine.latencies().clear();
    engine.run_for(duration, [&] { mem.sample(); });
    engine.echo_sending = false;
    // Drain: every sent message must come back.
    engine.run_until(now_us() + 5 * sec, [&] { return echo_totals(engine.conns()).outstanding == 0; },
                     [&] { mem.sample(); });
    const EchoTotals t = echo_totals(engine.conns());
    const long rss_loaded = server.rss_kb();
    const std::size_t clean = close_echo_clients(engine, 15 * sec);
    const bool fds_back = wait_for([&] { return server.socket_count() <= fds_before; }, 10 * sec);
    mem.after = server.rss_kb();
    mem.peak = std::max(mem.peak, server.hwm_kb());
    const Percentiles lat = percentiles(engine.latencies());

    report.line("clients {}, messages sent {}, echoed {}, dropped {}, corrupted {}, lost connections {}", t.clients,
                t.sent, t.echoed, t.sent - t.echoed, t.mismatched, t.lost);
    report.line("echo latency p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms ({} samples)", lat.p50, lat.p99, lat.max, lat.n);
    report.line("server RSS before {}, with {} connections {}, peak {}, after close {} ({:.1f} KiB per connection)",
                mib(mem.before), n, mib(rss_loaded), mib(mem.peak), mib(mem.after),
                static_cast<double>(rss_loaded - mem.before) / static_cast<double>(n));
    report.line("server sockets before {}, with connections {}, after close {}", fds_before, fds_open, server.socket_count());
    report.line("client failures: {}", first_failures(engine.conns()));
    report.check(t.sent > 0 && t.sent == t.echoed && t.mismatched == 0, "every message echoed, byte for byte, in order");
    report.check(t.lost == 0, "no connection lost");
    report.check(clean == n, fmt::format("close handshake 1000 completed by all ({} of {})", clean, n));
    report.check(fds_back, "server released every socket after the close");
    stop_server(server, report);
    return report.finish();
}

/// Slowloris connections (half an upgrade then silence, or one byte per 200 ms) must be dropped within the
/// handshake timeout while well-behaved clients keep getting echoes quickly.
/// With `tls`, the attack stalls TLS handshakes on the server's wss listener (half a ClientHello header, or one
/// trickled a byte every 200 ms) while the well-behaved clients echo on its ws listener.
bool scenario_slowloris(const Options& o, const TlsFiles* tls = nullptr) {
    const std::size_t attackers = o.full ? 1000 : 200;
    const std::size_t good = 100;
    const i64 timeout = o.full ? 5 * sec : 1 * sec;
    const i64 tolerance = 500 * ms + timeout / 10;  // timer and scheduling slack on a loaded 2-core machine
    Report report(fmt::format("slowloris{}: {} stalled {} vs {} clients x 10 msg/s, handshake timeout {} s",
                              tls ? " (tls)" : "", attackers, tls ? "TLS handshakes" : "upgrades", good,
                              static_cast<double>(timeout) / sec));
    std::vector<std::string> args{"--threads", "2", "--handshake-timeout",
                                  fmt::format("{}", static_cast<double>(timeout) / sec), "--log-level", "error"};
    if (tls) args.insert(args.end(), {"--tls-cert", tls->cert, "--tls-key", tls->key, "--tls-port", "0"});
    ServerProcess server(o.server, args, o.sanitized);
    if (!server.ok()) {
        report.check(false, "server started: " + server.error());
        return report.finish();
    }
    Memory mem{&server};
    const int fds_before = server.socket_count();
    mem.start();
    Engine engine(server.port());
    if (tls) engine.tls_attack_port = server.tls_port();
    engine.echo_period = 100 * ms;
    const bool good_open = engine.connect_many(Kind::echo, good, 100, now_us() + 10 * sec);
    report.check(good_open, fmt::format("{} well-behaved clients upgraded", good));
    engine.run_for(300 * ms);
    engine.latencies().clear();

    // Half stall after part of the request, half trickle it one byte at a time (never finishing in time).
    const i64 attack_start = now_us();
    const bool attack_connected = engine.connect_many(Kind::slowloris_stall, attackers / 2, attackers, now_us() + 10 * sec) &&
                                  engine.connect_many(Kind::slowloris_trickle, attackers - attackers / 2, attackers,
                                                      now_us() + 10 * sec);
    int fds_attack = 0;
    engine.run_for(timeout / 2, [&] {
        mem.sample();
        fds_attack = std::max(fds_attack, server.socket_count());
    });
    auto attackers_left = [&] {
        return engine.count(Kind::slowloris_stall, State::handshaking) + engine.count(Kind::slowloris_trickle, State::handshaking);
    };
    engine.run_until(attack_start + timeout + tolerance + 3 * sec, [&] { return attackers_left() == 0; },
                     [&] { mem.sample(); });
    const i64 all_dropped = now_us() - attack_start;
    engine.run_for(1 * sec, [&] { mem.sample(); });  // the good clients keep going after the attack
    const int fds_after_attack = server.socket_count();
    engine.echo_sending = false;
    engine.run_until(now_us() + 5 * sec, [&] { return echo_totals(engine.conns()).outstanding == 0; });
    const EchoTotals t = echo_totals(engine.conns());
    const Percentiles lat = percentiles(engine.latencies());

    std::vector<i64> drop_times;
    std::size_t dropped_by_server = 0, answered = 0;
    for (const auto& c : engine.conns()) {
        if (c.kind != Kind::slowloris_stall && c.kind != Kind::slowloris_trickle) continue;
        if (c.state == State::closed && !c.by_us && c.failure.empty() && (c.eof || c.error != 0)) {
            ++dropped_by_server;
            drop_times.push_back(c.t_end - c.t_connect);
        }
        answered += c.bytes_before_eof > 0;
    }
    const Percentiles drop = percentiles(drop_times);
    const std::size_t clean = close_echo_clients(engine, 10 * sec);
    const bool fds_back = wait_for([&] { return server.socket_count() <= fds_before; }, 10 * sec);
    mem.peak = std::max(mem.peak, server.hwm_kb());
    mem.after = server.rss_kb();

    report.line("slowloris connections {} ({} connected), dropped by the server {}, all gone {:.2f} s after the first",
                attackers, attack_connected ? "all" : "not all", dropped_by_server, static_cast<double>(all_dropped) / sec);
    report.line("time from connect to drop: p50 {:.0f} ms, max {:.0f} ms (timeout {} ms); {} got a response before the drop",
                drop.p50, drop.max, timeout / ms, answered);
    report.line("server sockets before {}, during the attack {}, after the drops {}", fds_before, fds_attack, fds_after_attack);
    report.line("well-behaved: clients {}, sent {}, echoed {}, dropped {}, corrupted {}, lost connections {}", t.clients,
                t.sent, t.echoed, t.sent - t.echoed, t.mismatched, t.lost);
    report.line("well-behaved echo latency during the attack: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms", lat.p50,
                lat.p99, lat.max);
    report.line("server RSS before {}, peak {}, after {}", mib(mem.before), mib(mem.peak), mib(mem.after));
    report.line("client failures: {}", first_failures(engine.conns()));
    report.check(attack_connected, "every slowloris connection was accepted");
    report.check(dropped_by_server == attackers && drop.max <= static_cast<double>(timeout + tolerance) / ms,
                 fmt::format("every slowloris connection dropped by the server within the handshake timeout (+{} ms slack)",
                             tolerance / ms));
    report.check(fds_after_attack <= fds_before + static_cast<int>(good), "server holds no slowloris socket afterwards");
    report.check(t.sent > 0 && t.sent == t.echoed && t.mismatched == 0 && t.lost == 0,
                 "well-behaved clients: every message echoed, none lost");
    report.check(lat.p99 < o.latency_limit_ms(), fmt::format("well-behaved p99 latency < {:.0f} ms", o.latency_limit_ms()));
    report.check(clean == good && fds_back, "well-behaved clients closed cleanly with 1000, server released every socket");
    stop_server(server, report);
    return report.finish();
}

/// Misbehaving clients get the right close code or are dropped; well-behaved clients are unaffected.
bool scenario_abuse(const Options& o) {
    const std::size_t per_kind = o.full ? 50 : 5;
    const std::size_t byte_writers = o.full ? 10 : 5;  // each costs ~60,000 write() calls on our side in full mode
    const std::size_t good = o.full ? 200 : 50;
    const std::size_t max_message = 64 * KiB;
    Report report(fmt::format("abuse mix: {} clients per kind ({} for 1-byte writes) vs {} clients x 10 msg/s, --max-message {}",
                              per_kind, byte_writers, good, max_message));
    ServerProcess server(o.server, {"--threads", "2", "--max-message", std::to_string(max_message), "--log-level", "error"},
                         o.sanitized);
    if (!server.ok()) {
        report.check(false, "server started: " + server.error());
        return report.finish();
    }
    Memory mem{&server};
    const int fds_before = server.socket_count();
    mem.start();
    Engine engine(server.port());
    engine.echo_period = 100 * ms;
    engine.max_message = max_message;
    engine.byte_writes_size = o.full ? 60 * KiB : 16 * KiB;  // under the limit: must be echoed
    report.check(engine.connect_many(Kind::echo, good, 100, now_us() + 10 * sec),
                 fmt::format("{} well-behaved clients upgraded", good));
    engine.run_for(300 * ms);
    engine.latencies().clear();

    struct Expectation {
        Kind kind;
        int code;  ///< close code the server must send; 0: the connection is simply dropped; 1000: echoed, then our close
    };
    const std::vector<Expectation> kinds = {
        {Kind::oversized_frame, 1009}, {Kind::oversized_message, 1009}, {Kind::invalid_utf8, 1007},
        {Kind::unmasked, 1002},        {Kind::byte_writes, 1000},       {Kind::vanish_fin, 0},
        {Kind::vanish_rst, 0},
    };
    // Interleave the kinds so they hit the server at the same time.
    bool all_upgraded = true;
    for (std::size_t i = 0; i < per_kind; ++i)
        for (const auto& k : kinds)
            if (k.kind != Kind::byte_writes || i < byte_writers) engine.connect_one(k.kind);
    auto abusers_busy = [&] {
        for (const auto& c : engine.conns()) {
            if (c.kind == Kind::echo || c.state == State::closed) continue;
            if (c.kind == Kind::byte_writes && c.state == State::open && c.expect.empty()) continue;  // echoed
            return true;
        }
        return false;
    };
    engine.run_until(now_us() + 20 * sec, [&] { return !abusers_busy(); }, [&] { mem.sample(); });
    // The byte writers got their echo: close them normally.
    for (auto& c : engine.conns())
        if (c.kind == Kind::byte_writes && c.state == State::open) engine.send_close(c, 1000);
    engine.run_until(now_us() + 10 * sec, [&] { return !abusers_busy(); }, [&] { mem.sample(); });
    engine.run_for(500 * ms, [&] { mem.sample(); });
    const int fds_after_abuse = server.socket_count();
    engine.echo_sending = false;
    engine.run_until(now_us() + 5 * sec, [&] { return echo_totals(engine.conns()).outstanding == 0; });
    const EchoTotals t = echo_totals(engine.conns());
    const Percentiles lat = percentiles(engine.latencies());

    for (const auto& k : kinds) {
        std::map<std::string, int> outcomes;
        std::size_t right = 0;
        for (const auto& c : engine.conns()) {
            if (c.kind != k.kind) continue;
            all_upgraded = all_upgraded && c.t_open != 0;
            std::string outcome;
            if (c.by_us) outcome = "we vanished";
            else if (c.close_code >= 0) outcome = fmt::format("close {}", c.close_code);
            else if (c.state == State::closed) outcome = "dropped without a close frame";
            else outcome = "still open";
            if (c.kind == Kind::byte_writes) outcome += c.echoed == 1 ? " after a correct echo" : " without the echo";
            if (!c.failure.empty() && c.kind != Kind::byte_writes) outcome += " (" + c.failure + ")";
            ++outcomes[outcome];
            const bool closed = c.state == State::closed;
            bool ok = false;
            if (k.code == 0) ok = c.by_us;
            else if (k.kind == Kind::byte_writes) ok = closed && c.echoed == 1 && c.mismatched == 0 && c.close_code == 1000;
            else ok = closed && c.close_code == k.code && !c.by_us;
            right += ok;
        }
        std::string summary;
        for (const auto& [what, count] : outcomes) summary += fmt::format("{}{} x{}", summary.empty() ? "" : ", ", what, count);
        report.line("{:<34} {}", to_string(k.kind), summary);
        const std::size_t expected = k.kind == Kind::byte_writes ? byte_writers : per_kind;
        report.check(right == expected, fmt::format("{}: {} of {} {}", to_string(k.kind), right, expected,
                                                    k.code == 0 ? "dropped (server socket released)"
                                                    : k.code == 1000 ? "echoed byte for byte, then closed 1000"
                                                                     : fmt::format("closed with {}", k.code)));
    }
    const std::size_t clean = close_echo_clients(engine, 10 * sec);
    const bool fds_back = wait_for([&] { return server.socket_count() <= fds_before; }, 10 * sec);
    mem.peak = std::max(mem.peak, server.hwm_kb());
    mem.after = server.rss_kb();
    report.line("server sockets before {}, after the abusers left {} (well-behaved {}), after close {}", fds_before,
                fds_after_abuse, good, server.socket_count());
    report.line("well-behaved: clients {}, sent {}, echoed {}, dropped {}, corrupted {}, lost connections {}", t.clients,
                t.sent, t.echoed, t.sent - t.echoed, t.mismatched, t.lost);
    report.line("well-behaved echo latency: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms", lat.p50, lat.p99, lat.max);
    report.line("server RSS before {}, peak {}, after {}", mib(mem.before), mib(mem.peak), mib(mem.after));
    report.check(all_upgraded, "every abusive client was upgraded first");
    report.check(fds_after_abuse <= fds_before + static_cast<int>(good), "server released every abusive connection");
    report.check(t.sent > 0 && t.sent == t.echoed && t.mismatched == 0 && t.lost == 0,
                 "well-behaved clients: every message echoed, none lost");
    report.check(lat.p99 < o.latency_limit_ms(), fmt::format("well-behaved p99 latency < {:.0f} ms", o.latency_limit_ms()));
    report.check(clean == good && fds_back, "well-behaved clients closed cleanly with 1000, server released every socket");
    stop_server(server, report);
    return report.finish();
}

/// A client floods messages and never reads the echoes: the server's memory must stay bounded by the high-water
/// mark and the policy must apply (reject: echoes dropped, connection kept; close: 1008).
bool scenario_slow_reader(const Options& o, bool close_policy) {
    const std::size_t mark = o.full ? 8 * MiB : 1 * MiB;
    const std::size_t message = 64 * KiB;
    const u64 count = o.full ? 4096 : 1024;  // 256 MiB / 64 MiB
    // The output queue holds < mark + one message; its std::string may have twice that capacity while a write of
    // up to the same amount is in flight. Plus the read buffer, the message being read and allocator slack.
    const long bound_kb = static_cast<long>((3 * (mark + message) + 4 * MiB) / KiB) + (o.sanitized ? 16 * 1024 : 0);
    Report report(fmt::format("slow reader ({}): {} x {} KiB pushed at a client that does not read, high-water mark {} MiB",
                              close_policy ? "--backpressure close" : "--backpressure reject", count, message / KiB,
                              mark / MiB));
    ServerProcess server(o.server,
                         {"--max-output-buffer", std::to_string(mark), "--backpressure", close_policy ? "close" : "reject",
                          "--max-message", std::to_string(1 * MiB), "--log-level", "error",
                          // The client floods before it reads (seconds under TSan): the server must still be waiting
                          // for its close reply then, or it drops the socket and the RST discards the 1008 frame.
                          "--close-timeout", "60"},
                         o.sanitized);
    if (!server.ok()) {
        report.check(false, "server started: " + server.error());
        return report.finish();
    }
    Memory mem{&server};
    Engine engine(server.port());
    engine.flood_size = message;
    engine.flood_count = count;
    engine.echo_sending = false;
    engine.run_for(100 * ms);
    mem.start();
    const std::uint32_t index = engine.connect_one(Kind::slow_reader);
    Conn& c = engine.conns()[index];
    const i64 t0 = now_us();
    engine.run_until(now_us() + 60 * sec, [&] { return c.fd < 0 || (c.sent == count && c.out.empty()); },
                     [&] { mem.sample(); });
    const i64 flood_time = now_us() - t0;
    engine.run_for(500 * ms, [&] { mem.sample(); });  // let the server read everything, still not reading
    mem.sample();
    const long rss_full = server.rss_kb();
    const bool open_while_flooded = c.fd >= 0 && !c.eof && c.close_code < 0;
    // Now read everything the server managed to queue.
    engine.set_reading(c, true);
    if (close_policy) {
        engine.run_until(now_us() + 10 * sec, [&] { return c.state == State::closed; });
    } else {
        engine.run_until(now_us() + 5 * sec, [&] { return c.expect.empty() || c.fd < 0; });
        // Whatever is left was refused; the connection must still work: a new message comes back.
        const u64 echoed_before = c.echoed;
        for (int attempt = 0; attempt < 50 && c.fd >= 0 && c.echoed == echoed_before; ++attempt) {
            engine.send_message(c, 100, true);
            engine.run_until(now_us() + 100 * ms, [&] { return c.echoed > echoed_before; });
        }
        engine.send_close(c, 1000);
        engine.run_until(now_us() + 5 * sec, [&] { return c.state == State::closed; });
    }
    mem.peak = std::max(mem.peak, server.hwm_kb());
    mem.after = server.rss_kb();
    const long growth = mem.peak - mem.before;
    const u64 dropped = c.sent - std::min<u64>(c.sent, c.echoed);  // the flood plus any retried final message

    report.line("sent {} MiB in {:.2f} s; server RSS before {}, after the flood {}, peak {}, after {}",
                count * message / MiB, static_cast<double>(flood_time) / sec, mib(mem.before), mib(rss_full),
                mib(mem.peak), mib(mem.after));
    report.line("RSS growth {} vs high-water mark {} MiB (bound {} = 3 x (mark + message) + 4 MiB{})", mib(growth),
                mark / MiB, mib(bound_kb), o.sanitized ? " + 16 MiB for the sanitizer" : "");
    report.line("echoes received {} ({:.1f} MiB), refused by the server {}, in-order gaps {}, corrupted {}, close code {}",
                c.echoed, static_cast<double>(c.echoed * message) / MiB, dropped, c.gaps, c.mismatched, c.close_code);
    report.line("client failures: {}", c.failure.empty() ? "none" : c.failure);
    report.check(growth <= bound_kb, "server RSS bounded by the high-water mark");
    report.check(c.mismatched == 0 && c.echoed > 0, "every echo received was byte for byte a message sent, in order");
    report.check(c.echoed < count, "the server refused pushes once over the mark (did not queue the whole flood)");
    if (close_policy) {
        report.check(c.close_code == 1008 && c.state == State::closed, "connection closed with 1008");
        report.check(c.gaps == 0, "echoes before the close are a gap-free prefix");
    } else {
        report.check(open_while_flooded, "connection stayed open while flooded");
        report.check(c.close_code == 1000 && c.state == State::closed && c.failure.empty(),
                     "connection still echoed after the flood and closed normally with 1000");
    }
    stop_server(server, report);
    return report.finish();
}

int run(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--full") o.full = true;
        else if (a == "--sanitized") o.sanitized = true;
        else if (a == "--only" && i + 1 < argc) o.only = argv[++i];
        else if (a == "--openssl" && i + 1 < argc) o.openssl = argv[++i];
        else if (a == "--connections" && i + 1 < argc) o.connections = std::strtoul(argv[++i], nullptr, 10);
        else if (a == "--seconds" && i + 1 < argc) o.seconds = std::strtol(argv[++i], nullptr, 10);
        else if (!a.empty() && a[0] != '-' && o.server.empty()) o.server = a;
        else {
            fmt::print(stderr, "usage: {} ECHO_SERVER [--full] [--sanitized] [--only connections|slowloris|abuse|slow-reader]\n"
                       "       [--connections N] [--seconds S] [--openssl PATH]\n",
                       argv[0]);
            return 2;
        }
    }
    if (o.server.empty() || access(o.server.c_str(), X_OK) != 0) {
        fmt::print(stderr, "load_test: echo server '{}' is not executable\n", o.server);
        return 2;
    }

    struct sigaction sa{};
    sa.sa_handler = on_fatal_signal;
    sigaction(SIGALRM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    alarm(o.full ? 420 : 100);  // the whole run, whatever happens

    // 10,000 client sockets here and 10,000 in the server (which inherits the limit).
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    const std::size_t needed = o.full ? 10500 : 1000;
    fmt::print("swirl load test ({} mode{}), server {}, fd limit {}\n", o.full ? "full" : "short",
               o.sanitized ? ", sanitizer build: p99 bound 200 ms, small ASan quarantine" : "", o.server, lim.rlim_cur);
    if (lim.rlim_cur < needed) {
        fmt::print("FAIL: need an fd limit of at least {} (ulimit -Hn)\n", needed);
        return 1;
    }

    const i64 start = now_us();
    std::vector<std::pair<std::string, bool>> results;
    auto want = [&](std::string_view name) { return o.only.empty() || o.only == name; };
    if (want("connections")) results.emplace_back("connections", scenario_connections(o));
    if (want("slowloris")) results.emplace_back("slowloris", scenario_slowloris(o));
    if (want("slowloris") && !o.openssl.empty()) {
        const TlsFiles tls = make_tls_files(o.openssl);
        results.emplace_back("slowloris (tls)", tls.cert.empty() ? false : scenario_slowloris(o, &tls));
        tls.remove();
    }
    if (want("abuse")) results.emplace_back("abuse mix", scenario_abuse(o));
    if (want("slow-reader")) {
        results.emplace_back("slow reader (reject)", scenario_slow_reader(o, false));
        results.emplace_back("slow reader (close)", scenario_slow_reader(o, true));
    }
    bool all = !results.empty();
    fmt::print("\n== summary ({:.1f} s) ==\n", static_cast<double>(now_us() - start) / sec);
    for (const auto& [name, ok] : results) {
        fmt::print("  {:<22} {}\n", name, ok ? "PASS" : "FAIL");
        all = all && ok;
    }
    return all ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) { return run(argc, argv); }

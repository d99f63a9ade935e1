// server/detail/edge_socket.hpp: reads that follow epoll's edges, and what they cost in system calls, counted by
// interposing recv() and epoll_ctl() in this executable (hence its own executable).
#include "test_support.hpp"

#include <swirl/server/detail/edge_socket.hpp>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdarg>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

/// System calls made by threads other than the one that counts (the test's own client is not counted).
struct SyscallCount {
    std::atomic<long> recv{0}, epoll_ctl{0}, epoll_ctl_del{0}, timerfd_settime{0}, getpeername{0}, ioctl{0};
    std::atomic<long> accept{0}, accept4{0}, accept4_nonblocking_cloexec{0};
};
SyscallCount counted;
std::atomic<std::thread::id> uncounted_thread{};

bool counts_here() { return std::this_thread::get_id() != uncounted_thread.load(std::memory_order_relaxed); }

template <class F>
F next_symbol(const char* name) {
    return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

} // namespace

extern "C" ssize_t recv(int fd, void* buf, size_t n, int flags) {
    static const auto real = next_symbol<ssize_t (*)(int, void*, size_t, int)>("recv");
    if (counts_here()) counted.recv.fetch_add(1, std::memory_order_relaxed);
    return real(fd, buf, n, flags);
}

extern "C" int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) {
    static const auto real = next_symbol<int (*)(int, int, int, struct epoll_event*)>("epoll_ctl");
    if (counts_here()) {
        counted.epoll_ctl.fetch_add(1, std::memory_order_relaxed);
        if (op == EPOLL_CTL_DEL) counted.epoll_ctl_del.fetch_add(1, std::memory_order_relaxed);
    }
    return real(epfd, op, fd, event);
}

extern "C" int timerfd_settime(int fd, int flags, const struct itimerspec* value, struct itimerspec* old) {
    static const auto real = next_symbol<int (*)(int, int, const struct itimerspec*, struct itimerspec*)>("timerfd_settime");
    if (counts_here()) counted.timerfd_settime.fetch_add(1, std::memory_order_relaxed);
    return real(fd, flags, value, old);
}

extern "C" int getpeername(int fd, struct sockaddr* address, socklen_t* length) {
    static const auto real = next_symbol<int (*)(int, struct sockaddr*, socklen_t*)>("getpeername");
    if (counts_here()) counted.getpeername.fetch_add(1, std::memory_order_relaxed);
    return real(fd, address, length);
}

extern "C" int ioctl(int fd, unsigned long request, ...) {
    static const auto real = next_symbol<int (*)(int, unsigned long, void*)>("ioctl");
    va_list args;
    va_start(args, request);
    void* argument = va_arg(args, void*);
    va_end(args);
    if (counts_here()) counted.ioctl.fetch_add(1, std::memory_order_relaxed);
    return real(fd, request, argument);
}

extern "C" int accept(int fd, struct sockaddr* address, socklen_t* length) {
    static const auto real = next_symbol<int (*)(int, struct sockaddr*, socklen_t*)>("accept");
    if (counts_here()) counted.accept.fetch_add(1, std::memory_order_relaxed);
    return real(fd, address, length);
}

extern "C" int accept4(int fd, struct sockaddr* address, socklen_t* length, int flags) {
    static const auto real = next_symbol<int (*)(int, struct sockaddr*, socklen_t*, int)>("accept4");
    const int result = real(fd, address, length, flags);
    if (counts_here() && result >= 0) {
        counted.accept4.fetch_add(1, std::memory_order_relaxed);
        if ((flags & (SOCK_NONBLOCK | SOCK_CLOEXEC)) == (SOCK_NONBLOCK | SOCK_CLOEXEC))
            counted.accept4_nonblocking_cloexec.fetch_add(1, std::memory_order_relaxed);
    }
    return result;
}

namespace {

using swirl::detail::EdgeSocket;
using namespace std::chrono_literals;

/// A connected pair on 127.0.0.1: `ours` is an EdgeSocket on `ctx`, `peer` a plain socket.
struct Pair {
    asio::io_context ctx;
    asio::ip::tcp::socket peer{ctx};
    std::optional<EdgeSocket> ours;
    /// `concurrency_hint`: 1 has Asio lock each socket; `ASIO_CONCURRENCY_HINT_UNSAFE_IO`, as the server's loops,
    /// does not (and only then may a reader park).
    explicit Pair(int concurrency_hint = 1) : ctx(concurrency_hint) {
        asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0});
        peer.connect(acceptor.local_endpoint());
        ours.emplace(acceptor.accept());
    }
    /// Reads our side dry. Without the edge wait, a socket's first wait may complete at once (Asio has seen no edge
    /// yet, so it tries the socket): that one is waited out too.
    void settle() {
        std::array<char, 64> buf{};
        std::error_code ec;
        ours->read_some(asio::buffer(buf), ec);
        REQUIRE(ec == asio::error::would_block);
#if !SWIRL_EDGE_WAIT
        REQUIRE(wait_readable());
        ours->read_some(asio::buffer(buf), ec);
        REQUIRE(ec == asio::error::would_block);
#endif
    }
    /// Waits (running the context) until our side is readable; false on an error or after 2 s.
    bool wait_readable() {
        bool woke = false;
        ours->async_wait_readable([&](std::error_code e) { woke = !e; });
        return run_until([&] { return woke; });
    }
    /// Runs the context until `done` or 2 s pass.
    template <class Pred>
    bool run_until(Pred done) {
        const auto deadline = std::chrono::steady_clock::now() + 2s;
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            ctx.restart();
            ctx.run_for(10ms);
        }
        return done();
    }
};

} // namespace

TEST_CASE("an edge socket tries the socket once after it found it empty, then answers would_block by itself") {
    uncounted_thread = std::thread::id{};  // count this thread too
    Pair p;
    std::array<char, 64> buf{};
    std::error_code ec;
    const long before = counted.recv.load();
    CHECK(p.ours->read_some(asio::buffer(buf), ec) == 0);
    CHECK(ec == asio::error::would_block);
    CHECK_FALSE(p.ours->may_have_input());
    CHECK(p.ours->read_some(asio::buffer(buf), ec) == 0);
    CHECK(ec == asio::error::would_block);
    CHECK(counted.recv.load() - before == 1);

    // Data now: the wait completes (the edge came before it was queued), and one read takes it all.
    asio::write(p.peer, asio::buffer("hello", 5));
    REQUIRE(p.wait_readable());
    CHECK(p.ours->read_some(asio::buffer(buf), ec) == 5);
    CHECK_FALSE(ec);
    CHECK(std::string_view(buf.data(), 5) == "hello");
    // A short read drained it: had the peer's FIN come with the data, the edge would have said so.
    CHECK(p.ours->short_reads_drain());
    CHECK_FALSE(p.ours->may_have_input());
    CHECK(p.ours->read_some(asio::buffer(buf), ec) == 0);
    CHECK(ec == asio::error::would_block);
    CHECK(counted.recv.load() - before == 2);
}

TEST_CASE("after a short read, data and the end of input that arrive later each raise an edge") {
    uncounted_thread = std::thread::id{};
    Pair p;
    p.settle();
    std::array<char, 64> buf{};
    std::error_code ec;
    const long before = counted.recv.load();
    for (const std::string_view chunk : {"ab", "cde"}) {
        asio::write(p.peer, asio::buffer(chunk));
        REQUIRE(p.wait_readable());
        CHECK(p.ours->read_some(asio::buffer(buf), ec) == chunk.size());
        CHECK(std::string_view(buf.data(), chunk.size()) == chunk);
        CHECK_FALSE(p.ours->may_have_input());
    }
    CHECK(counted.recv.load() - before == 2);  // one read per chunk, none that finds nothing
    p.peer.shutdown(asio::ip::tcp::socket::shutdown_send);
    REQUIRE(p.wait_readable());
    p.ours->read_some(asio::buffer(buf), ec);
    CHECK(ec == asio::error::eof);
}

TEST_CASE("an edge socket sees the end of input that came with the last data") {
    uncounted_thread = std::thread::id{};
    Pair p;
    p.settle();
    asio::write(p.peer, asio::buffer("bye", 3));
    p.peer.shutdown(asio::ip::tcp::socket::shutdown_send);  // data and FIN, one edge
    std::this_thread::sleep_for(20ms);
    REQUIRE(p.wait_readable());
    std::array<char, 64> buf{};
    std::error_code ec;
    CHECK(p.ours->read_some(asio::buffer(buf), ec) == 3);
    CHECK_FALSE(ec);
    CHECK(p.ours->may_have_input());           // the edge reported the FIN: the short read did not drain
    p.ours->read_some(asio::buffer(buf), ec);  // without waiting: no edge will come for the FIN
    CHECK(ec == asio::error::eof);
}

TEST_CASE("an edge socket's wait completes on data that arrives while it waits, and only then") {
    uncounted_thread = std::thread::id{};
    Pair p;
    p.settle();
    std::array<char, 64> buf{};
    std::error_code ec;
    bool woke = false;
    p.ours->async_wait_readable([&](std::error_code e) { woke = !e; });
    for (int i = 0; i < 20; ++i) {  // 200 ms of running with nothing to read
        p.ctx.restart();
        p.ctx.run_for(10ms);
    }
    CHECK_FALSE(woke);
    asio::write(p.peer, asio::buffer("x", 1));
    REQUIRE(p.run_until([&] { return woke; }));
    CHECK(p.ours->read_some(asio::buffer(buf), ec) == 1);
}

TEST_CASE("an edge socket sees data that came between an empty read and the next wait") {
    uncounted_thread = std::thread::id{};
    Pair p;
    std::array<char, 64> buf{};
    std::error_code ec;
    asio::write(p.peer, asio::buffer("ab", 2));
    REQUIRE(p.wait_readable());
    REQUIRE(p.ours->read_some(asio::buffer(buf), ec) == 2);
    REQUIRE(p.ours->read_some(asio::buffer(buf), ec) == 0);  // empty: drained
    asio::write(p.peer, asio::buffer("cd", 2));               // arrives before anyone waits
    std::this_thread::sleep_for(20ms);
    REQUIRE(p.wait_readable());
    CHECK(p.ours->read_some(asio::buffer(buf), ec) == 2);
    CHECK(std::string_view(buf.data(), 2) == "cd");
}

TEST_CASE("a full read leaves the socket to be read again; end of input and close end a wait") {
    uncounted_thread = std::thread::id{};
    Pair p;
    std::array<char, 4> small{};
    std::error_code ec;
    asio::write(p.peer, asio::buffer("0123456789", 10));
    REQUIRE(p.wait_readable());
    CHECK(p.ours->read_some(asio::buffer(small), ec) == 4);
    CHECK(p.ours->may_have_input());  // filled the buffer: there may be more, and there is
    CHECK(p.ours->read_some(asio::buffer(small), ec) == 4);
    CHECK(p.ours->read_some(asio::buffer(small), ec) == 2);
    CHECK(p.ours->read_some(asio::buffer(small), ec) == 0);
    CHECK_FALSE(p.ours->may_have_input());

    p.peer.shutdown(asio::ip::tcp::socket::shutdown_send);
    REQUIRE(p.wait_readable());
    p.ours->read_some(asio::buffer(small), ec);
    CHECK(ec == asio::error::eof);

    Pair q;
    q.settle();
    std::error_code aborted;
    bool done = false;
    q.ours->async_wait_readable([&](std::error_code e) {
        aborted = e;
        done = true;
    });
    q.ours->close();
    REQUIRE(q.run_until([&] { return done; }));
    CHECK(aborted == asio::error::operation_aborted);
}

#if SWIRL_EDGE_WAIT
namespace {

/// What a parked reader's callback saw (`ParkedReader::Callback`): `host` points at one of these.
struct ParkedCall {
    int calls = 0;
    std::error_code ec;
    std::shared_ptr<void> owner;

    static void record(void* host, std::shared_ptr<void>&& owner, std::error_code ec) {
        auto& call = *static_cast<ParkedCall*>(host);
        ++call.calls;
        call.ec = ec;
        call.owner = std::move(owner);
    }
};

/// Runs `p`'s context for ~`span`, with nothing else to wait for (the reactor still sees every edge).
void run_for(Pair& p, std::chrono::milliseconds span) {
    const auto guard = asio::make_work_guard(p.ctx);
    for (auto left = span; left > 0ms; left -= 10ms) {
        p.ctx.restart();
        p.ctx.run_for(10ms);
    }
}

} // namespace

TEST_CASE("a parked reader is called once data arrives, with its owner, and only then") {
    uncounted_thread = std::thread::id{};
    Pair p(ASIO_CONCURRENCY_HINT_UNSAFE_IO);
    p.settle();
    ParkedCall call;
    auto owner = std::make_shared<int>(7);
    const std::weak_ptr<int> watch = owner;
    REQUIRE(p.ours->park(&ParkedCall::record, &call, owner));
    CHECK(p.ours->parked());
    CHECK(owner == nullptr);      // the socket holds it meanwhile
    CHECK_FALSE(watch.expired());
    p.ctx.restart();
    p.ctx.poll();
    CHECK_FALSE(p.ctx.stopped());  // a parked reader is outstanding work, as a pending wait is
    run_for(p, 100ms);
    CHECK(call.calls == 0);

    const long before = counted.recv.load();
    asio::write(p.peer, asio::buffer("hello", 5));
    REQUIRE(p.run_until([&] { return call.calls != 0; }));
    CHECK(call.calls == 1);
    CHECK_FALSE(call.ec);
    CHECK(call.owner.get() == watch.lock().get());
    CHECK_FALSE(p.ours->parked());
    std::array<char, 64> buf{};
    std::error_code ec;
    CHECK(p.ours->read_some(asio::buffer(buf), ec) == 5);
    CHECK(std::string_view(buf.data(), 5) == "hello");
    CHECK_FALSE(p.ours->may_have_input());  // a short read drained it, as after a wait
    CHECK(counted.recv.load() - before == 1);

    // Parks again, and the end of input calls it too (and says so: the next read does not stop at a short one).
    owner = std::static_pointer_cast<int>(std::move(call.owner));
    REQUIRE(p.ours->park(&ParkedCall::record, &call, owner));
    p.peer.shutdown(asio::ip::tcp::socket::shutdown_send);
    REQUIRE(p.run_until([&] { return call.calls == 2; }));
    CHECK_FALSE(call.ec);
    p.ours->read_some(asio::buffer(buf), ec);
    CHECK(ec == asio::error::eof);
}

TEST_CASE("a reader does not park over an edge the reactor saw since the socket was drained, nor with socket locks") {
    uncounted_thread = std::thread::id{};
    SUBCASE("an edge since the last empty read: a wait completes at once instead") {
        Pair p(ASIO_CONCURRENCY_HINT_UNSAFE_IO);
        p.settle();
        asio::write(p.peer, asio::buffer("x", 1));
        std::this_thread::sleep_for(20ms);
        run_for(p, 20ms);  // the reactor sees the edge, with nothing waiting
        ParkedCall call;
        auto owner = std::make_shared<int>(1);
        CHECK_FALSE(p.ours->park(&ParkedCall::record, &call, owner));
        CHECK(owner != nullptr);  // left as it was
        CHECK_FALSE(p.ours->parked());
        REQUIRE(p.wait_readable());
    }
    SUBCASE("Asio's per-socket locks") {
        Pair p(1);
        p.settle();
        ParkedCall call;
        auto owner = std::make_shared<int>(1);
        CHECK_FALSE(p.ours->park(&ParkedCall::record, &call, owner));
        CHECK(owner != nullptr);
    }
}

TEST_CASE("closing or cancelling the socket calls a parked reader with operation_aborted; dropping it calls nothing") {
    uncounted_thread = std::thread::id{};
    Pair p(ASIO_CONCURRENCY_HINT_UNSAFE_IO);
    p.settle();
    ParkedCall call;
    auto owner = std::make_shared<int>(3);
    const std::weak_ptr<int> watch = owner;

    REQUIRE(p.ours->park(&ParkedCall::record, &call, owner));
    p.ours->cancel();
    CHECK(call.calls == 0);  // posted, not called inside cancel()
    REQUIRE(p.run_until([&] { return call.calls == 1; }));
    CHECK(call.ec == asio::error::operation_aborted);
    CHECK(p.ours->is_open());

    owner = std::static_pointer_cast<int>(std::move(call.owner));
    REQUIRE(p.ours->park(&ParkedCall::record, &call, owner));
    p.ours->drop_parked();
    CHECK_FALSE(p.ours->parked());
    CHECK(watch.expired());  // the socket let go of the only owner
    run_for(p, 20ms);
    CHECK(call.calls == 1);

    owner = std::make_shared<int>(4);
    REQUIRE(p.ours->park(&ParkedCall::record, &call, owner));
    std::error_code ec;
    p.ours->close(ec);
    CHECK_FALSE(ec);
    REQUIRE(p.run_until([&] { return call.calls == 2; }));
    CHECK(call.ec == asio::error::operation_aborted);
}

TEST_CASE("a parked reader and a pending write wait on one socket both complete, each on its own edge") {
    uncounted_thread = std::thread::id{};
    Pair p(ASIO_CONCURRENCY_HINT_UNSAFE_IO);
    p.settle();
    // Fill our side's send buffer and the peer's receive buffer, so that a write wait stays pending.
    std::vector<char> block(64 * 1024, 'z');
    std::size_t sent = 0;
    for (;;) {
        std::error_code ec;
        const std::size_t n = p.ours->write_some(asio::buffer(block), ec);
        if (ec == asio::error::would_block) break;
        REQUIRE_FALSE(ec);
        sent += n;
    }
    bool writable = false;
    p.ours->async_wait(asio::socket_base::wait_write, [&](std::error_code e) { writable = !e; });
    ParkedCall call;
    auto owner = std::make_shared<int>(5);
    REQUIRE(p.ours->park(&ParkedCall::record, &call, owner));
    run_for(p, 50ms);
    CHECK_FALSE(writable);
    CHECK(call.calls == 0);

    asio::write(p.peer, asio::buffer("in", 2));  // input only: the reader goes on, the write waits on
    REQUIRE(p.run_until([&] { return call.calls == 1; }));
    CHECK_FALSE(call.ec);
    CHECK_FALSE(writable);
    std::array<char, 8> buf{};
    std::error_code ec;
    CHECK(p.ours->read_some(asio::buffer(buf), ec) == 2);

    // Parked again; the peer drains what we sent: the write wait completes, and the reader stays parked.
    owner = std::static_pointer_cast<int>(std::move(call.owner));
    REQUIRE(p.ours->park(&ParkedCall::record, &call, owner));
    std::vector<char> sink(sent);
    asio::read(p.peer, asio::buffer(sink));
    REQUIRE(p.run_until([&] { return writable; }));
    run_for(p, 20ms);
    CHECK(call.calls == 1);
    CHECK(p.ours->parked());
    asio::write(p.peer, asio::buffer("!", 1));
    REQUIRE(p.run_until([&] { return call.calls == 2; }));
    CHECK_FALSE(call.ec);
}

namespace {

/// `count` connected pairs on one context, as a server loop's (no per-socket locks), each drained and parked with a
/// callback that records the order of calls and posts a handler of its own.
struct ParkedMany {
    struct Reader {
        ParkedMany* all = nullptr;
        int index = 0;
    };
    asio::io_context ctx{ASIO_CONCURRENCY_HINT_UNSAFE_IO};
    std::vector<asio::ip::tcp::socket> peers;
    std::vector<std::optional<EdgeSocket>> ours;
    std::vector<Reader> readers;
    std::vector<std::string> log;  // "r<i>": reader i called; "p<i>": the handler it posted ran; "a<i>": aborted
    int throw_at = 0;              // the call (1st, 2nd...) that throws; 0: none
    bool post = true;              // each reader posts a handler
    bool repark = false;           // each reader drains its socket and parks again

    explicit ParkedMany(int count) : ours(static_cast<std::size_t>(count)), readers(static_cast<std::size_t>(count)) {
        asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0});
        for (int i = 0; i < count; ++i) {
            peers.emplace_back(ctx).connect(acceptor.local_endpoint());
            ours[static_cast<std::size_t>(i)].emplace(acceptor.accept());
            readers[static_cast<std::size_t>(i)] = {this, i};
        }
        for (auto& socket : ours) {
            std::array<char, 8> buf{};
            std::error_code ec;
            socket->read_some(asio::buffer(buf), ec);
            REQUIRE(ec == asio::error::would_block);
        }
        for (std::size_t i = 0; i < ours.size(); ++i) {
            auto owner = std::make_shared<int>(static_cast<int>(i));
            REQUIRE(ours[i]->park(&ParkedMany::called, &readers[i], owner));
        }
    }

    static void called(void* host, std::shared_ptr<void>&& owner, std::error_code ec) {
        auto& reader = *static_cast<Reader*>(host);
        ParkedMany& all = *reader.all;
        if (ec) {
            CHECK(ec == asio::error::operation_aborted);
            all.log.push_back("a" + std::to_string(reader.index));
            return;
        }
        all.log.push_back("r" + std::to_string(reader.index));
        if (all.repark) {
            EdgeSocket& socket = *all.ours[static_cast<std::size_t>(reader.index)];
            std::array<char, 64> buf{};
            std::error_code read_error;
            while (!read_error) socket.read_some(asio::buffer(buf), read_error);
            REQUIRE(read_error == asio::error::would_block);
            REQUIRE(socket.park(&ParkedMany::called, &reader, owner));
        }
        if (static_cast<int>(all.log.size()) == all.throw_at) throw std::runtime_error("reader");
        if (all.post) asio::post(all.ctx, [&all, i = reader.index] { all.log.push_back("p" + std::to_string(i)); });
    }

    /// Input on every socket, and time for it to arrive, so that one `epoll_wait` reports them all.
    void send_all() {
        for (auto& peer : peers) asio::write(peer, asio::buffer("x", 1));
        std::this_thread::sleep_for(20ms);
    }

    int count(char kind) const {
        const auto of_kind = [&](const std::string& e) { return e[0] == kind; };
        return static_cast<int>(std::count_if(log.begin(), log.end(), of_kind));
    }
};

} // namespace

TEST_CASE("readers parked on sockets one epoll_wait reports run one after another, and the work count stays right") {
    uncounted_thread = std::thread::id{};
    for (const bool post : {true, false}) {  // the work each finishes counted against posted work, or on its own
        CAPTURE(post);
        ParkedMany m(4);
        m.post = post;
        m.send_all();
        // No work guard: run() returns once nothing is parked or queued, which it does only if each reader's unit
        // of work was counted finished exactly once (more would have stopped it early, fewer keep it running).
        m.ctx.run_for(2s);
        CHECK(m.ctx.stopped());
        CHECK(m.count('r') == 4);
        CHECK(m.count('p') == (post ? 4 : 0));
        // Posts queue behind the sockets reported with them.
        for (std::size_t i = 0; i < 4; ++i) CHECK(m.log.at(i)[0] == 'r');
    }
}

TEST_CASE("readers that park again from their callbacks stay outstanding work until their sockets close") {
    // Parks made from the readers run one after another (`run_ready_descriptors`), each counted as outstanding work:
    // run() must neither stop while they are parked nor keep running once they are gone.
    uncounted_thread = std::thread::id{};
    ParkedMany m(4);
    m.post = false;
    m.repark = true;
    for (int round = 1; round <= 3; ++round) {
        m.send_all();
        m.ctx.restart();
        m.ctx.run_for(100ms);
        CHECK_FALSE(m.ctx.stopped());
        CHECK(m.count('r') == 4 * round);
    }
    for (auto& socket : m.ours) socket->close();
    m.ctx.restart();
    m.ctx.run_for(2s);
    CHECK(m.ctx.stopped());
    CHECK(m.count('a') == 4);
}

TEST_CASE("a reader that throws leaves the sockets reported with it for the next run") {
    uncounted_thread = std::thread::id{};
    for (const int throw_at : {1, 2, 4}) {  // the scheduler's own first operation, one run in the batch, the last
        CAPTURE(throw_at);
        ParkedMany m(4);
        m.throw_at = throw_at;
        m.send_all();
        CHECK_THROWS_AS(m.ctx.run_for(2s), std::runtime_error);
        CHECK(m.count('r') == throw_at);
        m.ctx.restart();
        m.ctx.run_for(2s);
        CHECK(m.ctx.stopped());  // and the work count is still right
        CHECK(m.count('r') == 4);
        CHECK(m.count('p') == 3);  // each reader but the one that threw posted one
    }
}
#endif

namespace {

/// A blocking WebSocket client on plain POSIX sockets, so that it makes no Asio calls of its own.
class BlockingClient {
public:
    explicit BlockingClient(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        const int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const std::string request = test::upgrade_request();
        send_all(request.data(), request.size());
        std::string response;
        char ch = 0;
        while (response.find("\r\n\r\n") == std::string::npos && ::recv(fd_, &ch, 1, 0) == 1) response += ch;
        REQUIRE(response.rfind("HTTP/1.1 101", 0) == 0);
    }
    ~BlockingClient() { ::close(fd_); }

    /// Sends a masked binary frame of `size` (≤ 125) bytes and reads its echo.
    void echo(std::size_t size) {
        std::array<unsigned char, 2 + 4 + 125> frame{};
        frame[0] = 0x82;
        frame[1] = static_cast<unsigned char>(0x80 | size);  // mask key 0: payload as is
        send_all(frame.data(), 6 + size);
        std::array<unsigned char, 2 + 125> reply{};
        recv_all(reply.data(), 2 + size);
        REQUIRE(reply[0] == 0x82);
        REQUIRE(reply[1] == size);
    }

    /// Sends `count` masked binary frames of `size` (126 to 65535) bytes in one write, then reads their echoes.
    void echo_burst(int count, std::size_t size) {
        std::vector<unsigned char> frames;
        for (int i = 0; i < count; ++i) {
            const unsigned char header[8] = {0x82, 0x80 | 126, static_cast<unsigned char>(size >> 8),
                                             static_cast<unsigned char>(size & 0xFF), 0, 0, 0, 0};  // mask key 0
            frames.insert(frames.end(), header, header + 8);
            frames.resize(frames.size() + size, static_cast<unsigned char>('a' + i % 26));
        }
        send_all(frames.data(), frames.size());
        std::vector<unsigned char> replies(static_cast<std::size_t>(count) * (4 + size));
        recv_all(replies.data(), replies.size());
        for (int i = 0; i < count; ++i) {
            const unsigned char* reply = replies.data() + static_cast<std::size_t>(i) * (4 + size);
            REQUIRE(reply[0] == 0x82);
            REQUIRE(reply[1] == 126);
            REQUIRE(reply[4 + size - 1] == static_cast<unsigned char>('a' + i % 26));
        }
    }

    /// Closes as a client should: a close frame (1000), the server's close frame, the server's FIN, then its own.
    void close_handshake() {
        const unsigned char frame[8] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8};  // mask key 0
        send_all(frame, sizeof frame);
        unsigned char reply[4] = {};
        recv_all(reply, sizeof reply);
        REQUIRE(reply[0] == 0x88);
        char ch = 0;
        REQUIRE(::recv(fd_, &ch, 1, 0) == 0);
    }

private:
    void send_all(const void* data, std::size_t n) { REQUIRE(::send(fd_, data, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n)); }
    void recv_all(void* data, std::size_t n) {
        std::size_t got = 0;
        while (got < n) {
            const ssize_t r = ::recv(fd_, static_cast<char*>(data) + got, n - got, 0);
            REQUIRE(r > 0);
            got += static_cast<std::size_t>(r);
        }
    }
    int fd_;
};

} // namespace

TEST_CASE("an echo with one message in flight costs the server one recv and no epoll_ctl per message") {
    swirl::Server<int> server(test::local_settings());
    server.on_message([](swirl::Server<int>::Connection& c, swirl::Frame& f) { c.send(std::move(f.payload), f.opcode); });
    test::RunningServer running(server);
    uncounted_thread = std::this_thread::get_id();
    BlockingClient client(running.port());
    for (int i = 0; i < 50; ++i) client.echo(20);  // settled
    const long recv_before = counted.recv.load(), ctl_before = counted.epoll_ctl.load();
    constexpr int messages = 2000;
    for (int i = 0; i < messages; ++i) client.echo(20);
    const long recvs = counted.recv.load() - recv_before, ctls = counted.epoll_ctl.load() - ctl_before;
    MESSAGE("per message: ", static_cast<double>(recvs) / messages, " recv, ", static_cast<double>(ctls) / messages,
            " epoll_ctl");
    // The read that finds the message; one that finds nothing only when an edge came while a message was read.
    CHECK(recvs <= messages + messages / 20);
    CHECK(ctls == 0);
}

TEST_CASE("a connection's life costs the server one accept4, two epoll_ctl and three recv: no ioctl, EPOLL_CTL_DEL, getpeername or timer re-arming") {
    auto settings = test::local_settings();
    settings.close_timeout = 60s;  // no deadline comes while the test runs, however slowly (sanitizers)
    settings.handshake_timeout = 60s;
    swirl::Server<int> server(settings);
    server.on_message([](swirl::Server<int>::Connection& c, swirl::Frame& f) { c.send(std::move(f.payload), f.opcode); });
    test::RunningServer running(server);
    uncounted_thread = std::this_thread::get_id();
    const auto life = [&] {
        {
            BlockingClient client(running.port());
            client.echo(20);
            client.close_handshake();
        }
        REQUIRE(test::eventually([&] { return server.connection_count() == 0; }));
    };
    life();  // the first arms the loop's deadline timer
    const long ctl = counted.epoll_ctl.load(), del = counted.epoll_ctl_del.load(),
               timer = counted.timerfd_settime.load(), peer = counted.getpeername.load(), recv = counted.recv.load(),
               ioctls = counted.ioctl.load(), accepts = counted.accept.load(), accept4s = counted.accept4.load(),
               flagged = counted.accept4_nonblocking_cloexec.load();
    constexpr int connections = 20;
    for (int i = 0; i < connections; ++i) life();
    const long ctls = counted.epoll_ctl.load() - ctl, recvs = counted.recv.load() - recv;
    MESSAGE("per connection: ", static_cast<double>(ctls) / connections, " epoll_ctl, ",
            static_cast<double>(recvs) / connections, " recv");
    CHECK(ctls == 2 * connections);  // EPOLL_CTL_ADD by Asio, then EPOLLRDHUP added at the first wait
    // The request, the message and the close frame, each read once it is there: the server waits for the request
    // instead of reading a socket that has just connected, and no read comes back empty.
    CHECK(recvs == 3 * connections);
    CHECK(counted.epoll_ctl_del.load() == del);  // an accepted descriptor leaves epoll when closed
    CHECK(counted.getpeername.load() == peer);  // the peer's address comes with accept
    // Deadlines came later than the one the timer waits for: no connection moved it.
    CHECK(counted.timerfd_settime.load() == timer);
    // Accepted non-blocking and close-on-exec in one call: no ioctl(FIONBIO), no Asio accept.
    CHECK(counted.accept4.load() - accept4s == connections);
    CHECK(counted.accept4_nonblocking_cloexec.load() - flagged == connections);
    CHECK(counted.accept.load() == accepts);
    CHECK(counted.ioctl.load() == ioctls);
}

TEST_CASE("Settings::read_size bounds each read; the default takes a burst of large messages in a few reads") {
    constexpr int count = 16;
    constexpr std::size_t size = 16 * 1024;
    const auto reads_for_burst = [&](swirl::Settings settings) {
        swirl::Server<int> server(settings);
        server.on_message([](swirl::Server<int>::Connection& c, swirl::Frame& f) { c.send(std::move(f.payload), f.opcode); });
        test::RunningServer running(server);
        uncounted_thread = std::this_thread::get_id();
        BlockingClient client(running.port());
        client.echo(20);
        const long before = counted.recv.load();
        client.echo_burst(count, size);
        return counted.recv.load() - before;
    };
    auto small = test::local_settings();
    small.read_size = 16 * 1024;
    const long small_reads = reads_for_burst(small);
    auto paused = test::local_settings();
    paused.pause_reading_above = 20000;  // reads take at most this much
    const long paused_reads = reads_for_burst(paused);
    const long default_reads = reads_for_burst(test::local_settings());
    MESSAGE("reads for 16 x 16 KiB: ", small_reads, " with read_size 16 KiB, ", paused_reads,
            " with pause_reading_above 20000, ", default_reads, " by default");
    const long burst_bytes = count * static_cast<long>(size + 8);
    CHECK(small_reads >= burst_bytes / (16 * 1024));
    CHECK(paused_reads >= burst_bytes / 20000);
    CHECK(default_reads <= small_reads / 2);
}

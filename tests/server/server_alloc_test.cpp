// The steady-state echo path allocates nothing: global operator new is replaced to count allocations made on the
// server's thread while a raw-socket client echoes 10,000 messages after a warm-up. Own executable, because the
// replacement applies to the whole program.

// Asio takes its recycled blocks (coroutine frames, operations) from aligned_alloc, which the replaced operator new
// would not see; without it they come from operator new and are counted too.
#define ASIO_DISABLE_STD_ALIGNED_ALLOC 1

#include "counting_new.hpp"
#include "doctest.hpp"

#include <swirl.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <future>
#include <new>
#include <optional>
#include <string>

namespace {
std::atomic<std::size_t> allocations{0};
thread_local bool counting = false;
} // namespace

void* test::counted_allocate(std::size_t size, std::size_t alignment) {
    if (counting) allocations.fetch_add(1, std::memory_order_relaxed);
    return plain_allocate(size, alignment);
}

namespace {

/// A blocking client on a plain socket: nothing it does is counted (it runs on the test's thread).
class RawClient {
public:
    explicit RawClient(std::uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        write_all("GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        std::string head;
        while (head.find("\r\n\r\n") == std::string::npos) {
            char c;
            REQUIRE(::read(fd_, &c, 1) == 1);
            head += c;
        }
        REQUIRE(head.rfind("HTTP/1.1 101", 0) == 0);
    }
    ~RawClient() { ::close(fd_); }

    void write_all(std::string_view bytes) {
        while (!bytes.empty()) {
            const auto n = ::write(fd_, bytes.data(), bytes.size());
            REQUIRE(n > 0);
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    std::string read_exactly(std::size_t size) {
        std::string bytes(size, '\0');
        std::size_t have = 0;
        while (have < size) {
            const auto n = ::read(fd_, bytes.data() + have, size - have);
            REQUIRE(n > 0);
            have += static_cast<std::size_t>(n);
        }
        return bytes;
    }

private:
    int fd_ = -1;
};

/// A masked client frame carrying `payload`.
std::string client_frame(const std::string& payload, swirl::Opcode opcode) {
    swirl::FrameHeader h;
    h.opcode = opcode;
    h.masked = true;
    h.mask = {0x12, 0x34, 0x56, 0x78};
    h.payload_length = payload.size();
    std::uint8_t header[swirl::max_frame_header_size];
    const std::size_t n = swirl::encode_frame_header(header, h);
    std::string frame(reinterpret_cast<const char*>(header), n);
    std::string masked = payload;
    swirl::apply_mask(masked.data(), masked.size(), h.mask);
    return frame + masked;
}

/// Sends `request` (a client frame) `messages` times, `depth` in flight, expecting `reply` to each; returns the
/// allocations per 1,000 messages made on the server's thread after a warm-up.
double allocations_per_thousand(swirl::Server<>& server, const std::string& request, const std::string& reply,
                                std::size_t depth, int messages, const std::string& label) {
    server.start();
    std::promise<void> armed;
    asio::post(server.context(), [&armed] {
        counting = true;
        armed.set_value();
    });
    armed.get_future().wait();

    std::optional<RawClient> connected(std::in_place, server.local_endpoint().port());
    RawClient& client = *connected;
    std::string batch;
    std::string replies;
    for (std::size_t i = 0; i < depth; ++i) {
        batch += request;
        replies += reply;
    }
    const auto echo = [&](int count) {
        for (int sent = 0; sent < count; sent += static_cast<int>(depth)) {
            client.write_all(batch);
            const std::string got = client.read_exactly(replies.size());
            REQUIRE(got == replies);
        }
    };
    echo(std::min(messages, 2000));  // warm-up: buffers and Asio's recycled blocks reach their working size
    const std::size_t before = allocations.load();
    echo(messages);
    const std::size_t during = allocations.load() - before;
    connected.reset();  // hang up first: stop() would otherwise wait close_timeout for a client that never answers
    server.stop();
    server.wait();
    MESSAGE(label, ": ", during, " allocations in ", messages, " messages");
    return 1000.0 * static_cast<double>(during) / messages;
}

swirl::Settings quiet_settings() {
    swirl::Settings settings;
    settings.port = 0;
    settings.log_level = swirl::LogLevel::off;
    return settings;
}

enum class Handler {
    coroutine,  ///< copies the payload into send()
    plain,      ///< the same, as a plain function
    moving,     ///< a plain function moving the payload into send()
};

/// Echoes `messages` messages of `size` bytes, `depth` in flight at a time, through a coroutine or plain handler.
double allocations_per_thousand(std::size_t size, std::size_t depth, swirl::Opcode opcode,
                                Handler handler = Handler::coroutine, int messages = 10000) {
    swirl::Server<> server(quiet_settings());
    if (handler == Handler::plain) {
        server.on_message([](auto& connection, swirl::Frame& frame) { connection.send(frame.payload, frame.opcode); });
    } else if (handler == Handler::moving) {
        server.on_message([](auto& connection, swirl::Frame& frame) {
            connection.send(std::move(frame.payload), frame.opcode);
        });
    } else {
        server.on_message([](auto& connection, swirl::Frame& frame) -> asio::awaitable<void> {
            connection.send(frame.payload, frame.opcode);
            co_return;
        });
    }
    std::string payload(size, 'x');
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + i % 26);
    return allocations_per_thousand(server, client_frame(payload, opcode), swirl::pack(payload, opcode), depth, messages,
                                    std::to_string(size) + " B echo, depth " + std::to_string(depth) +
                                        (handler == Handler::plain    ? ", plain handler"
                                         : handler == Handler::moving ? ", plain handler moving the payload"
                                                                      : ""));
}

using TextCtx = swirl::Context<swirl::TextParser, swirl::Server<>::Connection>;

struct Words {
    asio::awaitable<swirl::TextReply> first(TextCtx& ctx) { co_return swirl::TextReply::ok(std::string(ctx.args().at(0))); }
};

} // namespace

TEST_CASE("echo path: at most 1 allocation per 1,000 messages after warm-up") {
    CHECK(allocations_per_thousand(20, 1, swirl::Opcode::text) <= 1.0);
    CHECK(allocations_per_thousand(512, 1, swirl::Opcode::binary) <= 1.0);
    CHECK(allocations_per_thousand(16384, 1, swirl::Opcode::binary) <= 1.0);
    CHECK(allocations_per_thousand(20, 16, swirl::Opcode::text) <= 1.0);
    CHECK(allocations_per_thousand(512, 16, swirl::Opcode::binary) <= 1.0);
    CHECK(allocations_per_thousand(512, 1, swirl::Opcode::binary, Handler::plain) <= 1.0);
    CHECK(allocations_per_thousand(512, 16, swirl::Opcode::binary, Handler::plain) <= 1.0);
    CHECK(allocations_per_thousand(16384, 16, swirl::Opcode::binary, Handler::plain) <= 1.0);
    // A moved payload is written from its own buffer, which then receives a later message: still nothing allocated.
    CHECK(allocations_per_thousand(512, 16, swirl::Opcode::binary, Handler::moving) <= 1.0);
    CHECK(allocations_per_thousand(16384, 1, swirl::Opcode::binary, Handler::moving) <= 1.0);
    CHECK(allocations_per_thousand(16384, 16, swirl::Opcode::binary, Handler::moving) <= 1.0);
    // Over the 64 KiB a waiting connection may keep: its buffer waits in the loop's pool, not freed and reallocated.
    CHECK(allocations_per_thousand(80 * 1024, 1, swirl::Opcode::binary, Handler::moving, 300) <= 1.0);
}

TEST_CASE("dispatcher path: the only allocation per message is the parser's argument list") {
    // TextParser allocates the vector of argument views; the dispatcher itself adds one coroutine frame (its runner)
    // to the action's, and Asio's per-thread cache recycles both.
    swirl::Server<> server(quiet_settings());
    swirl::Dispatcher<TextCtx, swirl::Controller<Words, "Index", swirl::Action<"first", &Words::first>>> dispatcher;
    server.use(dispatcher);
    const std::string request = client_frame("first hello", swirl::Opcode::text);
    const std::string reply = swirl::pack("hello", swirl::Opcode::text);
    CHECK(allocations_per_thousand(server, request, reply, 1, 10000, "dispatcher, depth 1") <= 1001.0);
    swirl::Server<> pipelined(quiet_settings());
    pipelined.use(dispatcher);
    CHECK(allocations_per_thousand(pipelined, request, reply, 16, 10000, "dispatcher, depth 16") <= 1001.0);
}

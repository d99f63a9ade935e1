// The steady-state echo path allocates nothing: global operator new is replaced to count allocations made on the
// server's thread while a raw-socket client echoes 4,000 messages after a warm-up (at depth 1 each is a round trip,
// ~0.6 ms here). Own executable, because the replacement applies to the whole program.

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
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <new>
#include <optional>
#include <string>
#include <string_view>

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
    explicit RawClient(std::uint16_t port, std::string_view extra_headers = {}) {
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
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                  std::string(extra_headers) + "\r\n");
        while (head_.find("\r\n\r\n") == std::string::npos) {
            char c;
            REQUIRE(::read(fd_, &c, 1) == 1);
            head_ += c;
        }
        REQUIRE(head_.rfind("HTTP/1.1 101", 0) == 0);
    }

    /// The Sec-WebSocket-Extensions value of the 101 response (empty when none).
    std::string extensions() const {
        const std::string name = "\r\nSec-WebSocket-Extensions: ";
        const auto at = head_.find(name);
        if (at == std::string::npos) return {};
        const auto from = at + name.size();
        return head_.substr(from, head_.find("\r\n", from) - from);
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
    std::string head_;
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
    // The raw client hangs up without a close handshake; stop() would otherwise wait up to 5 s for its close frame
    // whenever the server has not yet seen the hang-up (most of this test's run time, before).
    settings.close_timeout = std::chrono::milliseconds(200);
    return settings;
}

enum class Handler {
    coroutine,  ///< copies the payload into send()
    plain,      ///< the same, as a plain function
    moving,     ///< a plain function moving the payload into send()
};

/// Echoes `messages` messages of `size` bytes, `depth` in flight at a time, through a coroutine or plain handler.
double allocations_per_thousand(std::size_t size, std::size_t depth, swirl::Opcode opcode,
                                Handler handler = Handler::coroutine, int messages = 4000) {
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
    // Queued replies of 4 KiB and more: the queue's buffer goes to the loop's pool once written and comes back.
    CHECK(allocations_per_thousand(6000, 1, swirl::Opcode::binary) <= 1.0);
    CHECK(allocations_per_thousand(6000, 16, swirl::Opcode::binary) <= 1.0);
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
    CHECK(allocations_per_thousand(server, request, reply, 1, 4000, "dispatcher, depth 1") <= 1001.0);
    swirl::Server<> pipelined(quiet_settings());
    pipelined.use(dispatcher);
    CHECK(allocations_per_thousand(pipelined, request, reply, 16, 10000, "dispatcher, depth 16") <= 1001.0);
}

#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
namespace {

/// Echoes a compressed `size`-byte text message `messages` times, `depth` in flight, on a connection that agreed
/// permessage-deflate under `compression`; every reply must arrive compressed (RSV1) and inflate to the message.
/// Returns the allocations per 1,000 messages made on the server's thread after a warm-up.
double compressed_allocations_per_thousand(const swirl::CompressOptions& compression, std::size_t size, std::size_t depth,
                                           Handler handler, int messages = 4000) {
    swirl::Settings settings = quiet_settings();
    settings.compression = compression;
    swirl::Server<> server(settings);
    if (handler == Handler::plain) {
        server.on_message([](auto& connection, swirl::Frame& frame) { connection.send(frame.payload, frame.opcode); });
    } else {
        server.on_message([](auto& connection, swirl::Frame& frame) -> asio::awaitable<void> {
            connection.send(frame.payload, frame.opcode);
            co_return;
        });
    }
    std::string payload;
    for (std::uint32_t x = 7; payload.size() < size;) {
        x = x * 1103515245u + 12345u;
        payload += (x >> 28) == 0 ? ' ' : static_cast<char>('a' + (x >> 16) % 26);
    }
    server.start();
    std::promise<void> armed;
    asio::post(server.context(), [&armed] {
        counting = true;
        armed.set_value();
    });
    armed.get_future().wait();
    std::optional<RawClient> connected(std::in_place, server.local_endpoint().port(),
                                       "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    RawClient& client = *connected;
    // The client's side of the agreed parameters (its reads are not counted: they run on this thread).
    swirl::DeflateParams params = *swirl::parse_deflate_response(client.extensions());
    swirl::Inflater inflater = swirl::Inflater::for_client(params);
    // Each message from a fresh stream with the window the client agreed to: valid in every mode.
    swirl::Deflater client_deflater(params.client_window_bits(), true);
    std::string compressed;
    client_deflater.compress(payload, compressed);
    swirl::FrameHeader h;
    h.opcode = swirl::Opcode::text;
    h.rsv = swirl::rsv::rsv1;
    h.masked = true;
    h.mask = {0x12, 0x34, 0x56, 0x78};
    h.payload_length = compressed.size();
    std::uint8_t header[swirl::max_frame_header_size];
    const std::size_t n = swirl::encode_frame_header(header, h);
    std::string request(reinterpret_cast<const char*>(header), n);
    std::string masked = compressed;
    swirl::apply_mask(masked.data(), masked.size(), h.mask);
    request += masked;

    std::string batch;
    for (std::size_t i = 0; i < depth; ++i) batch += request;
    std::string out;
    const auto echo = [&](int count) {
        for (int sent = 0; sent < count; sent += static_cast<int>(depth)) {
            client.write_all(batch);
            for (std::size_t i = 0; i < depth; ++i) {
                const std::string head = client.read_exactly(2);
                REQUIRE(static_cast<std::uint8_t>(head[0]) == 0xC1);  // FIN, RSV1, text
                std::size_t length = static_cast<std::uint8_t>(head[1]);
                const std::size_t extended = length == 126 ? 2 : length == 127 ? 8 : 0;
                if (extended != 0) {
                    const std::string bytes = client.read_exactly(extended);
                    length = 0;
                    for (const char b : bytes) length = length * 256 + static_cast<std::uint8_t>(b);
                }
                const std::string body = client.read_exactly(length);
                out.clear();
                REQUIRE(inflater.inflate(body, true, out, 1u << 24) == swirl::InflateResult::ok);
                REQUIRE(out == payload);
            }
        }
    };
    echo(std::min(messages, 2000));
    const std::size_t before = allocations.load();
    echo(messages);
    const std::size_t during = allocations.load() - before;
    connected.reset();
    server.stop();
    server.wait();
    const std::string label = "compressed " + std::to_string(size) + " B echo, depth " + std::to_string(depth) + ", " +
                              (compression.compressor == swirl::CodecMode::shared ? "shared codecs"
                                                                                  : "dedicated codecs, window " +
                                                                                        std::to_string(compression.window_bits)) +
                              (handler == Handler::plain ? ", plain handler" : "");
    MESSAGE(label, ": ", during, " allocations in ", messages, " messages");
    return 1000.0 * static_cast<double>(during) / messages;
}

} // namespace

TEST_CASE("compressed echo path: at most 1 allocation per 1,000 messages after warm-up, in every memory mode") {
    swirl::CompressOptions shared;
    shared.enabled = true;
    swirl::CompressOptions dedicated = swirl::CompressOptions::dedicated(15, 8);
    dedicated.decompressor = swirl::CodecMode::dedicated;
    swirl::CompressOptions small = swirl::CompressOptions::dedicated(9, 1);
    small.decompressor = swirl::CodecMode::dedicated;
    small.client_window_bits = 9;
    CHECK(compressed_allocations_per_thousand(shared, 2048, 1, Handler::coroutine) <= 1.0);
    CHECK(compressed_allocations_per_thousand(shared, 2048, 16, Handler::plain) <= 1.0);
    CHECK(compressed_allocations_per_thousand(shared, 64 * 1024, 1, Handler::plain, 1000) <= 1.0);
    CHECK(compressed_allocations_per_thousand(dedicated, 2048, 1, Handler::coroutine) <= 1.0);
    CHECK(compressed_allocations_per_thousand(dedicated, 2048, 16, Handler::plain) <= 1.0);
    CHECK(compressed_allocations_per_thousand(small, 2048, 16, Handler::plain) <= 1.0);
}
#endif

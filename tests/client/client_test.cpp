// swirl's own client against scripted servers: it must refuse what a strict client refuses.
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

/// Accepts one connection, reads the upgrade request, answers with `respond(request)`, then writes `after`.
struct ScriptedServer {
    asio::io_context ctx;
    asio::ip::tcp::acceptor acceptor{ctx, {asio::ip::make_address("127.0.0.1"), 0}};
    std::thread thread;

    template <class Respond>
    ScriptedServer(Respond respond, std::string after = {}) {
        thread = std::thread([this, respond, after] {
            asio::ip::tcp::socket socket(ctx);
            acceptor.accept(socket);
            std::string request;
            char buf[4096];
            while (request.find("\r\n\r\n") == std::string::npos) {
                std::error_code ec;
                const auto n = socket.read_some(asio::buffer(buf), ec);
                if (ec) return;
                request.append(buf, n);
            }
            std::error_code ec;
            asio::write(socket, asio::buffer(respond(request) + after), ec);
            socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
            while (!ec) socket.read_some(asio::buffer(buf), ec);
        });
    }
    ~ScriptedServer() { thread.join(); }
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
};

std::string key_of(const std::string& request) {
    const auto at = request.find("Sec-WebSocket-Key: ") + 19;
    return request.substr(at, request.find("\r\n", at) - at);
}

std::string accept_response(const std::string& request) {
    return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
           swirl::accept_key(key_of(request)) + "\r\n\r\n";
}

} // namespace

TEST_CASE("client sends a valid upgrade request and reads frames that arrive with the 101") {
    std::string seen;
    ScriptedServer server([&](const std::string& request) { seen = request; return accept_response(request); },
                          swirl::pack("early") + swirl::pack(swirl::close_payload(1000, ""), swirl::Opcode::close));
    test::run([&]() -> asio::awaitable<void> {
        swirl::ClientOptions options;
        options.subprotocols = {"a", "b"};
        auto client = co_await swirl::Client::connect("127.0.0.1", server.port(), options);
        const auto f = co_await client.receive();
        REQUIRE(f);
        CHECK(f->payload == "early");
        const auto c = co_await client.receive();
        CHECK(c->opcode == swirl::Opcode::close);
    });
    swirl::RequestParser parser;
    REQUIRE(parser.feed(seen).status == swirl::RequestParser::Status::complete);
    CHECK(swirl::validate_upgrade(parser.request()) == swirl::HandshakeError::none);
    CHECK(parser.request().header("Sec-WebSocket-Protocol") == "a, b");
}

TEST_CASE("client rejects a wrong Sec-WebSocket-Accept") {
    ScriptedServer server([](const std::string&) {
        return std::string("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");  // right for the RFC key, not ours
    });
    test::run([&]() -> asio::awaitable<void> {
        bool rejected = false;
        try {
            co_await swirl::Client::connect("127.0.0.1", server.port());
        } catch (const swirl::HandshakeRejected&) {
            rejected = true;
        }
        CHECK(rejected);
    });
}

TEST_CASE("client reports a masked server frame as a protocol violation") {
    ScriptedServer server(accept_response, swirl::pack("masked", swirl::Opcode::text, true, swirl::MaskKey{1, 2, 3, 4}));
    test::run([&]() -> asio::awaitable<void> {
        auto client = co_await swirl::Client::connect("127.0.0.1", server.port());
        bool violation = false;
        try {
            co_await client.receive();
        } catch (const std::runtime_error&) {
            violation = true;
        }
        CHECK(violation);
    });
}

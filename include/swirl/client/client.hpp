#pragma once
/// A small coroutine WebSocket client: swirl's own peer for tests and tools. It speaks strict RFC 6455 through the
/// same sans-I/O reader as the server, and can also write raw bytes to probe a server's error handling. With
/// `ClientOptions::tls` set it speaks wss through `asio::ssl::stream` (needs SWIRL_TLS and OpenSSL 3). With
/// `ClientOptions::deflate` set it offers permessage-deflate (RFC 7692) and, when the server agrees, compresses what
/// it sends and inflates what it receives (needs SWIRL_HAS_DEFLATE, zlib).

#include <swirl/protocol/close_code.hpp>
#include <swirl/protocol/deflate.hpp>
#include <swirl/protocol/detail/base64.hpp>
#include <swirl/protocol/frame.hpp>
#include <swirl/protocol/handshake.hpp>
#include <swirl/protocol/http_response.hpp>
#include <swirl/protocol/message_reader.hpp>
#include <swirl/protocol/permessage_deflate.hpp>
#include <swirl/protocol/utf8.hpp>

#include <swirl/detail/asio.hpp>

#if SWIRL_TLS
#include <asio/ssl.hpp>
#endif

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace swirl {

/// Thrown by `Client::connect` when the server does not answer 101 with a correct accept key.
class HandshakeRejected : public std::runtime_error {
public:
    explicit HandshakeRejected(Response response)
        : std::runtime_error("WebSocket handshake rejected with HTTP " + std::to_string(response.status)),
          response_(std::move(response)) {}
    const Response& response() const noexcept { return response_; }

private:
    Response response_;
};

/// wss: how the client sets up TLS (`ClientOptions::tls`). Needs swirl built with TLS (SWIRL_TLS, OpenSSL 3).
struct ClientTls {
    std::string ca_file{};    ///< PEM: the CAs the server certificate is verified against (empty: the system's)
    std::string cert_file{};  ///< PEM: a client certificate chain to present (empty: none)
    std::string key_file{};   ///< PEM: its private key (empty: taken from `cert_file`)
    std::string server_name = "localhost";  ///< SNI, and the name (or IP address) the certificate must match
    bool verify = true;       ///< false: any server certificate is accepted (no CA or name check)
};

/// permessage-deflate from the client's side (`ClientOptions::deflate`).
struct ClientDeflate {
    /// What is offered (`client_max_window_bits` accepted by default, so the server may limit the client's window).
    DeflateOffer offer = default_offer();
    int level = 6;                    ///< zlib level of the client's compressor
    int mem_level = 8;                ///< zlib memLevel of the client's compressor
    std::size_t threshold = 0;        ///< messages shorter than this are sent uncompressed

    static DeflateOffer default_offer() noexcept {
        DeflateOffer o;
        o.accepts_client_max_window_bits = true;
        return o;
    }
};

struct ClientOptions {
    std::string target = "/";
    std::vector<Header> headers;            ///< extra request headers
    std::vector<std::string> subprotocols;  ///< offered, in order
    ReaderLimits limits{};
    bool auto_pong = true;  ///< answer pings (they are still returned by `receive`)
    std::optional<ClientTls> tls{};  ///< set: wss (TLS handshake after the TCP connect; without SWIRL_TLS,
                                     ///< `connect` throws std::logic_error); unset: plain ws
    /// set: offer permessage-deflate (without SWIRL_HAS_DEFLATE, `connect` throws std::logic_error); whether the
    /// server agreed is `Client::deflate()`. `limits.max_message_size` then bounds inflated messages.
    std::optional<ClientDeflate> deflate{};
};

/// One coroutine at a time may use a client: `receive` may write (pong, close reply), so concurrent `send` and
/// `receive` from different coroutines would interleave writes.
class Client {
public:
    using Options = ClientOptions;

    /// Connects and performs the opening handshake (after the TLS handshake with `options.tls`); throws
    /// `std::system_error` (a failed TLS handshake too, with OpenSSL's reason) or `HandshakeRejected`.
    static asio::awaitable<Client> connect(std::string host, std::uint16_t port) {
        return connect(std::move(host), port, Options{});
    }

    /// As above, with a target, extra headers and subprotocols. (No default argument: GCC 12 mishandles default
    /// arguments of coroutines.)
    static asio::awaitable<Client> connect(std::string host, std::uint16_t port, Options options) {
        auto executor = co_await asio::this_coro::executor;
        asio::ip::tcp::resolver resolver(executor);
        const auto endpoints = co_await resolver.async_resolve(host, std::to_string(port), asio::use_awaitable);
        asio::ip::tcp::socket socket(executor);
        co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
        socket.set_option(asio::ip::tcp::no_delay(true));
        Client client(make_stream(std::move(socket), options), options);
#if SWIRL_TLS
        if (options.tls) co_await client.tls_handshake(options.tls->server_name);
#endif
        // Named, not a temporary: GCC 12 destroys temporaries of a throwing co_await expression twice.
        const std::string authority = host + ":" + std::to_string(port);
        co_await client.handshake(authority, options);
        co_return client;
    }

    /// Sends one masked frame. With permessage-deflate agreed, a whole data message (`fin`, not a continuation)
    /// of at least the threshold is compressed (RSV1), unless `compress` is false.
    asio::awaitable<void> send(std::string_view data, Opcode opcode = Opcode::text, bool fin = true,
                               [[maybe_unused]] bool compress = true) {
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
        if (deflater_ && compress && fin && (opcode == Opcode::text || opcode == Opcode::binary) &&
            data.size() >= options_.deflate->threshold) {
            compressed_.clear();
            deflater_->compress(data, compressed_);
            const std::string frame = pack(compressed_, opcode, true, next_mask(), rsv::rsv1);  // named: see connect()
            co_await send_raw(frame);
            co_return;
        }
#endif
        const std::string frame = pack(data, opcode, fin, next_mask());  // named: see connect()
        co_await send_raw(frame);
    }

    /// Writes bytes as they are: for tests that need malformed frames.
    asio::awaitable<void> send_raw(std::string_view bytes) {
        co_await std::visit([&](auto& s) { return asio::async_write(s, asio::buffer(bytes), asio::use_awaitable); },
                            stream_);
    }

    /// The next message or control frame; nullopt once the connection has ended.
    /// A close frame from the server is answered and returned; a server protocol violation throws.
    asio::awaitable<std::optional<Frame>> receive() {
        while (true) {
            while (have_ != 0) {
                const auto r = reader_.read(std::span<const std::uint8_t>(buffer_.data(), have_));
                std::memmove(buffer_.data(), buffer_.data() + r.consumed, have_ - r.consumed);
                have_ -= r.consumed;
                switch (r.event) {
                case ReadEvent::need_more: break;
                case ReadEvent::error: throw std::runtime_error("server protocol violation: " + std::string(reader_.error_reason()));
                case ReadEvent::ping:
                    if (options_.auto_pong && !close_sent_) co_await send(reader_.frame().payload, Opcode::pong);
                    co_return reader_.frame();
                case ReadEvent::message:
                    if (reader_.frame().rsv != 0) inflate_message();
                    co_return reader_.frame();
                case ReadEvent::close:
                    if (!close_sent_) {
                        close_sent_ = true;
                        const auto& f = reader_.frame();
                        const std::string payload = close_payload(f.code, f.reason);
                        co_await send(payload, Opcode::close);
                    }
                    have_ = 0;
                    co_return reader_.frame();
                default: co_return reader_.frame();
                }
                if (r.event == ReadEvent::need_more) break;
            }
            std::error_code ec;
            have_ = co_await read_some(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return std::nullopt;
        }
    }

    /// Sends a close frame and reads until the server's close frame and end of stream; returns the server's frame.
    asio::awaitable<std::optional<Frame>> close(std::uint16_t code = close_code::normal, std::string_view reason = {}) {
        if (!close_sent_) {
            close_sent_ = true;
            const std::string payload = close_payload(code, reason);
            co_await send(payload, Opcode::close);
        }
        std::optional<Frame> reply;
        while (auto f = co_await receive())
            if (f->opcode == Opcode::close) reply = std::move(f);
        co_return reply;
    }

    const Response& handshake_response() const noexcept { return response_; }
    /// The permessage-deflate parameters the server agreed to; nullopt when it declined (or none was offered).
    const std::optional<DeflateParams>& deflate() const noexcept { return deflate_params_; }
    /// How many of the messages received so far arrived compressed (RSV1); `receive` hands them over inflated.
    std::size_t compressed_messages() const noexcept { return compressed_messages_; }
    /// The TCP socket (under TLS, the one the TLS stream runs on).
    asio::ip::tcp::socket& socket() noexcept {
        return std::visit([](auto& s) -> asio::ip::tcp::socket& {
            if constexpr (std::is_same_v<std::remove_cvref_t<decltype(s)>, asio::ip::tcp::socket>)
                return s;
            else
                return s.next_layer();
        }, stream_);
    }
    bool is_tls() const noexcept { return stream_.index() != 0; }

private:
#if SWIRL_TLS
    using TlsStream = asio::ssl::stream<asio::ip::tcp::socket>;
    using Stream = std::variant<asio::ip::tcp::socket, TlsStream>;
#else
    using Stream = std::variant<asio::ip::tcp::socket>;
#endif

    Client(Stream stream, const Options& options)
        : stream_(std::move(stream)), options_(options), reader_(Role::client, options.limits), buffer_(65536),
          random_(std::random_device{}()) {}

    /// A compressed message from the server, in the reader's frame: inflated in place (bounded by the message
    /// limit), text checked as UTF-8. Throws as for any other server violation.
    void inflate_message() {
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
        Frame& f = reader_.frame();
        inflated_.clear();
        const auto limit = static_cast<std::size_t>(std::min<std::uint64_t>(options_.limits.max_message_size, SIZE_MAX));
        const InflateResult r = inflater_->inflate(f.payload, true, inflated_, limit);
        if (r != InflateResult::ok)
            throw std::runtime_error("server protocol violation: " + std::string(inflater_->error_reason()) + " (close " +
                                     std::to_string(close_code_for(r)) + ")");
        if (f.opcode == Opcode::text && !is_valid_utf8(inflated_))
            throw std::runtime_error("server protocol violation: invalid UTF-8 in a compressed text message");
        f.payload.swap(inflated_);
        f.rsv = 0;
        ++compressed_messages_;
#endif
    }

    /// The server's `Sec-WebSocket-Extensions`: nothing, or a valid answer to our offer (else the handshake fails).
    void accept_extensions() {
        const auto value = response_.header("Sec-WebSocket-Extensions");
        if (!value) return;
        const auto params = options_.deflate ? parse_deflate_response(*value) : std::nullopt;
        if (!params || !is_valid_deflate_response(options_.deflate->offer, *params))
            throw std::runtime_error("server answered with an extension that was not offered: " + std::string(*value));
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
        deflate_params_ = *params;
        DeflateOptions codec;
        codec.level = options_.deflate->level;
        codec.mem_level = options_.deflate->mem_level;
        deflater_.emplace(Deflater::for_client(*params, codec));
        inflater_.emplace(Inflater::for_client(*params));
        reader_.set_compression(true);
#endif
    }

    /// The plain socket, or a TLS stream over it (not yet handshaken) set up from `options.tls`.
    static Stream make_stream(asio::ip::tcp::socket socket, const Options& options) {
        if (!options.tls) return Stream(std::in_place_index<0>, std::move(socket));
#if SWIRL_TLS
        const ClientTls& tls = *options.tls;
        asio::ssl::context ctx(asio::ssl::context::tls_client);  // the stream's SSL keeps its SSL_CTX alive
        if (tls.verify) {
            if (tls.ca_file.empty())
                ctx.set_default_verify_paths();
            else
                ctx.load_verify_file(tls.ca_file);
            ctx.set_verify_mode(asio::ssl::verify_peer);
        } else {
            ctx.set_verify_mode(asio::ssl::verify_none);
        }
        if (!tls.cert_file.empty()) {
            ctx.use_certificate_chain_file(tls.cert_file);
            ctx.use_private_key_file(tls.key_file.empty() ? tls.cert_file : tls.key_file, asio::ssl::context::pem);
        }
        Stream stream(std::in_place_index<1>, std::move(socket), ctx);
        SSL* ssl = std::get<1>(stream).native_handle();
        if (!tls.server_name.empty()) {
            std::error_code not_ip;
            asio::ip::make_address(tls.server_name, not_ip);
            bool ok = true;
            if (not_ip) {  // a host name: sent as SNI (RFC 6066 has no SNI for addresses) and checked
                ok = SSL_set_tlsext_host_name(ssl, tls.server_name.c_str()) == 1 &&
                     (!tls.verify || SSL_set1_host(ssl, tls.server_name.c_str()) == 1);
            } else if (tls.verify) {  // an address: checked against the certificate's IP entries
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), tls.server_name.c_str()) == 1;
            }
            if (!ok) throw std::invalid_argument("swirl: TLS server name '" + tls.server_name + "' not usable");
        }
        return stream;
#else
        throw std::logic_error("a TLS client needs swirl built with TLS (SWIRL_TLS, OpenSSL 3)");
#endif
    }

#if SWIRL_TLS
    /// Throws `std::system_error` with OpenSSL's reason (and the certificate verification error, if any).
    asio::awaitable<void> tls_handshake(const std::string& server_name) {
        TlsStream& stream = std::get<1>(stream_);
        std::error_code ec;
        co_await stream.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) co_return;
        std::string what = "TLS handshake with '" + server_name + "'";
        const long verify = SSL_get_verify_result(stream.native_handle());
        if (verify != X509_V_OK) what += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
        throw std::system_error(ec, what);
    }
#endif

    /// One read from the stream into `buffer_`.
    template <class Token>
    asio::awaitable<std::size_t> read_some(Token token) {
        return std::visit([&](auto& s) { return s.async_read_some(asio::buffer(buffer_), std::move(token)); }, stream_);
    }

    MaskKey next_mask() {
        const std::uint32_t r = static_cast<std::uint32_t>(random_());
        return {static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(r >> 8), static_cast<std::uint8_t>(r >> 16),
                static_cast<std::uint8_t>(r >> 24)};
    }

    asio::awaitable<void> handshake(const std::string& host, const Options& options) {
        std::array<std::uint8_t, 16> nonce;
        for (auto& b : nonce) b = static_cast<std::uint8_t>(random_());
        const std::string key = detail::base64_encode(nonce);
        std::string request = "GET " + options.target + " HTTP/1.1\r\nHost: " + host +
                              "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                              "\r\nSec-WebSocket-Version: 13\r\n";
        if (!options.subprotocols.empty()) {
            request += "Sec-WebSocket-Protocol: ";
            for (std::size_t i = 0; i < options.subprotocols.size(); ++i)
                request += (i ? ", " : "") + options.subprotocols[i];
            request += "\r\n";
        }
        if (options.deflate) {
            if (!deflate_available) throw std::logic_error("a deflate client needs swirl built with zlib (SWIRL_HAS_DEFLATE)");
            request += "Sec-WebSocket-Extensions: " + deflate_offer_value(options.deflate->offer) + "\r\n";
        }
        for (const auto& h : options.headers) request += h.name + ": " + h.value + "\r\n";
        request += "\r\n";
        co_await send_raw(request);

        std::string head;
        std::size_t end;
        while ((end = head.find("\r\n\r\n")) == std::string::npos) {
            if (head.size() > 65536) throw std::runtime_error("handshake response too large");
            const std::size_t n = co_await read_some(asio::use_awaitable);
            head.append(reinterpret_cast<const char*>(buffer_.data()), n);
        }
        auto parsed = parse_response_head(std::string_view(head).substr(0, end + 2));
        if (!parsed) throw std::runtime_error("malformed handshake response");
        response_ = std::move(*parsed);
        std::string rest = head.substr(end + 4);
        if (response_.status != 101) {
            response_.body = std::move(rest);
            throw HandshakeRejected(response_);
        }
        if (response_.header("Sec-WebSocket-Accept") != std::optional<std::string_view>(accept_key(key)))
            throw HandshakeRejected(response_);
        accept_extensions();
        have_ = rest.size();
        std::memcpy(buffer_.data(), rest.data(), rest.size());
    }

    Stream stream_;
    Options options_;
    MessageReader reader_;
    std::vector<std::uint8_t> buffer_;
    std::size_t have_ = 0;
    std::mt19937_64 random_;
    Response response_;
    bool close_sent_ = false;
    std::optional<DeflateParams> deflate_params_;
    std::size_t compressed_messages_ = 0;
#if defined(SWIRL_HAS_DEFLATE) && SWIRL_HAS_DEFLATE
    std::optional<Deflater> deflater_;
    std::optional<Inflater> inflater_;
    std::string compressed_;  // the last compressed message sent: its capacity is reused
    std::string inflated_;    // the last message inflated: swapped with the reader's buffer
#endif
};

} // namespace swirl

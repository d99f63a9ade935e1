#pragma once
/// Server-side TLS configuration (OpenSSL 3): what `TlsTransport` (server/tls_transport.hpp) needs to accept wss.
///
///     TlsSettings   certificate chain and key files, optional client verification, versions and ciphers
///     TlsContext    an SSL_CTX built from TlsSettings; `reload()` rebuilds it from the same files for the
///                   connections accepted after it (those already open keep the SSL_CTX they were created with)
///
/// Needs OpenSSL 3 (libssl, libcrypto); the `tls` build option.

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace swirl {

/// Whether a server asks the client for a certificate.
enum class VerifyClient {
    none,      ///< never asks
    optional,  ///< asks; a client without one is accepted, one that does not verify against `ca_file` is refused
    required,  ///< asks; a client without a certificate, or with one that does not verify, is refused
};

/// The lowest protocol version a server accepts.
enum class TlsVersion { tls1_2, tls1_3 };

struct TlsSettings {
    std::string cert_file;  ///< PEM: the server certificate, then its intermediates
    std::string key_file;   ///< PEM: the private key (not encrypted: no passphrase is ever prompted for)
    std::string ca_file;    ///< PEM: the CAs client certificates are verified against (needed unless `none`)
    VerifyClient verify_client = VerifyClient::none;
    TlsVersion min_version = TlsVersion::tls1_2;
    /// TLS 1.2 cipher list: forward secrecy and AEAD only.
    std::string ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20";
    /// TLS 1.3 cipher suites.
    std::string ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
};

namespace detail {

/// Before an SSL I/O call, whose outcome SSL_get_error reads only reliably from an empty error queue: empties this
/// thread's queue. It is nearly always empty already, and looking costs a fraction of `ERR_clear_error`, which resets
/// all 16 of its slots (5% of the server's CPU time at 512 B over TLS, three calls per message).
inline void clear_openssl_errors() noexcept {
    if (ERR_peek_error() != 0) ERR_clear_error();
}

/// The OpenSSL errors queued on this thread, oldest first, joined by "; " (and the queue cleared).
inline std::string openssl_errors() {
    std::string all;
    char text[256];
    while (const unsigned long e = ERR_get_error()) {
        ERR_error_string_n(e, text, sizeof text);
        if (!all.empty()) all += "; ";
        all += text;
    }
    return all.empty() ? std::string("unknown OpenSSL error") : all;
}

/// Throws unless `path` can be opened for reading; the message names the file and what it is for.
inline void require_readable(std::string_view what, const std::string& path) {
    if (path.empty()) throw std::invalid_argument("swirl: TLS " + std::string(what) + " file not set");
    if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
        std::fclose(f);
        return;
    }
    const int err = errno;
    throw std::runtime_error("swirl: TLS " + std::string(what) + " file '" + path + "': " + std::strerror(err));
}

[[noreturn]] inline void throw_openssl(std::string_view what, const std::string& path) {
    throw std::runtime_error("swirl: TLS " + std::string(what) + " file '" + path + "': " + openssl_errors());
}

/// ALPN: selects "http/1.1" when the client offers it; otherwise the handshake goes on without ALPN.
inline int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                       unsigned int inlen, void*) {
    static constexpr unsigned char ours[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, outlen, ours, sizeof ours, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/// No passphrase prompt on the terminal for an encrypted key: it fails to load instead.
inline int no_passphrase(char*, int, int, void*) { return 0; }

inline std::shared_ptr<SSL_CTX> make_ssl_ctx(const TlsSettings& s) {
    require_readable("certificate", s.cert_file);
    require_readable("key", s.key_file);
    if (s.verify_client != VerifyClient::none) {
        if (s.ca_file.empty()) throw std::invalid_argument("swirl: TLS verify_client needs ca_file");
        require_readable("CA", s.ca_file);
    } else if (!s.ca_file.empty()) {
        require_readable("CA", s.ca_file);
    }

    ERR_clear_error();
    std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
    if (!ctx) throw std::runtime_error("swirl: SSL_CTX_new: " + openssl_errors());
    SSL_CTX* c = ctx.get();
    SSL_CTX_set_default_passwd_cb(c, no_passphrase);
    if (SSL_CTX_set_min_proto_version(c, s.min_version == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1)
        throw std::runtime_error("swirl: TLS min version: " + openssl_errors());
    if (SSL_CTX_set_cipher_list(c, s.ciphers.c_str()) != 1)
        throw std::invalid_argument("swirl: TLS ciphers '" + s.ciphers + "': " + openssl_errors());
    if (SSL_CTX_set_ciphersuites(c, s.ciphersuites.c_str()) != 1)
        throw std::invalid_argument("swirl: TLS ciphersuites '" + s.ciphersuites + "': " + openssl_errors());
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Buffers are kept between records (no SSL_MODE_RELEASE_BUFFERS): no allocation per message.
    if (SSL_CTX_use_certificate_chain_file(c, s.cert_file.c_str()) != 1) throw_openssl("certificate", s.cert_file);
    if (SSL_CTX_use_PrivateKey_file(c, s.key_file.c_str(), SSL_FILETYPE_PEM) != 1) throw_openssl("key", s.key_file);
    if (SSL_CTX_check_private_key(c) != 1)
        throw std::runtime_error("swirl: TLS key file '" + s.key_file + "' does not match certificate file '" +
                                 s.cert_file + "': " + openssl_errors());
    if (!s.ca_file.empty()) {
        if (SSL_CTX_load_verify_file(c, s.ca_file.c_str()) != 1) throw_openssl("CA", s.ca_file);
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_file.c_str());
        if (!names) throw_openssl("CA", s.ca_file);
        SSL_CTX_set_client_CA_list(c, names);  // takes ownership
    }
    switch (s.verify_client) {
    case VerifyClient::none: SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr); break;
    case VerifyClient::optional: SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr); break;
    case VerifyClient::required:
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        break;
    }
    static constexpr unsigned char session_id_context[] = {'s', 'w', 'i', 'r', 'l'};
    SSL_CTX_set_session_id_context(c, session_id_context, sizeof session_id_context);
    SSL_CTX_set_alpn_select_cb(c, select_alpn, nullptr);
    return ctx;
}

} // namespace detail

/// An SSL_CTX built from TlsSettings, shared by the connections created from it. Thread-safe: `native()` (what a
/// new connection takes) and `reload()` may be called from any thread at any time.
class TlsContext {
public:
    /// Throws (std::runtime_error or std::invalid_argument, the message naming the file) when the certificate,
    /// key or CA file is missing, unreadable or invalid, or the key does not match the certificate.
    explicit TlsContext(TlsSettings settings) : settings_(std::move(settings)), ctx_(detail::make_ssl_ctx(settings_)) {}

    /// Builds a new SSL_CTX from the same files (re-read now, e.g. after a certificate renewal) and uses it for
    /// the connections created from now on; connections already open keep theirs. Throws as the constructor does,
    /// and then the SSL_CTX in use stays.
    void reload() {
        std::shared_ptr<SSL_CTX> fresh = detail::make_ssl_ctx(settings_);
        std::lock_guard lock(mutex_);
        ctx_.swap(fresh);
    }  // the old SSL_CTX goes when its last connection does

    /// The SSL_CTX for a new connection (each SSL* also holds a reference of its own to its SSL_CTX).
    std::shared_ptr<SSL_CTX> native() const {
        std::lock_guard lock(mutex_);
        return ctx_;
    }

    const TlsSettings& settings() const noexcept { return settings_; }

private:
    const TlsSettings settings_;
    mutable std::mutex mutex_;
    std::shared_ptr<SSL_CTX> ctx_;
};

} // namespace swirl

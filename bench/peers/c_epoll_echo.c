/* c_epoll_echo: the C ceiling of the benchmark. A minimal TCP echo in plain C11 on raw epoll, no framework:
 * level-triggered, non-blocking sockets, TCP_NODELAY, one recv and one send per ready socket. Each loop reads into
 * one 512 KiB buffer (as uSockets and swirl's default read_size: with 64 KiB, echoing 16 KiB messages 16 at a time
 * took half the messages per CPU-second). A short send copies the unsent bytes to the connection and waits for
 * EPOLLOUT (not reading meanwhile); otherwise the interest set is never changed, so a steady echo costs recv + send
 * + a share of epoll_wait per message and no epoll_ctl.
 * Like raw_echo it speaks no WebSocket: loadgen drives it with --mode raw.
 *   c_epoll_echo [--host 127.0.0.1] [--port 0] [--threads 1]
 * threads > 1: one epoll loop per thread; thread 0 accepts and hands connections round-robin to the loops
 * (a connection stays on one), as raw_echo does. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER_SIZE = 512 * 1024, MAX_EVENTS = 512, MAX_THREADS = 64 };

/* One connection: its socket and the bytes a short send left (pending[sent, len), malloc'd; NULL when none). */
struct conn {
    int fd;
    size_t sent, len;
    char* pending;
};

static int listen_fd = -1;
static int loops[MAX_THREADS];
static char* read_buffers[MAX_THREADS]; /* one per loop */
static int thread_count = 1;

static void die(const char* what) {
    perror(what);
    exit(1);
}

static void close_conn(struct conn* c) {
    close(c->fd); /* also removes it from its epoll set */
    free(c->pending);
    free(c);
}

static void watch(int ep, struct conn* c, int op, unsigned events) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) die("epoll_ctl");
}

/* Accepts what is pending and hands each socket to the next loop. */
static void accept_all(unsigned* next) {
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or an error on one connection attempt */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn* c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->sent = c->len = 0;
        c->pending = NULL;
        watch(loops[(*next)++ % (unsigned)thread_count], c, EPOLL_CTL_ADD, EPOLLIN);
    }
}

/* One send of what is left; back to reading once it is all gone. Returns 0 when the connection was closed. */
static int flush(int ep, struct conn* c) {
    ssize_t n = send(c->fd, c->pending + c->sent, c->len - c->sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        close_conn(c);
        return 0;
    }
    if (n > 0) c->sent += (size_t)n;
    if (c->sent == c->len) {
        c->sent = c->len = 0;
        free(c->pending);
        c->pending = NULL;
        watch(ep, c, EPOLL_CTL_MOD, EPOLLIN);
    }
    return 1;
}

/* One ready connection: with bytes pending, one send; otherwise one recv and one send of what it read. */
static void ready(int ep, char* buffer, struct conn* c, unsigned events) {
    if (c->len) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) flush(ep, c);
        return;
    }
    ssize_t n = recv(c->fd, buffer, BUFFER_SIZE, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        close_conn(c);
        return;
    }
    if (n < 0) return;
    ssize_t s = send(c->fd, buffer, (size_t)n, MSG_NOSIGNAL);
    if (s < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        close_conn(c);
        return;
    }
    if (s == n) return;
    const size_t sent = s > 0 ? (size_t)s : 0;
    c->pending = malloc((size_t)n - sent);
    if (!c->pending) {
        close_conn(c);
        return;
    }
    memcpy(c->pending, buffer + sent, (size_t)n - sent);
    c->sent = 0;
    c->len = (size_t)n - sent;
    watch(ep, c, EPOLL_CTL_MOD, EPOLLOUT); /* short send: wait until the socket drains, stop reading */
}

static void* run_loop(void* arg) {
    int ep = loops[(size_t)arg];
    char* buffer = read_buffers[(size_t)arg];
    unsigned next = 0;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            if (events[i].data.ptr == NULL) accept_all(&next); /* the listening socket (thread 0 only) */
            else ready(ep, buffer, events[i].data.ptr, events[i].events);
        }
    }
    return NULL;
}

int main(int argc, char** argv) {
    const char* host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0) thread_count = atoi(argv[i + 1]);
    }
    if (thread_count < 1) thread_count = 1;
    if (thread_count > MAX_THREADS) thread_count = MAX_THREADS;

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "c_epoll_echo: not an IPv4 address: %s\n", host);
        return 1;
    }
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) die("socket");
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listen_fd, (struct sockaddr*)&addr, sizeof addr) < 0) die("bind");
    if (listen(listen_fd, 4096) < 0) die("listen");
    socklen_t len = sizeof addr;
    if (getsockname(listen_fd, (struct sockaddr*)&addr, &len) < 0) die("getsockname");

    for (int i = 0; i < thread_count; ++i) {
        if ((loops[i] = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
        if (!(read_buffers[i] = malloc(BUFFER_SIZE))) die("malloc");
    }
    struct epoll_event lev;
    memset(&lev, 0, sizeof lev);
    lev.events = EPOLLIN;
    lev.data.ptr = NULL;
    if (epoll_ctl(loops[0], EPOLL_CTL_ADD, listen_fd, &lev) < 0) die("epoll_ctl");

    printf("listening on tcp://%s:%u\n", host, (unsigned)ntohs(addr.sin_port));
    fflush(stdout);
    for (int i = 1; i < thread_count; ++i) {
        pthread_t t;
        if (pthread_create(&t, NULL, run_loop, (void*)(size_t)i) != 0) die("pthread_create");
    }
    run_loop((void*)(size_t)0);
    return 0;
}

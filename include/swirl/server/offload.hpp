#pragma once
/// Task offload (Swoole's task workers): `co_await server.offload(f)` runs blocking or CPU-heavy `f` on a bounded
/// pool of worker threads and resumes the awaiting coroutine on its own executor with `f`'s result, or with the
/// exception `f` threw. This header holds the pool; `Server::offload` is the entry point.

#include <swirl/server/stats.hpp>

#include <swirl/detail/asio.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace swirl {

/// Thrown into the awaiting handler when `Server::offload` cannot run its task: the queue is full
/// (`std::errc::resource_unavailable_try_again`) or the server is stopping (`std::errc::operation_canceled`).
class OffloadError : public std::system_error {
public:
    using std::system_error::system_error;
};

namespace detail {

/// A fixed set of worker threads (started on first use) with a bounded queue. Tasks complete through their
/// handler's associated executor, which is kept busy (outstanding work) until then.
class TaskPool {
public:
    TaskPool(unsigned threads, std::size_t queue_limit) : threads_(threads == 0 ? 1 : threads), limit_(queue_limit) {}
    TaskPool(const TaskPool&) = delete;
    TaskPool& operator=(const TaskPool&) = delete;
    ~TaskPool() { join(); }

    /// Takes a place in the queue for one `submit`. Throws `OffloadError` when the queue is full or the pool is
    /// stopping: called before the awaiting coroutine suspends, so that the error reaches it as an exception.
    void reserve() {
        std::lock_guard lock(mutex_);
        if (stopping_) throw OffloadError(std::make_error_code(std::errc::operation_canceled), "offload: server stopping");
        if (queue_.size() + reserved_ >= limit_) {
            refused_.add();
            throw OffloadError(std::make_error_code(std::errc::resource_unavailable_try_again),
                               "offload: queue full (Settings::task_queue_size)");
        }
        ++reserved_;
    }

    /// Queues `f` in the place `reserve()` took; `handler(std::exception_ptr, Result)` runs later on the handler's
    /// executor, with `OffloadError` when the pool stopped meanwhile.
    template <class Result, class F, class Handler>
    void submit(F f, Handler handler) {
        std::unique_ptr<TaskBase> task = std::make_unique<Task<Result, F, Handler>>(std::move(f), std::move(handler));
        std::unique_lock lock(mutex_);
        --reserved_;
        if (!stopping_ && workers_.size() < threads_ && idle_workers_ == 0) {
            try {
                workers_.emplace_back([this] { work(); });
            } catch (const std::system_error&) {  // no thread could be made: run on those there are, or fail
                if (workers_.empty()) stopping_ = true;
            }
        }
        if (stopping_) {
            lock.unlock();
            cancelled_.add();
            return task->cancel();
        }
        queue_.push_back(std::move(task));
        lock.unlock();
        wake_.notify_one();
    }

    /// Refuses new tasks and cancels the queued ones (their handlers get `OffloadError` with `operation_canceled`);
    /// running tasks go on. Any thread.
    void stop() {
        std::deque<std::unique_ptr<TaskBase>> cancelled;
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
            cancelled.swap(queue_);
        }
        wake_.notify_all();
        for (auto& t : cancelled) {
            cancelled_.add();
            t->cancel();
        }
    }

    /// Waits until no task runs, at most until `deadline`; true when none does.
    bool wait_idle(std::chrono::steady_clock::time_point deadline) {
        std::unique_lock lock(mutex_);
        return idle_.wait_until(lock, deadline, [this] { return running_ == 0 && queue_.empty(); });
    }

    /// `stop()`, then joins the workers, waiting for running tasks to return (however long they take).
    void join() {
        stop();
        for (auto& w : workers_) w.join();
        workers_.clear();
    }

    TaskStats stats() const {
        TaskStats s;
        {
            std::lock_guard lock(mutex_);
            s.queued = queue_.size();
            s.running = running_;
        }
        s.completed = completed_.get();
        s.failed = failed_.get();
        s.refused = refused_.get();
        s.cancelled = cancelled_.get();
        return s;
    }

private:
    struct TaskBase {
        virtual ~TaskBase() = default;
        virtual bool run() = 0;  ///< false when the task threw
        virtual void cancel() = 0;
    };

    /// `Result` is what the handler receives: `std::optional<R>`, or `std::monostate` for a void `f`.
    template <class Result, class F, class Handler>
    struct Task final : TaskBase {
        Task(F f, Handler h)
            : f(std::move(f)), handler(std::move(h)),
              work(asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked)) {}

        bool run() override {
            Result result{};
            std::exception_ptr error;
            try {
                if constexpr (std::is_same_v<Result, std::monostate>) f();
                else result.emplace(f());
            } catch (...) {
                error = std::current_exception();
            }
            complete(error, std::move(result));
            return !error;
        }
        void cancel() override {
            complete(std::make_exception_ptr(OffloadError(std::make_error_code(std::errc::operation_canceled),
                                                          "offload: cancelled, the server is stopping")),
                     Result{});
        }
        void complete(std::exception_ptr error, Result result) {
            auto executor = std::move(work);
            asio::post(executor, [h = std::move(handler), error, r = std::move(result)]() mutable { h(error, std::move(r)); });
        }

        F f;
        Handler handler;
        std::decay_t<decltype(asio::prefer(std::declval<asio::associated_executor_t<Handler>>(),
                                           asio::execution::outstanding_work.tracked))> work;
    };

    void work() {
        std::unique_lock lock(mutex_);
        while (true) {
            ++idle_workers_;
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            --idle_workers_;
            if (queue_.empty()) return;  // stopping
            std::unique_ptr<TaskBase> task = std::move(queue_.front());
            queue_.pop_front();
            ++running_;
            lock.unlock();
            (task->run() ? completed_ : failed_).add();
            task.reset();
            lock.lock();
            --running_;
            if (running_ == 0 && queue_.empty()) idle_.notify_all();
        }
    }

    const std::size_t threads_;
    const std::size_t limit_;
    mutable std::mutex mutex_;
    std::condition_variable wake_, idle_;
    std::deque<std::unique_ptr<TaskBase>> queue_;
    std::vector<std::thread> workers_;
    std::size_t idle_workers_ = 0;
    std::size_t reserved_ = 0;  // places taken by reserve() and not yet filled by submit()
    std::size_t running_ = 0;
    bool stopping_ = false;
    Counter completed_, failed_, refused_, cancelled_;
};

} // namespace detail
} // namespace swirl

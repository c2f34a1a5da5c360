// imgdl::Promise: the producing side of a Future whose work runs outside any executor.

#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#include "imgdl/future.hpp"
#include "imgdl/wait.hpp"

using imgdl::CancelledError;
using imgdl::FutureStatus;
using imgdl::Promise;

TEST_CASE("a promise's future is pending, then running, then holds the value set from another thread") {
  Promise<std::string> promise;
  auto future = promise.get_future();
  CHECK(future.status() == FutureStatus::Pending);
  REQUIRE(promise.set_running_or_notify_cancel());
  CHECK(future.running());
  std::thread engine([&] { promise.set_result("done"); });
  CHECK(future.result() == "done");
  engine.join();
  CHECK(future.done());
}

TEST_CASE("a future cancelled before its work started tells the engine to drop the work") {
  Promise<int> promise;
  auto future = promise.get_future();
  CHECK(future.cancel());
  CHECK_FALSE(promise.set_running_or_notify_cancel());
  CHECK_THROWS_AS(future.result(), CancelledError);
}

TEST_CASE("cancelling a running promise's future asks its work to stop through the stop token") {
  Promise<int> promise;
  auto future = promise.get_future();
  REQUIRE(promise.set_running_or_notify_cancel());
  const auto token = promise.stop_token();
  CHECK_FALSE(token.stop_requested());
  CHECK_FALSE(future.cancel());
  CHECK(token.stop_requested());
  CHECK(promise.stop_requested());
  promise.set_result(1);
  CHECK(future.result() == 1);
}

TEST_CASE("an exception set on the promise is rethrown by result()") {
  Promise<int> promise;
  REQUIRE(promise.set_running_or_notify_cancel());
  promise.set_exception(std::make_exception_ptr(std::runtime_error("engine failed")));
  CHECK_THROWS_WITH_AS(promise.get_future().result(), "engine failed", std::runtime_error);
}

TEST_CASE("a throwing done-callback reaches the promise's handler and spares the other callbacks") {
  std::atomic<int> errors{0};
  Promise<int> promise([&](std::exception_ptr) { ++errors; });
  auto future = promise.get_future();
  int ran = 0;
  future.add_done_callback([](const auto&) { throw std::runtime_error("callback"); });
  future.add_done_callback([&](const auto&) { ++ran; });
  REQUIRE(promise.set_running_or_notify_cancel());
  promise.set_result(3);
  CHECK(errors == 1);
  CHECK(ran == 1);
}

TEST_CASE("wait() and as_completed work on promises' futures like on any others") {
  Promise<int> first;
  Promise<int> second;
  std::vector futures{first.get_future(), second.get_future()};
  REQUIRE(second.set_running_or_notify_cancel());
  second.set_result(2);
  const auto done = imgdl::wait(futures, std::chrono::milliseconds(10), imgdl::ReturnWhen::FirstCompleted);
  CHECK(done.done.size() == 1);
  CHECK(done.not_done.size() == 1);
}

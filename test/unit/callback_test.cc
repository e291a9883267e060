// percore::NewCallback (a self-deleting Closure from any callable) and
// percore::ClosureGuard (runs `done` when it leaves scope), with brpc's
// semantics.

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include <percore/proto/closure_guard.h>
#include <percore/proto/new_callback.h>

namespace percore {
namespace {

// Counts its live copies, to see that a closure frees what it holds.
struct Tracked {
  explicit Tracked(int* live) : live(live) { ++*live; }
  Tracked(const Tracked& other) : live(other.live) { ++*live; }
  ~Tracked() { --*live; }
  int* live;
};

TEST(NewCallbackTest, RunsALambdaOnceAndDeletesItself) {
  int live = 0;
  int runs = 0;
  google::protobuf::Closure* done = nullptr;
  {
    Tracked tracked(&live);
    done = NewCallback([&runs, tracked] { ++runs; });
  }
  EXPECT_EQ(live, 1);  // The closure holds its copy until it runs.
  done->Run();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(live, 0);  // Deleted by Run(); ASan / LSan would see a leak too.
}

TEST(NewCallbackTest, TakesMoveOnlyCallablesAndArguments) {
  std::string seen;
  auto owned = std::make_unique<std::string>("moved in");
  google::protobuf::Closure* by_capture =
      NewCallback([&seen, owned = std::move(owned)]() mutable { seen = *owned; });
  by_capture->Run();
  EXPECT_EQ(seen, "moved in");

  // A bound move-only argument reaches a by-value parameter (as std::thread).
  std::unique_ptr<std::string> received;
  google::protobuf::Closure* by_argument = NewCallback(
      [&received](std::unique_ptr<std::string> value) { received = std::move(value); },
      std::make_unique<std::string>("bound"));
  by_argument->Run();
  ASSERT_NE(received, nullptr);
  EXPECT_EQ(*received, "bound");
}

TEST(NewCallbackTest, BindsAnyNumberOfArgumentsByValueOrByStdRef) {
  int sum = 0;
  google::protobuf::Closure* done = NewCallback(
      [](int& out, int a, int b, int c, int d, const std::string& e) {
        out = a + b + c + d + static_cast<int>(e.size());
      },
      std::ref(sum), 1, 2, 3, 4, std::string("five!"));
  done->Run();
  EXPECT_EQ(sum, 15);
}

void add_to(int* total, int amount) {
  *total += amount;
}

struct Handler {
  void on_done(const std::string& text) { last = text; }
  std::string last;
};

TEST(NewCallbackTest, TakesFunctionsAndMemberFunctionsInEitherOrder) {
  int total = 0;
  NewCallback(add_to, &total, 2)->Run();
  NewCallback(&add_to, &total, 3)->Run();
  EXPECT_EQ(total, 5);

  Handler handler;
  NewCallback(&handler, &Handler::on_done, std::string("brpc order"))->Run();
  EXPECT_EQ(handler.last, "brpc order");
  NewCallback(&Handler::on_done, &handler, std::string("std::invoke order"))->Run();
  EXPECT_EQ(handler.last, "std::invoke order");

  // A function pointer first is a function, even when a member function
  // pointer follows as its argument.
  static Handler* target = nullptr;
  target = &handler;
  void (*apply)(void (Handler::*)(const std::string&)) =
      [](void (Handler::*method)(const std::string&)) {
    (target->*method)("through a function");
  };
  NewCallback(apply, &Handler::on_done)->Run();
  EXPECT_EQ(handler.last, "through a function");
}

TEST(NewCallbackTest, IsDeletedEvenWhenTheCallableThrows) {
  int live = 0;
  Tracked tracked(&live);
  google::protobuf::Closure* done =
      NewCallback([tracked] { throw std::runtime_error("from the callback"); });
  EXPECT_EQ(live, 2);
  EXPECT_THROW(done->Run(), std::runtime_error);
  EXPECT_EQ(live, 1);
}

// A closure that counts its runs and is not deleted by them.
struct CountingClosure : google::protobuf::Closure {
  void Run() override { ++runs; }
  int runs = 0;
};

TEST(ClosureGuardTest, RunsTheClosureWhenItLeavesScope) {
  CountingClosure done;
  {
    ClosureGuard guard(&done);
    EXPECT_FALSE(guard.empty());
    EXPECT_EQ(done.runs, 0);
  }
  EXPECT_EQ(done.runs, 1);
}

TEST(ClosureGuardTest, RunsOnAnEarlyReturnAndOnAThrow) {
  CountingClosure done;
  const auto handler = [&](bool fail_early) {
    ClosureGuard guard(&done);
    if (fail_early)
      return;
    throw std::runtime_error("handler failed");
  };
  handler(true);
  EXPECT_EQ(done.runs, 1);
  EXPECT_THROW(handler(false), std::runtime_error);
  EXPECT_EQ(done.runs, 2);
}

TEST(ClosureGuardTest, ReleaseHandsTheClosureBackUnrun) {
  CountingClosure done;
  google::protobuf::Closure* released = nullptr;
  {
    ClosureGuard guard(&done);
    released = guard.release();
    EXPECT_TRUE(guard.empty());
    EXPECT_EQ(guard.release(), nullptr);
  }
  EXPECT_EQ(released, &done);
  EXPECT_EQ(done.runs, 0);
}

TEST(ClosureGuardTest, ResetRunsTheHeldClosureAndGuardsTheNewOne) {
  CountingClosure first;
  CountingClosure second;
  {
    ClosureGuard guard(&first);
    guard.reset(&second);
    EXPECT_EQ(first.runs, 1);
    EXPECT_EQ(second.runs, 0);
  }
  EXPECT_EQ(first.runs, 1);
  EXPECT_EQ(second.runs, 1);

  ClosureGuard empty_guard;
  EXPECT_TRUE(empty_guard.empty());
  empty_guard.reset(nullptr);  // Nothing to run, nothing held.
  EXPECT_TRUE(empty_guard.empty());
}

TEST(ClosureGuardTest, GuardsASelfDeletingNewCallback) {
  int runs = 0;
  { ClosureGuard guard(NewCallback([&runs] { ++runs; })); }
  EXPECT_EQ(runs, 1);
}

}  // namespace
}  // namespace percore

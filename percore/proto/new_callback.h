#pragma once

#include <google/protobuf/stubs/callback.h>

#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace percore {

namespace callback_detail {

// The closure NewCallback returns: owns a copy of the callable and of the
// bound arguments, and itself (deleted by Run()).
template <typename Function, typename... Bound>
class OneShotClosure final : public google::protobuf::Closure {
 public:
  template <typename F, typename... A>
  explicit OneShotClosure(F&& function, A&&... bound)
      : function_(std::forward<F>(function)), bound_(std::forward<A>(bound)...) {}

  void Run() override {
    // Deleted even if the callable throws.
    std::unique_ptr<OneShotClosure> self(this);
    // Run once: the callable and its arguments are handed over as rvalues,
    // so a move-only argument can be moved on (as std::thread does).
    std::apply(
        [this](Bound&&... bound) {
          std::invoke(std::move(function_), std::forward<Bound>(bound)...);
        },
        std::move(bound_));
  }

 private:
  Function function_;
  std::tuple<Bound...> bound_;
};

// Whether the arguments start (object pointer, member function pointer). A
// function pointer is not an object pointer: NewCallback(&Apply, &C::M)
// binds &C::M as Apply's argument.
template <typename... Arguments>
struct ObjectThenMethod : std::false_type {};
template <typename Object, typename Method, typename... Rest>
struct ObjectThenMethod<Object, Method, Rest...>
    : std::bool_constant<std::is_pointer_v<std::decay_t<Object>> &&
                         !std::is_function_v<std::remove_pointer_t<std::decay_t<Object>>> &&
                         std::is_member_function_pointer_v<std::decay_t<Method>>> {};

}  // namespace callback_detail

// A google::protobuf::Closure from any callable, as brpc::NewCallback but
// with no limit on the callable or on the number of bound arguments:
//
//   stub.Echo(&cntl, &request, &response, percore::NewCallback([&] { ... }));
//   percore::NewCallback(&OnEcho, std::move(cntl), response);  // bound arguments
//   percore::NewCallback(this, &Client::OnEcho, response);     // brpc's/protobuf's order
//
// The callable and the arguments are moved (or copied) into the closure, so
// move-only ones work; Run() passes them to the callable as rvalues, as
// std::thread does (wrap an argument in std::ref to pass a reference).
// The return value of the callable is ignored.
//
// Self-deleting, like protobuf's NewCallback: Run() must be called exactly
// once (it deletes the closure, also when the callable throws); a closure
// never run leaks. Run() from any thread.
template <typename Function, typename... Args>
google::protobuf::Closure* NewCallback(Function&& function, Args&&... args) {
  if constexpr (callback_detail::ObjectThenMethod<Function, Args...>::value) {
    // NewCallback(object, &Class::Method, args...): reorder for std::invoke.
    return [&](auto&& object, auto&& method, auto&&... rest) -> google::protobuf::Closure* {
      return new callback_detail::OneShotClosure<std::decay_t<decltype(method)>,
                                                 std::decay_t<decltype(object)>,
                                                 std::decay_t<decltype(rest)>...>(
          method, object, std::forward<decltype(rest)>(rest)...);
    }(std::forward<Function>(function), std::forward<Args>(args)...);
  } else {
    static_assert(std::is_invocable_v<std::decay_t<Function>&&, std::decay_t<Args>&&...>,
                  "percore::NewCallback: the callable cannot be called with the bound "
                  "arguments (passed as rvalues; use std::ref for a reference)");
    return new callback_detail::OneShotClosure<std::decay_t<Function>, std::decay_t<Args>...>(
        std::forward<Function>(function), std::forward<Args>(args)...);
  }
}

}  // namespace percore

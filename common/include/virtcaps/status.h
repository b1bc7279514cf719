// Status and Expected<T>: how every fallible step reports what went wrong.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace virtcaps {

// An error message, or success. Messages name what failed ("/proc/cpuinfo: ...").
class Status {
 public:
  Status() = default;
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }

 private:
  explicit Status(std::string message) : failed_(true), message_(std::move(message)) {}
  bool failed_ = false;
  std::string message_;
};

// A value, or the Status that explains why there is none.
template <typename T>
class Expected {
 public:
  Expected(T value) : data_(std::move(value)) {}       // NOLINT: implicit by design
  Expected(Status error) : data_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return ok(); }
  const T& value() const& { return std::get<T>(data_); }
  T& value() & { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  Status status() const { return ok() ? Status() : std::get<Status>(data_); }
  const std::string& error() const { return std::get<Status>(data_).message(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace virtcaps
